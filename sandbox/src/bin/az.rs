//! The `az` stand-in executable (also the VM's `systemctl` shim when invoked
//! under that name). It finds the sandbox through `NEXY_SANDBOX_STATE`.

use std::io::Write;
use std::path::PathBuf;

fn main() {
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let state = std::env::var_os("NEXY_SANDBOX_STATE").map(PathBuf::from);
    let name = std::path::Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let o = if name == "systemctl" {
        nexy_sandbox::az::systemctl_main(&rest, state.as_deref())
    } else {
        nexy_sandbox::az::main_with(&rest, state.as_deref())
    };
    // Output errors (closed pipe) cannot be reported anywhere useful.
    let _ = std::io::stdout().write_all(o.stdout.as_bytes());
    let _ = std::io::stderr().write_all(o.stderr.as_bytes());
    let _ = std::io::stdout().flush();
    std::process::exit(o.code);
}
