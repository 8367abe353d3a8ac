//! Section 4: `cargo xtask check` on the repository, warm, including
//! cargo's own start-up; the check alone without cargo; and the xtask's
//! cold build into a fresh target directory.

use std::{fs, path::Path, time::Duration};

use anyhow::{bail, Result};
use xshell::{cmd, Shell};

use super::{
    ensure_space, fmt_ms, fmt_secs, measure, median, own_exe, project_root, Measured, Section,
    Verdict,
};
use crate::config::Workspace;

/// Timed runs after one warm-up.
const RUNS: usize = 10;
/// The target for the warm `cargo xtask check`, cargo's start-up included.
const TARGET: Duration = Duration::from_millis(200);
/// The warm-up may rebuild the xtask when its sources changed.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A debug build of the xtask and its dependencies takes well under this.
const BUILD_SPACE: u64 = 3 << 30;

const WARM: &str = "`cargo xtask check`, warm";
const DIRECT: &str = "xtask check alone (the built binary, no cargo)";
const COLD: &str = "cold build: `cargo build -q -p xtask`, fresh CARGO_TARGET_DIR";

/// Each measurement fails on its own: an error becomes a row and a note.
pub fn run(sh: &Shell, ws: &Workspace, scratch: &Path) -> Result<Section> {
    let mut s = Section::new(
        "4. `cargo xtask check` and the build",
        &["measure", "median", "max", "exit", "target", "met?"],
    );
    let error_row = |s: &mut Section, what: &str, target: &str, e: &anyhow::Error| {
        s.row(vec![
            what.to_string(),
            "error".into(),
            "-".into(),
            "-".into(),
            target.to_string(),
            Verdict::NotRun.label().into(),
        ]);
        s.note(format!("{what}: {e:#}"));
    };
    let target = format!("< {} (median)", fmt_ms(TARGET));

    // The check as a developer runs it: `cargo xtask check` in the
    // repository, which starts cargo, which checks freshness and runs
    // the binary.
    eprintln!(
        "bench:   `cargo xtask check` in {}: 1 warm-up, {RUNS} timed runs",
        ws.root.display()
    );
    match warm_check(sh, &ws.root) {
        Ok((warm_up, runs)) => {
            let walls: Vec<Duration> = runs.iter().map(|m| m.wall).collect();
            let (med, max) = (median(&walls), walls.iter().max().copied());
            let max = max.unwrap_or_default();
            let verdict = Verdict::of(med < TARGET);
            s.row(vec![
                format!("{WARM} ({RUNS} runs after 1 warm-up)"),
                fmt_ms(med),
                fmt_ms(max),
                exits(&runs),
                target,
                verdict.label().into(),
            ]);
            s.target(
                format!(
                    "warm `cargo xtask check` under {} (median {}, max {})",
                    fmt_ms(TARGET),
                    fmt_ms(med),
                    fmt_ms(max)
                ),
                verdict,
            );
            s.note(format!(
                "the warm-up run took {} (it rebuilds the xtask when a source changed)",
                fmt_ms(warm_up.wall)
            ));
            if let Some(bad) = runs.iter().find(|m| !m.success()) {
                s.note(format!(
                    "`cargo xtask check` reported problems (a finding about the repository, not a failure of the benchmark): {}",
                    crate::util::last_lines(&format!("{}{}", bad.stdout, bad.stderr), 2)
                ));
            }
        }
        Err(e) => {
            error_row(&mut s, WARM, &target, &e);
            s.target(
                format!("warm `cargo xtask check` under {}", fmt_ms(TARGET)),
                Verdict::NotRun,
            );
        }
    }

    // The same check without cargo in front: what cargo's start-up costs.
    match direct_check(sh, &ws.root) {
        Ok(runs) => {
            let walls: Vec<Duration> = runs.iter().map(|m| m.wall).collect();
            s.row(vec![
                DIRECT.into(),
                fmt_ms(median(&walls)),
                fmt_ms(walls.iter().max().copied().unwrap_or_default()),
                exits(&runs),
                "-".into(),
                "-".into(),
            ]);
        }
        Err(e) => error_row(&mut s, DIRECT, "-", &e),
    }

    // The cold build: every crate compiled into an empty target directory
    // (the registry's sources are already on disk, so no network).
    match cold_build(sh, scratch) {
        Ok(took) => s.row(vec![
            COLD.into(),
            fmt_secs(took),
            "-".into(),
            "0".into(),
            "reported (no target)".into(),
            "-".into(),
        ]),
        Err(e) => error_row(&mut s, COLD, "reported (no target)", &e),
    }
    s.note(format!(
        "{} cores; the cold build is the debug profile `cargo xtask` uses",
        std::thread::available_parallelism().map_or(0, usize::from)
    ));
    Ok(s)
}

fn warm_check(sh: &Shell, root: &Path) -> Result<(Measured, Vec<Measured>)> {
    let _dir = sh.push_dir(root);
    let warm_up = measure(
        cmd!(sh, "cargo xtask check"),
        "cargo xtask check",
        WARM_UP_TIMEOUT,
        false,
    )?;
    let runs = repeat(|| {
        measure(
            cmd!(sh, "cargo xtask check"),
            "cargo xtask check",
            RUN_TIMEOUT,
            false,
        )
    })?;
    Ok((warm_up, runs))
}

fn direct_check(sh: &Shell, root: &Path) -> Result<Vec<Measured>> {
    let exe = own_exe()?;
    repeat(|| {
        measure(
            cmd!(sh, "{exe} check --root {root}"),
            "xtask check",
            RUN_TIMEOUT,
            false,
        )
    })
}

fn repeat(mut f: impl FnMut() -> Result<Measured>) -> Result<Vec<Measured>> {
    (0..RUNS).map(|_| f()).collect()
}

/// The distinct exit codes of some runs (`0`, or `0/1` when mixed).
fn exits(runs: &[Measured]) -> String {
    let mut codes: Vec<String> = runs
        .iter()
        .map(|m| m.code.map_or("signal".to_string(), |c| c.to_string()))
        .collect();
    codes.sort();
    codes.dedup();
    codes.join("/")
}

fn cold_build(sh: &Shell, scratch: &Path) -> Result<Duration> {
    ensure_space(sh, scratch, BUILD_SPACE, "the cold build")?;
    let target = scratch.join("cold-target");
    eprintln!(
        "bench:   cold build of the xtask into {} (a minute or two)",
        target.display()
    );
    let _dir = sh.push_dir(project_root());
    let m = measure(
        cmd!(sh, "cargo build -q -p xtask").env("CARGO_TARGET_DIR", &target),
        "cargo build -p xtask",
        BUILD_TIMEOUT,
        false,
    );
    let _ = fs::remove_dir_all(&target);
    let m = m?;
    if !m.success() {
        bail!("`cargo build -p xtask` failed: {}", m.said());
    }
    Ok(m.wall)
}
