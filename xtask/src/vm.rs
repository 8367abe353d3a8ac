//! The VM side of a release: the scripts run through `az vm run-command`,
//! their markers, and the one manifest sync used by publish, rollback,
//! promote, rehearse and the bench.
//!
//! az reports a script's verdict nowhere (see `az.rs`), so each script ends
//! by printing `NEXY_MARK:` lines; the functions here read them. The shell
//! text itself is `vm/script.rs`.
//!
//! A restart of `voice-assistant` drops every live voice session, so the
//! sync restarts it only when the stable channel moves the server's own
//! version (the planner decides, `publish/plan.rs`), behind a gate that
//! checks config.env can start it, with a bounded wait for the service to
//! answer with the new version, and a restore of the previous config.env
//! and VERSION when it does not.

mod script;

use anyhow::{bail, Context, Result};
use base64::Engine as _;

use crate::{
    az::{Az, ScriptOutput},
    config::Config,
    hash,
    util::{last_lines, BASE64},
};

/// The VM's state as the read script reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmState {
    pub manifest: Option<String>,
    /// `SERVER_VERSION` in config.env.
    pub server_version: Option<String>,
    /// The version the service's own `/health` answers with on the VM
    /// (`None` when it does not answer).
    pub running_version: Option<String>,
    /// Whether config.env could start the service.
    pub gate: Gate,
}

/// The restart gate's verdict on the VM's config.env.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Gate {
    /// The script printed no verdict.
    #[default]
    Unknown,
    Ok,
    Refused(Vec<Problem>),
}

/// Why config.env could not start the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    NoConfig,
    KeyMissing,
    KeyPlaceholder,
    /// This many `SERVER_VERSION`/`SERVER_BUILD` lines are not `KEY=X.Y.Z.W`.
    VersionLines(String),
    /// The new config.env did not come out naming the new version.
    EditFailed,
    Other(String),
}

impl Problem {
    fn parse(token: &str) -> Problem {
        match token.split_once(':') {
            _ if token == "no-config" => Problem::NoConfig,
            _ if token == "key-missing" => Problem::KeyMissing,
            _ if token == "key-placeholder" => Problem::KeyPlaceholder,
            _ if token == "edit-failed" => Problem::EditFailed,
            Some(("version-lines", n)) => Problem::VersionLines(n.to_string()),
            _ => Problem::Other(token.to_string()),
        }
    }

    /// The problem in words; a key's value is never part of them.
    pub fn describe(&self) -> String {
        match self {
            Problem::NoConfig => "config.env does not exist".into(),
            Problem::KeyMissing => "GEMINI_API_KEY is missing or empty in config.env".into(),
            Problem::KeyPlaceholder => {
                "GEMINI_API_KEY in config.env is the placeholder YOUR_GEMINI_API_KEY_HERE".into()
            }
            Problem::VersionLines(n) => format!(
                "{n} SERVER_VERSION/SERVER_BUILD line(s) in config.env are not of the form SERVER_VERSION=X.Y.Z.W (an `export`, spaces or a CR)"
            ),
            Problem::EditFailed => {
                "the new config.env did not come out with SERVER_VERSION set to the new version"
                    .into()
            }
            Problem::Other(token) => format!("the gate reported `{token}`"),
        }
    }
}

impl Gate {
    /// The gate's marker value: `ok` or `refused:TOKEN TOKEN`.
    fn parse(value: Option<&str>) -> Gate {
        match value {
            Some("ok") => Gate::Ok,
            Some(v) => match v.strip_prefix("refused:") {
                Some(tokens) => {
                    Gate::Refused(tokens.split_whitespace().map(Problem::parse).collect())
                }
                None => Gate::Unknown,
            },
            None => Gate::Unknown,
        }
    }

    /// What stops a restart, in words; `None` when nothing does.
    pub fn refusal(&self) -> Option<String> {
        match self {
            Gate::Ok => None,
            Gate::Unknown => Some("the VM's read printed no restart-gate verdict".into()),
            Gate::Refused(problems) => Some(
                problems
                    .iter()
                    .map(Problem::describe)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        }
    }
}

/// Where the VM keeps things and how its service is checked.
#[derive(Debug, Clone)]
pub struct Target {
    /// The service's base directory.
    pub base: String,
    /// The manifest's file name under `server/updates/manifests/`.
    pub manifest_file: String,
    /// The service's `/health` and the feed's `/updates/health`, on the VM.
    pub health_url: String,
    pub feed_health_url: String,
    pub restart_wait_secs: u64,
    pub backups_keep: u32,
}

impl Target {
    /// The target of the manifest `manifest_file` under `config`.
    pub fn new(config: &Config, manifest_file: String) -> Target {
        Target {
            base: config.azure.remote_base.clone(),
            manifest_file,
            health_url: config.vm.health_url.clone(),
            feed_health_url: config.vm.feed_health_url.clone(),
            restart_wait_secs: config.vm.restart_wait_secs,
            backups_keep: config.vm.backups_keep,
        }
    }

    /// The read-only script that reports the VM's state.
    pub fn read_script(&self) -> String {
        script::read(self)
    }

    /// The script that installs a manifest on the VM and, with `restart`,
    /// moves the server to `version` and restarts it (see `vm/script.rs`).
    /// The version has been validated as four numbers.
    pub fn sync_script(&self, version: &str, manifest: &str, restart: bool) -> String {
        script::sync(self, version, manifest, restart)
    }
}

/// The VM's state from the read script's markers.
pub fn parse_state(out: &ScriptOutput) -> Result<VmState> {
    if out.marker("read") != Some("ok") {
        bail!(
            "reading the VM's manifest printed no verdict (stderr: {}); check the VM with `az vm run-command invoke`",
            last_lines(&out.stderr, 2)
        );
    }
    let manifest = match out.marker("manifest_b64") {
        Some(b64) if !b64.is_empty() => Some(
            String::from_utf8(
                BASE64
                    .decode(b64.trim())
                    .context("the VM's manifest came back garbled")?,
            )
            .context("the VM's manifest is not UTF-8")?,
        ),
        _ => None,
    };
    let value = |name: &str| {
        out.marker(name)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    Ok(VmState {
        manifest,
        server_version: value("server_version"),
        running_version: value("running_version"),
        gate: Gate::parse(out.marker("gate")),
    })
}

/// What a sync did about the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restart {
    /// Not asked to: the manifest only.
    NotAsked,
    /// Asked to, but the service already ran the version (a repeated run).
    AlreadyRunning,
    /// Restarted, and answered with the version after `secs`.
    Done { version: String, secs: u64 },
    /// Restarted, and did not answer with the version in time.
    Failed {
        version: String,
        seen: String,
        restore: Restore,
    },
}

/// What the VM did after a failed restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restore {
    /// Put the previous config.env and VERSION back; the service answers
    /// with `version` again.
    Done { version: String },
    /// Put them back, restarted, and the service did not answer either.
    Failed { version: String, seen: String },
    /// No copy of the previous config was kept for this version.
    NothingKept,
}

/// A confirmed sync: the manifest is installed; what happened to the
/// service and to the backups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    pub restart: Restart,
    /// Backups removed and kept.
    pub backups: (u64, u64),
}

impl Synced {
    /// The lines the tool prints about the sync.
    pub fn report(&self) -> Vec<String> {
        let restart = match &self.restart {
            Restart::NotAsked => "voice-assistant not restarted (manifest only)".to_string(),
            Restart::AlreadyRunning => {
                "voice-assistant not restarted: it already runs this version".to_string()
            }
            Restart::Done { version, secs } => format!(
                "voice-assistant restarted once: active, /health and /updates/health answer {version} after {secs}s"
            ),
            Restart::Failed { version, .. } => {
                format!("voice-assistant restarted and did not come back on {version}")
            }
        };
        let (removed, kept) = self.backups;
        vec![
            restart,
            format!("manifest backups: {removed} old one(s) removed, {kept} kept"),
        ]
    }

    /// The journal's line for what happened to the service.
    pub fn journal_step(&self) -> String {
        match &self.restart {
            Restart::NotAsked => "no restart (manifest only)".into(),
            Restart::AlreadyRunning => "no restart (already running)".into(),
            Restart::Done { version, .. } => format!("restarted voice-assistant into {version}"),
            Restart::Failed {
                version, restore, ..
            } => match restore {
                Restore::Done { version: prev } => {
                    format!("restart into {version} failed; restored {prev}")
                }
                Restore::Failed { version: prev, .. } => {
                    format!("restart into {version} failed; restore of {prev} failed")
                }
                Restore::NothingKept => {
                    format!("restart into {version} failed; nothing to restore")
                }
            },
        }
    }

    /// The release's error when the service did not come back, naming
    /// what happened and both ways on.
    pub fn failure(&self, wait_secs: u64) -> Option<String> {
        let Restart::Failed {
            version,
            seen,
            restore,
        } = &self.restart
        else {
            return None;
        };
        let first = format!(
            "voice-assistant did not come back on {version} within {wait_secs}s after the restart ({seen})"
        );
        let logs = "`journalctl -u voice-assistant -n 50` on the VM";
        Some(match restore {
            Restore::Done { version: prev } => format!(
                "{first}; the VM put back the previous config.env and VERSION ({prev}) and restarted it, and it answers on {prev} again. \
                 The manifest stays as published, so the assets and the manifest agree and clients get the new build; only the server's own version is still {prev}. \
                 Either go back entirely with `cargo xtask rollback --to {prev}`, or fix the service ({logs}) and rerun `cargo xtask publish` to finish"
            ),
            Restore::Failed { version: prev, seen } => format!(
                "{first}; the VM put back the previous config.env and VERSION ({prev}) and restarted it, but it did not come back on {prev} either ({seen}): voice-assistant is DOWN. \
                 The manifest stays as published. Look at the service now ({logs}); then either `cargo xtask rollback --to {prev}`, or fix it and rerun `cargo xtask publish`"
            ),
            Restore::NothingKept => format!(
                "{first}; no copy of the previous config.env was kept for {version}, so nothing was restored and voice-assistant may be down. \
                 The manifest stays as published. Look at the service now ({logs}); then either `cargo xtask rollback`, or fix it and rerun `cargo xtask publish`"
            ),
        })
    }
}

/// Checks the sync script's verdict: the VM confirms the sha256 of the
/// manifest it now serves, and says what it did about the service.
pub fn check_synced(out: &ScriptOutput, manifest: &str, restart: bool) -> Result<Synced> {
    if let (true, Gate::Refused(_)) = (restart, Gate::parse(out.marker("gate"))) {
        let why = Gate::parse(out.marker("gate"))
            .refusal()
            .unwrap_or_default();
        bail!(
            "the VM refused to restart voice-assistant and changed nothing: {why}; the assets are live but the VM still serves the old manifest: fix config.env on the VM (the key's value is never shown), then rerun `cargo xtask publish`"
        );
    }
    let want = format!("ok:{}", hash::bytes_sha256(manifest.as_bytes()));
    if out.marker("sync") != Some(want.as_str()) {
        bail!(
            "the VM sync did not confirm (marker {:?}, stderr: {}); the assets are live but the VM may serve the old manifest: run `cargo xtask publish` again",
            out.marker("sync"),
            last_lines(&out.stderr, 2)
        );
    }
    let backups = out
        .marker("backups")
        .and_then(|v| v.split_once(':'))
        .and_then(|(r, k)| Some((r.trim().parse().ok()?, k.trim().parse().ok()?)))
        .context("the VM sync printed no backup count; run `cargo xtask publish` again")?;
    let restart = parse_restart(out)?;
    Ok(Synced { restart, backups })
}

/// A marker value `KIND:A:B` in its three parts (the last may hold colons).
fn three_parts(value: &str) -> (&str, String, String) {
    let mut parts = value.splitn(3, ':');
    (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    )
}

fn parse_restart(out: &ScriptOutput) -> Result<Restart> {
    let value = out.marker("restart").unwrap_or("");
    let (kind, a, b) = three_parts(value);
    Ok(match kind {
        "none" if a == "not-asked" => Restart::NotAsked,
        "none" if a == "already-running" => Restart::AlreadyRunning,
        "ok" => Restart::Done {
            version: a,
            secs: b.parse().unwrap_or(0),
        },
        "failed" => {
            let (kind, version, seen) = three_parts(out.marker("restore").unwrap_or(""));
            Restart::Failed {
                version: a,
                seen: b,
                restore: match kind {
                    "ok" => Restore::Done { version },
                    "failed" => Restore::Failed { version, seen },
                    _ => Restore::NothingKept,
                },
            }
        }
        _ => bail!(
            "the VM sync printed no restart verdict (marker {value:?}, stderr: {}); check voice-assistant on the VM (`systemctl status voice-assistant`), then run `cargo xtask publish` again",
            last_lines(&out.stderr, 2)
        ),
    })
}

/// Installs `manifest` on the VM and, with `restart`, moves the server to
/// `version` and restarts it; checks the verdict. A restart that failed is
/// not an error here (the caller records it first): see [`Synced::failure`].
pub fn sync(
    az: &Az<'_>,
    target: &Target,
    version: &str,
    manifest: &str,
    restart: bool,
) -> Result<Synced> {
    let out = az.run_script(&target.sync_script(version, manifest, restart))?;
    check_synced(&out, manifest, restart)
}

/// [`sync`] for callers with no journal: a failed restart is an error.
pub fn sync_checked(
    az: &Az<'_>,
    target: &Target,
    version: &str,
    manifest: &str,
    restart: bool,
) -> Result<Synced> {
    let synced = sync(az, target, version, manifest, restart)?;
    match synced.failure(target.restart_wait_secs) {
        Some(why) => bail!("{why}"),
        None => Ok(synced),
    }
}

// Named `_test` so that `init` reads it as test code, which it is.
#[cfg(test)]
#[path = "vm/script_test.rs"]
mod tests;
