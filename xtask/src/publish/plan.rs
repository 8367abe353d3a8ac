//! The planner: what publish will do, decided from local and live state
//! alone.
//!
//! [`plan`] is a pure function: it reads no file and calls no process. The
//! orchestration (`publish/mod.rs`) gathers [`Local`] (the artifacts, the
//! manifest to publish, the archives on disk) and [`Live`] (the releases and
//! the VM), so that every state a killed run can leave behind is a row of
//! the table tests below, run in milliseconds.

use std::{collections::BTreeMap, path::PathBuf};

use anyhow::{bail, Context, Result};

use crate::{
    artifact::{self, Kind},
    changes::FileChange,
    gh::{Asset, Release},
    hash::FileDigest,
    manifest,
    tempname::{self, Temp},
    vm::VmState,
};

// Temporary asset names (see `tempname`): `Nexy.next-<sha12>.dmg` while
// uploading, `Nexy.prev-<sha12>.dmg` for the replaced asset during the swap.

/// One artifact to publish.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub kind: Kind,
    pub path: PathBuf,
    pub digest: FileDigest,
    pub tag: String,
}

impl Artifact {
    pub fn name(&self) -> &'static str {
        self.kind.file_name()
    }

    pub fn temp_name(&self) -> String {
        tempname::name(self.name(), Temp::Next, &self.digest.sha256[..12])
    }

    /// The name the live `asset` takes during the swap.
    pub fn prev_name(&self, asset: &Asset) -> String {
        tempname::name(
            self.name(),
            Temp::Prev,
            asset.sha256().map_or("unknown", |s| &s[..12.min(s.len())]),
        )
    }

    /// True when `asset` is a complete upload of exactly this file; a DMG
    /// must also carry its content type, so that one stored as
    /// `application/octet-stream` (by runs whose temporary names lost the
    /// extension) is uploaded again.
    pub fn matches(&self, asset: &Asset) -> bool {
        asset.state == "uploaded"
            && asset.size == self.digest.size
            && asset.sha256() == Some(self.digest.sha256.as_str())
            && (self.kind != Kind::Dmg || asset.content_type == artifact::DMG_CONTENT_TYPE)
    }
}

/// Everything on this machine the plan depends on.
#[derive(Debug, Clone)]
pub struct Local {
    pub artifacts: Vec<Artifact>,
    /// The manifest to publish; `None` when no DMG is published.
    pub manifest: Option<FileChange>,
    /// The stable channel's VM sync also moves the server's own version.
    pub moves_server_version: bool,
    /// `release_inbox/.archive`.
    pub archive_root: PathBuf,
    /// The complete archives on disk: version -> the manifest kept with it.
    pub archived: BTreeMap<String, Option<String>>,
}

/// What production looks like before the plan.
#[derive(Debug, Clone)]
pub struct Live {
    pub releases: Vec<(String, Release)>,
    pub vm: VmState,
}

impl Live {
    /// The release of `tag`, as read.
    pub fn release(&self, tag: &str) -> Option<&Release> {
        self.releases.iter().find(|(t, _)| t == tag).map(|(_, r)| r)
    }
}

/// One step of the plan, as data.
#[derive(Debug, Clone)]
pub enum Step {
    /// Download the live assets and manifest into the archive.
    Archive {
        version: String,
        dir: PathBuf,
        /// Tag, asset name and size of each live asset.
        assets: Vec<(String, String, u64)>,
        manifest: Option<String>,
    },
    /// Remove an asset left behind by an interrupted run.
    RemoveLeftover {
        tag: String,
        asset: Asset,
    },
    /// Put back an asset whose swap was interrupted after its first rename.
    Restore {
        tag: String,
        asset: Asset,
        name: String,
    },
    Upload {
        local: Artifact,
    },
    /// Check the uploaded temporary asset, then rename it over the live one.
    Swap {
        local: Artifact,
    },
    WriteManifest {
        change: FileChange,
    },
    /// Install the manifest on the VM; with `restart`, also move the
    /// server to `version` and restart it (gated, waited for, undone when
    /// it fails). `why` says why it restarts or not.
    SyncVm {
        version: String,
        manifest: String,
        restart: bool,
        why: String,
    },
    /// Nothing to do for this item; says why.
    Skip {
        what: String,
        why: String,
    },
}

/// The steps, in the order they run.
pub type Plan = Vec<Step>;

/// Computes the plan from local and live state.
///
/// Cleanups and skips come first, then the archive and the uploads (which
/// run side by side), then the swaps back to back, then the manifest: the
/// window in which a client could see a new asset with the old checksum is
/// only the swaps and the VM sync.
pub fn plan(local: &Local, live: &Live) -> Result<Plan> {
    let mut steps = Vec::new();
    let release_of = |tag: &str| live.release(tag);
    let archive = archive_step(local, live, &release_of)?;

    let mut uploads = Vec::new();
    let mut swaps = Vec::new();
    for art in &local.artifacts {
        let release = release_of(&art.tag).context("the live state has no release for a tag")?;
        let live_asset = release.asset(art.name());
        let temp = art.temp_name();
        let has_good_temp = release.asset(&temp).is_some_and(|a| art.matches(a));
        for asset in &release.assets {
            // Both the current and the old naming's leftovers.
            let Some(kind) = tempname::parse(&asset.name, art.name()) else {
                continue;
            };
            let is_prev = kind == Temp::Prev;
            let good_temp = asset.name == temp && art.matches(asset);
            if live_asset.is_none() && good_temp {
                // Killed between the two renames of a swap: finishing it
                // is the Swap step below, which will find this asset.
                continue;
            }
            let restorable = live_asset.is_none() && is_prev && asset.state == "uploaded";
            if restorable && !has_good_temp {
                steps.push(Step::Restore {
                    tag: art.tag.clone(),
                    asset: asset.clone(),
                    name: art.name().to_string(),
                });
                continue;
            }
            if !good_temp {
                steps.push(Step::RemoveLeftover {
                    tag: art.tag.clone(),
                    asset: asset.clone(),
                });
            }
        }
        if live_asset.is_some_and(|a| art.matches(a)) {
            steps.push(Step::Skip {
                what: format!("{} in {}", art.name(), art.tag),
                why: format!(
                    "live asset already has sha256 {} and {} bytes",
                    &art.digest.sha256[..12],
                    art.digest.size
                ),
            });
            continue;
        }
        if !has_good_temp {
            uploads.push(Step::Upload { local: art.clone() });
        }
        swaps.push(Step::Swap { local: art.clone() });
    }
    steps.extend(archive);
    steps.extend(uploads);
    steps.extend(swaps);

    let Some(change) = &local.manifest else {
        steps.push(Step::Skip {
            what: "manifest".into(),
            why: "no Nexy.dmg in this release; the manifest describes the DMG".into(),
        });
        return Ok(steps);
    };
    if change.old != change.new {
        steps.push(Step::WriteManifest {
            change: change.clone(),
        });
    }
    let version = manifest::View::parse(&change.rel, &change.new)?
        .version
        .context("the new manifest has no version")?;
    let (restart, why) = restart_decision(local.moves_server_version, &live.vm, &version);
    if restart {
        // The gate, before anything moves: a service that could not start
        // on the new config must not be restarted, and a release that
        // would need it stops here with GitHub, the manifest and the VM
        // as they were.
        if let Some(refusal) = live.vm.gate.refusal() {
            bail!(
                "the VM cannot restart voice-assistant into {version}: {refusal}; no fixed asset was replaced, nothing was written, and the VM is untouched. Fix config.env on the VM (a real GEMINI_API_KEY, plain SERVER_VERSION=X.Y.Z.W and SERVER_BUILD= lines; the key's value is never shown), then rerun `cargo xtask publish`"
            );
        }
    }
    if !restart && live.vm.manifest.as_deref() == Some(change.new.as_str()) {
        steps.push(Step::Skip {
            what: "VM manifest".into(),
            why: format!("already serves {version}; {why}"),
        });
    } else {
        steps.push(Step::SyncVm {
            version,
            manifest: change.new.clone(),
            restart,
            why,
        });
    }
    Ok(steps)
}

/// Whether the VM sync restarts `voice-assistant`, and why. A restart
/// drops every live voice session, and the feed reads the manifest from
/// disk on each request, so only a move of the server's own version needs
/// one: the stable channel, when config.env does not name the version yet
/// or the service does not answer with it (a restart cut short).
pub fn restart_decision(moves_server_version: bool, vm: &VmState, version: &str) -> (bool, String) {
    if !moves_server_version {
        return (
            false,
            "no restart: this channel's manifest is served from disk beside the server, whose own version stays as it is".into(),
        );
    }
    let configured = vm.server_version.as_deref();
    let running = vm.running_version.as_deref();
    match (configured, running) {
        (Some(c), Some(r)) if c == version && r == version => (
            false,
            format!("no restart: voice-assistant already runs {version}; only the manifest changes"),
        ),
        (Some(c), _) if c != version => (
            true,
            format!("restart: SERVER_VERSION moves from {c} to {version}"),
        ),
        (None, _) => (
            true,
            format!("restart: config.env names no SERVER_VERSION; it moves to {version}"),
        ),
        (_, Some(r)) => (
            true,
            format!("restart: config.env names {version} but voice-assistant answers {r} (a restart was cut short)"),
        ),
        (_, None) => (
            true,
            format!("restart: config.env names {version} but voice-assistant does not answer /health on the VM"),
        ),
    }
}

/// The archive of what is live, before anything replaces it: a step, a
/// skip that says why, or nothing when nothing live is replaced.
fn archive_step<'a>(
    local: &Local,
    live: &'a Live,
    release_of: &dyn Fn(&str) -> Option<&'a Release>,
) -> Result<Option<Step>> {
    let replacing = local.artifacts.iter().any(|a| {
        release_of(&a.tag)
            .and_then(|r| r.asset(a.name()))
            .is_some_and(|asset| !a.matches(asset))
    });
    if !replacing {
        return Ok(None);
    }
    let live_manifest = live
        .vm
        .manifest
        .as_deref()
        .and_then(|m| manifest::View::parse("live manifest", m).ok());
    // An archive is a rollback point only if the live DMG is the one the
    // live manifest describes; after an interrupted swap it is not, and
    // archiving it under the old version would pair new bytes with the
    // old checksum.
    let live_sha = live_manifest.as_ref().and_then(|m| m.sha256.clone());
    let live_dmg_sha = local
        .artifacts
        .iter()
        .find(|a| a.kind == Kind::Dmg)
        .and_then(|a| release_of(&a.tag))
        .and_then(|r| r.asset(Kind::Dmg.file_name()))
        .and_then(|a| a.sha256().map(str::to_string));
    if live_dmg_sha.is_some() && live_dmg_sha != live_sha {
        return Ok(Some(Step::Skip {
            what: "archive".into(),
            why: "the live Nexy.dmg is not the one the live manifest describes (an interrupted publish); no rollback point can be made from it".into(),
        }));
    }
    let version = live_manifest
        .and_then(|m| m.version)
        .context("the live manifest on the VM cannot be read, so the live version cannot be archived; fix the VM's manifest first")?;
    // An archive made when that version was published (from the local
    // files) is the rollback point, if it holds what is live.
    if local.archived.get(&version) == Some(&live.vm.manifest) {
        return Ok(Some(Step::Skip {
            what: format!("archive of {version}"),
            why: "already archived".into(),
        }));
    }
    Ok(Some(Step::Archive {
        dir: local.archive_root.join(&version),
        version,
        assets: local
            .artifacts
            .iter()
            .filter_map(|a| {
                let asset = release_of(&a.tag).and_then(|r| r.asset(a.name()))?;
                Some((a.tag.clone(), a.name().to_string(), asset.size))
            })
            .collect(),
        manifest: live.vm.manifest.clone(),
    }))
}

impl Step {
    /// The step as the journal names it (`upload Nexy.next-<sha12>.dmg`).
    pub fn label(&self) -> String {
        match self {
            Step::Archive { version, .. } => format!("archive {version}"),
            Step::RemoveLeftover { asset, .. } => format!("remove {}", asset.name),
            Step::Restore { asset, name, .. } => format!("restore {} as {name}", asset.name),
            Step::Upload { local } => format!("upload {}", local.temp_name()),
            Step::Swap { local } => format!("swap {}", local.name()),
            Step::WriteManifest { change } => format!("write {}", change.rel),
            // `sync vm V` is the record of a restart into V (verify calls the
            // service after one); a manifest-only sync is named apart.
            Step::SyncVm {
                version, restart, ..
            } => {
                if *restart {
                    format!("sync vm {version}")
                } else {
                    format!("sync manifest {version}")
                }
            }
            Step::Skip { what, .. } => format!("skip {what}"),
        }
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
