//! Progress for long work on large files: hashing a 270 MB DMG, uploading
//! it, downloading it (the archive of the live release, promote).
//!
//! When stderr is a terminal (and `TERM` is not `dumb`), one line per meter
//! is redrawn in place about five times a second. When it is not (CI, a log
//! file), plain lines are printed instead: one every ten seconds while the
//! work goes on, so a slow upload still shows life in a log, and one at the
//! end. No colour is ever used, so `NO_COLOR` holds by construction.
//!
//! We draw the lines ourselves rather than pull in indicatif: a few fixed
//! rows of text is all we need, and the xtask must stay light to compile.
//!
//! A transfer is done by a `gh` child process, which tells us nothing while
//! it runs. On Linux its progress is read from the kernel instead: the
//! offset of gh's open descriptor of the file (`/proc/PID/fdinfo/FD`).
//! Where there is no `/proc` (macOS), the meter shows the elapsed time.

use std::{
    fs,
    io::{IsTerminal, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    thread,
    time::{Duration, Instant},
};

/// How often a terminal is redrawn.
const REDRAW: Duration = Duration::from_millis(200);
/// How often a plain progress line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(10);
/// Width of the bar, in characters; rows stay under 80 columns so that a
/// redraw never wraps.
const BAR: usize = 24;

/// One piece of work with a known size: `done` of `total` bytes.
pub struct Meter {
    label: String,
    verb: &'static str,
    total: u64,
    done: AtomicU64,
    /// Whether `done` was ever measured (an upload on a system without
    /// `/proc` never is).
    measured: AtomicBool,
}

impl Meter {
    /// A meter fed from outside (see [`FileWatch`]); until the first
    /// reading it shows the elapsed time.
    pub fn new(verb: &'static str, label: &str, total: u64) -> Meter {
        Meter {
            label: label.to_string(),
            verb,
            total,
            done: AtomicU64::new(0),
            measured: AtomicBool::new(false),
        }
    }

    /// A meter for work of our own that counts its bytes into
    /// [`Meter::counter`] as it goes (hashing).
    pub fn counting(verb: &'static str, label: &str, total: u64) -> Meter {
        let meter = Meter::new(verb, label, total);
        meter.measured.store(true, Ordering::Relaxed);
        meter
    }

    pub fn counter(&self) -> &AtomicU64 {
        &self.done
    }

    /// "upload Nexy.dmg", or the verb alone for a meter without a label;
    /// at most 22 characters, so that a row stays under 80 columns and a
    /// redraw never wraps.
    fn title(&self) -> String {
        let title = if self.label.is_empty() {
            self.verb.to_string()
        } else {
            format!("{} {}", self.verb, self.label)
        };
        title.chars().take(22).collect()
    }

    /// Sets the bytes done (an upload's offset, read from outside).
    pub fn set(&self, n: u64) {
        self.measured.store(true, Ordering::Relaxed);
        self.done.store(n, Ordering::Relaxed);
    }

    /// The row as it is drawn: a bar and figures, or the elapsed time when
    /// nothing can be measured.
    fn row(&self, elapsed: Duration) -> String {
        let total_mb = self.total as f64 / 1e6;
        let label = self.title();
        if !self.measured.load(Ordering::Relaxed) {
            return format!(
                "  {label:<22} {total_mb:.1} MB, {:.0}s so far",
                elapsed.as_secs_f64()
            );
        }
        let done = self.done.load(Ordering::Relaxed).min(self.total);
        let pct = (done * 100).checked_div(self.total).unwrap_or(100);
        let filled = (pct as usize * BAR / 100).min(BAR);
        format!(
            "  {label:<22} [{}{}] {pct:>3}% {:.1}/{total_mb:.1} MB",
            "#".repeat(filled),
            "-".repeat(BAR - filled),
            done as f64 / 1e6
        )
    }

    /// The plain line printed while the work goes on.
    fn plain(&self, elapsed: Duration) -> String {
        let total_mb = self.total as f64 / 1e6;
        if !self.measured.load(Ordering::Relaxed) {
            return format!(
                "  {}: {total_mb:.1} MB, {:.0}s so far",
                self.title(),
                elapsed.as_secs_f64()
            );
        }
        let done = self.done.load(Ordering::Relaxed).min(self.total);
        let pct = (done * 100).checked_div(self.total).unwrap_or(100);
        format!(
            "  {}: {pct}% ({:.1} of {total_mb:.1} MB)",
            self.title(),
            done as f64 / 1e6
        )
    }
}

/// Runs `work` while showing `meters`; when it returns, one closing line
/// replaces them: titles, size, time and throughput when `ok` says the
/// work succeeded, how long it ran when it did not.
pub fn show<T>(meters: &[&Meter], work: impl FnOnce() -> T, ok: impl FnOnce(&T) -> bool) -> T {
    if meters.is_empty() {
        return work();
    }
    let started = Instant::now();
    let tty =
        std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
    let finished = AtomicBool::new(false);
    let result = thread::scope(|scope| {
        scope.spawn(|| {
            let mut drawn = false;
            let mut last_plain = Instant::now();
            while !finished.load(Ordering::Relaxed) {
                if tty {
                    draw(meters, started.elapsed(), drawn);
                    drawn = true;
                } else if last_plain.elapsed() >= PLAIN_EVERY {
                    last_plain = Instant::now();
                    let lines: String = meters
                        .iter()
                        .map(|m| format!("{}\n", m.plain(started.elapsed())))
                        .collect();
                    emit(&lines);
                }
                // Short sleeps, so the work's end is not held up.
                let slept = Instant::now();
                while slept.elapsed() < REDRAW && !finished.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(10));
                }
            }
            if tty && drawn {
                // Back to the first row, so the closing line replaces the bars.
                emit(&format!("\x1b[{}A", meters.len()));
            }
        });
        // Set even if `work` panics: the scope waits for the drawing
        // thread, which must not go on forever.
        let _stop = Finish(&finished);
        work()
    });
    let line = if ok(&result) {
        summary(meters, started.elapsed())
    } else {
        let titles: Vec<String> = meters.iter().map(|m| m.title()).collect();
        format!(
            "  {} stopped after {:.2}s",
            titles.join(" and "),
            started.elapsed().as_secs_f64()
        )
    };
    // Clear the rows below too: one line replaces them all.
    emit(&if tty {
        format!("\r\x1b[J{line}\n")
    } else {
        format!("{line}\n")
    });
    result
}

/// Sets the drawing thread's stop flag when dropped.
struct Finish<'a>(&'a AtomicBool);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Writes to stderr; progress is never worth failing for (a closed stderr
/// must not stop a release), so errors are ignored.
fn emit(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// The closing line: what was done, its size, time and throughput. Work
/// side by side ends together, so one line speaks for all the meters.
fn summary(meters: &[&Meter], elapsed: Duration) -> String {
    let titles: Vec<String> = meters.iter().map(|m| m.title()).collect();
    let mb = meters.iter().map(|m| m.total).sum::<u64>() as f64 / 1e6;
    let secs = elapsed.as_secs_f64();
    format!(
        "  {} {mb:.1} MB in {secs:.2}s ({:.0} MB/s)",
        titles.join(" and "),
        mb / secs.max(1e-9)
    )
}

/// Redraws every row in place (after the first time, moving up first).
fn draw(meters: &[&Meter], elapsed: Duration, drawn: bool) {
    let mut text = String::new();
    if drawn {
        text.push_str(&format!("\x1b[{}A", meters.len()));
    }
    for m in meters {
        text.push_str("\r\x1b[2K");
        text.push_str(&m.row(elapsed));
        text.push('\n');
    }
    emit(&text);
}

/// Watches a child process that reads `file` (an upload) or writes it (a
/// download), feeding `meter` with the offset of the child's descriptor of
/// it; called at each poll of the child, it reads `/proc` at most every
/// 100 ms.
pub struct FileWatch<'m> {
    file: PathBuf,
    meter: &'m Meter,
    fd: Option<String>,
    last: Option<Instant>,
}

impl<'m> FileWatch<'m> {
    pub fn new(file: &Path, meter: &'m Meter) -> FileWatch<'m> {
        // The descriptor's link names the resolved file; a download's file
        // does not exist yet, so its directory is resolved instead.
        let resolved = fs::canonicalize(file).ok().or_else(|| {
            let dir = fs::canonicalize(file.parent()?).ok()?;
            Some(dir.join(file.file_name()?))
        });
        FileWatch {
            file: resolved.unwrap_or_else(|| file.to_path_buf()),
            meter,
            fd: None,
            last: None,
        }
    }

    pub fn tick(&mut self, pid: u32) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(Instant::now());
        let open = |fd: &str| fd_target(pid, fd).as_ref() == Some(&self.file);
        match self.fd.take() {
            Some(fd) if open(&fd) => self.fd = Some(fd),
            // The descriptor is gone or names another file. gh closes the
            // file once it has sent it all, then waits for GitHub's answer;
            // or it opened it anew to retry.
            Some(_) => match find_fd(pid, &self.file) {
                Some(fd) => self.fd = Some(fd),
                None => {
                    self.meter.set(self.meter.total);
                    return;
                }
            },
            None => self.fd = find_fd(pid, &self.file),
        }
        if let Some(pos) = self.fd.as_deref().and_then(|fd| fd_offset(pid, fd)) {
            self.meter.set(pos);
        }
    }
}

/// The file descriptor `fd` of `pid` is open on (`/proc/PID/fd/FD`).
#[cfg(target_os = "linux")]
fn fd_target(pid: u32, fd: &str) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()
}

/// The descriptor of `pid` open on `file`, if `/proc` shows one.
#[cfg(target_os = "linux")]
fn find_fd(pid: u32, file: &Path) -> Option<String> {
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    fds.flatten().find_map(|e| {
        let target = fs::read_link(e.path()).ok()?;
        (target == file).then(|| e.file_name().to_string_lossy().into_owned())
    })
}

/// The file offset of descriptor `fd` of `pid` (`pos:` in its fdinfo).
#[cfg(target_os = "linux")]
fn fd_offset(pid: u32, fd: &str) -> Option<u64> {
    let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("pos:"))
        .and_then(|v| v.trim().parse().ok())
}

// macOS has no `/proc`: another process's descriptors and offsets are not
// to be had without privileges, so no descriptor is ever found and the
// meter shows the elapsed time (see `Meter::row`).
#[cfg(not(target_os = "linux"))]
fn fd_target(_pid: u32, _fd: &str) -> Option<PathBuf> {
    None
}

#[cfg(not(target_os = "linux"))]
fn find_fd(_pid: u32, _file: &Path) -> Option<String> {
    None
}

#[cfg(not(target_os = "linux"))]
fn fd_offset(_pid: u32, _fd: &str) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn rows_show_a_bar_or_the_elapsed_time() {
        let m = Meter::new("upload", "Nexy.dmg", 270_000_000);
        assert_eq!(
            m.row(Duration::from_secs(3)),
            "  upload Nexy.dmg        270.0 MB, 3s so far"
        );
        m.set(135_000_000);
        assert_eq!(
            m.row(Duration::from_secs(3)),
            "  upload Nexy.dmg        [############------------]  50% 135.0/270.0 MB"
        );
        assert_eq!(
            m.plain(Duration::from_secs(3)),
            "  upload Nexy.dmg: 50% (135.0 of 270.0 MB)"
        );
        // A reading past the end (gh read ahead) is shown as done.
        m.set(300_000_000);
        assert!(m.row(Duration::ZERO).contains("100% 270.0/270.0 MB"));
        assert!(m.row(Duration::ZERO).len() < 80);
        let pkg = Meter::new("upload", "Nexy.pkg", 100_000_000);
        assert_eq!(
            summary(&[&m, &pkg], Duration::from_secs(2)),
            "  upload Nexy.dmg and upload Nexy.pkg 370.0 MB in 2.00s (185 MB/s)"
        );
    }

    #[test]
    fn reads_the_offset_of_an_open_file_from_proc() {
        if !Path::new("/proc/self/fdinfo").is_dir() {
            return; // Not Linux: the meter shows the elapsed time instead.
        }
        let dir = std::env::temp_dir().join(format!("nexy-progress-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("Nexy.dmg");
        fs::write(&path, vec![7u8; 10_000]).unwrap();
        let mut file = fs::File::open(&path).unwrap();
        let mut buf = vec![0u8; 1234];
        file.read_exact(&mut buf).unwrap();

        let meter = Meter::new("upload", "Nexy.dmg", 10_000);
        let mut watch = FileWatch::new(&path, &meter);
        watch.tick(std::process::id());
        assert_eq!(meter.done.load(Ordering::Relaxed), 1234);
        // Closed: the reader has sent it all.
        drop(file);
        watch.last = None;
        watch.tick(std::process::id());
        assert_eq!(meter.done.load(Ordering::Relaxed), 10_000);
        fs::remove_dir_all(&dir).unwrap();
    }
}
