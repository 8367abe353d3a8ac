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
//!
//! `state.rs` holds the lease as data and the pure decisions (with their
//! table tests), `remote.rs` the gh calls; here is the taking, renewing and
//! releasing, and the `lease` command.

mod remote;
mod state;

use std::{
    path::{Path, PathBuf},
    sync::{mpsc, Arc},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{
    config::{LeaseConfig, Workspace, INBOX},
    ghenv,
    journal::Journal,
    proc,
};

pub use remote::Remote;
pub use state::{decide, describe, version_gate, Decision, Holder};

/// The reserved asset name (kept with the other asset names in
/// `tempname.rs`, which must not import this module: a cycle).
pub use crate::tempname::LEASE as NAME;
/// The run id of this clone's current lease, written before the upload.
pub const RECORD: &str = ".lease-run";
const API_TIMEOUT: Duration = Duration::from_secs(120);

/// The gh login, for the lease's label (public, so only the login).
/// `gh api user` for the login, built on the Shell to run on any thread.
fn login_command(sh: &Shell, host: &str) -> std::process::Command {
    ghenv::command(cmd!(sh, "gh api --hostname {host} user --jq .login"))
}

/// The login `gh api user` printed, or `unknown`.
fn login_of(command: std::process::Command) -> String {
    proc::run_command(command, "gh api user", API_TIMEOUT)
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
        // The login (for the label) and the first read of the lease are
        // independent round trips: side by side.
        let host = &ws.config.github.host;
        let asking = login_command(sh, host);
        let login = std::thread::spawn(move || login_of(asking));
        let mut first = Some(remote.read(sh));
        let login = login.join().unwrap_or_else(|_| "unknown".into());
        let holder = Holder {
            login,
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
                let seen = match first.take() {
                    Some(seen) => seen?,
                    None => remote.read(sh)?,
                };
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

/// Preflight's line about the lease: held or free, never a failure (a
/// held lease makes publish wait, bounded). `held_here`: this run holds it
/// already (`release` takes it before its preflight).
pub fn preflight_check(sh: &Shell, ws: &Workspace, held_here: bool) -> crate::report::CheckResult {
    use crate::report::CheckResult;
    if held_here {
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
