//! One release at a time: an exclusive lock file holding the holder's pid.
//!
//! A run killed mid-release leaves its lock behind, and its children (gh
//! calls in flight) may still land after it died. Every child of a run
//! inherits [`RUN_ENV`] with the run's pid, so the run that takes over the
//! lock finds exactly those children (reparented or not) in `/proc` and
//! waits, bounded, until they are gone; then the live state it reads next is
//! settled. No fixed sleep: with nothing in flight it goes on at once.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

/// The variable every child of a release run carries: the run's pid.
pub const RUN_ENV: &str = "NEXY_RELEASE_RUN";

/// The longest wait for a dead run's children: above gh's API timeout would
/// be too long for a person, and a gh call takes well under a second.
const SETTLE_MAX: Duration = Duration::from_secs(30);

/// The held lock; dropping it removes the file.
pub struct Lock(PathBuf);

impl Lock {
    /// Takes the lock at `path`, taking over from a holder that died.
    pub fn take(path: &Path) -> Result<Lock> {
        for _ in 0..2 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    return Ok(Lock(path.to_path_buf()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = fs::read_to_string(path).unwrap_or_default();
                    let pid = holder.trim();
                    let alive = !pid.is_empty() && Path::new(&format!("/proc/{pid}")).exists();
                    if alive {
                        bail!(
                            "another release (pid {pid}) holds {}; wait for it, or delete the file if that process is gone",
                            path.display()
                        );
                    }
                    // The holder died (killed mid-release): its lock is stale.
                    let children = children_of(pid);
                    if !children.is_empty() {
                        crate::say!(
                            "  a previous run (pid {pid}) died mid-release; waiting for its {} call(s) in flight to land",
                            children.len()
                        );
                        if !wait_gone(&children, SETTLE_MAX) {
                            bail!(
                                "calls of the dead run {pid} (pids {children:?}) are still running after {} s; wait for them or end them, then run again",
                                SETTLE_MAX.as_secs()
                            );
                        }
                    }
                    let _ = fs::remove_file(path);
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()))
                }
            }
        }
        bail!("cannot take the release lock {}", path.display())
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// The live processes started by run `pid`: those whose environment
/// carries `RUN_ENV=pid`.
pub fn children_of(pid: &str) -> Vec<u32> {
    if pid.is_empty() {
        return Vec::new();
    }
    let needle = format!("{RUN_ENV}={pid}");
    let me = std::process::id();
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| p != me)
        .filter(|p| {
            fs::read(format!("/proc/{p}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()))
        })
        .collect()
}

/// Waits until none of `pids` runs (a zombie counts as gone), at most `max`.
fn wait_gone(pids: &[u32], max: Duration) -> bool {
    let deadline = Instant::now() + max;
    loop {
        if pids.iter().all(|p| !running(*p)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn running(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// A pid that no process has: the lock's holder is dead.
    fn dead_pid() -> u32 {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn a_live_holder_keeps_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = Lock::take(&path).unwrap();
        let err = Lock::take(&path).err().unwrap();
        assert!(format!("{err}").contains("another release"), "{err}");
        drop(held);
        assert!(!path.exists());
        Lock::take(&path).unwrap();
    }

    #[test]
    fn a_dead_holder_without_children_is_taken_over_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        fs::write(&path, format!("{}\n", dead_pid())).unwrap();
        let began = Instant::now();
        let _lock = Lock::take(&path).unwrap();
        assert!(began.elapsed() < Duration::from_millis(500));
        assert_eq!(
            fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
    }

    #[test]
    fn takeover_waits_for_the_dead_holders_children() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let dead = dead_pid().to_string();
        fs::write(&path, format!("{dead}\n")).unwrap();
        // A call of the dead run still in flight, and an unrelated process.
        let mut inflight = Command::new("sleep")
            .arg("0.6")
            .env(RUN_ENV, &dead)
            .spawn()
            .unwrap();
        let mut other = Command::new("sleep").arg("5").spawn().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(children_of(&dead), vec![inflight.id()]);
        let reaper = std::thread::spawn(move || inflight.wait());
        let began = Instant::now();
        let _lock = Lock::take(&path).unwrap();
        let waited = began.elapsed();
        reaper.join().unwrap().unwrap();
        let _ = other.kill();
        let _ = other.wait();
        assert!(
            waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
    }
}
