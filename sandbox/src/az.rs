//! The `az` stand-in (and, invoked as `systemctl`, the VM's systemctl shim).
//!
//! It implements `az account show` and `az vm run-command invoke ...
//! --command-id RunShellScript --scripts ...` the way real az prints them:
//! exit 0 even when the script fails, both streams inside `value[0].message`,
//! each cut to its last 4,096 bytes, JSON with 2-space indent and sorted keys.
//!
//! VM path mapping: when running as root with `unshare` available, the script
//! runs in a private mount namespace where a tmpfs covers `/home` and the
//! state's `vm/home/azureuser/voice-assistant` is bind-mounted at
//! `/home/azureuser/voice-assistant`, so scripts see the real absolute path
//! (also through `cd`, `readlink -f`, `$PWD`, globbing). Nothing changes
//! outside the namespace. Otherwise (not root, no unshare, or a state dir under
//! `/home` that the tmpfs would hide) the path is rewritten in the script text,
//! which is less faithful (paths built at run time are missed).

use crate::faults::{Faults, MAX_SLEEP_MS};
use crate::outcome::{out, Outcome};
use crate::reqlog::LoggedRequest;
use crate::runscript::execute;
pub use crate::systemctl::systemctl_main;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

pub use crate::runscript::TAIL_BYTES;
pub const NOT_LOGGED_IN: &str = "ERROR: Please run 'az login' to setup account.";

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct VmEntry {
    pub resource_group: String,
    pub name: String,
}

/// `DIR/az/profile.json`: the local az profile plus which VMs exist.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(default)]
pub struct Profile {
    pub logged_in: bool,
    pub subscription_id: String,
    pub subscription_name: String,
    pub tenant_id: String,
    pub user: String,
    pub vms: Vec<VmEntry>,
}

impl Default for Profile {
    fn default() -> Profile {
        Profile {
            logged_in: true,
            subscription_id: "00000000-0000-4000-8000-00000000a5b1".into(),
            subscription_name: "Nexy Sandbox Subscription".into(),
            tenant_id: "00000000-0000-4000-8000-0000000071e7".into(),
            user: "sergiy@nexy.example".into(),
            vms: vec![VmEntry {
                resource_group: "NexyNewRG".into(),
                name: "NexyNew".into(),
            }],
        }
    }
}

impl Profile {
    pub fn load(p: &Path) -> Result<Profile> {
        if !p.exists() {
            return Ok(Profile::default());
        }
        let t = std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
        serde_json::from_str(&t).with_context(|| format!("parse {}", p.display()))
    }
    pub fn save(&self, p: &Path) -> Result<()> {
        let t = serde_json::to_string_pretty(self).context("serialise profile")?;
        crate::util::write_atomic(p, t.as_bytes())
    }
}

/// Entry point of the `az` binary. `args` excludes argv[0].
pub fn main_with(args: &[String], state: Option<&Path>) -> Outcome {
    let Some(state) = state else {
        return out(
            1,
            String::new(),
            "ERROR: nexy-sandbox az: NEXY_SANDBOX_STATE is not set (source the sandbox's env file)\n"
                .into(),
        );
    };
    let res = run(args, state);
    let o = match res {
        Ok(o) => o,
        Err(e) => out(1, String::new(), format!("ERROR: nexy-sandbox az: {e:#}\n")),
    };
    let mut entry = LoggedRequest::new(
        "az",
        &args
            .iter()
            .take_while(|a| !a.starts_with('-'))
            .cloned()
            .collect::<Vec<_>>()
            .join(" "),
        &format!("az {}", args.join(" ")),
        o.code as i64,
        o.script.as_deref().unwrap_or("").as_bytes(),
    );
    entry.command = Some(
        std::iter::once("az".to_string())
            .chain(args.iter().cloned())
            .collect(),
    );
    // Logging must not change what az prints; report a failure on stderr only.
    if let Err(e) = entry.append_to(&state.join("requests.jsonl")) {
        eprintln!("nexy-sandbox az: log: {e:#}");
    }
    o
}

fn lock_file(path: &Path) -> Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a valid, owned file descriptor.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    if rc != 0 {
        anyhow::bail!("flock {}", path.display());
    }
    Ok(f)
}

/// Apply the az faults: a bounded hang, then maybe a failure.
fn apply_faults(state: &Path) -> Result<Option<Outcome>> {
    let f = Faults::load(&state.join("faults.json"))?;
    if f.az_hang_ms > 0 {
        std::thread::sleep(Duration::from_millis(f.az_hang_ms.min(MAX_SLEEP_MS)));
    }
    let Some(fail) = f.az_fail else {
        return Ok(None);
    };
    let azdir = state.join("az");
    std::fs::create_dir_all(&azdir).context("mkdir az")?;
    let _guard = lock_file(&azdir.join("fail.lock"))?;
    let count_path = azdir.join("fail_count");
    let used: u32 = std::fs::read_to_string(&count_path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if fail.times.map(|t| used < t).unwrap_or(true) {
        std::fs::write(&count_path, (used + 1).to_string()).context("write fail_count")?;
        let mut err = fail.stderr.clone();
        if !err.is_empty() && !err.ends_with('\n') {
            err.push('\n');
        }
        return Ok(Some(out(fail.exit_code, String::new(), err)));
    }
    Ok(None)
}

fn run(args: &[String], state: &Path) -> Result<Outcome> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    if a.is_empty() || a == ["--version"] || a == ["version"] {
        return Ok(out(
            0,
            "azure-cli                         2.57.0 (nexy-sandbox stand-in)\n".into(),
            String::new(),
        ));
    }
    if let Some(o) = apply_faults(state)? {
        return Ok(o);
    }
    let profile = Profile::load(&state.join("az").join("profile.json"))?;
    match a.as_slice() {
        ["account", "show", rest @ ..] => {
            if !profile.logged_in {
                return Ok(out(1, String::new(), format!("{NOT_LOGGED_IN}\n")));
            }
            let v = json!({
                "environmentName": "AzureCloud",
                "homeTenantId": profile.tenant_id,
                "id": profile.subscription_id,
                "isDefault": true,
                "managedByTenants": [],
                "name": profile.subscription_name,
                "state": "Enabled",
                "tenantId": profile.tenant_id,
                "user": {"name": profile.user, "type": "user"},
            });
            let opts = parse_common(rest)?;
            Ok(out(0, render(&v, &opts)?, String::new()))
        }
        ["login", ..] => {
            // Interactive login cannot happen here; flipping the profile is
            // what a test wants from it.
            let p = state.join("az").join("profile.json");
            let mut prof = profile.clone();
            prof.logged_in = true;
            prof.save(&p)?;
            let v = json!([{"cloudName": "AzureCloud", "id": prof.subscription_id, "isDefault": true,
                "name": prof.subscription_name, "state": "Enabled", "tenantId": prof.tenant_id,
                "user": {"name": prof.user, "type": "user"}}]);
            Ok(out(0, render(&v, &Common::default())?, String::new()))
        }
        ["logout", ..] => {
            let p = state.join("az").join("profile.json");
            let mut prof = profile.clone();
            prof.logged_in = false;
            prof.save(&p)?;
            Ok(out(0, String::new(), String::new()))
        }
        ["vm", "run-command", "invoke", rest @ ..] => {
            if !profile.logged_in {
                return Ok(out(1, String::new(), format!("{NOT_LOGGED_IN}\n")));
            }
            run_command(rest, state, &profile)
        }
        [first, ..] => Ok(out(
            2,
            String::new(),
            format!("ERROR: '{first}' is misspelled or not recognized by the system.\n\nExamples from AI knowledge base:\nhttps://aka.ms/cli_ref\nRead more about the command in reference docs\n"),
        )),
        [] => Ok(out(2, String::new(), "ERROR: no command\n".into())),
    }
}

#[derive(Default)]
struct Common {
    output: Option<String>,
    query: Option<String>,
}

fn parse_common(rest: &[&str]) -> Result<Common> {
    let mut c = Common::default();
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            "-o" | "--output" => {
                c.output = rest.get(i + 1).map(|s| s.to_string());
                i += 2;
            }
            "--query" => {
                c.query = rest.get(i + 1).map(|s| s.to_string());
                i += 2;
            }
            "--subscription" => i += 2,
            _ => i += 1,
        }
    }
    Ok(c)
}

/// A JMESPath subset: `a.b[0].c` (what callers use to pick the message).
fn query(v: &Value, q: &str) -> Value {
    let mut cur = v.clone();
    for part in q.split('.') {
        let (name, idx) = match part.find('[') {
            Some(i) => (&part[..i], Some(&part[i..])),
            None => (part, None),
        };
        if !name.is_empty() {
            cur = cur.get(name).cloned().unwrap_or(Value::Null);
        }
        if let Some(idx) = idx {
            for n in idx.split('[').filter(|s| !s.is_empty()) {
                let n = n.trim_end_matches(']');
                cur = n
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| cur.get(n).cloned())
                    .unwrap_or(Value::Null);
            }
        }
    }
    cur
}

fn render(v: &Value, c: &Common) -> Result<String> {
    let v = match &c.query {
        Some(q) => query(v, q),
        None => v.clone(),
    };
    match c.output.as_deref() {
        Some("none") => Ok(String::new()),
        Some("tsv") => Ok(match &v {
            Value::String(s) => format!("{s}\n"),
            Value::Null => String::new(),
            other => format!("{other}\n"),
        }),
        // serde_json's map is a BTreeMap here: keys come out sorted, and
        // to_string_pretty indents by two spaces, as az's json output does.
        _ => Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&v).context("render json")?
        )),
    }
}

fn run_command(rest: &[&str], state: &Path, profile: &Profile) -> Result<Outcome> {
    let mut rg = None;
    let mut vm = None;
    let mut command_id = None;
    let mut scripts: Vec<String> = Vec::new();
    let mut common = Common::default();
    let mut i = 0;
    while i < rest.len() {
        let flag = rest[i];
        let val = rest.get(i + 1).map(|s| s.to_string());
        match flag {
            "-g" | "--resource-group" => {
                rg = val;
                i += 2;
            }
            "-n" | "--name" => {
                vm = val;
                i += 2;
            }
            "--command-id" => {
                command_id = val;
                i += 2;
            }
            "-o" | "--output" => {
                common.output = val;
                i += 2;
            }
            "--query" => {
                common.query = val;
                i += 2;
            }
            "--subscription" => i += 2,
            "--scripts" | "--parameters" => {
                // argparse nargs='+': every following word up to the next
                // option-looking word (`-o` as much as `--query`).
                let is_scripts = flag == "--scripts";
                i += 1;
                while i < rest.len() && !(rest[i].starts_with('-') && rest[i].len() > 1) {
                    if is_scripts {
                        let s = rest[i];
                        if let Some(file) = s.strip_prefix('@') {
                            scripts.push(
                                std::fs::read_to_string(file)
                                    .with_context(|| format!("read script file {file}"))?,
                            );
                        } else {
                            scripts.push(s.to_string());
                        }
                    }
                    i += 1;
                }
            }
            "--only-show-errors" | "--debug" | "--verbose" | "--no-wait" => i += 1,
            other => {
                return Ok(out(
                    2,
                    String::new(),
                    format!("ERROR: unrecognized arguments: {other}\n"),
                ))
            }
        }
    }
    let mut missing = Vec::new();
    if rg.is_none() {
        missing.push("--resource-group/-g");
    }
    if vm.is_none() {
        missing.push("--name/-n");
    }
    if command_id.is_none() {
        missing.push("--command-id");
    }
    if !missing.is_empty() {
        return Ok(out(
            2,
            String::new(),
            format!(
                "ERROR: the following arguments are required: {}\n",
                missing.join(", ")
            ),
        ));
    }
    let (rg, vm, command_id) = (
        rg.unwrap_or_default(),
        vm.unwrap_or_default(),
        command_id.unwrap_or_default(),
    );
    if !profile
        .vms
        .iter()
        .any(|v| v.resource_group.eq_ignore_ascii_case(&rg))
    {
        let m = format!("Resource group '{rg}' could not be found.");
        return Ok(out(
            3,
            String::new(),
            format!(
                "ERROR: (ResourceGroupNotFound) {m}\nCode: ResourceGroupNotFound\nMessage: {m}\n"
            ),
        ));
    }
    if !profile
        .vms
        .iter()
        .any(|v| v.resource_group.eq_ignore_ascii_case(&rg) && v.name.eq_ignore_ascii_case(&vm))
    {
        let m = format!("The Resource 'Microsoft.Compute/virtualMachines/{vm}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix");
        return Ok(out(
            3,
            String::new(),
            format!("ERROR: (ResourceNotFound) {m}\nCode: ResourceNotFound\nMessage: {m}\n"),
        ));
    }
    if command_id != "RunShellScript" {
        let m = format!("The entity was not found in this Azure location. Command id '{command_id}' is not available for this Linux VM.");
        return Ok(out(
            1,
            String::new(),
            format!("ERROR: (NotFound) {m}\nCode: NotFound\nMessage: {m}\n"),
        ));
    }
    // az joins several --scripts values with newlines.
    let script = scripts.join("\n");
    let (so, se) = execute(state, &script)?;
    let message = format!("Enable succeeded: \n[stdout]\n{so}\n[stderr]\n{se}");
    let v = json!({"value": [{
        "code": "ProvisioningState/succeeded",
        "displayStatus": "Provisioning succeeded",
        "level": "Info",
        "message": message,
        "time": null,
    }]});
    let mut o = out(0, render(&v, &common)?, String::new());
    o.script = Some(script);
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_subset() {
        let v = json!({"value": [{"message": "hi"}]});
        assert_eq!(query(&v, "value[0].message"), json!("hi"));
        assert_eq!(query(&v, "value[3].message"), Value::Null);
    }
}
