//! `cargo xtask bench --profile production-like`: the release against a
//! stand-in with production's latencies (a run-command InProgress 25 s and
//! polled as az polls it, a 100 ms GitHub round trip, an uplink of
//! 100 Mbit/s shared by the uploads in flight; each figure can be changed
//! with `--latency KEY=VALUE`), for a stable release and a beta one, side
//! by side in one run with:
//!
//! - the floor: the same bytes in one `gh release upload` at that
//!   bandwidth, plus one run-command (on stable one that restarts the
//!   service and waits for its health, which a stable release must do);
//! - the old scripts' flow: the runbook's key check, then per asset delete
//!   and upload, the manifest, then the VM sync as a second step;
//! - the naive flow: `gh release upload --clobber` per asset, the
//!   manifest, the VM sync.
//!
//! Each row gives the wall time, the run-commands (POSTs Azure accepted,
//! and retries after a 409 Conflict apart), the longest 404 window of the
//! fixed URLs (pollers), and the manifest/asset disagreement window: from
//! the moment the new DMG is served under its fixed name until the VM's
//! manifest describes it. The set-up releases (a first one per channel,
//! so that the measured ones replace live assets) pay the latencies too:
//! az waits its 30 s between polls however soon the command is done.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use xshell::{cmd, Shell};

use super::{
    fmt_mb, fmt_ms, fmt_secs,
    poll::{self, Pollers},
    Section, Verdict,
};
use crate::{
    az::Az,
    changes,
    cli::{Bump, Release},
    config::Workspace,
    ghenv, proc,
    rehearse::next,
    version::{self, Version},
};

/// Our release (preflight + publish) must stay within this multiple of
/// its floor.
const TARGET_RATIO: f64 = 1.1;
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

mod table;

pub fn run(
    sh: &Shell,
    ws: &Workspace,
    config_path: &Path,
    scratch: &Path,
    (dmg_mb, pkg_mb): (u64, u64),
    latency: &[String],
) -> Result<Section> {
    let sizes = (dmg_mb * 1_000_000, pkg_mb * 1_000_000);
    let dir = scratch.join("production-like");
    let mut args = vec!["--profile".to_string(), "production-like".to_string()];
    for kv in latency {
        args.extend(["--latency".to_string(), kv.clone()]);
    }
    eprintln!("bench:   starting the stand-in with the production-like profile");
    // Per channel: five flows' uploads, the floor's, the archive and the
    // inbox (the stand-in keeps each live blob).
    let (stand_in, tws) = super::stand_in::start(
        sh,
        ws,
        config_path,
        (&dir, (sizes.0 + sizes.1) * 16 + (1 << 30)),
        "the production-like benchmark",
        &args,
    )?;
    let info: Value = serde_json::from_str(
        &fs::read_to_string(stand_in.state.join("sandbox.json"))
            .context("cannot read the stand-in's sandbox.json")?,
    )
    .context("the stand-in's sandbox.json is not JSON")?;
    let bench = Bench {
        sh,
        ws: &tws,
        log: stand_in.state.join("requests.jsonl"),
        vm_manifests: stand_in
            .state
            .join("vm/home/azureuser/voice-assistant/server/updates/manifests"),
        sizes,
        latency: info["latency"].clone(),
    };
    let result = bench.run_all(&dir);
    drop(stand_in);
    result
}

struct Bench<'a> {
    sh: &'a Shell,
    ws: &'a Workspace,
    log: PathBuf,
    /// The VM's manifests directory, as the feed serves it.
    vm_manifests: PathBuf,
    sizes: (u64, u64),
    latency: Value,
}

/// One measured flow.
#[derive(Debug, Clone, Default)]
struct Flow {
    wall: Duration,
    /// Run-command POSTs Azure accepted, and those refused with a Conflict.
    run_commands: usize,
    conflicts: usize,
    /// The longest 404 window of the fixed DMG and PKG URLs.
    gap_404: Option<Duration>,
    /// From the new DMG under its fixed name to the VM's manifest of it.
    disagreement: Option<Duration>,
    /// Our verify, timed apart.
    verify: Option<Duration>,
    /// The floor's two parts.
    parts: Option<(Duration, Duration)>,
}

impl Bench<'_> {
    fn run_all(&self, dir: &Path) -> Result<Section> {
        let (dmg, pkg) = self.sizes;
        let mut s = Section::new(
            format!(
                "the release in the production-like profile: {} DMG + {} PKG; {}",
                fmt_mb(dmg),
                fmt_mb(pkg),
                self.figures()
            ),
            &[
                "channel / flow",
                "wall",
                "run-commands",
                "404 window",
                "manifest/asset disagree",
                "vs floor",
                "target",
                "met?",
            ],
        );
        let mut v = version::parse_version_file(&changes::read_text(
            &self.ws.root,
            &self.ws.config.version_file,
        )?)
        .map_err(|why| anyhow::anyhow!("VERSION is unreadable ({why})"))?;
        let mut seed = 100;
        for channel in ["stable", "beta"] {
            let mut step = || {
                v = next(v);
                seed += 1;
                (v, seed)
            };
            eprintln!("bench:   {channel}: a first release (puts assets live; not measured)");
            let (fv, fs) = step();
            self.prepare(channel, fv, fs)?;
            self.ours(channel)
                .context("the first release against the stand-in failed")?;

            eprintln!("bench:   {channel}: our release");
            let (ov, os) = step();
            self.prepare(channel, ov, os)?;
            let ours = self.ours(channel)?;
            eprintln!("bench:   {channel}: the floor");
            let floor = self.floor(dir, channel)?;
            eprintln!("bench:   {channel}: the old scripts' flow");
            let (dv, ds) = step();
            self.prepare(channel, dv, ds)?;
            let old = self.measured(channel, |b| b.old_flow(channel, dv))?;
            eprintln!("bench:   {channel}: the naive --clobber flow");
            let (nv, ns) = step();
            self.prepare(channel, nv, ns)?;
            let naive = self.measured(channel, |b| b.naive_flow(channel, nv))?;
            self.rows(&mut s, channel, &ours, &floor, &old, &naive);
        }
        s.note("run-commands: the POSTs Azure accepted (from the stand-in's request log); a retry after a 409 Conflict is shown apart, not counted");
        s.note("404 window: the longest run of failed polls of the fixed Nexy.dmg and Nexy.pkg URLs (each poll pays the GitHub round trip)");
        s.note("manifest/asset disagree: from the moment the new DMG is served under its fixed name until the VM's manifest describes it (clients refuse the DMG meanwhile)");
        s.note("the old scripts' flow also runs the runbook's key check on the VM first; the naive flow checks nothing");
        Ok(s)
    }

    /// Bumps to `v` and writes fresh sample artifacts into the channel's inbox.
    fn prepare(&self, channel: &str, v: Version, seed: u64) -> Result<()> {
        Bump {
            version: v.to_string(),
            dry_run: false,
            allow_downgrade: false,
        }
        .run(self.sh, self.ws)?;
        let spec = crate::samples::spec_for(Some(self.ws), None, None, seed)?;
        let inbox = self.ws.root.join(self.ws.inbox_dir(channel));
        fs::create_dir_all(&inbox).with_context(|| format!("cannot create {}", inbox.display()))?;
        crate::samples::write_both(&inbox, self.sizes.0, self.sizes.1, &spec)?;
        Ok(())
    }

    /// Our release: preflight + publish, and verify timed apart.
    fn ours(&self, channel: &str) -> Result<Flow> {
        if let Ok(mut t) = crate::release::STAGE_TIMES.lock() {
            t.clear();
        }
        let mut flow = self.measured(channel, |b| {
            let ok = Release {
                channel: channel.into(),
                dry_run: false,
            }
            .run(b.sh, b.ws)?;
            if !ok {
                bail!("our release against the stand-in failed; its output is above");
            }
            Ok(())
        })?;
        let verify = crate::release::STAGE_TIMES
            .lock()
            .ok()
            .and_then(|t| t.iter().find(|(n, _)| n == "verify").map(|(_, d)| *d))
            .context("the release reported no verify stage")?;
        flow.wall = flow.wall.saturating_sub(verify);
        flow.verify = Some(verify);
        Ok(flow)
    }

    /// Runs `work` with pollers on the fixed URLs and a watch on the VM's
    /// manifest, and reads its run-commands and windows from the log.
    fn measured(&self, channel: &str, work: impl FnOnce(&Self) -> Result<()>) -> Result<Flow> {
        let ch = self.ws.channel(channel)?;
        let urls = vec![
            (
                "Nexy.dmg".to_string(),
                self.ws.config.github.fetch_url(&ch.dmg_url),
            ),
            (
                "Nexy.pkg".to_string(),
                self.ws.config.github.fetch_url(&ch.pkg_url),
            ),
        ];
        let inbox = self.ws.root.join(self.ws.inbox_dir(channel));
        let dmg_sha = crate::hash::file_digest(&inbox.join("Nexy.dmg"))?.sha256;
        let manifest = self
            .vm_manifests
            .join(crate::manifest::file_name(&ch.manifest));
        let from = self.log_offset()?;
        let watch = Watch::start(manifest, dmg_sha);
        let pollers = Pollers::start(&urls)?;
        let started = Instant::now();
        let done = work(self);
        let wall = started.elapsed();
        let reports = pollers.stop();
        let manifest_at = watch.stop();
        done?;
        let log = self.log_since(from)?;
        let posts: Vec<i64> = log
            .iter()
            .filter(|e| {
                e["kind"] == "arm"
                    && e["method"] == "POST"
                    && e["url"].as_str().is_some_and(|u| u.contains("/runCommand"))
            })
            .filter_map(|e| e["status"].as_i64())
            .collect();
        let swapped_at = log
            .iter()
            .find(|e| dmg_served(e))
            .and_then(|e| e["ts_ms"].as_u64());
        let disagreement = match (swapped_at, manifest_at) {
            (Some(a), Some(b)) => Some(Duration::from_millis(b.saturating_sub(a))),
            _ => None,
        };
        Ok(Flow {
            wall,
            run_commands: posts.iter().filter(|s| **s == 202).count(),
            conflicts: posts.iter().filter(|s| **s == 409).count(),
            gap_404: reports.iter().map(|r: &poll::Report| r.longest_gap).max(),
            disagreement,
            ..Flow::default()
        })
    }

    /// The floor: both files in one `gh release upload` at the link's
    /// bandwidth, then one run-command (on stable, the restart and its
    /// health wait).
    fn floor(&self, dir: &Path, channel: &str) -> Result<Flow> {
        let (sh, cfg) = (self.sh, &self.ws.config);
        let ch = self.ws.channel(channel)?;
        let inbox = self.ws.root.join(self.ws.inbox_dir(channel));
        let links = super::release::flows::floor_links(dir, &inbox)?;
        let (tag, target) = (
            &ch.dmg_tag,
            format!("{}/{}", cfg.github.host, cfg.github.assets_repo),
        );
        let started = Instant::now();
        let out = proc::run(
            ghenv::cmd(cmd!(sh, "gh release upload {tag} {links...} -R {target}")),
            "gh release upload (floor)",
            UPLOAD_TIMEOUT,
        )?;
        let up = started.elapsed();
        if !out.success() {
            bail!(
                "the floor's `gh release upload` failed: {}",
                out.stderr.trim()
            );
        }
        let run = super::release::flows::floor_run_command(sh, self.ws, channel)?;
        // The floor's assets go, so that the release holds only its own.
        let gh = crate::gh::Gh::new(sh, &cfg.github.host, &cfg.github.assets_repo);
        if let Some(release) = gh.release(tag)? {
            for asset in release
                .assets
                .iter()
                .filter(|a| a.name.starts_with(super::release::FLOOR_PREFIX))
            {
                gh.delete(asset.id)?;
            }
        }
        Ok(Flow {
            wall: up + run,
            run_commands: 1,
            parts: Some((up, run)),
            ..Flow::default()
        })
    }

    /// The old scripts: the runbook's key check on the VM, then per asset
    /// delete and upload, the manifest, then the VM sync.
    fn old_flow(&self, channel: &str, v: Version) -> Result<()> {
        let (sh, cfg) = (self.sh, &self.ws.config);
        let az = Az::new(sh, &cfg.azure.resource_group, &cfg.azure.vm_name);
        let env = proc::sh_quote(&format!("{}/config.env", cfg.azure.remote_base));
        let out = az.run_script(&format!(
            "grep -q '^GEMINI_API_KEY=' {env} && echo OK || (echo MISSING && exit 1)"
        ))?;
        if !out.stdout.contains("OK") {
            bail!("the runbook's key check printed {:?}", out.stdout);
        }
        super::release::flows::replace_and_sync(self.sh, self.ws, channel, v, false)
    }

    /// The naive flow: `--clobber` per asset, the manifest, the VM sync.
    fn naive_flow(&self, channel: &str, v: Version) -> Result<()> {
        super::release::flows::replace_and_sync(self.sh, self.ws, channel, v, true)
    }

    /// How far the stand-in's log has got (whole lines only).
    fn log_offset(&self) -> Result<usize> {
        let log =
            fs::read(&self.log).with_context(|| format!("cannot read {}", self.log.display()))?;
        Ok(log.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1))
    }

    fn log_since(&self, offset: usize) -> Result<Vec<Value>> {
        let log =
            fs::read(&self.log).with_context(|| format!("cannot read {}", self.log.display()))?;
        Ok(log
            .get(offset..)
            .unwrap_or_default()
            .split(|&b| b == b'\n')
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect())
    }
}

/// Whether a log entry is the moment a new DMG became the fixed name's:
/// our swap's rename to `Nexy.dmg`, or an upload named `Nexy.dmg` (the old
/// and naive flows). The lease and the floor never carry that name.
fn dmg_served(e: &Value) -> bool {
    let url = e["url"].as_str().unwrap_or("");
    let ok = e["status"]
        .as_i64()
        .is_some_and(|s| (200..300).contains(&s));
    let renamed = e["method"] == "PATCH"
        && url.contains("/releases/assets/")
        && e["body"]
            .as_str()
            .is_some_and(|b| b.contains("\"Nexy.dmg\""));
    let named_dmg = url
        .split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|kv| kv == "name=Nexy.dmg"));
    let uploaded = e["method"] == "POST" && url.contains("uploads.") && named_dmg;
    ok && (renamed || uploaded)
}

/// A thread that watches the VM's manifest file (what the feed serves)
/// and records when it first names the new DMG's sha256.
struct Watch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Option<u64>>,
}

impl Watch {
    fn start(path: PathBuf, sha256: String) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if fs::read_to_string(&path).is_ok_and(|t| t.contains(&sha256)) {
                    return Some(now_ms());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            None
        });
        Watch { stop, thread }
    }

    fn stop(self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().ok().flatten()
    }
}

/// Milliseconds since the epoch, the clock of the stand-in's log.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
