//! The VM's `systemctl` shim (linked as `DIR/vm-bin/systemctl`, first on
//! the PATH of run-command scripts). It finds the sandbox through
//! `NEXY_SANDBOX_STATE`.

use std::io::Write;
use std::path::PathBuf;

fn main() {
    let rest: Vec<String> = std::env::args().skip(1).collect();
    let state = std::env::var_os("NEXY_SANDBOX_STATE").map(PathBuf::from);
    let o = nexy_sandbox::vmrun::systemctl_main(&rest, state.as_deref());
    // Output errors (closed pipe) cannot be reported anywhere useful.
    let _ = std::io::stdout().write_all(o.stdout.as_bytes());
    let _ = std::io::stderr().write_all(o.stderr.as_bytes());
    let _ = std::io::stdout().flush();
    std::process::exit(o.code);
}
