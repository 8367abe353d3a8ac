//! `cargo xtask rehearse`: the whole release, end to end, against the
//! local stand-in of production, on a machine with no credentials.
//!
//! It starts the stand-in, copies the workspace's release files to a
//! temporary root, makes realistic artifacts, and runs bump, release,
//! a second release, rollback and verify with the real `gh` and the real
//! `az` (azure-cli 2.91, installed into `target/azure-cli` on first use).
//! On Linux it runs inside a network namespace with only loopback (see
//! `netns`). The user's working tree is never touched; exit 0 only if
//! every Definition of Done held.

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::{
    az::Az,
    changes,
    cli::{Bump, Rehearse, Release, Rollback},
    config::{Workspace, INBOX},
    manifest, report,
    sandbox::{self, StandIn},
    scratch::TempDir,
    verify,
    version::{self, Version},
    vm,
};

impl Rehearse {
    pub fn run(self, sh: &Shell, ws: &Workspace, config_path: &Path) -> Result<bool> {
        if which("gh").is_none() {
            bail!("rehearse drives the real gh CLI, which is not installed; install it (`apt-get install gh`) and run again");
        }
        if let Some(passed) = crate::netns::run_inside(|| sandbox::prepare(sh))? {
            return Ok(passed);
        }
        let total = Instant::now();
        let scratch = TempDir::named(&std::env::temp_dir(), "nexy-rehearse")?;
        let root = scratch.path().join("workspace");
        let state = scratch.path().join("stand-in");
        copy_release_files(ws, &root)?;

        crate::say!("== starting the stand-in of production");
        let stand_in = StandIn::start(sh, &state, 0)?;
        let stand_in_config = sandbox::write_config(config_path, &stand_in.state)?;
        // gh and az find the stand-in through the environment; set it on
        // the one Shell so that every command below inherits it.
        for (k, v) in stand_in.env()? {
            sh.set_var(k, v);
        }
        let tws = Workspace::load(Some(&root), Some(&stand_in_config))?;
        seed_vm(sh, &tws)?;

        let current =
            version::parse_version_file(&changes::read_text(&root, &tws.config.version_file)?)
                .map_err(|why| {
                    anyhow::anyhow!("VERSION is unreadable ({why}); run `cargo xtask bump X.Y.Z.W`")
                })?;
        let first = next(current);
        let second = next(first);
        let mut stages: Vec<(String, bool, Duration)> = Vec::new();
        let mut stage = |name: String, f: &mut dyn FnMut() -> Result<bool>| -> bool {
            crate::say!("\n== {name}");
            let started = Instant::now();
            let ok = match f() {
                Ok(ok) => ok,
                Err(err) => {
                    crate::say!("error: {err:#}");
                    false
                }
            };
            stages.push((name, ok, started.elapsed()));
            ok
        };

        let inbox = root.join(INBOX);
        let mut ok = true;
        for (n, v) in [(1u64, first), (2, second)] {
            ok = ok
                && stage(
                    format!("release {v} (bump, samples, preflight, publish, verify)"),
                    &mut || {
                        Bump {
                            version: v.to_string(),
                            dry_run: false,
                            allow_downgrade: false,
                        }
                        .run(sh, &tws)?;
                        let spec = crate::samples::spec_for(Some(&tws), None, None, n)?;
                        crate::samples::write_both(&inbox, 6 << 20, 3 << 20, &spec)?;
                        Release {
                            channel: "stable".into(),
                            dry_run: false,
                        }
                        .run(sh, &tws)
                    },
                );
        }
        ok = ok
            && stage(
                format!("rerun of release {second} (must change nothing)"),
                &mut || {
                    Release {
                        channel: "stable".into(),
                        dry_run: false,
                    }
                    .run(sh, &tws)
                },
            );
        ok = ok
            && stage(format!("rollback {second} -> {first}"), &mut || {
                Rollback {
                    channel: "stable".into(),
                    to: Some(first.to_string()),
                    dry_run: false,
                }
                .run(sh, &tws)
            });
        ok = ok
            && stage(
                format!("verify --deep of the restored {first}"),
                &mut || {
                    let results = verify::dod(sh, &tws, "stable", true, Duration::from_secs(30))?;
                    crate::output::say_raw(&report::render("verify (DoD)", &results));
                    let archived = crate::archive::versions(&root);
                    crate::say!(
                        "archives kept: {}",
                        archived
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    Ok(report::all_pass(&results))
                },
            );

        // The stand-in's request log proves who spoke to Azure: every ARM
        // call must carry the real az's own User-Agent.
        let (arm, by_az) = arm_calls(&stand_in.state)?;
        if arm > 0 && by_az == arm {
            crate::say!(
                "Azure: {arm} ARM calls, every one with the real az's User-Agent {AZ_AGENT}"
            );
        } else {
            ok = false;
            crate::say!(
                "Azure: {} of {arm} ARM calls lack the real az's User-Agent {AZ_AGENT} (the stand-in's request log says so)",
                arm - by_az
            );
        }
        let stages_json: Vec<serde_json::Value> = stages
            .iter()
            .map(|(name, passed, took)| serde_json::json!({"name": name, "ok": passed, "seconds": (took.as_secs_f64() * 1000.0).round() / 1000.0}))
            .collect();
        crate::output::emit(&serde_json::json!({
            "schema": crate::output::SCHEMA,
            "command": "rehearse",
            "ok": ok,
            "stages": stages_json,
        }));
        crate::say!("\n== rehearsal summary");
        for (name, passed, took) in &stages {
            crate::say!(
                "  {:<4}  {:>6.1}s  {name}",
                if *passed { "ok" } else { "FAIL" },
                took.as_secs_f64()
            );
        }
        let az = crate::proc::AZ_SPAWNED.load(std::sync::atomic::Ordering::Relaxed);
        let all = crate::proc::SPAWNED.load(std::sync::atomic::Ordering::Relaxed);
        crate::say!(
            "rehearsal {} in {:.1}s ({az} az and {} other processes); your working tree was not touched",
            if ok { "passed" } else { "FAILED" },
            total.elapsed().as_secs_f64(),
            all.saturating_sub(az)
        );
        drop(stand_in);
        Ok(ok)
    }
}

/// How the real az 2.91.0 names itself to ARM.
const AZ_AGENT: &str = "AZURECLI/2.91.0";

/// The ARM calls (`/subscriptions/...`) in the stand-in's request log and
/// how many of them carry `AZ_AGENT` (MSAL's token calls are Entra's and
/// say `python-requests`).
fn arm_calls(state: &Path) -> Result<(usize, usize)> {
    let log = state.join("requests.jsonl");
    let text =
        fs::read_to_string(&log).with_context(|| format!("cannot read {}", log.display()))?;
    let (mut arm, mut by_az) = (0, 0);
    for line in text.lines() {
        let r: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{} holds a line that is not JSON", log.display()))?;
        let url = r["url"].as_str().unwrap_or("");
        if r["kind"] == "arm" && url.contains("/subscriptions") {
            arm += 1;
            by_az += usize::from(
                r["user_agent"]
                    .as_str()
                    .is_some_and(|u| u.starts_with(AZ_AGENT)),
            );
        }
    }
    Ok((arm, by_az))
}

/// The next version: the last number plus one.
pub(crate) fn next(v: Version) -> Version {
    let [a, b, c, d] = v.0;
    Version([a, b, c, d.saturating_add(1)])
}

/// Copies the config's release files (VERSION, manifests, linked files,
/// the guide) into `root`, so the rehearsal edits copies only.
pub(crate) fn copy_release_files(ws: &Workspace, root: &Path) -> Result<()> {
    let cfg = &ws.config;
    let mut files: Vec<&str> = vec![&cfg.version_file, &cfg.guide];
    files.extend(cfg.channels.values().map(|c| c.manifest.as_str()));
    files.extend(cfg.version_files.iter().map(|f| f.path.as_str()));
    for rel in files {
        let from = ws.root.join(rel);
        if !from.is_file() {
            continue;
        }
        let to = root.join(rel);
        fs::create_dir_all(to.parent().context("a file has a parent")?)?;
        fs::copy(&from, &to).with_context(|| format!("cannot copy {rel}"))?;
    }
    fs::create_dir_all(root.join(INBOX))?;
    Ok(())
}

/// Makes the stand-in VM serve the workspace's current release, as
/// production does before a release.
pub(crate) fn seed_vm(sh: &Shell, ws: &Workspace) -> Result<()> {
    let cfg = &ws.config;
    let stable = ws.channel("stable")?;
    let manifest = changes::read_text(&ws.root, &stable.manifest)?;
    let version = changes::read_text(&ws.root, &cfg.version_file)?
        .trim()
        .to_string();
    let target = vm::Target::new(cfg, manifest::file_name(&stable.manifest));
    let az = Az::new(sh, &cfg.azure.resource_group, &cfg.azure.vm_name);
    vm::sync_checked(&az, &target, &version, &manifest, true)
        .map(drop)
        .context("seeding the stand-in VM failed")
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}
