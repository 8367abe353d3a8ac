//! The Azure VM, through `az vm run-command invoke`.
//!
//! az exits 0 even when the script fails and reports the script's exit code
//! nowhere (Azure/azure-cli#14425): its stdout and stderr come back inside
//! `value[0].message`, each cut to the last 4,096 bytes. So every script we
//! send prints its own verdict as a marker line `NEXY_MARK:<name>:<value>`
//! at its very end, and the verdict is read from there, never from az's
//! exit code alone (nor from `time`, which az 2.91 no longer prints).
//!
//! When az does fail, the ARM error code it prints (`ERROR: (Code) ...`)
//! says what happened. Transient ones are retried a bounded number of
//! times: another run-command in progress on the VM (409 `Conflict`: Azure
//! runs one at a time, a second operator may be using it), a 5xx az gave up
//! on after its own retries, an operation that ended `Failed`. A retry may
//! repeat a script that already ran, which is why every VM script is safe
//! to run twice. The rest (a stopped VM, a revoked token, no rights, a
//! wrong resource group) fails at once with the fix.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use xshell::{cmd, Shell};

use crate::{proc, util::last_lines};

/// How many `az vm run-command invoke` this process started, retries
/// included (each is a POST to Azure).
pub static RUN_COMMANDS: AtomicUsize = AtomicUsize::new(0);
/// How many of them were retries after a 409 Conflict (another
/// run-command in progress): reported, not counted as the release's own.
pub static CONFLICT_RETRIES: AtomicUsize = AtomicUsize::new(0);

/// The run-commands so far, and the Conflict retries among them.
pub fn run_commands() -> (usize, usize) {
    (
        RUN_COMMANDS.load(Ordering::Relaxed),
        CONFLICT_RETRIES.load(Ordering::Relaxed),
    )
}

/// A run-command on a busy VM takes tens of seconds; it must not hang us.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// Waits before each retry of a transient failure: at most four attempts,
/// about 17 s of waiting (a real run-command takes 20-60 s, so a second
/// operator's is usually done by then).
const RETRY_WAITS: [Duration; 3] = [
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
];

/// What a failed az call means, from the ARM error code it printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 409 `Conflict`: another run-command is in progress on the VM.
    Busy,
    /// 5xx that az's own retries did not get past.
    ServerError,
    /// The operation ended with status `Failed`.
    OperationFailed,
    /// 409 `OperationNotAllowed`: the VM is stopped or deallocated.
    VmNotRunning,
    /// Not logged in, or the token expired or was revoked (401).
    NotLoggedIn,
    /// 403 `AuthorizationFailed`.
    Forbidden,
    /// 404 (exit 3): the resource group or VM does not exist.
    NotFound,
    Other,
}

impl Failure {
    pub fn of(code: Option<i32>, stderr: &str) -> Failure {
        let arm_code = stderr
            .lines()
            .find_map(|l| l.strip_prefix("ERROR: (")?.split_once(')').map(|(c, _)| c))
            .unwrap_or("");
        match arm_code {
            "Conflict" => Failure::Busy,
            "OperationNotAllowed" => Failure::VmNotRunning,
            "InternalServerError" | "ServiceUnavailable" | "GatewayTimeout" | "BadGateway" => {
                Failure::ServerError
            }
            "VMAgentStatusCommunicationError" | "InternalExecutionError" => {
                Failure::OperationFailed
            }
            "ExpiredAuthenticationToken"
            | "InvalidAuthenticationToken"
            | "AuthenticationFailed" => Failure::NotLoggedIn,
            "AuthorizationFailed" => Failure::Forbidden,
            _ if code == Some(3) || arm_code.ends_with("NotFound") => Failure::NotFound,
            _ if stderr.contains("az login") || stderr.contains("AADSTS") => Failure::NotLoggedIn,
            _ if stderr.contains("status code 5") || stderr.contains("Internal Server Error") => {
                Failure::ServerError
            }
            _ => Failure::Other,
        }
    }

    /// Whether trying again can help.
    pub fn transient(self) -> bool {
        matches!(
            self,
            Failure::Busy | Failure::ServerError | Failure::OperationFailed
        )
    }
}

/// The script's own output, recovered from az's JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptOutput {
    pub stdout: String,
    pub stderr: String,
}

impl ScriptOutput {
    /// The value of the last `NEXY_MARK:<name>:` line, if the script got
    /// that far.
    pub fn marker(&self, name: &str) -> Option<&str> {
        let prefix = format!("NEXY_MARK:{name}:");
        self.stdout
            .lines()
            .rev()
            .find_map(|l| l.trim_end().strip_prefix(&prefix))
    }
}

pub struct Az<'a> {
    sh: &'a Shell,
    resource_group: String,
    vm: String,
}

impl<'a> Az<'a> {
    pub fn new(sh: &'a Shell, resource_group: &str, vm: &str) -> Az<'a> {
        Az {
            sh,
            resource_group: resource_group.to_string(),
            vm: vm.to_string(),
        }
    }

    /// `az account show`, built on the Shell to run elsewhere; its output
    /// goes to [`logged_in`].
    pub fn prepare_account_show(&self) -> std::process::Command {
        let sh = self.sh;
        cmd!(sh, "az account show").into()
    }

    /// Runs `script` with bash on the VM and returns what it printed,
    /// retrying transient Azure failures (bounded, see `RETRY_WAITS`).
    pub fn run_script(&self, script: &str) -> Result<ScriptOutput> {
        self.attempts(script).run()
    }

    /// [`Az::run_script`] built ahead on the Shell, every attempt's
    /// command included, so that it can run on another thread beside
    /// checks that use the Shell (preflight's one VM call).
    pub fn attempts(&self, script: &str) -> Attempts {
        Attempts {
            commands: (0..=RETRY_WAITS.len())
                .map(|_| self.build_script(script))
                .collect(),
            resource_group: self.resource_group.clone(),
            vm: self.vm.clone(),
        }
    }

    /// The run-command, built on the Shell, to run beside other calls;
    /// counted in [`RUN_COMMANDS`].
    pub fn prepare_script(&self, script: &str) -> (std::process::Command, String, Duration) {
        RUN_COMMANDS.fetch_add(1, Ordering::Relaxed);
        self.build_script(script)
    }

    fn build_script(&self, script: &str) -> (std::process::Command, String, Duration) {
        let (sh, rg, vm) = (self.sh, &self.resource_group, &self.vm);
        (
            cmd!(sh, "az vm run-command invoke -g {rg} -n {vm} --command-id RunShellScript --scripts {script}").into(),
            format!("az vm run-command invoke -g {rg} -n {vm}"),
            RUN_TIMEOUT,
        )
    }

    /// The run-command of `script` as the shell line it runs.
    pub fn describe_script(&self, script: &str) -> String {
        crate::effect::describe(&self.build_script(script).0, None)
    }

    /// The script's output from az's answer, or what went wrong and the fix.
    pub fn finish(&self, out: proc::Output) -> Result<ScriptOutput> {
        finish(&self.resource_group, &self.vm, out)
    }
}

/// A run-command's attempts, built ahead (see [`Az::attempts`]).
pub struct Attempts {
    commands: Vec<(std::process::Command, String, Duration)>,
    resource_group: String,
    vm: String,
}

impl Attempts {
    /// Runs the attempts until one is not a transient failure; each is
    /// counted in [`RUN_COMMANDS`], a retry after a Conflict also in
    /// [`CONFLICT_RETRIES`].
    pub fn run(self) -> Result<ScriptOutput> {
        let mut waits = RETRY_WAITS.iter();
        let mut commands = self.commands.into_iter();
        loop {
            let (command, what, timeout) =
                commands.next().context("no run-command attempt is left")?;
            RUN_COMMANDS.fetch_add(1, Ordering::Relaxed);
            let out = proc::run_command(command, &what, timeout)?;
            let failure = (!out.success()).then(|| Failure::of(out.code, &out.stderr));
            match (failure, waits.next()) {
                (Some(f), Some(wait)) if f.transient() => {
                    if f == Failure::Busy {
                        CONFLICT_RETRIES.fetch_add(1, Ordering::Relaxed);
                    }
                    crate::say!(
                        "az: {} ({}); trying again in {}s",
                        last_lines(&out.stderr, 1),
                        match f {
                            Failure::Busy => "another run-command is in progress on the VM",
                            Failure::OperationFailed => "the run-command failed on Azure's side",
                            _ => "Azure answered a server error",
                        },
                        wait.as_secs()
                    );
                    std::thread::sleep(*wait);
                }
                _ => return finish(&self.resource_group, &self.vm, out),
            }
        }
    }
}

/// `az account show`'s verdict: fails with "run az login" when not logged in.
pub fn logged_in(out: proc::Output) -> Result<()> {
    if !out.success() {
        bail!(
            "az is not logged in ({}); run `az login`",
            last_lines(&out.stderr, 1)
        );
    }
    Ok(())
}

/// The script's output from az's answer, or what went wrong and the fix.
fn finish(rg: &str, vm: &str, out: proc::Output) -> Result<ScriptOutput> {
    if !out.success() {
        let said = last_lines(&out.stderr, 2);
        let fix = match Failure::of(out.code, &out.stderr) {
            Failure::NotLoggedIn => "the Azure login is missing, expired or revoked: run `az login`".to_string(),
            Failure::NotFound => format!("check azure.resource_group `{rg}` and azure.vm_name `{vm}` in the release config"),
            Failure::VmNotRunning => format!("the VM is not running: start it (`az vm start -g {rg} -n {vm}`) and run again"),
            Failure::Forbidden => format!("your Azure identity may not run commands on {rg}/{vm}: ask for the Virtual Machine Contributor role on it"),
            Failure::Busy => "another run-command kept the VM busy through every retry (a second operator?): wait for it and run again".to_string(),
            Failure::ServerError | Failure::OperationFailed => "Azure kept failing through every retry: check the VM in the portal and run again (every VM step is safe to repeat)".to_string(),
            Failure::Other => "check `az account show` and your rights on the VM".to_string(),
        };
        bail!("az run-command on {rg}/{vm} failed: {said}; {fix}");
    }
    parse_run_command(&out.stdout)
}

/// Splits az's `value[0].message` back into the script's stdout and stderr.
pub fn parse_run_command(json: &str) -> Result<ScriptOutput> {
    let value: Value =
        serde_json::from_str(json).context("az printed something that is not JSON")?;
    let message = value
        .pointer("/value/0/message")
        .and_then(Value::as_str)
        .context("az's answer has no value[0].message")?;
    let Some((_, rest)) = message.split_once("[stdout]\n") else {
        bail!("az's message has no [stdout] section");
    };
    let (stdout, stderr) = rest.split_once("\n[stderr]\n").unwrap_or((rest, ""));
    Ok(ScriptOutput {
        stdout: stdout.to_string(),
        stderr: stderr.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_message_of_a_failed_script() {
        let json = r#"{
  "value": [
    {
      "code": "ProvisioningState/succeeded",
      "displayStatus": "Provisioning succeeded",
      "level": "Info",
      "message": "Enable succeeded: \n[stdout]\nhello\nNEXY_MARK:gemini:missing\n\n[stderr]\nboom\n",
      "time": null
    }
  ]
}"#;
        let out = parse_run_command(json).unwrap();
        assert_eq!(out.marker("gemini"), Some("missing"));
        assert_eq!(out.marker("sync"), None);
        assert_eq!(out.stderr, "boom\n");
        assert!(parse_run_command("{}").is_err());
    }

    #[test]
    fn failures_are_told_apart_by_their_arm_code() {
        let e = |s: &str| format!("ERROR: ({s}) something\nCode: {s}\nMessage: something\n");
        let busy = Failure::of(Some(1), &e("Conflict"));
        assert_eq!(busy, Failure::Busy);
        assert!(busy.transient());
        let stopped = Failure::of(Some(1), &e("OperationNotAllowed"));
        assert_eq!(stopped, Failure::VmNotRunning);
        assert!(!stopped.transient());
        assert_eq!(
            Failure::of(Some(1), &e("ExpiredAuthenticationToken")),
            Failure::NotLoggedIn
        );
        assert_eq!(
            Failure::of(Some(3), &e("ResourceGroupNotFound")),
            Failure::NotFound
        );
        assert_eq!(
            Failure::of(Some(1), &e("AuthorizationFailed")),
            Failure::Forbidden
        );
        assert!(Failure::of(Some(1), &e("InternalServerError")).transient());
        assert!(Failure::of(Some(1), &e("VMAgentStatusCommunicationError")).transient());
        assert_eq!(
            Failure::of(Some(1), "ERROR: Please run 'az login' to setup account.\n"),
            Failure::NotLoggedIn
        );
    }
}
