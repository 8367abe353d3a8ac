//! `cargo xtask bench`: the numbers behind our speed and safety claims.
//!
//! Four sections, each printed as one table with its target and whether it
//! was met, then a one-line summary:
//!
//! 1. hashing: our streaming sha256 against `openssl dgst` and `sha256sum`
//!    on the same warm file, and each one's peak memory on two file sizes;
//! 2. the release against the local stand-in, stage by stage (the median
//!    of three), with the `gh`/`az` processes it spawned and the bytes it
//!    uploaded, next to the floor (one plain upload of the same bytes) and
//!    the naive `gh release upload --clobber` flow;
//! 3. availability of the fixed download URLs while each flow publishes;
//! 4. `cargo xtask check` warm, and the xtask's cold build;
//! 5. the secret scan of a push on a synthetic repository the size of the
//!    real one, next to detect-secrets (`secrets.rs`);
//! 6. reading the app out of a 270 MB DMG and a PKG, next to `7zz l`.
//!
//! `--only hashing,release,check,secrets,inspect` runs some of them.
//!
//! These are benchmarks, not tests: a missed target is reported, not
//! fatal. Progress goes to stderr while the sections run; the in-process
//! release prints its own lines to stdout, so the tables come last.

mod check;
mod hashing;
mod inspect;
mod poll;
mod production;
mod release;
mod secrets;
mod stand_in;

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{
    cli::{Bench, BenchPart, BenchProfile},
    config::Workspace,
    proc,
    scratch::TempDir,
};

/// Set in the environment of a child `xtask bench` to make it hash one
/// file and exit, so that our hasher's peak memory is measured in a
/// process of its own.
const HASH_CHILD_ENV: &str = "NEXY_BENCH_HASH_FILE";

impl Bench {
    pub fn run(self, sh: &Shell, ws: &Workspace, config: &Path) -> Result<()> {
        if let Some(file) = std::env::var_os(HASH_CHILD_ENV) {
            return hashing::child(Path::new(&file));
        }
        let started = Instant::now();
        let base = self.scratch.clone().unwrap_or_else(std::env::temp_dir);
        let scratch = TempDir::named(&base, "nexy-bench")?;
        eprintln!("bench: scratch files go to {}", scratch.path().display());
        if self.profile == BenchProfile::ProductionLike {
            // Its own run: the release against a slow stand-in takes minutes.
            eprintln!(
                "bench: the release in the production-like profile ({} MB DMG, {} MB PKG), stable and beta",
                self.dmg_mb, self.pkg_mb
            );
            let section = production::run(
                sh,
                ws,
                config,
                scratch.path(),
                (self.dmg_mb, self.pkg_mb),
                &self.latency,
            )
            .unwrap_or_else(|e| Section::failed("the release in the production-like profile", &e));
            drop(scratch);
            println!(
                "\n== benchmark results (production-like)\n\n{}",
                section.render()
            );
            println!(
                "{}",
                summary(std::slice::from_ref(&section), started.elapsed())
            );
            return Ok(());
        }

        let wants = |part| self.only.is_empty() || self.only.contains(&part);
        let mut sections = Vec::new();
        // The check sections run before the release section, whose
        // stand-in environment (proxies, GH_HOST) they must not inherit.
        if wants(BenchPart::Hashing) {
            eprintln!(
                "bench: [1/5] hashing ({} MiB and {} MiB files)",
                self.hash_mib, self.big_mib
            );
            sections.push(
                hashing::run(sh, ws, scratch.path(), self.hash_mib, self.big_mib)
                    .unwrap_or_else(|e| Section::failed("1. hashing", &e)),
            );
        }
        let mut later = Vec::new();
        if wants(BenchPart::Check) {
            eprintln!("bench: [4/5] `cargo xtask check` warm, and the cold build");
            later.push(
                check::run(sh, ws, scratch.path()).unwrap_or_else(|e| {
                    Section::failed("4. `cargo xtask check` and the build", &e)
                }),
            );
        }
        if wants(BenchPart::Secrets) {
            eprintln!("bench: [5/5] the secret scan of a push, and detect-secrets");
            later.push(
                secrets::run(sh, scratch.path())
                    .unwrap_or_else(|e| Section::failed("5. secret scan of a push", &e)),
            );
        }
        if wants(BenchPart::Inspect) {
            eprintln!(
                "bench: [6/6] inspect of a {} MB DMG and a {} MB PKG, and 7zz l",
                self.dmg_mb, self.pkg_mb
            );
            later.push(
                inspect::run(sh, ws, scratch.path(), self.dmg_mb, self.pkg_mb).unwrap_or_else(
                    |e| Section::failed("6. reading the app out of the artifacts", &e),
                ),
            );
        }
        if wants(BenchPart::Release) {
            eprintln!(
                "bench: [2-3/5] the release against the stand-in ({} MB DMG, {} MB PKG) and availability",
                self.dmg_mb, self.pkg_mb
            );
            match release::run(sh, ws, config, scratch.path(), self.dmg_mb, self.pkg_mb) {
                Ok((release, availability)) => sections.extend([release, availability]),
                Err(e) => sections.extend([
                    Section::failed("2. the release against the stand-in", &e),
                    Section::failed("3. availability during publish", &e),
                ]),
            }
        }
        sections.extend(later);
        drop(scratch);

        println!("\n== benchmark results");
        for section in &sections {
            println!("\n{}", section.render());
        }
        println!("{}", summary(&sections, started.elapsed()));
        Ok(())
    }
}

/// Whether one target held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// The measurement could not be made (a tool is missing, no disk).
    NotRun,
}

impl Verdict {
    pub fn of(met: bool) -> Verdict {
        if met {
            Verdict::Met
        } else {
            Verdict::Missed
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Met => "yes",
            Verdict::Missed => "NO",
            Verdict::NotRun => "n/a",
        }
    }
}

/// One section of the report: a table, notes under it, and its targets.
pub struct Section {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub notes: Vec<String>,
    /// Each target by name, with its verdict (also shown in the table).
    pub targets: Vec<(String, Verdict)>,
}

impl Section {
    pub fn new(title: impl Into<String>, header: &[&str]) -> Section {
        Section {
            title: title.into(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
            targets: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    pub fn target(&mut self, name: impl Into<String>, verdict: Verdict) {
        self.targets.push((name.into(), verdict));
    }

    /// A section that could not run at all, saying why.
    pub fn failed(title: &str, err: &anyhow::Error) -> Section {
        let mut s = Section::new(title, &["measure", "target", "met?"]);
        s.row(vec![
            "not measured (see the error below)".into(),
            "-".into(),
            Verdict::NotRun.label().into(),
        ]);
        s.note(format!("error: {err:#}"));
        s.target(format!("{title}: every target"), Verdict::NotRun);
        s
    }

    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::from(" ");
            for (i, width) in widths.iter().enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                let pad = width.saturating_sub(cell.chars().count());
                let _ = write!(out, " {cell}{}", " ".repeat(pad));
                if i + 1 < columns {
                    out.push(' ');
                }
            }
            out.trim_end().to_string()
        };
        let mut out = format!("{}\n", self.title);
        let _ = writeln!(out, "{}", line(&self.header));
        for row in &self.rows {
            let _ = writeln!(out, "{}", line(row));
        }
        for note in &self.notes {
            let _ = writeln!(out, "  note: {note}");
        }
        out
    }
}

/// The closing line: how many targets held, and which did not.
fn summary(sections: &[Section], took: Duration) -> String {
    let targets: Vec<&(String, Verdict)> = sections.iter().flat_map(|s| &s.targets).collect();
    let met = targets.iter().filter(|(_, v)| *v == Verdict::Met).count();
    let missed: Vec<&str> = targets
        .iter()
        .filter(|(_, v)| *v == Verdict::Missed)
        .map(|(n, _)| n.as_str())
        .collect();
    let not_run: Vec<&str> = targets
        .iter()
        .filter(|(_, v)| *v == Verdict::NotRun)
        .map(|(n, _)| n.as_str())
        .collect();
    let mut out = format!(
        "\nsummary: {met} of {} targets met in {:.0}s",
        targets.len(),
        took.as_secs_f64()
    );
    if !missed.is_empty() {
        let _ = write!(out, "; missed: {}", missed.join("; "));
    }
    if !not_run.is_empty() {
        let _ = write!(out, "; not measured: {}", not_run.join("; "));
    }
    out
}

/// What one measured external process did.
#[derive(Debug, Clone)]
pub struct Measured {
    pub wall: Duration,
    /// The peak resident set size (`VmHWM`) in KiB, when sampled.
    pub peak_kib: Option<u64>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Measured {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The last lines of stderr, for an error message.
    pub fn said(&self) -> String {
        crate::util::last_lines(&self.stderr, 3)
    }
}

/// Runs `cmd` to completion (or until `timeout`), timing it to the
/// millisecond and, with `sample_memory`, reading its peak RSS from
/// `/proc/<pid>/status` every 5 ms while it runs. Counted in
/// [`proc::SPAWNED`] like every external process of a release.
pub fn measure(
    cmd: xshell::Cmd<'_>,
    what: &str,
    timeout: Duration,
    sample_memory: bool,
) -> Result<Measured> {
    let mut peak_kib: Option<u64> = None;
    let mut next_sample = Instant::now();
    let (out, wall) =
        proc::run_watched(cmd.into(), what, timeout, Duration::from_millis(1), |pid| {
            let now = Instant::now();
            if sample_memory && now >= next_sample {
                if let Some(kib) = vm_hwm_kib(Path::new(&format!("/proc/{pid}/status"))) {
                    peak_kib = Some(peak_kib.map_or(kib, |p| p.max(kib)));
                }
                next_sample = now + Duration::from_millis(5);
            }
        })?;
    Ok(Measured {
        wall,
        peak_kib,
        code: out.code,
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

/// `VmHWM` (peak resident set) of a running process, in KiB.
/// Linux only; on macOS the file does not exist and peak memory is
/// reported as not measured.
fn vm_hwm_kib(status_file: &Path) -> Option<u64> {
    let text = fs::read_to_string(status_file).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Free space, in bytes, of the file system holding `dir` (`df -Pk`).
pub fn free_bytes(sh: &Shell, dir: &Path) -> Result<u64> {
    let out = proc::run(cmd!(sh, "df -Pk {dir}"), "df -Pk", Duration::from_secs(30))?;
    if !out.success() {
        bail!("`df -Pk {}` failed: {}", dir.display(), out.stderr.trim());
    }
    out.stdout
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|kib| kib.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .with_context(|| format!("cannot read the free space from `df -Pk`: {}", out.stdout))
}

/// Fails with a clear message when `dir` has less than `need` bytes free.
pub fn ensure_space(sh: &Shell, dir: &Path, need: u64, for_what: &str) -> Result<()> {
    let free = free_bytes(sh, dir)?;
    if free < need {
        bail!(
            "skipped: {for_what} needs {:.1} GiB free in {} but only {:.1} GiB is free; pass --scratch DIR on a larger disk or smaller sizes",
            gib(need),
            dir.display(),
            gib(free)
        );
    }
    Ok(())
}

pub fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}

/// The executable `program` on PATH, if any.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

/// This executable. When cargo rebuilt it while we run (a `cargo xtask`
/// of the check section, after a source changed), Linux names the old
/// file `PATH (deleted)`; the new build sits at `PATH`.
pub fn own_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the running xtask")?;
    let text = exe.to_string_lossy();
    Ok(match text.strip_suffix(" (deleted)") {
        Some(path) => PathBuf::from(path),
        None => exe,
    })
}

/// The repository the xtask was built from (it holds `xtask/` and `sandbox/`).
pub fn project_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The median of some durations (the upper one of an even count).
pub fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// Megabytes (10^6 bytes) per second.
pub fn mb_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64().max(1e-9)
}

pub fn fmt_secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

pub fn fmt_ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

pub fn fmt_mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

pub fn fmt_mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_the_summary_names_what_missed() {
        let mut s = Section::new("t", &["measure", "value", "target", "met?"]);
        s.row(vec!["a".into(), "1".into(), "<2".into(), "yes".into()]);
        s.row(vec!["longer".into(), "10".into(), "<2".into(), "NO".into()]);
        s.target("a under 2", Verdict::Met);
        s.target("longer under 2", Verdict::Missed);
        let text = s.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1].find("value"), lines[2].find('1'));
        assert_eq!(lines[1].find("met?"), lines[3].find("NO"));
        let line = summary(&[s], Duration::from_secs(1));
        assert!(line.contains("1 of 2 targets met"), "{line}");
        assert!(line.contains("missed: longer under 2"), "{line}");
    }

    #[test]
    fn measures_a_process_and_its_memory() {
        let sh = Shell::new().unwrap();
        let m = measure(
            cmd!(sh, "sh -c 'sleep 0.05; echo hi'"),
            "sh",
            Duration::from_secs(10),
            true,
        )
        .unwrap();
        assert!(m.success());
        assert_eq!(m.stdout, "hi\n");
        assert!(m.wall >= Duration::from_millis(50));
        assert!(m.peak_kib.is_some_and(|k| k > 0));
        assert!(measure(
            cmd!(sh, "sleep 5"),
            "sleep",
            Duration::from_millis(100),
            false
        )
        .is_err());
    }

    #[test]
    fn medians_and_rates() {
        let ms = Duration::from_millis;
        assert_eq!(median(&[ms(3), ms(1), ms(2)]), ms(2));
        assert_eq!(median(&[]), Duration::ZERO);
        assert!((mb_per_s(2_000_000, Duration::from_secs(2)) - 1.0).abs() < 1e-9);
    }
}
