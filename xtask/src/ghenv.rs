//! The environment every `gh` child runs in, built in this one place, and
//! the version of the gh that runs.
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

use std::{process::Command, sync::OnceLock, time::Duration};

use anyhow::{bail, Result};

use crate::proc;

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

/// The version `gh --version` reports (`2.23.0`), asked once per run and
/// kept: preflight shows it, the journal records it.
pub fn version() -> Result<String> {
    static VERSION: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    let found = VERSION.get_or_init(|| {
        let mut command = apply(Command::new("gh"));
        command.arg("--version");
        let out = proc::run_command(command, "gh --version", Duration::from_secs(30))
            .map_err(|e| format!("{e:#}"))?;
        if !out.success() {
            return Err(format!(
                "`gh --version` failed: {}",
                crate::util::last_lines(&out.stderr, 2)
            ));
        }
        parse_version(&out.stdout)
            .map(str::to_string)
            .ok_or_else(|| {
                format!(
                    "`gh --version` printed no version: {}",
                    crate::util::last_lines(&out.stdout, 1)
                )
            })
    });
    match found {
        Ok(v) => Ok(v.clone()),
        Err(e) => bail!("{e}; install gh (`brew install gh`, `apt-get install gh`)"),
    }
}

/// The version in `gh --version`'s first line: `gh version 2.23.0
/// (2023-02-27 Debian 2.23.0+dfsg1-1)`.
pub fn parse_version(text: &str) -> Option<&str> {
    let line = text.lines().next()?;
    let rest = line.strip_prefix("gh version ")?;
    rest.split_whitespace().next().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_version_of_every_known_format() {
        assert_eq!(
            parse_version("gh version 2.23.0 (2023-02-27 Debian 2.23.0+dfsg1-1)\nhttps://x\n"),
            Some("2.23.0")
        );
        assert_eq!(
            parse_version("gh version 2.63.2 (2024-12-05)\n"),
            Some("2.63.2")
        );
        assert_eq!(parse_version("gh version 2.91.0\n"), Some("2.91.0"));
        assert_eq!(parse_version("something else\n"), None);
        assert_eq!(parse_version(""), None);
    }

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
