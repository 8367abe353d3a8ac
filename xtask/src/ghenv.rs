//! The environment every `gh` child runs in, built in this one place.
//!
//! Our users run a current gh from Homebrew, or the one on a GitHub
//! Actions runner, from shells we do not control. gh 2.91 and later send
//! telemetry unless told not to (an extra connection per process, and time
//! spent on exit); `CLICOLOR_FORCE` or `GH_FORCE_TTY` in the user's shell
//! make `gh api` colour its JSON or start a pager, which breaks parsing or
//! hangs a release. So each gh child gets the settings below and loses the
//! variables that force colour, a tty or a pager, whatever the caller's
//! environment holds. The token still comes from the caller (`GH_TOKEN` or
//! gh's own config), never from a command line.

use std::process::Command;

/// Set on every gh child.
pub const SET: &[(&str, &str)] = &[
    // Telemetry off (gh 2.91 and later send it by default).
    ("GH_TELEMETRY", "false"),
    ("DO_NOT_TRACK", "1"),
    // Never wait for an answer nobody will type.
    ("GH_PROMPT_DISABLED", "1"),
    ("GH_NO_UPDATE_NOTIFIER", "1"),
    ("GH_NO_EXTENSION_UPDATE_NOTIFIER", "1"),
    ("GH_SPINNER_DISABLED", "1"),
    // Output goes to us, not to a person: no pager, no colour.
    ("GH_PAGER", "cat"),
    ("NO_COLOR", "1"),
];

/// Removed from every gh child: each forces colour, a tty or a pager.
pub const REMOVED: &[&str] = &["CLICOLOR_FORCE", "GH_FORCE_TTY", "PAGER"];

/// `command` (a gh invocation) with our environment applied.
pub fn apply(mut command: Command) -> Command {
    for name in REMOVED {
        command.env_remove(name);
    }
    command.envs(SET.iter().copied());
    command
}

/// A gh invocation built with xshell's `cmd!`, as a command that runs in
/// our environment.
pub fn command(cmd: xshell::Cmd<'_>) -> Command {
    apply(cmd.into())
}

/// [`command`], kept an xshell `Cmd` for callers that take one (the
/// benchmarks' measured runs).
pub fn cmd(mut cmd: xshell::Cmd<'_>) -> xshell::Cmd<'_> {
    for name in REMOVED {
        cmd = cmd.env_remove(name);
    }
    cmd.envs(SET.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_get_our_settings_and_lose_the_forcing_variables() {
        let mut base = Command::new("env");
        base.env("CLICOLOR_FORCE", "1")
            .env("GH_FORCE_TTY", "100%")
            .env("PAGER", "less")
            .env("NO_COLOR", "")
            .env("GH_TOKEN", "kept");
        let out = apply(base).output().unwrap();
        let env = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = env.lines().collect();
        for (k, v) in SET {
            assert!(lines.contains(&format!("{k}={v}").as_str()), "{k}: {env}");
        }
        for k in REMOVED {
            assert!(
                !lines.iter().any(|l| l.starts_with(&format!("{k}="))),
                "{k}: {env}"
            );
        }
        assert!(lines.contains(&"GH_TOKEN=kept"), "{env}");
    }
}
