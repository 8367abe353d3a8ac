//! Sections 2 and 3: the release against the local stand-in of production,
//! and the availability of the fixed download URLs while it publishes.
//!
//! As in `rehearse`, the stand-in is started, the release files are copied
//! to a temporary root and everything runs in this process through the
//! one `Shell`, with the real `gh` and the real `az`. A first release
//! puts assets live; three measured releases then replace them, as every
//! production release does, each followed by the floor (one plain upload
//! of the same bytes, then the one run-command every release must make,
//! the restart and its health wait, as issue #17 defines the floor): on a busy two-core machine one run varies by a
//! third, so the table shows the median. Then the naive runbook flow
//! (`gh release upload --clobber` per asset, then the manifest and the
//! VM). Pollers watch the fixed URLs during all of them, so that each runs
//! under the same load.

use std::{
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use xshell::{cmd, Shell};

use super::{
    fmt_mb, fmt_ms, fmt_secs, measure, median,
    poll::{self, Pollers},
    Section, Verdict,
};
use crate::{
    az::Az,
    changes,
    cli::{Bump, Publish, Release},
    config::{Workspace, INBOX},
    gh::Gh,
    ghenv, preflight, proc, publish,
    rehearse::next,
    report, verify,
    version::{self, Version},
};

pub(super) mod flows;
mod tables;

use tables::availability_table;

/// Ours must publish within this multiple of the floor.
const TARGET_RATIO: f64 = 1.5;
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const API_TIMEOUT: Duration = Duration::from_secs(120);
/// Round trips measured for the availability target.
const RTT_SAMPLES: usize = 5;
/// Measured releases, each followed by a floor: the table shows the run
/// with the median publish and the median floor, since one run on a busy
/// two-core machine varies by a third.
const RUNS: usize = 3;
/// Asset names of the floor's uploads (never the fixed names).
pub(super) const FLOOR_PREFIX: &str = "bench-floor-";
const RAW_PREFIX: &str = "bench-raw-";

pub fn run(
    sh: &Shell,
    ws: &Workspace,
    config_path: &Path,
    scratch: &Path,
    dmg_mb: u64,
    pkg_mb: u64,
) -> Result<(Section, Section)> {
    let sizes = (dmg_mb * 1_000_000, pkg_mb * 1_000_000);
    let dir = scratch.join("release");
    eprintln!("bench:   starting the stand-in of production");
    // Three releases, the floor's two uploads, the archive and the inbox:
    // the stand-in keeps every uploaded blob.
    let (stand_in, tws) = super::stand_in::start(
        sh,
        ws,
        config_path,
        (&dir, (sizes.0 + sizes.1) * 12 + (1 << 30)),
        "the release benchmark",
        &[],
    )?;
    let token = sh
        .var("GH_TOKEN")
        .context("the stand-in's environment has no GH_TOKEN")?;
    let bench = Bench {
        sh,
        ws: &tws,
        log: stand_in.state.join("requests.jsonl"),
        inbox: tws.root.join(INBOX),
        sizes,
    };
    let result = bench.run(&dir, &token);
    drop(stand_in);
    result
}

/// The state shared by the steps of the release benchmark.
struct Bench<'a> {
    sh: &'a Shell,
    ws: &'a Workspace,
    /// The stand-in's request log (HTTP requests and az invocations).
    log: PathBuf,
    inbox: PathBuf,
    /// DMG and PKG sizes in bytes.
    sizes: (u64, u64),
}

/// A point in the run: when, how many processes so far, and how far the
/// stand-in's log had got.
struct Mark {
    at: Instant,
    spawned: usize,
    az_spawned: usize,
    log_offset: usize,
}

/// What happened between two marks.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    wall: Duration,
    gh: usize,
    az: usize,
    uploaded: u64,
}

impl std::ops::Add for Usage {
    type Output = Usage;
    fn add(self, o: Usage) -> Usage {
        Usage {
            wall: self.wall + o.wall,
            gh: self.gh + o.gh,
            az: self.az + o.az,
            uploaded: self.uploaded + o.uploaded,
        }
    }
}

/// One measured release of ours.
struct Ours {
    version: Version,
    preflight: Usage,
    publish: Usage,
    verify: Usage,
    /// Each publish step: its name, when it began (epoch seconds), how long.
    steps: Vec<(String, f64, Duration)>,
    dod_failures: Vec<String>,
}

/// Everything measured, for the two tables.
struct Results {
    first_release: Duration,
    rtts: Vec<Duration>,
    /// The measured releases, and the one with the median publish time.
    runs: Vec<Ours>,
    median: usize,
    ours_availability: Vec<poll::Report>,
    /// Each run's floor (the upload, then the run-command), and the
    /// median one.
    floors: Vec<(Usage, Usage)>,
    floor: (Usage, Usage),
    raw: Usage,
    naive: Usage,
    naive_dod_failures: Vec<String>,
    naive_availability: Vec<poll::Report>,
}

impl Bench<'_> {
    fn run(&self, dir: &Path, token: &str) -> Result<(Section, Section)> {
        let sh = self.sh;
        let ws = self.ws;
        let channel = ws.channel("stable")?.clone();
        let current =
            version::parse_version_file(&changes::read_text(&ws.root, &ws.config.version_file)?)
                .map_err(|why| anyhow::anyhow!("VERSION is unreadable ({why})"))?;
        let first = next(current);
        let urls = vec![
            (
                "Nexy.dmg".to_string(),
                ws.config.github.fetch_url(&channel.dmg_url),
            ),
            (
                "Nexy.pkg".to_string(),
                ws.config.github.fetch_url(&channel.pkg_url),
            ),
        ];

        // 1. A first release, so that the fixed URLs serve something that
        // the measured release then replaces.
        eprintln!("bench:   first release {first} (puts assets live; not in the table)");
        self.prepare(first, 1)?;
        let started = Instant::now();
        let ok = Release {
            channel: "stable".into(),
            dry_run: false,
        }
        .run(sh, ws)?;
        if !ok {
            bail!("the first release against the stand-in failed; its output is above");
        }
        let first_release = started.elapsed();

        // 2. One API round trip as gh makes it (start-up included), the
        // unit of the availability target, measured under the pollers' load.
        let host = &ws.config.github.host;
        let repo = &ws.config.github.assets_repo;
        let tag_path = format!("repos/{repo}/releases/tags/{}", channel.dmg_tag);
        let pollers = Pollers::start(&urls)?;
        let rtts: Result<Vec<Duration>> = (0..RTT_SAMPLES)
            .map(|_| {
                let m = measure(
                    ghenv::cmd(cmd!(sh, "gh api --hostname {host} {tag_path}")),
                    "gh api",
                    API_TIMEOUT,
                    false,
                )?;
                if !m.success() {
                    bail!("`gh api {tag_path}` failed: {}", m.said());
                }
                Ok(m.wall)
            })
            .collect();
        drop(pollers);
        let rtts = rtts?;

        // 3 and 4, RUNS times: ours (preflight, publish, verify, replacing
        // the live assets), then the floor (the same bytes in one gh upload).
        let timeout = Duration::from_secs(ws.config.verify.timeout_secs);
        let mut runs = Vec::new();
        let mut floors = Vec::new();
        let mut ours_availability = Vec::new();
        let mut v = first;
        for run in 1..=RUNS {
            v = next(v);
            eprintln!("bench:   measured release {v} ({run}/{RUNS}): preflight, publish, verify, then the floor");
            let (ours, availability) = self.ours(v, run as u64 + 1, &urls, timeout)?;
            runs.push(ours);
            ours_availability.extend(availability.into_iter().map(|mut p| {
                p.name = format!("{} ({run}/{RUNS})", p.name);
                p
            }));
            // The floor under the same pollers: the upload, then the one
            // run-command (restart and health wait) every release makes.
            let pollers = Pollers::start(&urls)?;
            let floor = self
                .floor_gh(dir, &channel.dmg_tag)
                .and_then(|up| Ok((up, self.floor_vm()?)));
            drop(pollers);
            floors.push(floor?);
            self.remove_bench_assets(&channel.dmg_tag)?;
        }
        let median = median_index(&runs.iter().map(|o| o.publish.wall).collect::<Vec<_>>());
        let walls: Vec<Duration> = floors.iter().map(|(up, vm)| (*up + *vm).wall).collect();
        let floor = floors[median_index(&walls)];
        // The floor without gh, once, for reference.
        let raw = self.floor_raw(&channel.dmg_tag, token)?;
        self.remove_bench_assets(&channel.dmg_tag)?;
        let naive = next(v);

        // 5. The naive flow of the old runbook.
        eprintln!(
            "bench:   naive flow {naive}: `gh release upload --clobber` per asset, manifest, VM"
        );
        self.prepare(naive, RUNS as u64 + 2)?;
        let pollers = Pollers::start(&urls)?;
        let n0 = self.mark()?;
        let naive_result = self.naive_publish(naive);
        let n1 = self.mark()?;
        let naive_availability = pollers.stop();
        naive_result.context("the naive flow failed against the stand-in")?;
        let naive_dod = verify::dod(sh, ws, "stable", false, timeout)?;

        let results = Results {
            first_release,
            rtts,
            runs,
            median,
            ours_availability,
            floors,
            floor,
            raw,
            naive: self.usage(&n0, &n1)?,
            naive_dod_failures: failures(&naive_dod),
            naive_availability,
        };
        Ok((self.release_table(&results), availability_table(&results)))
    }

    /// One measured release: preflight, publish (with pollers on the fixed
    /// URLs), verify; `seed` makes its artifacts new bytes.
    fn ours(
        &self,
        v: Version,
        seed: u64,
        urls: &[(String, String)],
        timeout: Duration,
    ) -> Result<(Ours, Vec<poll::Report>)> {
        let (sh, ws) = (self.sh, self.ws);
        self.prepare(v, seed)?;
        let journal = self.inbox.join(".journal.jsonl");
        let journal_from = fs::metadata(&journal).map_or(0, |m| m.len());
        let m0 = self.mark()?;
        let checks = preflight::checks(sh, ws, "stable")?;
        if !report::all_pass(&checks) {
            bail!(
                "preflight failed against the stand-in:\n{}",
                report::render("preflight", &checks)
            );
        }
        let m1 = self.mark()?;
        let pollers = Pollers::start(urls)?;
        let published = Publish {
            channel: "stable".into(),
            dry_run: false,
        }
        .run(sh, ws);
        let availability = pollers.stop();
        published.context("our publish failed against the stand-in")?;
        let m2 = self.mark()?;
        let dod = verify::dod(sh, ws, "stable", false, timeout)?;
        let m3 = self.mark()?;
        Ok((
            Ours {
                version: v,
                preflight: self.usage(&m0, &m1)?,
                publish: self.usage(&m1, &m2)?,
                verify: self.usage(&m2, &m3)?,
                steps: journal_steps(&journal, journal_from)?,
                dod_failures: failures(&dod),
            },
            availability,
        ))
    }

    /// Bumps to `v` and writes fresh sample artifacts into the inbox.
    fn prepare(&self, v: Version, seed: u64) -> Result<()> {
        Bump {
            version: v.to_string(),
            dry_run: false,
            allow_downgrade: false,
        }
        .run(self.sh, self.ws)?;
        let spec = crate::samples::spec_for(Some(self.ws), None, None, seed)?;
        crate::samples::write_both(&self.inbox, self.sizes.0, self.sizes.1, &spec)?;
        Ok(())
    }

    fn mark(&self) -> Result<Mark> {
        let at = Instant::now();
        let spawned = proc::SPAWNED.load(Ordering::Relaxed);
        let az_spawned = proc::AZ_SPAWNED.load(Ordering::Relaxed);
        let log =
            fs::read(&self.log).with_context(|| format!("cannot read {}", self.log.display()))?;
        // Only whole lines: the stand-in may be writing one right now.
        let log_offset = log.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        Ok(Mark {
            at,
            spawned,
            az_spawned,
            log_offset,
        })
    }

    /// Processes and uploaded bytes between two marks: az invocations are
    /// the `az` processes spawned, every other process a release spawns
    /// (through `proc::run`) is a gh.
    fn usage(&self, from: &Mark, to: &Mark) -> Result<Usage> {
        let log =
            fs::read(&self.log).with_context(|| format!("cannot read {}", self.log.display()))?;
        let window = log.get(from.log_offset..to.log_offset).unwrap_or_default();
        let mut uploaded = 0;
        for line in window.split(|&b| b == b'\n') {
            let Ok(entry) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            let field = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or("");
            if field("kind") == "http"
                && field("method") == "POST"
                && field("url").starts_with("http://uploads.")
            {
                uploaded += entry.get("body_len").and_then(Value::as_u64).unwrap_or(0);
            }
        }
        let spawned = to.spawned.saturating_sub(from.spawned);
        let az = to.az_spawned.saturating_sub(from.az_spawned);
        Ok(Usage {
            wall: to.at.duration_since(from.at),
            gh: spawned.saturating_sub(az),
            az,
            uploaded,
        })
    }
}

/// The failed checks of a DoD, as `id: message`.
fn failures(results: &[report::CheckResult]) -> Vec<String> {
    results
        .iter()
        .filter(|r| r.status == report::Status::Fail)
        .map(|r| format!("{}: {}", r.id, r.message))
        .collect()
}

/// The index of the median of `values` (the lower middle for an even count).
fn median_index(values: &[Duration]) -> usize {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by_key(|&i| values[i]);
    order
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0)
}

/// The duration of each step publish journaled after `offset`: from its
/// `start` to its `done` line.
fn journal_steps(path: &Path, offset: u64) -> Result<Vec<(String, f64, Duration)>> {
    let mut open: Vec<(String, f64)> = Vec::new();
    let mut out = Vec::new();
    for entry in crate::journal::read_from(path, offset)? {
        let Some(at) = crate::clock::epoch_secs(&entry.time) else {
            continue;
        };
        if entry.step.starts_with("skip ") {
            continue;
        }
        match entry.phase.as_str() {
            "start" => open.push((entry.step, at)),
            "done" => {
                if let Some(i) = open.iter().rposition(|(s, _)| *s == entry.step) {
                    let (step, began) = open.remove(i);
                    out.push((step, began, Duration::from_secs_f64((at - began).max(0.0))));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The time covered by at least one step: steps run side by side (the
/// two uploads), so their durations do not add up.
fn covered(steps: &[(String, f64, Duration)]) -> Duration {
    let mut spans: Vec<(f64, f64)> = steps
        .iter()
        .map(|(_, began, took)| (*began, began + took.as_secs_f64()))
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for (start, end) in spans {
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                total += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((s, e)) = current {
        total += e - s;
    }
    Duration::from_secs_f64(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_steps_pair_start_and_done() {
        let dir = std::env::temp_dir().join(format!("nexy-bench-journal-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("j.jsonl");
        let old = "{\"time\":\"2026-01-01T00:00:00+00:00\",\"phase\":\"start\",\"step\":\"old\"}\n";
        let new = [
            ("00:00:01", "start", "upload Nexy.next-abc.dmg"),
            ("00:00:03.250000", "done", "upload Nexy.next-abc.dmg"),
            ("00:00:04", "start", "skip archive"),
            ("00:00:04", "done", "skip archive"),
        ]
        .iter()
        .map(|(t, p, s)| {
            format!("{{\"time\":\"2026-01-01T{t}+00:00\",\"phase\":\"{p}\",\"step\":\"{s}\"}}\n")
        })
        .collect::<String>();
        fs::write(&path, format!("{old}{new}")).unwrap();
        let steps = journal_steps(&path, old.len() as u64).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            steps,
            vec![(
                "upload Nexy.next-abc.dmg".to_string(),
                crate::clock::epoch_secs("2026-01-01T00:00:01+00:00").unwrap(),
                Duration::from_millis(2250)
            )]
        );
    }

    #[test]
    fn the_median_run_is_the_middle_one() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        assert_eq!(median_index(&ms(&[1840, 1770, 2130])), 0);
        assert_eq!(median_index(&ms(&[3, 1, 2, 4])), 2);
        assert_eq!(median_index(&[]), 0);
    }

    #[test]
    fn side_by_side_steps_are_covered_once() {
        let step = |began: f64, ms: u64| (String::new(), began, Duration::from_millis(ms));
        // Two uploads side by side, then a swap after a pause.
        let steps = [step(10.0, 1400), step(10.1, 1400), step(12.0, 250)];
        assert_eq!((covered(&steps).as_secs_f64() * 1000.0).round(), 1750.0);
        assert_eq!(covered(&[]), Duration::ZERO);
    }
}
