//! `cargo xtask preflight` (runbook section 2): everything that must hold
//! before a release touches production. Read-only; every check runs, and
//! the table lists each failure with its fix.

use std::time::Instant;

use anyhow::Result;
use xshell::Shell;

use crate::{
    artifact::{self, Kind},
    auth, check,
    cli::Preflight,
    config::Workspace,
    feed,
    gh::Gh,
    http, proc,
    report::{self, CheckResult},
    version::{self, Version},
};

/// GitHub's limit on assets per release.
pub const MAX_ASSETS_PER_RELEASE: usize = 1000;

impl Preflight {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> Result<bool> {
        let results = checks(sh, ws, &self.channel)?;
        crate::output::say_raw(&report::render("preflight", &results));
        crate::output::emit(&crate::output::checks_doc("preflight", &results));
        Ok(report::all_pass(&results))
    }
}

/// Runs every preflight check for `channel`.
pub fn checks(sh: &Shell, ws: &Workspace, channel_name: &str) -> Result<Vec<CheckResult>> {
    checks_with_vm(sh, ws, channel_name).map(|(results, _)| results)
}

/// [`checks`], and the VM's state read by the key check's one run-command
/// (`preflight_vm.rs`), for a release to publish from.
pub fn checks_with_vm(
    sh: &Shell,
    ws: &Workspace,
    channel_name: &str,
) -> Result<(Vec<CheckResult>, Option<crate::vm::VmState>)> {
    let vm_call = crate::preflight_vm::start(sh, ws, channel_name);
    checks_started(sh, ws, channel_name, vm_call)
}

/// [`checks_with_vm`] with the VM call already started (`release` starts
/// it before its uploads, the slowest check first).
pub fn checks_started(
    sh: &Shell,
    ws: &Workspace,
    channel_name: &str,
    vm_call: crate::preflight_vm::Pending,
) -> Result<(Vec<CheckResult>, Option<crate::vm::VmState>)> {
    let config = &ws.config;
    let channel = ws.channel(channel_name)?;
    let mut out = Vec::new();
    let started = Instant::now();
    // The one VM call (tens of seconds in production) runs beside every
    // other check (`vm_call`); its row keeps its place in the table.

    // 1. gh installed, and its token who it must be and able to write to
    //    the assets repository (not `gh auth status`'s exit code).
    let gh = Gh::new(sh, &config.github.host, &config.github.assets_repo);
    let (gh_rows, gh_ready) = auth::checks(&gh);
    out.extend(gh_rows);

    // 2. The inbox, and the app inside each artifact.
    let inbox = ws.root.join(ws.inbox_dir(channel_name));
    out.extend(inbox_checks(&inbox));
    out.extend(crate::preflight_artifacts::checks(ws, &inbox));

    // 3. The server deploy: the feed answers, gRPC speaks TLS with h2, and
    //    the gRPC service answers a call.
    let agent = http::agent();
    let base = config.server.base_url.trim_end_matches('/');
    let deploy_fix = "deploy the server first (code pipeline, `Seregawpn/Nexy`), then check `systemctl status voice-assistant` on the VM";
    out.push(CheckResult::from_result(
        "server-health",
        feed::health(&agent, base).map(|r| format!("/health OK, latest_version {}", r.version)),
        deploy_fix,
    ));
    out.push(CheckResult::from_result(
        "server-status",
        feed::status(&agent, base)
            .map(|r| format!("/status running, latest_version {}", r.version)),
        deploy_fix,
    ));
    let live = feed::updates_health(&agent, base);
    let live_version = live.as_ref().ok().map(|r| r.version.clone());
    out.push(CheckResult::from_result(
        "updates-health",
        live.map(|r| format!("/updates/health healthy, manifest version {}", r.version)),
        deploy_fix,
    ));
    if config.grpc.tls {
        let ca = config.grpc.ca_file.as_deref();
        out.push(CheckResult::from_result(
            "grpc-tls",
            http::tls_alpn(&config.grpc.endpoint, config.grpc.connect.as_deref(), ca).and_then(
                |alpn| match alpn.as_deref() {
                    Some("h2") => Ok(format!(
                        "{} negotiated TLS with ALPN h2",
                        config.grpc.endpoint
                    )),
                    other => {
                        anyhow::bail!("{} negotiated ALPN {other:?}, not h2", config.grpc.endpoint)
                    }
                },
            ),
            "check nginx's `listen 443 ssl http2` and the certificate on the VM",
        ));
    } else {
        out.push(CheckResult::skip(
            "grpc-tls",
            "grpc.tls is false in the config",
        ));
    }
    // A completed handshake only proves nginx is up: the service must answer.
    out.push(crate::grpc::check(sh, &config.grpc));

    // 4. The Gemini key on the VM, judged by the read script's own
    //    marker; the same call reads the VM's state.
    let (key, vm_state) = vm_call.finish();
    out.push(key);
    out.push(crate::preflight_vm::restart_row(
        ws,
        channel_name,
        vm_state.as_ref(),
    ));

    // 5. The fixed tags exist (never created here) and can take assets.
    for tag in [&channel.dmg_tag, &channel.pkg_tag] {
        out.push(if gh_ready {
            tag_check(&gh, tag)
        } else {
            CheckResult::skip("fixed-tag", format!("{tag}: skipped until gh is logged in"))
        });
    }

    // 6. The target, the workspace and the version.
    out.push(CheckResult::pass(
        "target",
        format!(
            "canonical target {}/{} on {}",
            config.azure.resource_group, config.azure.vm_name, config.server.host
        ),
    ));
    let found = check::results(sh, ws);
    let failing: Vec<&CheckResult> = found
        .iter()
        .filter(|r| r.status == report::Status::Fail)
        .collect();
    out.push(match failing.first() {
        None => CheckResult::pass("workspace", "`cargo xtask check` is clean"),
        Some(first) => CheckResult::fail(
            "workspace",
            format!(
                "`cargo xtask check` reports {} problem(s), first: {}",
                failing.len(),
                first.message
            ),
            "run `cargo xtask check` and fix what it lists",
        ),
    });
    out.push(version_check(ws, live_version.as_deref()));
    out.push(crate::lease::preflight_check(
        sh,
        ws,
        crate::publish::holds_lease(),
    ));
    out.push(CheckResult::pass(
        "elapsed",
        format!(
            "{} checks in {:.1}s, {} external processes",
            out.len(),
            started.elapsed().as_secs_f64(),
            proc::SPAWNED.load(std::sync::atomic::Ordering::Relaxed)
        ),
    ));
    Ok((out, vm_state))
}

fn inbox_checks(inbox: &std::path::Path) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let present = artifact::present(inbox);
    if present.is_empty() {
        out.push(CheckResult::fail(
            "inbox",
            format!("{} holds neither Nexy.dmg nor Nexy.pkg", inbox.display()),
            format!(
                "copy the built Nexy.dmg and/or Nexy.pkg into {}",
                inbox.display()
            ),
        ));
        return out;
    }
    for (kind, path) in present {
        let id = match kind {
            Kind::Dmg => "inbox-dmg",
            Kind::Pkg => "inbox-pkg",
        };
        out.push(CheckResult::from_result(
            id,
            artifact::validate(&path, kind)
                .map(|size| format!("{} ({size} bytes)", path.display())),
            "rebuild the artifact and copy the real file into the inbox",
        ));
    }
    let notes = inbox.join(artifact::NOTES);
    if notes.is_file() {
        out.push(CheckResult::pass(
            "notes",
            format!("{} travels with the DMG", artifact::NOTES),
        ));
    }
    out
}

fn tag_check(gh: &Gh, tag: &str) -> CheckResult {
    let repo = gh.repo().to_string();
    match gh.release(tag) {
        Err(err) => CheckResult::fail("fixed-tag", format!("{err:#}"), "check `gh auth status`"),
        Ok(None) => CheckResult::fail(
            "fixed-tag",
            format!("{repo} has no release for the fixed tag `{tag}`"),
            format!("a maintainer must restore the `{tag}` release in {repo}; this tool never creates tags or releases"),
        ),
        Ok(Some(r)) if r.immutable => CheckResult::fail(
            "fixed-tag",
            format!("the `{tag}` release in {repo} is immutable: its assets cannot be replaced"),
            format!("a maintainer must turn off immutable releases for {repo} (Settings > General > Releases) before the fixed-tag design can publish"),
        ),
        // Two temporary names during a swap, and room for the release
        // lease (`lease/`) unless it is already there.
        Ok(Some(r)) if r.assets.len() + 2 + usize::from(r.asset(crate::lease::NAME).is_none()) > MAX_ASSETS_PER_RELEASE => CheckResult::fail(
            "fixed-tag",
            format!("`{tag}` holds {} assets; GitHub allows {MAX_ASSETS_PER_RELEASE} per release", r.assets.len()),
            format!("delete stale assets from `{tag}` with `gh release delete-asset {tag} NAME`"),
        ),
        Ok(Some(r)) => CheckResult::pass("fixed-tag", format!("`{tag}` exists in {repo} ({} assets)", r.assets.len())),
    }
}

fn version_check(ws: &Workspace, live: Option<&str>) -> CheckResult {
    let local = crate::changes::read_text(&ws.root, &ws.config.version_file)
        .ok()
        .and_then(|t| version::parse_version_file(&t).ok());
    let Some(local) = local else {
        return CheckResult::fail(
            "version",
            "VERSION is unreadable",
            "run `cargo xtask bump X.Y.Z.W`",
        );
    };
    let Some(live) = live else {
        return CheckResult::fail(
            "version",
            "the live version is unknown (/updates/health failed)",
            "fix the server checks above",
        );
    };
    match live.parse::<Version>() {
        Ok(live) if local > live => {
            CheckResult::pass("version", format!("{local} is newer than the live {live}"))
        }
        Ok(live) if local == live => CheckResult::pass(
            "version",
            format!("{local} is already live: publish only re-syncs what differs"),
        ),
        Ok(live) => CheckResult::fail(
            "version",
            format!("{local} is older than the live {live}"),
            format!("bump to a version above {live}: `cargo xtask bump <X.Y.Z.W>`"),
        ),
        Err(e) => CheckResult::fail(
            "version",
            format!("the live version is not a version: {e}"),
            "check the manifest on the VM",
        ),
    }
}
