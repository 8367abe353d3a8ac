//! What one call of a stand-in command (the VM's `systemctl` shim) prints
//! and exits with.

/// Outcome of one invocation.
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn out(code: i32, stdout: String, stderr: String) -> Outcome {
    Outcome {
        code,
        stdout,
        stderr,
    }
}
