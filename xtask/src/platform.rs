//! What the operating system is asked directly, where Linux and macOS
//! differ. Linux answers through `/proc` and `prctl`-style calls; macOS has
//! neither, and each function says what it does there instead.

/// Whether a process with this pid exists: `kill(pid, 0)` delivers nothing
/// and answers on Linux and macOS alike (EPERM means it exists but is not
/// ours). Reading `/proc/PID` would call every process dead on macOS.
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists; no signal is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Gives the calling thread the lowest CPU priority, so that background
/// work (the archive copy) takes only the CPU time the uploads and the
/// swap leave idle. Linux threads have their own nice value; on macOS the
/// thread is put in the background band (`PRIO_DARWIN_BG`: low CPU and
/// I/O priority). A failure leaves the priority as it was, which is
/// harmless.
pub fn background_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority and gettid only read their integer arguments.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
    #[cfg(target_os = "macos")]
    // SAFETY: as above; `who` 0 is the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_DARWIN_THREAD, 0, libc::PRIO_DARWIN_BG);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_live_processes_from_gone_ones() {
        assert!(process_alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        // Reaped: the pid is free (reuse within this test is vanishingly
        // unlikely).
        assert!(!process_alive(pid));
        assert!(!process_alive(0));
    }
}
