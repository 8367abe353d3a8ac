//! Rehearsing where nothing but loopback exists: on Linux, `rehearse` runs
//! itself again inside a new network namespace that has only `lo`
//! (`unshare -n` as root, `unshare -rn` where user namespaces are allowed),
//! so the stand-in, this tool, gh and az cannot reach anything else, by
//! construction. Where no such namespace can be made (macOS, a container
//! without the rights), the az settings the stand-in writes are the guard,
//! and a line says so.

use std::process::{Command, Stdio};

use anyhow::{Context, Result};

/// Set inside the namespace, so that the rehearsal runs there.
const INSIDE: &str = "NEXY_LOOPBACK_NETNS";

/// The `unshare` flags that make a loopback-only namespace here, if any.
fn flags() -> Option<&'static str> {
    if !cfg!(target_os = "linux") || std::env::var_os("NEXY_NO_NETNS").is_some() {
        return None;
    }
    ["-n", "-rn"].into_iter().find(|f| {
        Command::new("unshare")
            .args([f, "--", "ip", "link", "set", "lo", "up"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// `Some(passed)` when the command ran again inside a loopback-only
/// namespace; `None` to run here (already inside, or no namespace).
/// `prepare` runs first, outside: what needs the network (installing
/// azure-cli, building the stand-in) happens there.
pub fn run_inside(prepare: impl FnOnce() -> Result<()>) -> Result<Option<bool>> {
    if std::env::var_os(INSIDE).is_some() {
        crate::say!("(inside a network namespace with only loopback: nothing else is reachable)");
        return Ok(None);
    }
    let Some(flag) = flags() else {
        crate::say!(
            "(no network namespace available here: the stand-in's az settings keep az on loopback)"
        );
        return Ok(None);
    };
    prepare()?;
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let status = Command::new("unshare")
        .args([
            flag,
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec \"$@\"",
            "sh",
        ])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(INSIDE, "1")
        .status()
        .context("cannot run unshare")?;
    Ok(Some(status.success()))
}
