//! Section 6: reading the app out of a release-sized DMG and PKG. Our
//! `xtask inspect` (a process of its own, so its peak memory is its own)
//! next to 7-Zip listing the same file, on real sample images written by
//! `samples` (HFS+ in GPT, zlib chunks, raw filler) of the benchmark's
//! sizes.

use std::{fs::File, path::Path, time::Duration};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use super::{
    ensure_space, fmt_mib, fmt_ms, measure, median, own_exe, which, Measured, Section, Verdict,
};
use crate::config::Workspace;

const RUNS: usize = 3;
const TIMEOUT: Duration = Duration::from_secs(300);
/// Reading the app out of a 270 MB image must be interactive and bounded.
const TARGET_WALL: Duration = Duration::from_secs(1);
const TARGET_PEAK_KIB: u64 = 64 << 10;

fn runs(
    sh: &Shell,
    program: &Path,
    args: &[&str],
    file: &Path,
    what: &str,
) -> Result<Vec<Measured>> {
    let mut out = Vec::new();
    for _ in 0..RUNS {
        let m = measure(cmd!(sh, "{program} {args...} {file}"), what, TIMEOUT, true)?;
        if !m.success() {
            anyhow::bail!("{what} failed: {}", m.said());
        }
        out.push(m);
    }
    Ok(out)
}

pub fn run(
    sh: &Shell,
    ws: &Workspace,
    scratch: &Path,
    dmg_mb: u64,
    pkg_mb: u64,
) -> Result<Section> {
    let mut s = Section::new(
        format!("6. reading the app out of a {dmg_mb} MB DMG and a {pkg_mb} MB PKG"),
        &["measure", "median wall", "peak RSS", "target", "met?"],
    );
    let (dmg_bytes, pkg_bytes) = (dmg_mb * 1_000_000, pkg_mb * 1_000_000);
    ensure_space(sh, scratch, dmg_bytes + pkg_bytes, "the inspect benchmark")?;
    let spec = crate::samples::spec_for(Some(ws), None, None, 7)?;
    let (dmg, pkg) = crate::samples::write_both(scratch, dmg_bytes, pkg_bytes, &spec)?;
    let exe = own_exe()?;
    let sevenzip = which("7zz");
    for (file, label) in [(&dmg, "DMG"), (&pkg, "PKG")] {
        eprintln!("bench:   inspect and `7zz l` of the {label}: {RUNS} runs each");
        let ours = runs(sh, &exe, &["inspect"], file, "xtask inspect")?;
        let wall = median(&ours.iter().map(|m| m.wall).collect::<Vec<_>>());
        // A run shorter than the 5 ms sampling reads VmHWM as 0 or not at
        // all: then only the wall time is judged.
        let peak = ours
            .iter()
            .filter_map(|m| m.peak_kib)
            .max()
            .filter(|&k| k > 0);
        let met = wall < TARGET_WALL && peak.is_none_or(|p| p < TARGET_PEAK_KIB);
        let target = format!(
            "< {} and < {}",
            fmt_ms(TARGET_WALL),
            fmt_mib(TARGET_PEAK_KIB)
        );
        s.row(vec![
            format!("xtask inspect {label} (app, versions, archs, signature)"),
            fmt_ms(wall),
            peak.map_or("exited before sampling".into(), fmt_mib),
            target,
            Verdict::of(met).label().into(),
        ]);
        s.target(
            format!(
                "inspect of the {label} {}",
                if met {
                    "fast and bounded"
                } else {
                    "within 1 s and 64 MiB"
                }
            ),
            Verdict::of(met),
        );
        match &sevenzip {
            Some(z) => {
                let theirs = runs(sh, z, &["l"], file, "7zz l")?;
                let wall = median(&theirs.iter().map(|m| m.wall).collect::<Vec<_>>());
                let peak = theirs
                    .iter()
                    .filter_map(|m| m.peak_kib)
                    .max()
                    .filter(|&k| k > 0);
                s.row(vec![
                    format!("7zz l {label} (listing only)"),
                    fmt_ms(wall),
                    peak.map_or("exited before sampling".into(), fmt_mib),
                    "-".into(),
                    "-".into(),
                ]);
            }
            None => s.note("7zz is not installed (`apt-get install 7zip`): no 7-Zip rows"),
        }
    }
    // In process: how much of the DMG the reader decoded to find the app.
    let file = File::open(&dmg).with_context(|| format!("cannot open {}", dmg.display()))?;
    let len = file.metadata()?.len();
    let chunks = crate::macos::udif::Disk::open(File::open(&dmg)?, len)?
        .tables
        .iter()
        .map(|t| t.chunks.len())
        .sum::<usize>();
    let (_, decoded) = crate::macos::dmg::inspect_counted(&dmg, file, len)?;
    s.note(format!(
        "the reader decoded {decoded} of the DMG's {chunks} chunks; wall includes process start-up; peak RSS is VmHWM sampled every 5 ms"
    ));
    Ok(s)
}
