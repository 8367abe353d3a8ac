//! The Azure VM, through `az vm run-command invoke`.
//!
//! az exits 0 even when the script fails and reports the script's exit code
//! nowhere (Azure/azure-cli#14425): its stdout and stderr come back inside
//! `value[0].message`, each cut to the last 4,096 bytes. So every script we
//! send prints its own verdict as a marker line `NEXY_MARK:<name>:<value>`
//! at its very end, and the verdict is read from there, never from az's
//! exit code alone.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use xshell::{cmd, Shell};

use crate::{proc, util::last_lines};

/// A run-command on a busy VM takes tens of seconds; it must not hang us.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

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

    /// `az account show`: fails with "run az login" when not logged in.
    pub fn account_show(&self) -> Result<()> {
        let sh = self.sh;
        let out = proc::run(cmd!(sh, "az account show"), "az account show", RUN_TIMEOUT)?;
        if !out.success() {
            bail!(
                "az is not logged in ({}); run `az login`",
                last_lines(&out.stderr, 1)
            );
        }
        Ok(())
    }

    /// Runs `script` with bash on the VM and returns what it printed.
    pub fn run_script(&self, script: &str) -> Result<ScriptOutput> {
        let (command, what, timeout) = self.prepare_script(script);
        self.finish(proc::run_command(command, &what, timeout)?)
    }

    /// The run-command, built on the Shell, to run beside other calls.
    pub fn prepare_script(&self, script: &str) -> (std::process::Command, String, Duration) {
        let (sh, rg, vm) = (self.sh, &self.resource_group, &self.vm);
        (
            cmd!(sh, "az vm run-command invoke -g {rg} -n {vm} --command-id RunShellScript --scripts {script}").into(),
            format!("az vm run-command invoke -g {rg} -n {vm}"),
            RUN_TIMEOUT,
        )
    }

    /// The run-command of `script` as the shell line it runs.
    pub fn describe_script(&self, script: &str) -> String {
        crate::effect::describe(&self.prepare_script(script).0, None)
    }

    /// The script's output from az's answer, or what went wrong and the fix.
    pub fn finish(&self, out: proc::Output) -> Result<ScriptOutput> {
        let (rg, vm) = (&self.resource_group, &self.vm);
        if !out.success() {
            let said = last_lines(&out.stderr, 2);
            let fix = if said.contains("az login") {
                "run `az login`".to_string()
            } else if out.code == Some(3) || said.contains("NotFound") {
                format!("check azure.resource_group `{rg}` and azure.vm_name `{vm}` in the release config")
            } else {
                "check `az account show` and your rights on the VM".to_string()
            };
            bail!("az run-command on {rg}/{vm} failed: {said}; {fix}");
        }
        parse_run_command(&out.stdout)
    }
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
}
