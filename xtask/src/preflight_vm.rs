//! Preflight's one call to the VM: the read script of `vm/script.rs`
//! (manifest, versions, the restart gate) whose gate also judges the
//! GEMINI_API_KEY, so that the key check and the read of the VM's state
//! are one script and one run-command. `release` hands the state read
//! here to its publish, which then needs no read of its own: a release
//! makes one run-command before the swap and one sync.
//!
//! The safety is the old key script's: the key's value is read into a
//! variable on the VM and compared, never printed, and the verdict is the
//! script's own marker, never az's exit code (az exits 0 when a script
//! fails or prints MISSING and exits 1). A script that printed no verdict
//! fails the check.

use xshell::Shell;

use crate::{
    az::Az,
    config::Workspace,
    report::CheckResult,
    vm::{self, Gate, Problem, VmState},
};

/// The check's id, as the old key check's.
const ID: &str = "gemini-key";

/// The VM call, running on a thread of its own beside the other checks
/// (a run-command takes tens of seconds in production).
pub struct Pending(
    Option<std::thread::JoinHandle<(CheckResult, Option<VmState>)>>,
    CheckResult,
);

/// Starts the read script's one run-command (beside `az account show`);
/// [`Pending::finish`] gives the `gemini-key` row, and the VM's state when
/// the read gave one.
pub fn start(sh: &Shell, ws: &Workspace, channel: &str) -> Pending {
    let config = &ws.config;
    let az = Az::new(sh, &config.azure.resource_group, &config.azure.vm_name);
    let target = match ws.channel(channel) {
        Ok(c) => vm::Target::new(config, crate::manifest::file_name(&c.manifest)),
        Err(err) => {
            return Pending(
                None,
                CheckResult::fail(ID, format!("{err:#}"), "fix the channel name"),
            )
        }
    };
    let account = az.prepare_account_show();
    let attempts = az.attempts(&target.read_script());
    let base = config.azure.remote_base.clone();
    let handle = std::thread::spawn(move || {
        // Side by side: the login's verdict names the fix when both fail,
        // and a logged-in run does not wait for az's start-up twice.
        let account = std::thread::spawn(move || {
            crate::proc::run_command(account, "az account show", ACCOUNT_TIMEOUT)
                .and_then(crate::az::logged_in)
        });
        let read = attempts.run();
        let logged_in = account
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the az account show thread panicked")));
        if let Err(err) = logged_in {
            return (
                CheckResult::fail(
                    ID,
                    format!("{err:#}"),
                    "run `az login` (and `az account set` to the subscription of the VM)",
                ),
                None,
            );
        }
        judge(read, &base)
    });
    Pending(Some(handle), CheckResult::skip(ID, "not run"))
}

/// How long `az account show` may take.
const ACCOUNT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

impl Pending {
    pub fn finish(self) -> (CheckResult, Option<VmState>) {
        match self.0 {
            None => (self.1, None),
            Some(handle) => handle.join().unwrap_or_else(|_| {
                (
                    CheckResult::fail(ID, "the VM check's thread panicked", "run preflight again"),
                    None,
                )
            }),
        }
    }
}

/// The row and the state from the read's outcome.
fn judge(
    out: anyhow::Result<crate::az::ScriptOutput>,
    base: &str,
) -> (CheckResult, Option<VmState>) {
    let out = match out {
        Ok(out) => out,
        Err(err) => {
            // The az error ends with its fix after the last "; ".
            let msg = format!("{err:#}");
            let (what, fix) = msg
                .rsplit_once("; ")
                .unwrap_or((msg.as_str(), "run `az login` and check the VM is running"));
            return (CheckResult::fail(ID, what.to_string(), fix), None);
        }
    };
    match vm::parse_state(&out) {
        Ok(state) => (verdict(&state.gate, base), Some(state)),
        Err(err) => (
            CheckResult::fail(
                ID,
                format!("the VM read printed no verdict (az exits 0 even when a script fails): {err:#}"),
                "run the check again; if it persists, inspect the VM with `az vm run-command invoke`",
            ),
            None,
        ),
    }
}

/// The `restart-gate` row: on the stable channel, a release that moves
/// the server's version restarts the service, and the gate must let it
/// (publish's planner refuses it too, but by then a release has begun its
/// uploads; a check here stops it before). Key problems are the
/// `gemini-key` row's and are not repeated.
pub fn restart_row(ws: &Workspace, channel: &str, state: Option<&VmState>) -> CheckResult {
    const ROW: &str = "restart-gate";
    let Some(state) = state else {
        return CheckResult::skip(ROW, "the VM's state was not read (see gemini-key)");
    };
    let version = crate::changes::read_text(&ws.root, &ws.config.version_file)
        .ok()
        .and_then(|t| crate::version::parse_version_file(&t).ok());
    let Some(version) = version else {
        return CheckResult::skip(ROW, "VERSION is unreadable (see version)");
    };
    let (restart, why) =
        crate::publish::plan::restart_decision(channel == "stable", state, &version.to_string());
    if !restart {
        return CheckResult::pass(ROW, why);
    }
    let other: Vec<String> = match &state.gate {
        Gate::Refused(problems) => problems
            .iter()
            .filter(|p| {
                !matches!(
                    p,
                    Problem::NoConfig | Problem::KeyMissing | Problem::KeyPlaceholder
                )
            })
            .map(Problem::describe)
            .collect(),
        _ => Vec::new(),
    };
    if other.is_empty() {
        return CheckResult::pass(ROW, why);
    }
    CheckResult::fail(
        ROW,
        format!("{why}, but the VM cannot restart voice-assistant: {}", other.join("; ")),
        "fix config.env on the VM (plain SERVER_VERSION=X.Y.Z.W and SERVER_BUILD= lines, no `export`, spaces or CR), then run again",
    )
}

/// The key's row from the gate's verdict. Version-line problems are the
/// restart's business (publish refuses them before any change), not the
/// key's.
fn verdict(gate: &Gate, remote_base: &str) -> CheckResult {
    let env = format!("{remote_base}/config.env");
    let fix = format!("set GEMINI_API_KEY=<key> in {env} on the VM, then `sudo systemctl restart voice-assistant`");
    let problems = match gate {
        Gate::Ok => &[][..],
        Gate::Refused(p) => p.as_slice(),
        Gate::Unknown => return CheckResult::fail(
            ID,
            "the VM read printed no key verdict (az exits 0 even when a script fails)",
            "run the check again; if it persists, inspect the VM with `az vm run-command invoke`",
        ),
    };
    for p in problems {
        let what = match p {
            Problem::NoConfig => format!("{env} does not exist on the VM"),
            Problem::KeyMissing => format!("GEMINI_API_KEY is missing or empty in {env}"),
            Problem::KeyPlaceholder => format!("GEMINI_API_KEY in {env} is the placeholder"),
            _ => continue,
        };
        return CheckResult::fail(ID, what, fix);
    }
    CheckResult::pass(
        ID,
        format!("GEMINI_API_KEY is set in {env} (value not shown)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    #[test]
    fn the_key_verdict_comes_from_the_gate() {
        let base = "/home/azureuser/voice-assistant";
        let of = |gate: Gate| verdict(&gate, base);
        assert_eq!(of(Gate::Ok).status, Status::Pass);
        // A version line the restart would refuse is not the key's problem.
        assert_eq!(
            of(Gate::Refused(vec![Problem::VersionLines("1".into())])).status,
            Status::Pass
        );
        let missing = of(Gate::Refused(vec![Problem::KeyMissing]));
        assert_eq!(missing.status, Status::Fail);
        assert!(missing.message.contains(
            "GEMINI_API_KEY is missing or empty in /home/azureuser/voice-assistant/config.env"
        ));
        assert!(of(Gate::Refused(vec![
            Problem::KeyPlaceholder,
            Problem::VersionLines("2".into())
        ]))
        .message
        .contains("is the placeholder"));
        assert!(of(Gate::Refused(vec![Problem::NoConfig]))
            .message
            .contains("does not exist on the VM"));
        // No verdict at all (the script died, az still exited 0) fails.
        assert_eq!(of(Gate::Unknown).status, Status::Fail);
    }

    #[test]
    fn the_read_script_never_prints_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_str().unwrap().to_string();
        let target = vm::Target {
            base: base.clone(),
            manifest_file: "manifest.json".into(),
            health_url: "http://127.0.0.1:9/health".into(),
            feed_health_url: "http://127.0.0.1:9/updates/health".into(),
            restart_wait_secs: 1,
            backups_keep: 20,
        };
        let run = |config: &str| {
            std::fs::write(dir.path().join("config.env"), config).unwrap();
            let out = std::process::Command::new("bash")
                .arg("-c")
                .arg(target.read_script())
                .output()
                .unwrap();
            let out = crate::az::ScriptOutput {
                stdout: String::from_utf8(out.stdout).unwrap(),
                stderr: String::from_utf8(out.stderr).unwrap(),
            };
            assert!(!out.stdout.contains("abc123secret"), "{out:?}");
            assert!(!out.stderr.contains("abc123secret"), "{out:?}");
            verdict(&vm::parse_state(&out).unwrap().gate, &base)
        };
        assert_eq!(run("GEMINI_API_KEY=abc123secret\n").status, Status::Pass);
        assert_eq!(
            run("GEMINI_API_KEY=\"abc123secret\"\nSERVER_VERSION=2.0.0.4\n").status,
            Status::Pass
        );
        assert!(run("GEMINI_API_KEY=\"\"\n").message.contains("missing"));
        assert!(run("X=1\n").message.contains("missing"));
        assert!(run("GEMINI_API_KEY=YOUR_GEMINI_API_KEY_HERE\r\n")
            .message
            .contains("placeholder"));
    }
}
