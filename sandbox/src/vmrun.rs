//! The VM's root, as the Azure stand-in's run-command reaches it: a script
//! runs as the VM's root would (`crate::runscript`), with the VM's
//! `systemctl` shim (`crate::systemctl`, the `nexy-vm-systemctl` binary)
//! first on its PATH, so restarts keep the stand-in service's semantics
//! (a restart that takes `restart_down_ms`, a config that fails to start).
//!
//! The imitation `az` that used to call these is gone: the real az now
//! talks to `crate::arm`, whose run-command calls `execute`.

pub use crate::outcome::Outcome;
pub use crate::runscript::{execute, execute_with, TAIL_BYTES};
pub use crate::systemctl::systemctl_main;
