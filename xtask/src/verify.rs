//! `cargo xtask verify` (runbook sections 4 and 6): the Definition of Done.
//!
//! The assets at the fixed URLs carry the manifest's size and sha256, the
//! manifest is valid, and every feed endpoint reports the released
//! version. The feed is cached for 30-60 s, so failing sources are polled
//! again for a bounded time before the table names the ones that still
//! disagree.

use std::{
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use xshell::Shell;

use crate::{
    artifact::DMG_CONTENT_TYPE,
    changes,
    cli::Verify,
    config::{Channel, Workspace},
    feed,
    gh::Gh,
    http, manifest,
    report::{self, CheckResult, Status},
};

impl Verify {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> Result<bool> {
        let timeout = self.timeout.map_or(
            Duration::from_secs(ws.config.verify.timeout_secs),
            Duration::from_secs,
        );
        let results = dod(sh, ws, &self.channel, self.deep, timeout)?;
        crate::output::say_raw(&report::render("verify (DoD)", &results));
        crate::output::emit(&crate::output::checks_doc("verify", &results));
        Ok(report::all_pass(&results))
    }
}

/// What the manifest promises.
struct Promise {
    version: String,
    build: String,
    size: u64,
    sha256: String,
    ed25519: String,
    arch: String,
    min_os: String,
}

fn promise(ws: &Workspace, channel: &Channel) -> Result<(Promise, Vec<String>)> {
    let rel = &channel.manifest;
    let map = manifest::parse(rel, &changes::read_text(&ws.root, rel)?)?;
    let view = manifest::View::of(&map);
    let promise = Promise {
        version: view.version.unwrap_or_default(),
        build: view.build.unwrap_or_default(),
        size: view.size.unwrap_or(0),
        sha256: view.sha256.unwrap_or_default(),
        ed25519: view.ed25519.unwrap_or_default(),
        arch: view.arch.unwrap_or_default(),
        min_os: view.min_os.unwrap_or_default(),
    };
    Ok((promise, manifest::problems(&map, channel)))
}

/// One DoD check, run again while it fails.
type Probe<'a> = Box<dyn Fn() -> CheckResult + 'a>;

/// Runs every DoD check, retrying failing network checks until `timeout`.
pub fn dod(
    sh: &Shell,
    ws: &Workspace,
    channel_name: &str,
    deep: bool,
    timeout: Duration,
) -> Result<Vec<CheckResult>> {
    let channel = ws.channel(channel_name)?.clone();
    let (p, problems) = promise(ws, &channel)?;
    let mut results = vec![if problems.is_empty() {
        CheckResult::pass(
            "manifest",
            format!("{} is valid for {}", channel.manifest, p.version),
        )
    } else {
        CheckResult::fail(
            "manifest",
            problems.join("; "),
            "run `cargo xtask publish` to rewrite it from the artifacts",
        )
    }];
    let deadline = Instant::now() + timeout;
    let interval = Duration::from_millis(ws.config.verify.interval_ms.max(10));
    let gh = Gh::new(sh, &ws.config.github.host, &ws.config.github.assets_repo);
    let agent = http::agent();
    let gh_cfg = &ws.config.github;
    let stable = channel_name == "stable";
    let inbox = ws.root.join(ws.inbox_dir(channel_name)).join("Nexy.dmg");
    let mut probes: Vec<Probe> = vec![
        Box::new(|| asset_check(&gh, &channel.dmg_tag, "Nexy.dmg", &p)),
        Box::new(|| url_check(&agent, &gh_cfg.fetch_url(&channel.dmg_url), &p, deep)),
        Box::new(|| {
            pkg_check(
                &gh,
                &agent,
                &gh_cfg.fetch_url(&channel.pkg_url),
                &channel.pkg_tag,
            )
        }),
        Box::new(|| {
            if stable {
                feed_check(
                    "updates-health",
                    feed::updates_health(&agent, base(ws)),
                    &p,
                    true,
                )
            } else {
                CheckResult::skip(
                    "updates-health",
                    "reports the stable manifest; this channel is checked through its appcast",
                )
            }
        }),
        Box::new(|| {
            if stable {
                feed_check("health", feed::health(&agent, base(ws)), &p, false)
            } else {
                CheckResult::skip("health", "reports the server's own (stable) version")
            }
        }),
        Box::new(|| appcast_check(&agent, ws, &channel, &p)),
        Box::new(|| crate::grpc::after_restart(sh, ws, &p.version)),
        Box::new(|| {
            signature_check(
                ws,
                &agent,
                &gh_cfg.fetch_url(&channel.dmg_url),
                &inbox,
                &p,
                deep,
            )
        }),
    ];
    if deep {
        // The app a client installs says what the manifest says.
        probes.push(Box::new(|| {
            let url = gh_cfg.fetch_url(&channel.dmg_url);
            crate::preflight_artifacts::deep_app_check(
                ws,
                &agent,
                &url,
                (&p.version, &p.arch, &p.min_os),
            )
        }));
    }
    let mut latest: Vec<CheckResult> = probes.iter().map(|f| f()).collect();
    let mut rounds = 1;
    while latest.iter().any(|r| r.status == Status::Fail) && Instant::now() + interval < deadline {
        thread::sleep(interval);
        rounds += 1;
        for (slot, probe) in latest.iter_mut().zip(&probes) {
            if slot.status == Status::Fail {
                *slot = probe();
            }
        }
    }
    if latest.iter().any(|r| r.status == Status::Fail) {
        for r in latest.iter_mut().filter(|r| r.status == Status::Fail) {
            r.message = format!(
                "{} (still after {rounds} tries over {}s)",
                r.message,
                timeout.as_secs()
            );
        }
    }
    results.extend(latest);
    Ok(results)
}

fn base(ws: &Workspace) -> &str {
    ws.config.server.base_url.trim_end_matches('/')
}

fn asset_check(gh: &Gh, tag: &str, name: &str, p: &Promise) -> CheckResult {
    let release = match gh.release(tag) {
        Ok(Some(r)) => r,
        Ok(None) => {
            return CheckResult::fail(
                "dmg-asset",
                format!("no release for the fixed tag `{tag}`"),
                "a maintainer must restore the tag; this tool never creates tags",
            )
        }
        Err(err) => {
            return CheckResult::fail("dmg-asset", format!("{err:#}"), "check `gh auth status`")
        }
    };
    let leftovers: Vec<&str> = release
        .assets
        .iter()
        .filter(|a| {
            a.name != name
                && a.name != crate::lease::NAME
                && (a.name.starts_with(name) || crate::tempname::parse(&a.name, name).is_some())
        })
        .map(|a| a.name.as_str())
        .collect();
    if !leftovers.is_empty() {
        return CheckResult::fail(
            "dmg-asset",
            format!(
                "leftover assets of an interrupted publish in `{tag}`: {}",
                leftovers.join(", ")
            ),
            "run `cargo xtask publish` again: it finishes or cleans them",
        );
    }
    match release.asset(name) {
        None => CheckResult::fail(
            "dmg-asset",
            format!("`{tag}` has no {name}"),
            "run `cargo xtask publish` (or `rollback`)",
        ),
        Some(a) if a.state != "uploaded" => CheckResult::fail(
            "dmg-asset",
            format!("{name} is in state `{}`, not uploaded", a.state),
            "run `cargo xtask publish` again",
        ),
        Some(a) if a.size != p.size || a.sha256() != Some(p.sha256.as_str()) => CheckResult::fail(
            "dmg-asset",
            format!(
                "live {name} has {} bytes and {:?}, the manifest says {} bytes and sha256:{}",
                a.size, a.digest, p.size, p.sha256
            ),
            "run `cargo xtask publish` to make them agree",
        ),
        Some(a) if a.content_type != DMG_CONTENT_TYPE => CheckResult::fail(
            "dmg-asset",
            format!(
                "live {name} is stored with content type {}, not {DMG_CONTENT_TYPE} (it was uploaded under a name without .dmg)",
                if a.content_type.is_empty() { "none" } else { &a.content_type }
            ),
            "run `cargo xtask publish`: it uploads the DMG again under a name that keeps .dmg",
        ),
        Some(a) => CheckResult::pass(
            "dmg-asset",
            format!(
                "{name} in `{tag}`: {} bytes, digest matches the manifest, content type {}",
                a.size, a.content_type
            ),
        ),
    }
}

fn url_check(agent: &ureq::Agent, url: &str, p: &Promise, deep: bool) -> CheckResult {
    if deep {
        return match http::download_digest(agent, url) {
            Ok(d) if d.size == p.size && d.sha256 == p.sha256 => CheckResult::pass("dmg-url", format!("{url}: downloaded {} bytes, sha256 matches", d.size)),
            Ok(d) => CheckResult::fail(
                "dmg-url",
                format!("{url} serves {} bytes with sha256 {}, the manifest says {} bytes and {} (the public URL disagrees: a stale cache or a wrong asset)", d.size, d.sha256, p.size, p.sha256),
                "wait for caches to expire and run `cargo xtask verify --deep` again; if it persists, `cargo xtask publish`",
            ),
            Err(err) => CheckResult::fail("dmg-url", format!("{err:#}"), "check the fixed URL in release.toml and the Update release"),
        };
    }
    match http::content_length(agent, url) {
        Ok(n) if n == p.size => {
            CheckResult::pass("dmg-url", format!("{url} answers with {n} bytes"))
        }
        Ok(n) => CheckResult::fail(
            "dmg-url",
            format!("{url} answers with {n} bytes, the manifest says {}", p.size),
            "run `cargo xtask verify --deep`, then `cargo xtask publish`",
        ),
        Err(err) => CheckResult::fail(
            "dmg-url",
            format!("{err:#}"),
            "check the fixed URL in release.toml and the Update release",
        ),
    }
}

fn pkg_check(gh: &Gh, agent: &ureq::Agent, url: &str, tag: &str) -> CheckResult {
    let asset = match gh.release(tag) {
        Ok(Some(r)) => r.asset("Nexy.pkg").cloned(),
        Ok(None) => {
            return CheckResult::fail(
                "pkg-asset",
                format!("no release for the fixed tag `{tag}`"),
                "a maintainer must restore the tag",
            )
        }
        Err(err) => {
            return CheckResult::fail("pkg-asset", format!("{err:#}"), "check `gh auth status`")
        }
    };
    let Some(asset) = asset else {
        return CheckResult::skip(
            "pkg-asset",
            format!("`{tag}` has no Nexy.pkg (not published yet)"),
        );
    };
    match http::content_length(agent, url) {
        Ok(n) if n == asset.size => CheckResult::pass(
            "pkg-asset",
            format!(
                "{} answers with {n} bytes, digest {}, content type {}",
                url,
                asset.digest.as_deref().unwrap_or("none"),
                asset.content_type
            ),
        ),
        Ok(n) => CheckResult::fail(
            "pkg-asset",
            format!(
                "{} answers with {n} bytes, the asset has {}",
                url, asset.size
            ),
            "wait for caches, then `cargo xtask publish`",
        ),
        Err(err) => CheckResult::fail("pkg-asset", format!("{err:#}"), "run `cargo xtask publish`"),
    }
}

fn feed_check(
    id: &'static str,
    got: Result<feed::Reported>,
    p: &Promise,
    with_build: bool,
) -> CheckResult {
    let fix = "wait for the feed cache; if it persists, run `cargo xtask publish` (it re-syncs the VM) or restart voice-assistant on the VM";
    match got {
        Ok(r)
            if r.version == p.version
                && (!with_build || r.build.as_deref() == Some(p.build.as_str())) =>
        {
            CheckResult::pass(id, format!("reports {}", r.version))
        }
        Ok(r) => CheckResult::fail(
            id,
            format!(
                "reports {} (build {}), expected {}",
                r.version,
                r.build.as_deref().unwrap_or("-"),
                p.version
            ),
            fix,
        ),
        Err(err) => CheckResult::fail(id, format!("{err:#}"), "check that the server is up"),
    }
}

fn appcast_check(
    agent: &ureq::Agent,
    ws: &Workspace,
    channel: &Channel,
    p: &Promise,
) -> CheckResult {
    let path = appcast_path(channel);
    match feed::appcast(agent, base(ws), &path) {
        Ok(r)
            if r.version == p.version
                && r.build.as_deref() == Some(p.build.as_str())
                && r.length == Some(p.size) =>
        {
            CheckResult::pass(
                "appcast",
                format!(
                    "{path}: {} (build {}), length {}",
                    r.version, p.build, p.size
                ),
            )
        }
        Ok(r) => CheckResult::fail(
            "appcast",
            format!(
                "{path}: {} (build {}), length {:?}; expected {} (build {}), length {}",
                r.version,
                r.build.as_deref().unwrap_or("-"),
                r.length,
                p.version,
                p.build,
                p.size
            ),
            "wait for the 60 s appcast cache; if it persists, run `cargo xtask publish`",
        ),
        Err(err) => CheckResult::fail(
            "appcast",
            format!("{err:#}"),
            "check the update feed on the VM",
        ),
    }
}

/// The DMG's Ed25519 signature against the configured public key, over
/// the bytes a client downloads (`--deep`) or the identical local file.
fn signature_check(
    ws: &Workspace,
    agent: &ureq::Agent,
    url: &str,
    local: &std::path::Path,
    p: &Promise,
    deep: bool,
) -> CheckResult {
    let Some(signing) = &ws.config.signing else {
        return CheckResult::skip("signature", "no [signing] public_key configured");
    };
    let public = match crate::signing::parse_public_key(&signing.public_key) {
        Ok(k) => k,
        Err(err) => {
            return CheckResult::fail(
                "signature",
                format!("{err:#}"),
                "fix [signing] public_key in the config",
            )
        }
    };
    if p.ed25519.is_empty() {
        return CheckResult::fail(
            "signature",
            "the manifest's artifact.ed25519 is empty",
            "run `cargo xtask publish` with the private key available",
        );
    }
    let (bytes, source) = if deep {
        match http::download_bytes(agent, url) {
            Ok(b) => (b, "the public URL"),
            Err(err) => {
                return CheckResult::fail("signature", format!("{err:#}"), "check the fixed URL")
            }
        }
    } else {
        match crate::hash::file_digest(local) {
            Ok(d) if d.sha256 == p.sha256 => match std::fs::read(local) {
                Ok(b) => (b, "the local DMG, identical to the live one"),
                Err(err) => return CheckResult::fail("signature", format!("cannot read {}: {err}", local.display()), "run `cargo xtask verify --deep`"),
            },
            _ => return CheckResult::skip("signature", "the live DMG is not in the inbox; run `cargo xtask verify --deep` to check its signature"),
        }
    };
    match crate::signing::verify_bytes(&public, &bytes, &p.ed25519) {
        Ok(()) => CheckResult::pass("signature", format!("Ed25519 signature verifies over {source}")),
        Err(err) => CheckResult::fail(
            "signature",
            format!("{err:#} ({source})"),
            "the live DMG or its signature was changed: run `cargo xtask publish` from the tested artifact",
        ),
    }
}

/// `/updates/appcast.xml` for stable, `/updates/appcast-<channel>.xml` for others.
fn appcast_path(channel: &Channel) -> String {
    let file = std::path::Path::new(&channel.manifest)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("manifest");
    match file.strip_prefix("manifest_") {
        Some(name) => format!("/updates/appcast-{name}.xml"),
        None => "/updates/appcast.xml".to_string(),
    }
}

/// The released version, from the channel's manifest.
pub fn released_version(ws: &Workspace, channel: &str) -> Result<String> {
    let channel = ws.channel(channel)?;
    let (p, _) = promise(ws, channel)?;
    Some(p.version)
        .filter(|v| !v.is_empty())
        .context("the manifest has no version")
}
