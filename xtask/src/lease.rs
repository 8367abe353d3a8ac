//! One release at a time across machines: a lease held in GitHub itself.
//!
//! The lease is an asset named [`NAME`] on the stable channel's DMG release
//! (`Update`), uploaded with `gh release upload`. GitHub refuses a second
//! asset of one name (422 `already_exists`; gh refuses on its own side when
//! it sees the name first), so taking the lease is one atomic upload, and
//! no tag or release is ever created. Clients fetch only the fixed names,
//! so they never see it. Who holds it (gh login, a random run id, the
//! command, the version, the lifetime) is in the asset's label, so one
//! `gh api` read of the release shows it; the repository is public, so
//! nothing private (no host name, no path) goes there.
//!
//! Expiry is judged by GitHub's clock alone: the asset's `updated_at`
//! against the `Date` header of the same answer, never our own clock. The
//! holder renews by a PATCH of the label (a new renewal count), which bumps
//! `updated_at`, every third of the lifetime. An expired lease is removed
//! by its asset id only (a 404 because another run removed it first is
//! fine), so a lease taken meanwhile by someone else is never touched.
//!
//! The per-clone lock (`lock.rs`) stays: it is taken first and guards the
//! inbox, journal and archive of one clone, and it waits for a killed run's
//! calls in flight, which GitHub cannot see. Under it, a lease whose run id
//! is the one recorded in this clone's [`RECORD`] belongs to a run of this
//! clone that is gone, and is taken over at once instead of after expiry.

use std::{
    path::{Path, PathBuf},
    sync::{mpsc, Arc},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use time::OffsetDateTime;
use xshell::{cmd, Shell};

use crate::{
    config::{LeaseConfig, Workspace, INBOX},
    ghenv,
    journal::Journal,
    proc,
};

/// The reserved asset name.
pub const NAME: &str = "nexy-release.lease";
/// The run id of this clone's current lease, written before the upload.
pub const RECORD: &str = ".lease-run";
const API_TIMEOUT: Duration = Duration::from_secs(120);

/// Who holds a lease, as its label carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub login: String,
    pub run: String,
    pub command: String,
    pub version: String,
    pub ttl_secs: u64,
    pub renewal: u64,
}

impl Holder {
    /// `nexy-release lease login=L run=R command=C version=V ttl=600 renewal=0`
    pub fn label(&self) -> String {
        format!(
            "nexy-release lease login={} run={} command={} version={} ttl={} renewal={}",
            self.login, self.run, self.command, self.version, self.ttl_secs, self.renewal
        )
    }

    pub fn parse_label(label: &str) -> Option<Holder> {
        let rest = label.strip_prefix("nexy-release lease ")?;
        let get = |k: &str| {
            rest.split(' ')
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                .map(str::to_string)
        };
        Some(Holder {
            login: get("login")?,
            run: get("run")?,
            command: get("command")?,
            version: get("version")?,
            ttl_secs: get("ttl")?.parse().ok()?,
            renewal: get("renewal")?.parse().ok()?,
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "{} (gh login {}, run {}, version {})",
            self.command, self.login, self.run, self.version
        )
    }
}

/// The lease as one read of the release shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub id: u64,
    /// `None` when the label is not one of ours (then it counts as held).
    pub holder: Option<Holder>,
    /// Seconds since its last renewal, by GitHub's clock.
    pub age_secs: i64,
}

/// What to do about the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No lease: upload ours.
    Free,
    /// Ours, or a run of this clone that is gone: remove it by id and take it.
    Ours { id: u64 },
    /// Held by a live run: wait.
    Held { left_secs: i64 },
    /// Not renewed within its lifetime: remove by id, record the takeover.
    Expired { id: u64 },
}

/// The pure decision: `mine` is this run's id and `gone` the run id this
/// clone recorded for a run that no longer holds the clone's lock.
pub fn decide(seen: Option<&Seen>, mine: &str, gone: Option<&str>, default_ttl: u64) -> Decision {
    let Some(seen) = seen else {
        return Decision::Free;
    };
    let run = seen.holder.as_ref().map(|h| h.run.as_str());
    if run.is_some() && (run == Some(mine) || run == gone) {
        return Decision::Ours { id: seen.id };
    }
    let ttl = seen.holder.as_ref().map_or(default_ttl, |h| h.ttl_secs);
    let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);
    if seen.age_secs >= ttl {
        Decision::Expired { id: seen.id }
    } else {
        Decision::Held {
            left_secs: ttl - seen.age_secs,
        }
    }
}

/// Whether a run that holds the lease may publish `local` over `live`
/// (both versions of the channel's manifest): lower is refused; equal is
/// allowed only for the same DMG bytes (a rerun that finishes its own
/// release), since two different builds must not share a version.
pub fn version_gate(
    local: crate::version::Version,
    live: Option<crate::version::Version>,
    same_bytes: bool,
) -> std::result::Result<(), String> {
    match live {
        Some(live) if local < live => Err(format!(
            "{local} is lower than {live}, which is live now (another release published it); bump above it with `cargo xtask bump <X.Y.Z.W>` and rebuild"
        )),
        Some(live) if local == live && !same_bytes => Err(format!(
            "{live} is live now with other bytes than this inbox's Nexy.dmg (another release published it); bump above it with `cargo xtask bump <X.Y.Z.W>` and rebuild"
        )),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
struct ReleaseJson {
    id: u64,
    #[serde(default)]
    immutable: bool,
    #[serde(default)]
    assets: Vec<AssetJson>,
}

#[derive(Deserialize)]
struct AssetJson {
    id: u64,
    name: String,
    #[serde(default)]
    label: Option<String>,
    updated_at: String,
}

/// Parses `gh api -i` output: the status line, headers, a blank line and
/// the body. Returns the `Date` header and the body.
fn split_include(out: &str) -> Option<(OffsetDateTime, &str)> {
    let (head, body) = out
        .split_once("\r\n\r\n")
        .or_else(|| out.split_once("\n\n"))?;
    let date = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case("date").then(|| v.trim())
    })?;
    Some((parse_http_date(date)?, body))
}

/// `Tue, 01 Dec 2026 17:24:39 GMT` (RFC 9110's IMF-fixdate).
pub fn parse_http_date(text: &str) -> Option<OffsetDateTime> {
    let fmt = time::format_description::parse_borrowed::<2>(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT",
    )
    .ok()?;
    Some(
        time::PrimitiveDateTime::parse(text.trim(), &fmt)
            .ok()?
            .assume_utc(),
    )
}

/// The lease in one `gh api -i` answer for the release, aged by that
/// answer's `Date`. Also returns the release id.
pub fn parse_read(out: &str) -> Result<(u64, Option<Seen>)> {
    let (now, body) = split_include(out)
        .context("gh api -i printed no Date header; check the gh version (`gh --version`)")?;
    let rel: ReleaseJson =
        serde_json::from_str(body.trim()).context("cannot read the release JSON from gh api")?;
    if rel.immutable {
        bail!("the release of the lease is immutable, so its assets cannot be replaced; a maintainer must turn off immutable releases");
    }
    let Some(a) = rel.assets.iter().find(|a| a.name == NAME) else {
        return Ok((rel.id, None));
    };
    let updated = crate::clock::parse_rfc3339(&a.updated_at)
        .with_context(|| format!("the lease's updated_at `{}` is not a date", a.updated_at))?;
    Ok((
        rel.id,
        Some(Seen {
            id: a.id,
            holder: a.label.as_deref().and_then(Holder::parse_label),
            age_secs: (now - updated).whole_seconds(),
        }),
    ))
}

/// gh calls for the lease, bound to the lease's release.
pub struct Remote {
    host: String,
    repo: String,
    tag: String,
}

impl Remote {
    pub fn of(ws: &Workspace) -> Result<Remote> {
        let stable =
            ws.config.channels.get("stable").context(
                "release.toml has no [channels.stable]; the lease lives on its DMG release",
            )?;
        Ok(Remote {
            host: ws.config.github.host.clone(),
            repo: ws.config.github.assets_repo.clone(),
            tag: stable.dmg_tag.clone(),
        })
    }

    pub fn where_(&self) -> String {
        format!("{NAME} on the `{}` release of {}", self.tag, self.repo)
    }

    pub fn read(&self, sh: &Shell) -> Result<Option<Seen>> {
        let (host, path) = (
            &self.host,
            format!("repos/{}/releases/tags/{}", self.repo, self.tag),
        );
        let out = proc::run_command(
            ghenv::command(cmd!(sh, "gh api -i --hostname {host} {path}")),
            "gh api -i (lease)",
            API_TIMEOUT,
        )?;
        if !out.success() && out.stderr.contains("HTTP 404") {
            bail!(
                "{} has no release for the fixed tag `{}`; a maintainer must restore it (this tool never creates tags)",
                self.repo,
                self.tag
            );
        }
        if !out.success() {
            bail!(
                "reading the lease failed (`gh api {path}`): {}; check `gh auth status --hostname {host}`",
                crate::util::last_lines(&out.stderr, 2)
            );
        }
        Ok(parse_read(&out.stdout)?.1)
    }

    /// Uploads the lease; `false` when an asset of that name exists.
    fn upload(&self, sh: &Shell, file: &Path, label: &str, command: &str) -> Result<bool> {
        let (tag, target) = (&self.tag, format!("{}/{}", self.host, self.repo));
        let arg = format!("{}#{label}", file.display());
        let out = proc::run_command(
            ghenv::command(cmd!(sh, "gh release upload {tag} {arg} -R {target}")),
            "gh release upload (lease)",
            API_TIMEOUT,
        )?;
        if out.success() {
            return Ok(true);
        }
        // gh's own check ("already exists") or GitHub's 422 code; any other
        // refusal (an immutable release) is an error, never a wait.
        if out.stderr.contains("already exists") || out.stderr.contains("already_exists") {
            return Ok(false);
        }
        bail!(
            "taking the lease failed (gh release upload {tag} {NAME}): {}\nnothing was changed; check `gh auth status`, then run `cargo xtask {command}` again",
            crate::util::last_lines(&out.stderr, 2)
        )
    }

    /// Deletes the lease asset `id`; one that is gone already is fine.
    pub fn delete(&self, sh: &Shell, id: u64) -> Result<()> {
        let (host, path) = (
            &self.host,
            format!("repos/{}/releases/assets/{id}", self.repo),
        );
        let out = proc::run_command(
            ghenv::command(cmd!(sh, "gh api --hostname {host} -X DELETE {path}")),
            "gh api -X DELETE (lease)",
            API_TIMEOUT,
        )?;
        if out.success() || out.stderr.contains("HTTP 404") {
            return Ok(());
        }
        bail!(
            "removing the lease {id} failed: {}",
            crate::util::last_lines(&out.stderr, 2)
        )
    }

    /// Renews lease `id` with a new label; `false` when it is gone.
    fn renew(&self, sh: &Shell, id: u64, label: &str) -> Result<bool> {
        let (host, path) = (
            &self.host,
            format!("repos/{}/releases/assets/{id}", self.repo),
        );
        let field = format!("label={label}");
        let out = proc::run_command(
            ghenv::command(cmd!(
                sh,
                "gh api --hostname {host} -X PATCH {path} -f {field}"
            )),
            "gh api -X PATCH (lease)",
            API_TIMEOUT,
        )?;
        if out.success() {
            return Ok(true);
        }
        if out.stderr.contains("HTTP 404") {
            return Ok(false);
        }
        bail!(
            "renewing the lease failed: {}",
            crate::util::last_lines(&out.stderr, 2)
        )
    }
}

/// The gh login, for the lease's label (public, so only the login).
fn login(sh: &Shell, host: &str) -> String {
    proc::run_command(
        ghenv::command(cmd!(sh, "gh api --hostname {host} user --jq .login")),
        "gh api user",
        API_TIMEOUT,
    )
    .ok()
    .filter(proc::Output::success)
    .map(|o| o.stdout.trim().to_string())
    .filter(|l| !l.is_empty() && !l.contains(' '))
    .unwrap_or_else(|| "unknown".into())
}

/// A random run id: sha256 of the pid, the time and an address, cut to 12.
fn run_id() -> String {
    use sha2::Digest;
    let seed = format!(
        "{}-{:?}-{:p}",
        std::process::id(),
        std::time::SystemTime::now(),
        &API_TIMEOUT
    );
    let digest = sha2::Sha256::digest(seed.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The held lease; dropping it stops the renewal and removes the asset.
pub struct Lease {
    remote: Arc<Remote>,
    /// The environment of the run's shell, for the renewals and the
    /// release, which need a shell of their own (see [`ShellEnv`]).
    env: ShellEnv,
    id: u64,
    record: PathBuf,
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

impl Lease {
    /// Takes the lease for `command` at `version`, waiting for a live
    /// holder at most the configured time. Call it under the clone's lock.
    pub fn take(sh: &Shell, ws: &Workspace, command: &str, version: &str) -> Result<Lease> {
        let cfg: &LeaseConfig = &ws.config.lease;
        let remote = Remote::of(ws)?;
        let inbox = ws.root.join(INBOX);
        let record = inbox.join(RECORD);
        // Written by a run of this clone that no longer holds its lock.
        let gone = std::fs::read_to_string(&record)
            .ok()
            .map(|s| s.trim().to_string());
        let mine = run_id();
        let holder = Holder {
            login: login(sh, &ws.config.github.host),
            run: mine.clone(),
            command: command.to_string(),
            version: version.to_string(),
            ttl_secs: cfg.ttl_secs,
            renewal: 0,
        };
        let dir = tempfile_dir(&inbox)?;
        let file = dir.join(NAME);
        let body = format!(
            "{{\"login\":\"{}\",\"run\":\"{}\",\"command\":\"{}\",\"version\":\"{}\",\"ttl_secs\":{}}}\n",
            holder.login, holder.run, holder.command, holder.version, holder.ttl_secs
        );
        std::fs::write(&file, body).with_context(|| format!("cannot write {}", file.display()))?;
        let journal = Journal::open(&inbox.join(".journal.jsonl"));
        let deadline = Instant::now() + Duration::from_secs(cfg.wait_secs);
        let mut shown: Option<String> = None;
        let result = (|| -> Result<u64> {
            loop {
                // Every branch but waiting goes on at once; this bounds them too.
                if Instant::now() > deadline + Duration::from_secs(60) {
                    bail!(
                    "the release lease could not be taken within {} s; see it with `cargo xtask lease`",
                    cfg.wait_secs + 60
                );
                }
                let seen = remote.read(sh)?;
                let who = seen
                    .as_ref()
                    .and_then(|s| s.holder.as_ref())
                    .map_or("an unknown holder".into(), Holder::describe);
                match decide(seen.as_ref(), &mine, gone.as_deref(), cfg.ttl_secs) {
                    Decision::Free => {
                        std::fs::write(&record, format!("{mine}\n"))
                            .with_context(|| format!("cannot write {}", record.display()))?;
                        if !remote.upload(sh, &file, &holder.label(), command)? {
                            continue;
                        }
                        // The asset of that name is ours only if its label says so.
                        match remote.read(sh)? {
                            Some(s) if s.holder.as_ref().is_some_and(|h| h.run == mine) => {
                                return Ok(s.id)
                            }
                            _ => continue,
                        }
                    }
                    Decision::Ours { id } => {
                        remote.delete(sh, id)?;
                        journal.record(
                            "done",
                            &format!("lease takeover {id} (a gone run of this clone)"),
                        )?;
                    }
                    Decision::Expired { id } => {
                        crate::say!("  the release lease held by {who} expired; taking it over");
                        remote.delete(sh, id)?;
                        journal.record(
                            "done",
                            &format!("lease takeover {id} expired, held by {who}"),
                        )?;
                    }
                    Decision::Held { left_secs } => {
                        if Instant::now() >= deadline {
                            bail!(
                            "another release holds the lease ({}): {who}, expiring in {left_secs} s unless renewed; nothing was changed. Run `cargo xtask {command}` again when it is done, see it with `cargo xtask lease`, or remove a stuck one with `cargo xtask lease --break`",
                            remote.where_()
                        );
                        }
                        if shown.as_deref() != Some(who.as_str()) {
                            crate::say!(
                                "  waiting for the release lease (at most {} s): held by {who}",
                                cfg.wait_secs
                            );
                            shown = Some(who);
                        }
                        let left = deadline.saturating_duration_since(Instant::now());
                        std::thread::sleep(Duration::from_secs(cfg.poll_secs.max(1)).min(left));
                    }
                }
            }
        })();
        // Removed on every path, the lease taken or not.
        let _ = std::fs::remove_dir_all(&dir);
        let id = result?;
        if shown.is_some() {
            crate::say!("  took the release lease; reading live state again under it");
        }
        let remote = Arc::new(remote);
        let env = ShellEnv::of(sh);
        let (stop, stopped) = mpsc::channel();
        let renewer = {
            let (remote, mut holder, env) = (remote.clone(), holder.clone(), env.clone());
            let every = Duration::from_secs((cfg.ttl_secs / 3).max(1));
            std::thread::spawn(move || {
                let Ok(sh) = env.shell() else { return };
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    holder.renewal += 1;
                    match remote.renew(&sh, id, &holder.label()) {
                        Ok(true) => {}
                        Ok(false) => {
                            crate::say!("  warning: the release lease was removed by someone else (`cargo xtask lease --break`?); this run goes on without it");
                            return;
                        }
                        Err(e) => crate::say!("  warning: {e:#}; retrying"),
                    }
                }
            })
        };
        Ok(Lease {
            remote,
            env,
            id,
            record,
            stop: Some(stop),
            renewer: Some(renewer),
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(r) = self.renewer.take() {
            let _ = r.join();
        }
        let released = self
            .env
            .shell()
            .and_then(|sh| self.remote.delete(&sh, self.id));
        match released {
            Ok(()) => {
                let _ = std::fs::remove_file(&self.record);
            }
            // The record stays: the next run of this clone finds its own
            // lease left behind and takes it over at once, without waiting
            // out the expiry that another machine would have to wait for.
            Err(e) => crate::say!(
                "  warning: {e:#}; the next run from this clone takes it over, or remove it with `cargo xtask lease --break`"
            ),
        }
    }
}

/// What a shell of the run carries: its directory and the variables set on
/// it (`rehearse` points gh at the stand-in by `sh.set_var`, not through
/// the process's own environment). The renewer thread cannot share the
/// run's `Shell` (it is not `Sync`), and the release runs in `Drop`, where
/// none is at hand; both rebuild one from this, so that their gh reaches
/// the same GitHub with the same token as the rest of the run.
#[derive(Clone)]
struct ShellEnv {
    dir: PathBuf,
    vars: Vec<(std::ffi::OsString, std::ffi::OsString)>,
}

impl ShellEnv {
    fn of(sh: &Shell) -> ShellEnv {
        // xshell applies the shell's variables to every command it makes,
        // so a command made here (never run) lists them.
        let probe: std::process::Command = cmd!(sh, "gh").into();
        ShellEnv {
            dir: sh.current_dir(),
            vars: probe
                .get_envs()
                .filter_map(|(k, v)| Some((k.to_os_string(), v?.to_os_string())))
                .collect(),
        }
    }

    fn shell(&self) -> Result<Shell> {
        let sh = Shell::new().context("cannot make a shell for the release lease")?;
        sh.change_dir(&self.dir);
        for (k, v) in &self.vars {
            sh.set_var(k, v);
        }
        Ok(sh)
    }
}

/// A fresh directory for the lease file (its name must be [`NAME`]).
fn tempfile_dir(inbox: &Path) -> Result<PathBuf> {
    let dir = inbox.join(format!(".lease-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// One line for preflight and `cargo xtask lease`.
pub fn describe(seen: Option<&Seen>, cfg: &LeaseConfig) -> String {
    match seen {
        None => "free".into(),
        Some(s) => {
            let who = s
                .holder
                .as_ref()
                .map_or("an asset without a lease label".into(), Holder::describe);
            let ttl = s.holder.as_ref().map_or(cfg.ttl_secs, |h| h.ttl_secs);
            let left = i64::try_from(ttl).unwrap_or(i64::MAX) - s.age_secs;
            if left > 0 {
                format!("held by {who}, renewed {} s ago, expires in {left} s unless renewed (asset id {})", s.age_secs, s.id)
            } else {
                format!(
                    "held by {who}, expired {} s ago: the next run takes it over (asset id {})",
                    -left, s.id
                )
            }
        }
    }
}

/// The version gate of publish, run on live state read under the lease.
pub fn gate_publish(
    artifacts: &[crate::publish::Artifact],
    manifest: Option<&crate::changes::FileChange>,
    live: &crate::publish::Live,
) -> Result<()> {
    let Some(change) = manifest else {
        return Ok(());
    };
    let view = |rel: &str, text: &str| crate::manifest::View::parse(rel, text).ok();
    let Some(local) = view(&change.rel, &change.new)
        .and_then(|v| v.version)
        .and_then(|v| v.parse().ok())
    else {
        return Ok(());
    };
    let live_view = live
        .vm
        .manifest
        .as_deref()
        .and_then(|m| view("live manifest", m));
    let live_version = live_view
        .as_ref()
        .and_then(|v| v.version.as_deref())
        .and_then(|v| v.parse().ok());
    let dmg = artifacts
        .iter()
        .find(|a| a.kind == crate::artifact::Kind::Dmg)
        .map(|a| a.digest.sha256.as_str());
    let same = dmg.is_some() && live_view.and_then(|v| v.sha256).as_deref() == dmg;
    version_gate(local, live_version, same)
        .map_err(|why| anyhow::anyhow!("refusing to publish: {why}; nothing was changed"))
}

/// Preflight's line about the lease: held or free, never a failure (a
/// held lease makes publish wait, bounded).
pub fn preflight_check(sh: &Shell, ws: &Workspace) -> crate::report::CheckResult {
    use crate::report::CheckResult;
    if crate::publish::holds_lease() {
        // `release` takes the lease before its preflight.
        return CheckResult::pass("lease", "this release holds the release lease");
    }
    let read = Remote::of(ws).and_then(|r| r.read(sh));
    match read {
        Ok(None) => CheckResult::pass("lease", "the release lease is free"),
        Ok(Some(seen)) => CheckResult::pass(
            "lease",
            format!(
                "the release lease is {}; publish waits for it at most {} s",
                describe(Some(&seen), &ws.config.lease),
                ws.config.lease.wait_secs
            ),
        ),
        // The gh and fixed-tag checks above say why; a second failure
        // for the same cause would only repeat it.
        Err(e) => CheckResult::skip("lease", format!("cannot read the release lease: {e:#}")),
    }
}

impl crate::cli::LeaseCmd {
    /// `cargo xtask lease [--break [--yes]]`.
    pub fn run(self, sh: &Shell, ws: &Workspace) -> Result<()> {
        use std::io::{BufRead, IsTerminal, Write};
        let remote = Remote::of(ws)?;
        let seen = remote.read(sh)?;
        crate::say!(
            "{}: {}",
            remote.where_(),
            describe(seen.as_ref(), &ws.config.lease)
        );
        let (true, Some(seen)) = (self.break_, seen) else {
            return Ok(());
        };
        if !self.yes {
            if !std::io::stdin().is_terminal() {
                bail!("--break removes a lease another machine may be using; pass --yes to do it without asking");
            }
            eprint!("remove it? a run that still holds it loses its guard [y/N] ");
            let _ = std::io::stderr().flush();
            let mut answer = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut answer)
                .context("cannot read the answer")?;
            if !matches!(answer.trim(), "y" | "Y" | "yes") {
                crate::say!("left as it is");
                return Ok(());
            }
        }
        remote.delete(sh, seen.id)?;
        let who = seen
            .holder
            .as_ref()
            .map_or("an unknown holder".into(), Holder::describe);
        Journal::open(&ws.root.join(INBOX).join(".journal.jsonl"))
            .record("done", &format!("lease broken {} held by {who}", seen.id))?;
        crate::say!("removed the release lease {} (held by {who})", seen.id);
        Ok(())
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
