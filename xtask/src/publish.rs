//! `cargo xtask publish` (runbook section 3): the artifacts to the fixed
//! tags with no 404 window, the manifest, and the VM.
//!
//! `gh release upload --clobber` deletes the live asset and then uploads,
//! so every client sees 404 for the whole upload. Instead each artifact is
//! uploaded under a temporary name derived from its digest, checked (size
//! and GitHub's `digest`) against the local file, and only then swapped in
//! by two renames: the fixed URL is missing for one API round trip at
//! most. A failed or cut-short upload never touches the live asset.
//!
//! Everything is computed as a plan first (plain data, printed by
//! `--dry-run` as the equivalent shell commands) and applied at one seam.
//! Every step is decided from live state, so a run killed anywhere is
//! finished by running it again; a journal records what was done.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use xshell::Shell;

use crate::{
    artifact::{self, Kind},
    az::Az,
    changes::{self, FileChange},
    cli::Publish,
    config::{Channel, Workspace, INBOX},
    gh::{Asset, Gh, Release},
    hash::{self, FileDigest},
    manifest, proc,
    progress::Meter,
    tempname::{self, Temp},
    version::{self, Version},
};

// Temporary asset names (see `tempname`): `Nexy.next-<sha12>.dmg` while
// uploading, `Nexy.prev-<sha12>.dmg` for the replaced asset during the swap.

/// One artifact to publish.
#[derive(Debug, Clone)]
pub struct Local {
    pub kind: Kind,
    pub path: PathBuf,
    pub digest: FileDigest,
    pub tag: String,
}

impl Local {
    fn name(&self) -> &'static str {
        self.kind.file_name()
    }

    fn temp_name(&self) -> String {
        tempname::name(self.name(), Temp::Next, &self.digest.sha256[..12])
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
        local: Local,
    },
    /// Check the uploaded temporary asset, then rename it over the live one.
    Swap {
        local: Local,
    },
    WriteManifest {
        change: FileChange,
    },
    SyncVm {
        version: String,
        manifest: String,
    },
    /// Nothing to do for this item; says why.
    Skip {
        what: String,
        why: String,
    },
}

/// What production looks like before the plan.
pub struct Live {
    pub releases: Vec<(String, Release)>,
    pub vm: VmState,
}

/// The VM's manifest and server version, read through az.
#[derive(Debug, Clone, Default)]
pub struct VmState {
    pub manifest: Option<String>,
    pub server_version: Option<String>,
}

impl Publish {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> Result<()> {
        if self.channel == "stable" && ws.config.stable_requires_promote {
            bail!(
                "stable_requires_promote is set: stable only gets bytes tested on beta; run `cargo xtask publish --channel beta`, test, then `cargo xtask promote --from beta --to stable`"
            );
        }
        let mut job = Job::new(sh, ws, &self.channel)?;
        let inbox = ws.root.join(ws.inbox_dir(&self.channel));
        let valid = job.validated(&inbox)?;
        let lock = job.lock(self.dry_run)?;
        // Hashing (local disk and CPU) and reading live state (network)
        // do not depend on each other: they run side by side.
        let mut tags: Vec<String> = valid.iter().map(|(kind, _)| job.tag_of(*kind)).collect();
        tags.dedup();
        let channel = job.channel.clone();
        let (locals, live) = std::thread::scope(|scope| {
            let hashing = scope.spawn(|| hash_locals(&valid, &channel));
            let live = job.live_of(&tags);
            let locals = hashing
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the hashing thread panicked")));
            (locals, live)
        });
        let locals = locals?;
        let live = live?;
        let manifest = job.new_manifest(&locals, None)?;
        job.execute_with(&locals, manifest, live, self.dry_run, lock)
    }
}

/// The state shared by publish and rollback for one channel.
pub struct Job<'a> {
    pub sh: &'a Shell,
    pub ws: &'a Workspace,
    pub channel_name: String,
    pub channel: Channel,
}

impl<'a> Job<'a> {
    pub fn new(sh: &'a Shell, ws: &'a Workspace, channel_name: &str) -> Result<Job<'a>> {
        Ok(Job {
            sh,
            ws,
            channel_name: channel_name.to_string(),
            channel: ws.channel(channel_name)?.clone(),
        })
    }

    fn gh(&self) -> Gh<'a> {
        Gh::new(
            self.sh,
            &self.ws.config.github.host,
            &self.ws.config.github.assets_repo,
        )
    }

    fn az(&self) -> Az<'a> {
        Az::new(
            self.sh,
            &self.ws.config.azure.resource_group,
            &self.ws.config.azure.vm_name,
        )
    }

    /// Validates and hashes the artifacts in `inbox` (one streaming pass each).
    pub fn locals(&self, inbox: &Path) -> Result<Vec<Local>> {
        hash_locals(&self.validated(inbox)?, &self.channel)
    }

    /// The artifacts in `inbox`, each checked (regular file, DMG trailer,
    /// xar magic); every problem is reported together.
    pub fn validated(&self, inbox: &Path) -> Result<Vec<(Kind, PathBuf)>> {
        let present = artifact::present(inbox);
        if present.is_empty() {
            bail!(
                "{} holds neither Nexy.dmg nor Nexy.pkg; copy the built artifacts there",
                inbox.display()
            );
        }
        let mut problems = Vec::new();
        let mut valid = Vec::new();
        for (kind, path) in present {
            match artifact::validate(&path, kind) {
                Ok(_) => valid.push((kind, path)),
                Err(err) => problems.push(format!("{err:#}")),
            }
        }
        if !problems.is_empty() {
            bail!(
                "the inbox is not fit to publish:\n  {}",
                problems.join("\n  ")
            );
        }
        Ok(valid)
    }

    /// The fixed tag an artifact goes to on this channel.
    pub fn tag_of(&self, kind: Kind) -> String {
        tag_for(&self.channel, kind)
    }

    /// The manifest to publish: the repository's manifest with the DMG's
    /// fixed URL, size and sha256 and VERSION's version, or `restore`
    /// verbatim (rollback). `None` when no DMG is published.
    pub fn new_manifest(
        &self,
        locals: &[Local],
        restore: Option<String>,
    ) -> Result<Option<FileChange>> {
        let rel = self.channel.manifest.clone();
        let old = changes::read_text(&self.ws.root, &rel)?;
        if let Some(text) = restore {
            return Ok(Some(FileChange {
                abs: self.ws.root.join(&rel),
                rel,
                old,
                new: text,
            }));
        }
        let Some(dmg) = locals.iter().find(|l| l.kind == Kind::Dmg) else {
            return Ok(None);
        };
        let version_text = changes::read_text(&self.ws.root, &self.ws.config.version_file)?;
        let version = version::parse_version_file(&version_text)
            .map_err(|why| {
                anyhow::anyhow!("VERSION is unreadable ({why}); run `cargo xtask bump X.Y.Z.W`")
            })?
            .to_string();
        let mut map = manifest::parse(&rel, &old)?;
        let before = map.clone();
        map.insert("version".into(), Value::String(version.clone()));
        map.insert("build".into(), Value::String(version));
        let artifact = map
            .entry("artifact")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(art) = artifact else {
            bail!("{rel}: \"artifact\" is not an object; restore the manifest from git");
        };
        art.insert("type".into(), Value::String("dmg".into()));
        art.insert("url".into(), Value::String(self.channel.dmg_url.clone()));
        art.insert("size".into(), Value::Number(dmg.digest.size.into()));
        art.insert("sha256".into(), Value::String(dmg.digest.sha256.clone()));
        // What the app inside says, not constants.
        let (arch, min_os) = crate::preflight_artifacts::manifest_fields(self.ws, &dmg.path)?;
        art.insert("arch".into(), Value::String(arch));
        art.insert("min_os".into(), Value::String(min_os));
        match &self.ws.config.signing {
            Some(signing) => {
                let key = crate::signing::load_private_key(signing.private_key_file.as_deref())?;
                let configured = crate::signing::parse_public_key(&signing.public_key)?;
                if key.public() != configured {
                    bail!("the Ed25519 private key does not match [signing] public_key; use the key made with that public key, or run `cargo xtask keygen` and ship the new public key in the app first");
                }
                let signature = crate::signing::sign_file(&key, &dmg.path)?;
                art.insert("ed25519".into(), Value::String(signature));
            }
            None => {
                // A signature of other bytes would make clients refuse the
                // update; without a key, the field is emptied.
                if art
                    .get("ed25519")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
                {
                    art.insert("ed25519".into(), Value::String(String::new()));
                }
            }
        }
        map.insert(
            "notes_url".into(),
            Value::String(self.channel.dmg_url.clone()),
        );
        if map != before || !map.contains_key("release_date") {
            map.insert(
                "release_date".into(),
                Value::String(manifest::now_isoformat()),
            );
        }
        Ok(Some(FileChange {
            abs: self.ws.root.join(&rel),
            rel,
            new: if map == before {
                old.clone()
            } else {
                manifest::to_python_json(&map)
            },
            old,
        }))
    }

    /// Reads the live releases and the VM.
    pub fn live(&self, locals: &[Local]) -> Result<Live> {
        let mut tags: Vec<String> = locals.iter().map(|l| l.tag.clone()).collect();
        tags.dedup();
        self.live_of(&tags)
    }

    /// Reads the fixed releases and the VM, all calls side by side.
    pub fn live_of(&self, tags: &[String]) -> Result<Live> {
        let gh = self.gh();
        let az = self.az();
        let mut commands = Vec::new();
        let mut checks = Vec::new();
        for tag in tags {
            let (parts, check) = gh.prepare_release(tag).into_parts();
            commands.push(parts);
            checks.push(check);
        }
        commands.push(az.prepare_script(&read_vm_script(
            &self.ws.config.azure.remote_base,
            &self.manifest_file(),
        )));
        let mut outputs = proc::run_parallel(commands);
        let vm_out = outputs.pop().context("the VM read did not run")??;
        let mut releases = Vec::new();
        for ((tag, out), check) in tags.iter().zip(outputs).zip(checks) {
            match crate::gh::parse_release(&check(out?)?, tag)? {
                Some(r) => releases.push((tag.clone(), r)),
                None => bail!(
                    "{} has no release for the fixed tag `{tag}`; a maintainer must restore it (this tool never creates tags)",
                    gh.repo()
                ),
            }
        }
        for (tag, r) in &releases {
            if r.immutable {
                bail!("the `{tag}` release is immutable, so its assets cannot be replaced; a maintainer must turn off immutable releases for {}", gh.repo());
            }
        }
        Ok(Live {
            releases,
            vm: vm_state(az.finish(vm_out)?)?,
        })
    }

    /// The manifest's file name on the VM (`manifest.json` for stable).
    fn manifest_file(&self) -> String {
        Path::new(&self.channel.manifest)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "manifest.json".to_string())
    }

    /// Computes the plan from local and live state.
    pub fn plan(
        &self,
        locals: &[Local],
        manifest: Option<&FileChange>,
        live: &Live,
    ) -> Result<Vec<Step>> {
        // Cleanups and skips first, then the archive and the uploads (which
        // run side by side), then the swaps, then the manifest.
        let mut steps = Vec::new();
        let mut archive = Vec::new();
        let mut uploads = Vec::new();
        let release_of = |tag: &str| live.releases.iter().find(|(t, _)| t == tag).map(|(_, r)| r);

        // Archive what is live before anything replaces it.
        let replacing: Vec<&Local> = locals
            .iter()
            .filter(|l| {
                release_of(&l.tag)
                    .and_then(|r| r.asset(l.name()))
                    .is_some_and(|a| !matches_local(a, l))
            })
            .collect();
        let live_manifest = live
            .vm
            .manifest
            .as_deref()
            .and_then(|m| manifest::parse("live manifest", m).ok());
        // An archive is a rollback point only if the live DMG is the one the
        // live manifest describes; after an interrupted swap it is not, and
        // archiving it under the old version would pair new bytes with the
        // old checksum.
        let live_sha = live_manifest
            .as_ref()
            .and_then(|m| m.get("artifact"))
            .and_then(|a| a.get("sha256"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let live_dmg_sha = locals
            .iter()
            .find(|l| l.kind == Kind::Dmg)
            .and_then(|l| release_of(&l.tag))
            .and_then(|r| r.asset(Kind::Dmg.file_name()))
            .and_then(|a| a.sha256().map(str::to_string));
        let consistent = live_dmg_sha.is_none() || live_dmg_sha == live_sha;
        if !replacing.is_empty() && !consistent {
            archive.push(Step::Skip {
                what: "archive".into(),
                why: "the live Nexy.dmg is not the one the live manifest describes (an interrupted publish); no rollback point can be made from it".into(),
            });
        } else if !replacing.is_empty() {
            let live_version = live_manifest
                .as_ref()
                .and_then(|m| m.get("version").and_then(Value::as_str).map(str::to_string))
                .context("the live manifest on the VM cannot be read, so the live version cannot be archived; fix the VM's manifest first")?;
            let dir = self
                .ws
                .root
                .join(INBOX)
                .join(".archive")
                .join(&live_version);
            // An archive made when that version was published (from the
            // local files) is the rollback point, if it holds what is live.
            let archived_manifest = fs::read_to_string(dir.join(self.manifest_file())).ok();
            if dir.join(ARCHIVE_DONE).is_file() && archived_manifest == live.vm.manifest {
                archive.push(Step::Skip {
                    what: format!("archive of {live_version}"),
                    why: "already archived".into(),
                });
            } else {
                archive.push(Step::Archive {
                    version: live_version,
                    dir,
                    assets: locals
                        .iter()
                        .filter_map(|l| {
                            let asset = release_of(&l.tag).and_then(|r| r.asset(l.name()))?;
                            Some((l.tag.clone(), l.name().to_string(), asset.size))
                        })
                        .collect(),
                    manifest: live.vm.manifest.clone(),
                });
            }
        }

        let mut swaps = Vec::new();
        for local in locals {
            let release = release_of(&local.tag).context("release read above")?;
            let live_asset = release.asset(local.name());
            let temp = local.temp_name();
            for asset in &release.assets {
                let Some(kind) = tempname::parse(&asset.name, local.name()) else {
                    continue;
                };
                let good_temp = asset.name == temp && matches_local(asset, local);
                let restorable =
                    live_asset.is_none() && kind == Temp::Prev && asset.state == "uploaded";
                if live_asset.is_none() && good_temp {
                    // Killed between the two renames of a swap: finishing it
                    // is the Swap step below, which will find this asset.
                    continue;
                }
                if restorable && !locals_has_good_temp(release, local) {
                    steps.push(Step::Restore {
                        tag: local.tag.clone(),
                        asset: asset.clone(),
                        name: local.name().to_string(),
                    });
                    continue;
                }
                if !good_temp {
                    steps.push(Step::RemoveLeftover {
                        tag: local.tag.clone(),
                        asset: asset.clone(),
                    });
                }
            }
            if live_asset.is_some_and(|a| matches_local(a, local)) {
                steps.push(Step::Skip {
                    what: format!("{} in {}", local.name(), local.tag),
                    why: format!(
                        "live asset already has sha256 {} and {} bytes",
                        &local.digest.sha256[..12],
                        local.digest.size
                    ),
                });
                continue;
            }
            let uploaded = release
                .asset(&temp)
                .is_some_and(|a| matches_local(a, local));
            if !uploaded {
                uploads.push(Step::Upload {
                    local: local.clone(),
                });
            }
            swaps.push(Step::Swap {
                local: local.clone(),
            });
        }
        // Every upload first, then the swaps back to back, then the
        // manifest: the window in which a client could see a new asset
        // with the old checksum is only the swaps and the VM sync.
        steps.extend(archive);
        steps.extend(uploads);
        steps.extend(swaps);

        if let Some(change) = manifest {
            if change.old != change.new {
                steps.push(Step::WriteManifest {
                    change: change.clone(),
                });
            }
            let version = manifest::parse(&change.rel, &change.new)?
                .get("version")
                .and_then(Value::as_str)
                .map(str::to_string)
                .context("the new manifest has no version")?;
            let in_sync = live.vm.manifest.as_deref() == Some(change.new.as_str())
                && (self.channel_name != "stable"
                    || live.vm.server_version.as_deref() == Some(version.as_str()));
            if in_sync {
                steps.push(Step::Skip {
                    what: "VM manifest".into(),
                    why: format!("already serves {version}"),
                });
            } else {
                steps.push(Step::SyncVm {
                    version,
                    manifest: change.new.clone(),
                });
            }
        } else {
            steps.push(Step::Skip {
                what: "manifest".into(),
                why: "no Nexy.dmg in this release; the manifest describes the DMG".into(),
            });
        }
        Ok(steps)
    }

    /// Plans, then prints (dry run) or applies the plan.
    pub fn execute(
        &mut self,
        locals: &[Local],
        manifest: Option<FileChange>,
        dry_run: bool,
    ) -> Result<()> {
        let lock = self.lock(dry_run)?;
        let live = self.live(locals)?;
        self.execute_with(locals, manifest, live, dry_run, lock)
    }

    /// The release lock. It comes before reading live state, so that the
    /// state the plan is made from cannot be changed by another run of
    /// ours. A dry run writes nothing, not even the lock.
    pub fn lock(&self, dry_run: bool) -> Result<Option<Lock>> {
        if dry_run {
            return Ok(None);
        }
        Lock::take(&self.ws.root.join(INBOX).join(".release.lock")).map(Some)
    }

    /// Plans from `live` and applies the plan (or prints it), holding `_lock`.
    pub fn execute_with(
        &mut self,
        locals: &[Local],
        manifest: Option<FileChange>,
        live: Live,
        dry_run: bool,
        _lock: Option<Lock>,
    ) -> Result<()> {
        let steps = self.plan(locals, manifest.as_ref(), &live)?;
        if dry_run {
            crate::output::say_raw(&self.render_plan(&steps));
            crate::say!("dry run: nothing was uploaded, renamed, deleted or written");
            return Ok(());
        }
        // Staging directories of a run that was killed hold only symlinks;
        // with the lock held, no other run can be using them.
        if let Ok(entries) = fs::read_dir(self.ws.root.join(INBOX)) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(".staging-") {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        let journal = Journal::open(&self.ws.root.join(INBOX).join(".journal.jsonl"))?;
        // Which gh did the work: its behaviour differs across versions.
        journal.line(
            "run",
            &crate::ghenv::version()
                .map_or_else(|e| format!("gh unknown: {e:#}"), |v| format!("gh {v}")),
        )?;
        // The copy of this release into its archive runs beside everything
        // else: an upload waits on the network, the copy on the local disk.
        let archive_copy = match &manifest {
            Some(change) => self.start_archive_copy(locals, &change.new)?,
            None => None,
        };
        let mut cleanups = Vec::new();
        let ran = self.run_steps(&steps, &journal, &mut cleanups);
        // Background work is waited for even after a failure, so that
        // nothing of this run lands once its lock is released. A replaced
        // asset left behind is a smaller matter than a lost rollback point,
        // so the archive is completed first.
        let cleaned: Vec<Result<()>> = cleanups.into_iter().map(Cleanup::finish).collect();
        let archived = match archive_copy {
            Some(copy) if ran.is_ok() => self.finish_archive_copy(copy),
            Some(copy) => {
                copy.abandon();
                Ok(())
            }
            None => Ok(()),
        };
        ran?;
        archived?;
        cleaned.into_iter().collect::<Result<Vec<()>>>()?;
        crate::say!(
            "publish: {} step(s) done",
            steps
                .iter()
                .filter(|s| !matches!(s, Step::Skip { .. }))
                .count()
        );
        Ok(())
    }

    /// Applies `steps` in order, recording each in the journal; the swaps
    /// leave their deletes running in `cleanups`.
    fn run_steps(
        &self,
        steps: &[Step],
        journal: &Journal,
        cleanups: &mut Vec<Cleanup>,
    ) -> Result<()> {
        let mut swapped_at: Option<Instant> = None;
        let mut i = 0;
        while i < steps.len() {
            // The archive downloads and the uploads are independent
            // transfers: they run side by side.
            let batch = steps[i..]
                .iter()
                .take_while(|s| matches!(s, Step::Archive { .. } | Step::Upload { .. }))
                .count();
            // The swaps run phase by phase across all assets.
            let swaps: Vec<&Local> = steps[i..]
                .iter()
                .map_while(|s| match s {
                    Step::Swap { local } => Some(local),
                    _ => None,
                })
                .collect();
            if !swaps.is_empty() {
                let n = swaps.len();
                for step in &steps[i..i + n] {
                    journal.record("start", step)?;
                }
                cleanups.push(self.swap_all(&swaps)?);
                if swaps.iter().any(|l| l.kind == Kind::Dmg) {
                    swapped_at = Some(Instant::now());
                }
                for step in &steps[i..i + n] {
                    journal.record("done", step)?;
                }
                i += n;
                continue;
            }
            if batch > 0 {
                let transfers = &steps[i..i + batch];
                for step in transfers {
                    journal.record("start", step)?;
                }
                self.apply_transfers(transfers)?;
                for step in transfers {
                    journal.record("done", step)?;
                }
                i += batch;
                continue;
            }
            let step = &steps[i];
            i += 1;
            journal.record("start", step)?;
            self.apply(step)?;
            if let (Step::SyncVm { .. }, Some(at)) = (step, swapped_at) {
                crate::say!(
                    "  DMG swap to VM manifest sync: {:.2}s (clients could see the new DMG with the old checksum and would refuse it)",
                    at.elapsed().as_secs_f64()
                );
            }
            journal.record("done", step)?;
        }
        Ok(())
    }

    /// Starts copying what is being published into the archive, as the
    /// rollback point of its version, beside the uploads: when the next
    /// release replaces it, nothing has to be downloaded. Copies, not hard
    /// links: a later `cp` over the inbox file would change the archive too.
    /// `None` when that archive already holds exactly this release.
    fn start_archive_copy(
        &self,
        locals: &[Local],
        manifest_text: &str,
    ) -> Result<Option<ArchiveCopy>> {
        let map = manifest::parse("the published manifest", manifest_text)?;
        let Some(version) = map
            .get("version")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return Ok(None);
        };
        let dir = self.ws.root.join(INBOX).join(".archive").join(&version);
        let manifest_path = dir.join(self.manifest_file());
        if dir.join(ARCHIVE_DONE).is_file()
            && fs::read_to_string(&manifest_path).ok().as_deref() == Some(manifest_text)
        {
            return Ok(None);
        }
        // Only bytes the manifest describes make a rollback point.
        let want = map
            .get("artifact")
            .and_then(|a| a.get("sha256"))
            .and_then(Value::as_str);
        let dmg = locals.iter().find(|l| l.kind == Kind::Dmg);
        if dmg.is_none_or(|d| Some(d.digest.sha256.as_str()) != want) {
            return Ok(None);
        }
        let staging = self
            .ws
            .root
            .join(INBOX)
            .join(".archive")
            .join(format!(".{version}.partial"));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        let files: Vec<(PathBuf, PathBuf)> = locals
            .iter()
            .map(|l| (l.path.clone(), staging.join(l.name())))
            .collect();
        let handle = std::thread::spawn(move || -> std::io::Result<()> {
            background_priority();
            for (from, to) in files {
                fs::copy(from, to)?;
            }
            Ok(())
        });
        Ok(Some(ArchiveCopy {
            version,
            dir,
            staging,
            manifest: manifest_text.to_string(),
            handle,
        }))
    }

    /// Completes the archive once everything was published.
    fn finish_archive_copy(&self, copy: ArchiveCopy) -> Result<()> {
        let ArchiveCopy {
            version,
            dir,
            staging,
            manifest,
            handle,
        } = copy;
        let copied = handle
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the copy thread panicked")));
        if let Err(err) = copied {
            let _ = fs::remove_dir_all(&staging);
            crate::say!("  warning: no rollback point kept for {version}: {err}");
            return Ok(());
        }
        fs::write(staging.join(self.manifest_file()), &manifest)
            .with_context(|| format!("cannot write the manifest into {}", staging.display()))?;
        fs::write(staging.join(ARCHIVE_DONE), format!("{version}\n"))
            .with_context(|| format!("cannot mark {} complete", staging.display()))?;
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&staging, &dir)
            .with_context(|| format!("cannot move the archive into {}", dir.display()))?;
        crate::say!("  kept {version} as a rollback point in {}", dir.display());
        Ok(())
    }

    /// Runs archive downloads and uploads side by side, then checks each:
    /// an archive is kept only if its DMG is the one its manifest
    /// describes; a failed upload leaves the live asset untouched and its
    /// temporary asset removed.
    fn apply_transfers(&self, steps: &[Step]) -> Result<()> {
        let gh = self.gh();
        let staging = tempdir_in(&self.ws.root.join(INBOX))?;
        let mut prepared = Vec::new();
        // For each prepared transfer, the index of its step.
        let mut owner = Vec::new();
        // For each prepared transfer, its local file and meter.
        let mut meters = Vec::new();
        for (n, step) in steps.iter().enumerate() {
            match step {
                Step::Archive {
                    version,
                    dir,
                    assets,
                    ..
                } => {
                    crate::say!("  archive live {version} -> {}", dir.display());
                    // An archive that does not hold what is live is replaced whole.
                    let _ = fs::remove_dir_all(dir);
                    fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                    for (tag, name, size) in assets {
                        prepared.push(gh.prepare_download(tag, name, dir));
                        owner.push(n);
                        meters.push(Some((dir.join(name), Meter::new("download", name, *size))));
                    }
                }
                Step::Upload { local } => {
                    let temp = local.temp_name();
                    crate::say!(
                        "  upload {} ({} bytes) to {} as {temp}",
                        local.name(),
                        local.digest.size,
                        local.tag
                    );
                    let link = staging.join(&temp);
                    let target = fs::canonicalize(&local.path)
                        .with_context(|| format!("cannot resolve {}", local.path.display()))?;
                    std::os::unix::fs::symlink(&target, &link)
                        .with_context(|| format!("cannot stage {}", link.display()))?;
                    prepared.push(gh.prepare_upload(&local.tag, &link));
                    owner.push(n);
                    meters.push(Some((
                        target,
                        Meter::new("upload", local.name(), local.digest.size),
                    )));
                }
                _ => {}
            }
        }
        // Each transfer's meter follows gh's reading (upload) or writing
        // (download) of its file.
        let results = crate::gh::run_metered(prepared.into_iter().zip(meters).collect());
        let _ = fs::remove_dir_all(&staging);
        let mut first_error = None;
        for (n, step) in steps.iter().enumerate() {
            let failed = owner
                .iter()
                .zip(&results)
                .filter(|(o, _)| **o == n)
                .find_map(|(_, r)| r.as_ref().err())
                .map(|e| format!("{e:#}"));
            match (step, failed) {
                (Step::Archive { dir, .. }, Some(err)) => {
                    let _ = fs::remove_dir_all(dir);
                    first_error.get_or_insert(anyhow::anyhow!(
                        "{err}; nothing live was replaced; rerun `cargo xtask publish`"
                    ));
                }
                (
                    Step::Archive {
                        version,
                        dir,
                        manifest,
                        ..
                    },
                    None,
                ) => {
                    if let Err(why) = archive_consistent(dir, manifest.as_deref()) {
                        // Not a rollback point: better none than a wrong one.
                        let _ = fs::remove_dir_all(dir);
                        crate::say!("  warning: archive of {version} dropped: {why}");
                        continue;
                    }
                    if let Some(m) = manifest {
                        fs::write(dir.join(self.manifest_file()), m).with_context(|| {
                            format!("cannot write the archived manifest in {}", dir.display())
                        })?;
                    }
                    fs::write(dir.join(ARCHIVE_DONE), format!("{version}\n"))
                        .with_context(|| format!("cannot mark {} complete", dir.display()))?;
                }
                (Step::Upload { local }, Some(err)) => {
                    // A failed upload may leave a broken asset under the
                    // temporary name; remove it so the next run starts clean.
                    if let Ok(Some(r)) = gh.release(&local.tag) {
                        if let Some(a) = r.asset(&local.temp_name()) {
                            let _ = gh.delete(a.id);
                        }
                    }
                    first_error.get_or_insert(anyhow::anyhow!(
                        "{err}; the live {} is untouched; rerun `cargo xtask publish` (it resumes from live state)",
                        local.name()
                    ));
                }
                _ => {}
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn apply(&self, step: &Step) -> Result<()> {
        let gh = self.gh();
        match step {
            Step::Skip { what, why } => crate::say!("  skip {what}: {why}"),
            Step::Archive { .. } | Step::Upload { .. } => {
                self.apply_transfers(std::slice::from_ref(step))?
            }
            Step::RemoveLeftover { tag, asset } => {
                crate::say!(
                    "  remove leftover {} (state {}) from {tag}",
                    asset.name,
                    asset.state
                );
                gh.delete(asset.id)?;
            }
            Step::Restore { tag, asset, name } => {
                crate::say!(
                    "  restore {} as {name} in {tag} (an earlier swap was interrupted)",
                    asset.name
                );
                gh.rename(asset.id, name)?;
            }
            Step::Swap { local } => self.swap_all(&[local])?.finish()?,
            Step::WriteManifest { change } => {
                crate::say!("  write {}", change.rel);
                changes::apply(std::slice::from_ref(change))?;
            }
            Step::SyncVm { version, manifest } => {
                crate::say!("  sync the VM's manifest and SERVER_VERSION to {version}, restart voice-assistant");
                let script = sync_vm_script(
                    &self.ws.config.azure.remote_base,
                    &self.manifest_file(),
                    version,
                    manifest,
                    self.channel_name == "stable",
                );
                let out = self.az().run_script(&script)?;
                let want = format!("ok:{}", hash::bytes_sha256(manifest.as_bytes()));
                if out.marker("sync") != Some(want.as_str()) {
                    bail!(
                        "the VM sync did not confirm (marker {:?}, stderr: {}); the assets are live but the VM may serve the old manifest: run `cargo xtask publish` again",
                        out.marker("sync"),
                        crate::gh::last_lines(&out.stderr, 2)
                    );
                }
            }
        }
        Ok(())
    }

    /// Checks each uploaded temporary asset, then swaps them in: live ->
    /// `.prev-`, temp -> fixed name, back to back with both gh calls
    /// already started, so every fixed URL is missing for one request; the
    /// assets side by side. The deletes of the `.prev-` assets are started
    /// and returned, for the caller to wait on after the steps that follow.
    fn swap_all(&self, locals: &[&Local]) -> Result<Cleanup> {
        let gh = self.gh();
        let reads =
            crate::gh::run_outputs(locals.iter().map(|l| gh.prepare_release(&l.tag)).collect());
        let mut plans = Vec::new();
        for (local, read) in locals.iter().zip(reads) {
            let temp = local.temp_name();
            let release = crate::gh::parse_release(&read?, &local.tag)?
                .context("the release disappeared during publish")?;
            // A call of an interrupted run that was still in flight may have
            // finished this swap meanwhile: then there is nothing to do.
            if release.asset(&temp).is_none()
                && release
                    .asset(local.name())
                    .is_some_and(|a| matches_local(a, local))
            {
                crate::say!("  {} in {} is already swapped in", local.name(), local.tag);
                continue;
            }
            let uploaded = release
                .asset(&temp)
                .with_context(|| {
                    format!(
                        "the uploaded {temp} is not in {}; run `cargo xtask publish` again",
                        local.tag
                    )
                })?
                .clone();
            if !matches_local(&uploaded, local) {
                let _ = gh.delete(uploaded.id);
                bail!(
                    "the uploaded {temp} does not match the local file (size {} vs {}, digest {:?} vs sha256:{}, state {}); it was removed and the live asset is untouched; run `cargo xtask publish` again",
                    uploaded.size,
                    local.digest.size,
                    uploaded.digest,
                    local.digest.sha256,
                    uploaded.state
                );
            }
            let live = release.asset(local.name()).map(|a| {
                let prev = tempname::name(
                    local.name(),
                    Temp::Prev,
                    a.sha256().map_or("unknown", |s| &s[..12.min(s.len())]),
                );
                (a.id, prev)
            });
            plans.push((*local, uploaded.id, live));
        }
        // Every call of the swap is started before the first is sent: gh's
        // start-up (tens of ms) is paid here, in parallel, and each call
        // below costs one round trip. Each asset's two renames then run back
        // to back, so its fixed URL is missing for one round trip; the
        // assets' chains run side by side.
        let mut chains = Vec::new();
        for (local, id, live) in &plans {
            let mut chain = Vec::new();
            if let Some((live_id, prev)) = live {
                chain.push(gh.stage_rename(*live_id, prev)?);
            }
            chain.push(gh.stage_rename(*id, local.name())?);
            chains.push(chain);
        }
        let gaps = crate::gh::fire_chains(chains)
            .into_iter()
            .zip(&plans)
            .map(|(gap, (local, _, _))| {
                gap.with_context(|| {
                    format!(
                        "the swap of {} in {} stopped; if its first rename went through, the fixed URL answers 404: run `cargo xtask publish` again now, it finishes or undoes the swap",
                        local.name(),
                        local.tag
                    )
                })
            })
            .collect::<Result<Vec<Duration>>>()?;
        // The replaced assets go only once every swap is done, and beside
        // whatever comes next (the VM sync): nothing waits on them.
        let deletes: Vec<_> = plans
            .iter()
            .filter_map(|(_, _, live)| live.as_ref().map(|(id, _)| gh.prepare_delete(*id)))
            .collect();
        let cleanup = Cleanup(std::thread::spawn(move || crate::gh::run_all(deletes)));
        for ((local, _, _), gap) in plans.iter().zip(gaps) {
            crate::say!(
                "  swapped {} in {} (fixed URL missing for at most {:.0} ms)",
                local.name(),
                local.tag,
                gap.as_secs_f64() * 1000.0
            );
        }
        Ok(cleanup)
    }

    /// The plan as people read it, with the equivalent shell commands.
    pub fn render_plan(&self, steps: &[Step]) -> String {
        let cfg = &self.ws.config;
        let repo = &cfg.github.assets_repo;
        let r = format!("{}/{repo}", cfg.github.host);
        let host = &cfg.github.host;
        let mut out = format!("plan for channel {}:\n", self.channel_name);
        for (i, step) in steps.iter().enumerate() {
            let n = i + 1;
            let line = match step {
                Step::Skip { what, why } => format!("{n}. skip {what}: {why}"),
                Step::Archive { version, dir, assets, manifest } => {
                    let mut s = format!("{n}. archive live {version} into {}", dir.display());
                    for (tag, name, _) in assets {
                        s += &format!("\n     $ gh release download {tag} -R {r} --pattern {name} --dir {} --clobber", dir.display());
                    }
                    if manifest.is_some() {
                        s += &format!("\n     (and the VM's {})", self.manifest_file());
                    }
                    s
                }
                Step::RemoveLeftover { tag, asset } => format!(
                    "{n}. remove leftover {} from {tag}\n     $ gh api --hostname {host} -X DELETE repos/{repo}/releases/assets/{}",
                    asset.name, asset.id
                ),
                Step::Restore { tag, asset, name } => format!(
                    "{n}. restore {} as {name} in {tag}\n     $ gh api --hostname {host} -X PATCH repos/{repo}/releases/assets/{} -f name={name}",
                    asset.name, asset.id
                ),
                Step::Upload { local } => format!(
                    "{n}. upload {} ({} bytes, sha256 {}) as {}\n     $ gh release upload {} <staging>/{} -R {r}",
                    local.path.display(),
                    local.digest.size,
                    local.digest.sha256,
                    local.temp_name(),
                    local.tag,
                    local.temp_name()
                ),
                Step::Swap { local } => format!(
                    "{n}. check {} (size and digest), then swap it in as {}\n     $ gh api --hostname {host} repos/{repo}/releases/tags/{}\n     $ gh api --hostname {host} -X PATCH repos/{repo}/releases/assets/<live id> -f name={}\n     $ gh api --hostname {host} -X PATCH repos/{repo}/releases/assets/<new id> -f name={}\n     $ gh api --hostname {host} -X DELETE repos/{repo}/releases/assets/<live id>",
                    local.temp_name(),
                    local.name(),
                    local.tag,
                    tempname::name(local.name(), Temp::Prev, "<sha12>"),
                    local.name()
                ),
                Step::WriteManifest { change } => format!(
                    "{n}. write {}\n{}",
                    change.rel,
                    indent(&changes::unified_diff(std::slice::from_ref(change)), "     ")
                ),
                Step::SyncVm { version, manifest } => format!(
                    "{n}. sync the VM to {version} (manifest sha256 {}, flock, backup, SERVER_VERSION/SERVER_BUILD, VERSION, restart)\n     $ az vm run-command invoke -g {} -n {} --command-id RunShellScript --scripts <script of {} bytes; the manifest travels base64-encoded>",
                    hash::bytes_sha256(manifest.as_bytes()),
                    cfg.azure.resource_group,
                    cfg.azure.vm_name,
                    sync_vm_script(&cfg.azure.remote_base, &self.manifest_file(), version, manifest, self.channel_name == "stable").len()
                ),
            };
            out.push_str("  ");
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines().map(|l| format!("{prefix}{l}\n")).collect()
}

/// Checks that an archived DMG is the one its manifest describes.
pub fn archive_consistent(
    dir: &Path,
    manifest_text: Option<&str>,
) -> std::result::Result<(), String> {
    let dmg = dir.join(Kind::Dmg.file_name());
    let (Some(text), true) = (manifest_text, dmg.is_file()) else {
        return Ok(());
    };
    let want = manifest::parse("archived manifest", text)
        .ok()
        .and_then(|m| {
            m.get("artifact")
                .and_then(|a| a.get("sha256"))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    let got = hash::file_digest(&dmg)
        .map_err(|e| format!("{e:#}"))?
        .sha256;
    if want.as_deref() == Some(got.as_str()) {
        Ok(())
    } else {
        Err(format!(
            "its Nexy.dmg has sha256 {got} but its manifest says {}",
            want.unwrap_or_else(|| "nothing".into())
        ))
    }
}

/// Gives the calling thread the lowest CPU priority, so that the archive
/// copy takes only CPU time the uploads and the swap leave idle: it is a
/// convenience for the next release, they are this one (see
/// `platform::background_priority` for Linux and macOS).
fn background_priority() {
    crate::platform::background_priority();
}

/// The deletes of the replaced assets after a swap, running beside the
/// steps that follow; [`Cleanup::finish`] waits for them.
struct Cleanup(std::thread::JoinHandle<Vec<Result<()>>>);

impl Cleanup {
    fn finish(self) -> Result<()> {
        let results = self
            .0
            .join()
            .unwrap_or_else(|_| vec![Err(anyhow::anyhow!("the delete thread panicked"))]);
        results
            .into_iter()
            .collect::<Result<Vec<()>>>()
            .map(|_| ())
            .context("the new assets are live, but a replaced one (`.prev-`) was not removed; run `cargo xtask publish` again to remove it")
    }
}

/// A copy into the archive running beside the publish.
struct ArchiveCopy {
    version: String,
    dir: PathBuf,
    staging: PathBuf,
    manifest: String,
    handle: std::thread::JoinHandle<std::io::Result<()>>,
}

impl ArchiveCopy {
    /// Waits for the copy of a publish that failed and removes it: only a
    /// published release is a rollback point.
    fn abandon(self) {
        let _ = self.handle.join();
        let _ = fs::remove_dir_all(&self.staging);
    }
}

/// The file that marks an archive directory as complete.
pub const ARCHIVE_DONE: &str = ".complete";

/// Whether `asset` holds exactly `local`; a DMG must also carry its
/// content type, so that one stored as `application/octet-stream` (by runs
/// whose temporary names lost the extension) is uploaded again.
fn matches_local(asset: &Asset, local: &Local) -> bool {
    asset.state == "uploaded"
        && asset.size == local.digest.size
        && asset.sha256() == Some(local.digest.sha256.as_str())
        && (local.kind != Kind::Dmg || asset.content_type == artifact::DMG_CONTENT_TYPE)
}

fn locals_has_good_temp(release: &Release, local: &Local) -> bool {
    release
        .asset(&local.temp_name())
        .is_some_and(|a| matches_local(a, local))
}

/// A fresh private directory under `parent` for staging upload names.
fn tempdir_in(parent: &Path) -> Result<PathBuf> {
    for i in 0..100 {
        let dir = parent.join(format!(".staging-{}-{i}", std::process::id()));
        if fs::create_dir(&dir).is_ok() {
            return Ok(dir);
        }
    }
    bail!("cannot create a staging directory in {}", parent.display())
}

/// The VM's manifest and version from the read script's markers.
fn vm_state(out: crate::az::ScriptOutput) -> Result<VmState> {
    if out.marker("read") != Some("ok") {
        bail!(
            "reading the VM's manifest printed no verdict (stderr: {}); check the VM with `az vm run-command invoke`",
            crate::gh::last_lines(&out.stderr, 2)
        );
    }
    let manifest = match out.marker("manifest_b64") {
        Some(b64) if !b64.is_empty() => Some(
            String::from_utf8(base64_decode(b64).context("the VM's manifest came back garbled")?)
                .context("the VM's manifest is not UTF-8")?,
        ),
        _ => None,
    };
    Ok(VmState {
        manifest,
        server_version: out
            .marker("server_version")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
    })
}

fn tag_for(channel: &Channel, kind: Kind) -> String {
    match kind {
        Kind::Dmg => channel.dmg_tag.clone(),
        Kind::Pkg => channel.pkg_tag.clone(),
    }
}

/// Hashes each artifact in its own thread (two streaming passes side by
/// side), with a progress line.
fn hash_locals(valid: &[(Kind, PathBuf)], channel: &Channel) -> Result<Vec<Local>> {
    let total: u64 = valid
        .iter()
        .filter_map(|(_, p)| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let meter = Meter::counting("hashing", "", total);
    let hash_all = || {
        proc::side_by_side(valid.iter().collect(), |(_, path)| {
            hash::file_digest_counted(path, meter.counter())
        })
    };
    let digests: Vec<Result<FileDigest>> =
        crate::progress::show(&[&meter], hash_all, |d: &Vec<Result<FileDigest>>| {
            d.iter().all(Result::is_ok)
        });
    valid
        .iter()
        .zip(digests)
        .map(|((kind, path), digest)| {
            Ok(Local {
                kind: *kind,
                path: path.clone(),
                digest: digest?,
                tag: tag_for(channel, *kind),
            })
        })
        .collect()
}

/// The read-only script that reports the VM's manifest and version.
pub fn read_vm_script(base: &str, manifest_file: &str) -> String {
    let m = proc::sh_quote(&format!("{base}/server/updates/manifests/{manifest_file}"));
    let env = proc::sh_quote(&format!("{base}/config.env"));
    format!(
        "m={m}\n\
         if [ -f \"$m\" ]; then echo \"NEXY_MARK:manifest_b64:$(base64 -w0 \"$m\")\"; else echo NEXY_MARK:manifest_b64:; fi\n\
         v=$(grep -E '^SERVER_VERSION=' {env} 2>/dev/null | tail -n 1 | cut -d= -f2-)\n\
         echo \"NEXY_MARK:server_version:$v\"\n\
         echo NEXY_MARK:read:ok\n"
    )
}

/// The script that installs a manifest on the VM. The manifest travels
/// base64-encoded inside single quotes, so no byte of it is interpreted by
/// a shell; the version has been validated as four numbers.
pub fn sync_vm_script(
    base: &str,
    manifest_file: &str,
    version: &str,
    manifest: &str,
    server_version: bool,
) -> String {
    let b64 = base64_encode(manifest.as_bytes());
    let sum = hash::bytes_sha256(manifest.as_bytes());
    let stem = manifest_file.strip_suffix(".json").unwrap_or(manifest_file);
    let base_q = proc::sh_quote(base);
    // Only the stable channel moves the server's own version; a beta
    // manifest is served beside it.
    let server_part = if server_version {
        format!(
            "cfg=\"$base/config.env\"\n\
             touch \"$cfg\"\n\
             for kv in SERVER_VERSION={version} SERVER_BUILD={version}; do\n\
               k=${{kv%%=*}}\n\
               if grep -q \"^$k=\" \"$cfg\"; then sed -i \"s/^$k=.*/$kv/\" \"$cfg\"; else echo \"$kv\" >> \"$cfg\"; fi\n\
             done\n\
             echo {version} > \"$base/VERSION\"\n"
        )
    } else {
        String::new()
    };
    format!(
        "set -eu\n\
         base={base_q}\n\
         dir=\"$base/server/updates/manifests\"\n\
         mkdir -p \"$dir\"\n\
         tmp=$(mktemp \"$dir/.{manifest_file}.XXXXXX\")\n\
         printf '%s' '{b64}' | base64 -d > \"$tmp\"\n\
         sum=$(sha256sum \"$tmp\" | cut -d' ' -f1)\n\
         if [ \"$sum\" != '{sum}' ]; then rm -f \"$tmp\"; echo NEXY_MARK:sync:corrupt; exit 1; fi\n\
         exec 9>/tmp/nexy_manifest.lock\n\
         if ! flock -w 60 9; then rm -f \"$tmp\"; echo NEXY_MARK:sync:locked; exit 1; fi\n\
         if [ -f \"$dir/{manifest_file}\" ]; then cp -p \"$dir/{manifest_file}\" \"$dir/{manifest_file}.backup.$(date -u +%Y%m%dT%H%M%S%NZ)\"; fi\n\
         cp \"$tmp\" \"$dir/{stem}_{version}.json\"\n\
         chmod 644 \"$tmp\"\n\
         mv -f \"$tmp\" \"$dir/{manifest_file}\"\n\
         {server_part}\
         systemctl restart voice-assistant\n\
         echo \"NEXY_MARK:sync:ok:$(sha256sum \"$dir/{manifest_file}\" | cut -d' ' -f1)\"\n"
    )
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (small payloads only).
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.trim().bytes() {
        if c == b'=' {
            break;
        }
        let v = B64.iter().position(|&b| b == c).context("not base64")? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// How long a run that takes over a dead run's lock waits for that run's
/// in-flight calls (a gh call takes well under a second).
const STALE_SETTLE_SECS: u64 = 2;

/// One release at a time: an exclusive lock file holding our pid.
pub struct Lock(PathBuf);

impl Lock {
    pub fn take(path: &Path) -> Result<Lock> {
        for _ in 0..2 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    return Ok(Lock(path.to_path_buf()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = fs::read_to_string(path).unwrap_or_default();
                    let pid = holder.trim();
                    let alive = pid.parse().is_ok_and(crate::platform::process_alive);
                    if alive {
                        bail!(
                            "another release (pid {pid}) holds {}; wait for it, or delete the file if that process is gone",
                            path.display()
                        );
                    }
                    // The holder died (killed mid-release): its lock is stale.
                    // API calls it had in flight (gh processes of its own)
                    // may still land; give them a bounded moment first, so
                    // that the live state read next is settled.
                    crate::say!("  a previous run (pid {pid}) died mid-release; waiting {STALE_SETTLE_SECS} s for its last API calls to land");
                    std::thread::sleep(std::time::Duration::from_secs(STALE_SETTLE_SECS));
                    let _ = fs::remove_file(path);
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()))
                }
            }
        }
        bail!("cannot take the release lock {}", path.display())
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// An append-only record of the steps of every run (JSON lines), so a
/// person can see what an interrupted run had done.
pub struct Journal(PathBuf);

impl Journal {
    pub fn open(path: &Path) -> Result<Journal> {
        Ok(Journal(path.to_path_buf()))
    }

    pub fn record(&self, phase: &str, step: &Step) -> Result<()> {
        let what = match step {
            Step::Archive { version, .. } => format!("archive {version}"),
            Step::RemoveLeftover { asset, .. } => format!("remove {}", asset.name),
            Step::Restore { asset, name, .. } => format!("restore {} as {name}", asset.name),
            Step::Upload { local } => format!("upload {}", local.temp_name()),
            Step::Swap { local } => format!("swap {}", local.name()),
            Step::WriteManifest { change } => format!("write {}", change.rel),
            Step::SyncVm { version, .. } => format!("sync vm {version}"),
            Step::Skip { what, .. } => format!("skip {what}"),
        };
        self.line(phase, &what)
    }

    /// Appends one record: `{"time", "phase", "step": what}`.
    pub fn line(&self, phase: &str, what: &str) -> Result<()> {
        let line =
            serde_json::json!({ "time": manifest::now_isoformat(), "phase": phase, "step": what });
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.0)
            .with_context(|| format!("cannot write the journal {}", self.0.display()))?;
        writeln!(f, "{line}")
            .with_context(|| format!("cannot write the journal {}", self.0.display()))?;
        Ok(())
    }
}

/// The newest archived version strictly below `below`, if any.
pub fn archived_versions(root: &Path) -> Vec<Version> {
    let mut out: Vec<Version> = fs::read_dir(root.join(INBOX).join(".archive"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join(ARCHIVE_DONE).is_file())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for text in ["", "a", "ab", "abc", "abcd", "{\"k\": \"é\"}\n"] {
            let enc = base64_encode(text.as_bytes());
            assert_eq!(base64_decode(&enc).unwrap(), text.as_bytes());
        }
        assert_eq!(base64_encode(b"abcd"), "YWJjZA==");
    }

    #[test]
    fn sync_script_installs_the_manifest_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_str().unwrap();
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        // A systemctl that only records the restart.
        fs::write(
            bin.join("systemctl"),
            "#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/restarted\"\n",
        )
        .unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(
            &mut fs::metadata(bin.join("systemctl")).unwrap().permissions(),
            0o755,
        );
        std::process::Command::new("chmod")
            .arg("755")
            .arg(bin.join("systemctl"))
            .status()
            .unwrap();
        fs::write(
            dir.path().join("config.env"),
            "GEMINI_API_KEY=k\nSERVER_VERSION=2.0.0.4\n",
        )
        .unwrap();
        let manifest = "{\n  \"version\": \"2.0.0.5\",\n  \"x\": \"'$(rm -rf /)`\\\"\"\n}\n";
        let script = sync_vm_script(base, "manifest.json", "2.0.0.5", manifest, true);
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            stdout.contains(&format!(
                "NEXY_MARK:sync:ok:{}",
                hash::bytes_sha256(manifest.as_bytes())
            )),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mdir = dir.path().join("server/updates/manifests");
        assert_eq!(
            fs::read_to_string(mdir.join("manifest.json")).unwrap(),
            manifest
        );
        assert_eq!(
            fs::read_to_string(mdir.join("manifest_2.0.0.5.json")).unwrap(),
            manifest
        );
        let env = fs::read_to_string(dir.path().join("config.env")).unwrap();
        assert_eq!(
            env,
            "GEMINI_API_KEY=k\nSERVER_VERSION=2.0.0.5\nSERVER_BUILD=2.0.0.5\n"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("VERSION")).unwrap(),
            "2.0.0.5\n"
        );
        assert_eq!(
            fs::read_to_string(bin.join("restarted")).unwrap(),
            "restart voice-assistant\n"
        );
        // The second run backs up the first manifest.
        let again = std::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .output()
            .unwrap();
        assert!(again.status.success());
        let backups = fs::read_dir(&mdir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".backup.")
            })
            .count();
        assert_eq!(backups, 1);
    }
}
