//! Progress for long work on large files (hashing a 270 MB DMG).
//!
//! When stderr is a terminal, one line is redrawn in place about five
//! times a second; when it is not (CI, a log file), a single plain line
//! is printed at the end, so logs stay readable. No colour is ever used,
//! so `NO_COLOR` holds by construction.

use std::{
    io::{IsTerminal, Write},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    thread,
    time::{Duration, Instant},
};

/// Runs `work`, reporting `done` out of `total` bytes under `label`.
pub fn with_progress<T>(label: &str, total: u64, done: &AtomicU64, work: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let finished = AtomicBool::new(false);
    let result = thread::scope(|scope| {
        if tty {
            scope.spawn(|| {
                while !finished.load(Ordering::Relaxed) {
                    draw(label, done.load(Ordering::Relaxed), total);
                    thread::sleep(Duration::from_millis(200));
                }
            });
        }
        let result = work();
        finished.store(true, Ordering::Relaxed);
        result
    });
    let secs = started.elapsed().as_secs_f64();
    let mb = total as f64 / 1e6;
    let line = format!(
        "  {label} {mb:.1} MB in {secs:.2}s ({:.0} MB/s)",
        mb / secs.max(1e-9)
    );
    if tty {
        eprint!("\r{line:<60}\n");
    } else {
        eprintln!("{line}");
    }
    result
}

fn draw(label: &str, done: u64, total: u64) {
    let pct = (done * 100).checked_div(total).unwrap_or(100).min(100);
    let width = 30;
    let filled = (pct as usize * width / 100).min(width);
    let bar = format!("{}{}", "#".repeat(filled), "-".repeat(width - filled));
    eprint!(
        "\r  {label} [{bar}] {pct:>3}% ({:.0}/{:.0} MB)",
        done as f64 / 1e6,
        total as f64 / 1e6
    );
    let _ = std::io::stderr().flush();
}
