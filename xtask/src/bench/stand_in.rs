//! The stand-in both release benchmarks run against: the real gh and
//! the scratch space checked, the release files copied to a temporary
//! workspace, the stand-in started (with a latency profile's arguments),
//! the one Shell pointed at it through the environment, and the VM
//! seeded, as `rehearse` does.

use std::path::Path;

use anyhow::{bail, Result};
use xshell::Shell;

use super::{ensure_space, which};

use crate::{
    config::Workspace,
    rehearse::{copy_release_files, seed_vm},
    sandbox::{self, StandIn},
};

/// For `what` (a benchmark, named in its errors), which needs `space`
/// bytes free in `dir`: starts the stand-in in `dir/stand-in` with `args`
/// and returns it with the workspace in `dir/workspace` that targets it.
/// gh and az find the stand-in through the environment set on `sh`: every
/// command after this inherits it, so the benchmarks that call this run
/// last.
pub(super) fn start(
    sh: &Shell,
    ws: &Workspace,
    config_path: &Path,
    (dir, space): (&Path, u64),
    what: &str,
    args: &[String],
) -> Result<(StandIn, Workspace)> {
    if which("gh").is_none() {
        bail!("skipped: {what} drives the real gh CLI, which is not installed; install it (`apt-get install gh`)");
    }
    let scratch = dir.parent().unwrap_or(dir);
    ensure_space(sh, scratch, space, what)?;
    let root = dir.join("workspace");
    copy_release_files(ws, &root)?;
    let stand_in = StandIn::start_with(sh, &dir.join("stand-in"), 0, args)?;
    let stand_in_config = sandbox::write_config(config_path, &stand_in.state)?;
    for (k, v) in stand_in.env()? {
        sh.set_var(k, v);
    }
    let tws = Workspace::load(Some(&root), Some(&stand_in_config))?;
    seed_vm(sh, &tws)?;
    Ok((stand_in, tws))
}
