//! Section 1: sha256 and size of a large file, our streaming hasher against
//! `openssl dgst -sha256` and `sha256sum` on the same warm file, and each
//! one's peak memory on two file sizes.
//!
//! Every hasher runs as a process of its own (ours is this executable,
//! re-run with [`HASH_CHILD_ENV`] set), so that the throughputs compare
//! like with like and the peak memory is the hasher's alone.

use std::{fs, path::Path, time::Duration};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use super::{
    ensure_space, fmt_mib, mb_per_s, measure, median, own_exe, which, Measured, Section, Verdict,
    HASH_CHILD_ENV,
};
use crate::{artifact, config::Workspace, hash};

/// Timed runs per hasher on the first file; the median counts.
const ROUNDS: usize = 3;
/// Ours must reach this share of openssl's throughput.
const TARGET_RATIO: f64 = 0.95;
/// "Flat" peak memory: the larger file may cost at most this much more.
const FLAT_SLACK_KIB: u64 = 1024;
/// One hashing run of a few GiB must end well within this.
const HASH_TIMEOUT: Duration = Duration::from_secs(600);

/// The body of the child process: hash one file, print `sha256 size`.
pub fn child(path: &Path) -> Result<()> {
    let digest = hash::file_digest(path)?;
    println!("{} {}", digest.sha256, digest.size);
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hasher {
    Ours,
    Openssl,
    Sha256sum,
}

const HASHERS: [Hasher; 3] = [Hasher::Ours, Hasher::Openssl, Hasher::Sha256sum];

impl Hasher {
    fn name(self) -> &'static str {
        match self {
            Hasher::Ours => "ours (xtask)",
            Hasher::Openssl => "openssl dgst -sha256",
            Hasher::Sha256sum => "sha256sum",
        }
    }

    fn available(self) -> bool {
        match self {
            Hasher::Ours => true,
            Hasher::Openssl => which("openssl").is_some(),
            Hasher::Sha256sum => which("sha256sum").is_some(),
        }
    }

    /// Runs the hasher on `file` as its own process and checks its digest.
    fn run(self, sh: &Shell, ws: &Workspace, file: &Path, expect: &str) -> Result<Measured> {
        let m = match self {
            Hasher::Ours => {
                let exe = own_exe()?;
                let root = &ws.root;
                measure(
                    cmd!(sh, "{exe} bench --root {root}").env(HASH_CHILD_ENV, file),
                    "xtask bench (hash child)",
                    HASH_TIMEOUT,
                    true,
                )?
            }
            Hasher::Openssl => measure(
                cmd!(sh, "openssl dgst -sha256 {file}"),
                "openssl dgst -sha256",
                HASH_TIMEOUT,
                true,
            )?,
            Hasher::Sha256sum => measure(
                cmd!(sh, "sha256sum {file}"),
                "sha256sum",
                HASH_TIMEOUT,
                true,
            )?,
        };
        if !m.success() {
            bail!("{} failed: {}", self.name(), m.said());
        }
        // ours: `HEX SIZE`; sha256sum: `HEX  PATH`; openssl: `SHA2-256(PATH)= HEX`.
        let digest = match self {
            Hasher::Ours | Hasher::Sha256sum => m.stdout.split_whitespace().next(),
            Hasher::Openssl => m.stdout.split_whitespace().last(),
        };
        if digest != Some(expect) {
            bail!(
                "{} printed a different digest ({:?}) than the reference {expect}",
                self.name(),
                m.stdout.trim()
            );
        }
        Ok(m)
    }
}

/// What one hasher did on the first file and on the big one.
#[derive(Default)]
struct Figures {
    small_walls: Vec<Duration>,
    small_peak: Option<u64>,
    big_wall: Option<Duration>,
    big_peak: Option<u64>,
    error: Option<String>,
}

pub fn run(
    sh: &Shell,
    ws: &Workspace,
    scratch: &Path,
    small_mib: u64,
    big_mib: u64,
) -> Result<Section> {
    let small_bytes = small_mib << 20;
    let big_bytes = big_mib << 20;
    // The two files exist one after the other, never together.
    ensure_space(
        sh,
        scratch,
        small_bytes.max(big_bytes) + (256 << 20),
        "the hashing benchmark",
    )?;
    let mut figures: Vec<Figures> = HASHERS.iter().map(|_| Figures::default()).collect();
    for (h, f) in HASHERS.iter().zip(figures.iter_mut()) {
        if !h.available() {
            f.error = Some(format!("{} is not installed", h.name()));
        }
    }

    let small = scratch.join(format!("hash-{small_mib}MiB.bin"));
    eprintln!("bench:   writing {small_mib} MiB of pseudo-random bytes");
    let (reference, in_process) = prepare(&small, small_bytes, 1, ROUNDS)?;
    for round in 1..=ROUNDS {
        eprintln!("bench:   round {round}/{ROUNDS} on the {small_mib} MiB file");
        // Interleaved, so that drift in the machine's speed hits every
        // hasher alike.
        for (h, f) in HASHERS.iter().zip(figures.iter_mut()) {
            if f.error.is_some() {
                continue;
            }
            match h.run(sh, ws, &small, &reference) {
                Ok(m) => {
                    f.small_walls.push(m.wall);
                    f.small_peak = max_opt(f.small_peak, m.peak_kib);
                }
                Err(e) => f.error = Some(format!("{e:#}")),
            }
        }
    }
    fs::remove_file(&small).with_context(|| format!("cannot remove {}", small.display()))?;

    let big = scratch.join(format!("hash-{big_mib}MiB.bin"));
    eprintln!("bench:   writing {big_mib} MiB of pseudo-random bytes");
    let (big_reference, _) = prepare(&big, big_bytes, 2, 0)?;
    for (h, f) in HASHERS.iter().zip(figures.iter_mut()) {
        if f.error.is_some() {
            continue;
        }
        eprintln!("bench:   {} on the {big_mib} MiB file", h.name());
        match h.run(sh, ws, &big, &big_reference) {
            Ok(m) => {
                f.big_wall = Some(m.wall);
                f.big_peak = m.peak_kib;
            }
            Err(e) => f.error = Some(format!("{e:#}")),
        }
    }
    fs::remove_file(&big).with_context(|| format!("cannot remove {}", big.display()))?;

    Ok(table(
        &figures,
        small_mib,
        big_mib,
        small_bytes,
        big_bytes,
        in_process,
    ))
}

/// Writes `bytes` of pseudo-random data to `path` (1 MiB at a time, never
/// all in memory), then reads it once in full so every timed run finds it
/// in the page cache. Returns the reference digest and the times of
/// `timed` more in-process runs of our hasher on the warm file.
fn prepare(path: &Path, bytes: u64, seed: u64, timed: usize) -> Result<(String, Vec<Duration>)> {
    artifact::write_random(path, bytes, seed)?;
    let warm = hash::file_digest(path)?;
    if warm.size != bytes {
        bail!(
            "{} has {} bytes, expected {bytes}",
            path.display(),
            warm.size
        );
    }
    let mut in_process = Vec::new();
    for _ in 0..timed {
        let started = std::time::Instant::now();
        let again = hash::file_digest(path)?;
        in_process.push(started.elapsed());
        if again != warm {
            bail!("hashing {} twice gave two digests", path.display());
        }
    }
    Ok((warm.sha256, in_process))
}

fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn table(
    figures: &[Figures],
    small_mib: u64,
    big_mib: u64,
    small_bytes: u64,
    big_bytes: u64,
    in_process: Vec<Duration>,
) -> Section {
    let mut s = Section::new(
        format!("1. hashing: sha256 + size, {small_mib} MiB and {big_mib} MiB files"),
        &[
            "measure",
            HASHERS[0].name(),
            HASHERS[1].name(),
            HASHERS[2].name(),
            "target",
            "met?",
        ],
    );
    let [ours, openssl, _] = [&figures[0], &figures[1], &figures[2]];
    let rate = |f: &Figures| {
        (!f.small_walls.is_empty()).then(|| mb_per_s(small_bytes, median(&f.small_walls)))
    };
    let cell = |f: &Figures, v: Option<String>| match (v, &f.error) {
        (Some(v), _) => v,
        (None, Some(_)) => "error".to_string(),
        (None, None) => "-".to_string(),
    };

    s.row(
        std::iter::once(format!(
            "MB/s, {small_mib} MiB, process wall, median of {ROUNDS}"
        ))
        .chain(
            figures
                .iter()
                .map(|f| cell(f, rate(f).map(|r| format!("{r:.0}")))),
        )
        .chain(["-".to_string(), "-".to_string()])
        .collect(),
    );
    let ratio = match (rate(ours), rate(openssl)) {
        (Some(o), Some(r)) => Some(o / r),
        _ => None,
    };
    let ratio_verdict = ratio.map_or(Verdict::NotRun, |r| Verdict::of(r >= TARGET_RATIO));
    s.row(
        std::iter::once("throughput relative to openssl".to_string())
            .chain(figures.iter().map(|f| {
                cell(
                    f,
                    rate(f)
                        .zip(rate(openssl))
                        .map(|(a, b)| format!("{:.2}x", a / b)),
                )
            }))
            .chain([
                format!(">= {TARGET_RATIO:.2}x openssl"),
                ratio_verdict.label().to_string(),
            ])
            .collect(),
    );
    s.target(
        format!(
            "hashing at >= {TARGET_RATIO:.2}x openssl's throughput (got {})",
            ratio.map_or("n/a".to_string(), |r| format!("{r:.2}x"))
        ),
        ratio_verdict,
    );
    s.row(vec![
        format!("MB/s, {small_mib} MiB, in-process (as publish hashes)"),
        format!("{:.0}", mb_per_s(small_bytes, median(&in_process))),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
    ]);
    s.row(
        std::iter::once(format!("MB/s, {big_mib} MiB, process wall, 1 run"))
            .chain(figures.iter().map(|f| {
                cell(
                    f,
                    f.big_wall.map(|w| format!("{:.0}", mb_per_s(big_bytes, w))),
                )
            }))
            .chain(["-".to_string(), "-".to_string()])
            .collect(),
    );
    for (label, pick) in [
        (
            format!("peak RSS, {small_mib} MiB file"),
            (|f: &Figures| f.small_peak) as fn(&Figures) -> Option<u64>,
        ),
        (format!("peak RSS, {big_mib} MiB file"), |f: &Figures| {
            f.big_peak
        }),
    ] {
        s.row(
            std::iter::once(label)
                .chain(figures.iter().map(|f| cell(f, pick(f).map(fmt_mib))))
                .chain(["-".to_string(), "-".to_string()])
                .collect(),
        );
    }
    let growth = |f: &Figures| {
        f.small_peak
            .zip(f.big_peak)
            .map(|(a, b)| i128::from(b) - i128::from(a))
    };
    let flat = growth(ours).map_or(Verdict::NotRun, |g| {
        Verdict::of(g <= i128::from(FLAT_SLACK_KIB))
    });
    s.row(
        std::iter::once(format!("peak RSS growth, {small_mib} -> {big_mib} MiB"))
            .chain(
                figures
                    .iter()
                    .map(|f| cell(f, growth(f).map(|g| format!("{g:+} KiB")))),
            )
            .chain([
                format!("flat (< {FLAT_SLACK_KIB} KiB growth)"),
                flat.label().to_string(),
            ])
            .collect(),
    );
    s.target(
        format!(
            "hasher peak memory flat in the file size (grew {})",
            growth(ours).map_or("n/a".to_string(), |g| format!("{g:+} KiB"))
        ),
        flat,
    );

    s.note(format!(
        "page cache warm: each file was written, then read once in full before any timed run ({} of RAM)",
        mem_total().unwrap_or_else(|| "unknown amount".into())
    ));
    s.note(format!(
        "CPU SHA extensions: {}; sha2 selects them at run time, openssl does too",
        if cpu_has_sha() {
            "present (sha_ni)"
        } else {
            "absent"
        }
    ));
    s.note("MB/s = bytes / 10^6 / wall seconds; process wall includes the start-up of each program; peak RSS is VmHWM sampled every 5 ms from /proc/<pid>/status");
    for (h, f) in HASHERS.iter().zip(figures) {
        if let Some(e) = &f.error {
            s.note(format!("{}: {e}", h.name()));
        }
    }
    s
}

/// True when the CPU advertises SHA-256 instructions (x86 `sha_ni`,
/// arm64 `sha2`).
fn cpu_has_sha() -> bool {
    fs::read_to_string("/proc/cpuinfo").is_ok_and(|text| {
        text.lines()
            .filter(|l| l.starts_with("flags") || l.starts_with("Features"))
            .any(|l| l.split_whitespace().any(|w| w == "sha_ni" || w == "sha2"))
    })
}

fn mem_total() -> Option<String> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(format!("{:.1} GiB", kib as f64 / f64::from(1u32 << 20)))
}
