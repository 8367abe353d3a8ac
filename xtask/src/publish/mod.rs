//! `cargo xtask publish` (runbook section 3): the artifacts to the fixed
//! tags with no 404 window, the manifest, and the VM.
//!
//! `gh release upload --clobber` deletes the live asset and then uploads,
//! so every client sees 404 for the whole upload. Instead each artifact is
//! uploaded under a temporary name derived from its digest, checked (size
//! and GitHub's `digest`) against the local file, and only then swapped in
//! by two renames (`swap.rs`): the fixed URL is missing for one API round
//! trip at most. A failed or cut-short upload never touches the live asset.
//!
//! This module is the one orchestration, used by publish, rollback and
//! promote alike: gather [`Local`] and [`Live`], make the plan with the
//! pure [`plan::plan`], then print it (`render.rs`, `--dry-run`) or apply it
//! (`apply.rs`). Every step is decided from live state, so a run killed
//! anywhere is finished by running it again; a journal records what was
//! done.

pub mod apply;
pub mod early;
pub mod plan;
pub mod render;
pub mod swap;

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use xshell::Shell;

pub use self::plan::{Artifact, Live, Local};
use crate::{
    archive,
    artifact::{self, Kind},
    az::Az,
    changes::{self, FileChange},
    cli::Publish,
    config::{Channel, Workspace, INBOX},
    gh::Gh,
    hash::{self, FileDigest},
    lock::Lock,
    manifest, proc,
    progress::Meter,
    version, vm,
};

impl Publish {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> Result<()> {
        self.run_with(sh, ws, None)
    }

    /// [`Publish::run`] with the VM's state already read under the lease
    /// (by `release`'s preflight), so that no second run-command reads it.
    pub fn run_with(self, sh: &Shell, ws: &Workspace, vm: Option<vm::VmState>) -> Result<()> {
        if self.channel == "stable" && ws.config.stable_requires_promote {
            bail!(
                "stable_requires_promote is set: stable only gets bytes tested on beta; run `cargo xtask publish --channel beta`, test, then `cargo xtask promote --from beta --to stable`"
            );
        }
        let mut job = Job::new(sh, ws, &self.channel)?;
        job.known_vm = vm;
        let inbox = ws.root.join(ws.inbox_dir(&self.channel));
        let valid = job.validated(&inbox)?;
        // Hashing (local disk and CPU) needs no lock: it runs while the
        // lock and lease are taken and live state is read (a file changed
        // meanwhile fails the uploaded asset's digest check, as before).
        let hashing = {
            let (valid, channel) = (valid.clone(), job.channel.clone());
            std::thread::spawn(move || hash_artifacts(&valid, &channel))
        };
        let hashed = move || {
            hashing
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the hashing thread panicked")))
        };
        let lock = match job.lock(self.dry_run) {
            Ok(lock) => lock,
            Err(err) => {
                let _ = hashed();
                return Err(err);
            }
        };
        let mut tags: Vec<String> = valid.iter().map(|(kind, _)| job.tag_of(*kind)).collect();
        tags.dedup();
        if !self.dry_run && job.known_vm.is_none() {
            // On its own, publish reads the VM beside its uploads
            // (`early.rs`); inside `release`, preflight did both.
            let early::Gathered {
                artifacts,
                manifest,
                live,
                early,
            } = job.gather_beside_vm_read(hashed, &tags)?;
            let local = job.local(&artifacts, manifest);
            let steps = match plan::plan(&local, &live) {
                Ok(steps) => steps,
                Err(err) => return Err(early.fail(&job, err)),
            };
            drop(early);
            let applied = job.apply_plan(&local, &live, &steps);
            drop(lock);
            return applied;
        }
        let live = job.live_of(&tags);
        let artifacts = hashed()?;
        let live = live?;
        let manifest = job.new_manifest(&artifacts, None)?;
        // Under the lease, live state is another release's if one ran
        // first: never publish over a higher version.
        version_gate_under_lease(&artifacts, manifest.as_ref(), &live.vm)?;
        job.execute_with(&artifacts, manifest, live, self.dry_run, lock)
    }
}

/// The state shared by publish, rollback and promote for one channel.
pub struct Job<'a> {
    pub sh: &'a Shell,
    pub ws: &'a Workspace,
    pub channel_name: String,
    pub channel: Channel,
    /// The command the release lease names (`publish`, `rollback`, `promote`).
    pub command: &'static str,
    /// The VM's state read earlier under the same lease (`release`), used
    /// instead of reading it again.
    pub known_vm: Option<vm::VmState>,
}

impl<'a> Job<'a> {
    pub fn new(sh: &'a Shell, ws: &'a Workspace, channel_name: &str) -> Result<Job<'a>> {
        Ok(Job {
            sh,
            ws,
            channel_name: channel_name.to_string(),
            channel: ws.channel(channel_name)?.clone(),
            command: "publish",
            known_vm: None,
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

    /// Where this channel's manifest lives on the VM.
    pub fn vm_target(&self) -> vm::Target {
        vm::Target::new(&self.ws.config, self.manifest_file())
    }

    /// The manifest's file name on the VM and in an archive.
    pub fn manifest_file(&self) -> String {
        manifest::file_name(&self.channel.manifest)
    }

    fn archive_root(&self) -> PathBuf {
        archive::root_of(&self.ws.root)
    }

    /// True when this channel's sync also moves the server's version.
    fn moves_server_version(&self) -> bool {
        self.channel_name == "stable"
    }

    /// Validates and hashes the artifacts in `inbox` (one streaming pass each).
    pub fn artifacts(&self, inbox: &Path) -> Result<Vec<Artifact>> {
        hash_artifacts(&self.validated(inbox)?, &self.channel)
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
        artifacts: &[Artifact],
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
        let Some(dmg) = artifacts.iter().find(|l| l.kind == Kind::Dmg) else {
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
        let known = self.known_vm.clone();
        if known.is_none() {
            commands.push(az.prepare_script(&self.vm_target().read_script()));
        }
        let mut outputs = proc::run_parallel(commands);
        let vm = match known {
            Some(state) => state,
            None => {
                let vm_out = outputs.pop().context("the VM read did not run")??;
                vm::parse_state(&az.finish(vm_out)?)?
            }
        };
        let reads = tags
            .iter()
            .zip(outputs)
            .zip(checks)
            .map(|((tag, out), check)| Ok((tag.clone(), check(out?)?)))
            .collect();
        Ok(Live {
            releases: self.releases_from(reads)?,
            vm,
        })
    }

    /// The fixed releases from gh's answers (tag, output): each must
    /// exist and be mutable.
    pub(super) fn releases_from(
        &self,
        reads: Vec<Result<(String, proc::Output)>>,
    ) -> Result<Vec<(String, crate::gh::Release)>> {
        let gh = self.gh();
        let mut releases = Vec::new();
        for read in reads {
            let (tag, out) = read?;
            match crate::gh::parse_release(&out, &tag)? {
                Some(r) => releases.push((tag, r)),
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
        Ok(releases)
    }

    /// The local side of the plan: the artifacts, the manifest and what the
    /// archive holds.
    pub fn local(&self, artifacts: &[Artifact], manifest: Option<FileChange>) -> Local {
        let archive_root = self.archive_root();
        Local {
            artifacts: artifacts.to_vec(),
            manifest,
            moves_server_version: self.moves_server_version(),
            archived: archive::complete(&archive_root, &self.manifest_file()),
            archive_root,
        }
    }

    /// Plans, then prints (dry run) or applies the plan.
    pub fn execute(
        &self,
        artifacts: &[Artifact],
        manifest: Option<FileChange>,
        dry_run: bool,
    ) -> Result<()> {
        let lock = self.lock(dry_run)?;
        let mut tags: Vec<String> = artifacts.iter().map(|l| l.tag.clone()).collect();
        tags.dedup();
        let live = self.live_of(&tags)?;
        self.execute_with(artifacts, manifest, live, dry_run, lock)
    }

    /// The release lock. It comes before reading live state, so that the
    /// state the plan is made from cannot be changed by another run of
    /// ours. A dry run writes nothing, not even the lock. Every child of
    /// this run carries its pid (see `lock.rs`), so that a run taking over
    /// after a kill can wait for exactly the calls it left in flight.
    ///
    /// Under the clone's lock comes the release lease in GitHub
    /// (`lease/`), which orders runs of all machines; it is released
    /// when the returned guard drops, on success and on failure alike.
    pub fn lock(&self, dry_run: bool) -> Result<Option<Held>> {
        if dry_run {
            crate::say!(
                "dry run: the release lease ({}) would be taken first; none is taken",
                crate::lease::Remote::of(self.ws)?.where_()
            );
            return Ok(None);
        }
        if OUTER.load(Ordering::SeqCst) {
            // `release` holds both over publish and verify.
            return Ok(None);
        }
        let lock = Lock::take(&self.ws.root.join(INBOX).join(".release.lock"))?;
        self.sh
            .set_var(crate::lock::RUN_ENV, std::process::id().to_string());
        let version = changes::read_text(&self.ws.root, &self.ws.config.version_file)
            .map(|t| t.trim().to_string())
            .unwrap_or_default();
        let lease = crate::lease::Lease::take(self.sh, self.ws, self.command, &version)?;
        Ok(Some(Held {
            _lease: lease,
            _lock: lock,
        }))
    }

    /// Plans from `live` and applies the plan (or prints it), holding `_lock`.
    pub fn execute_with(
        &self,
        artifacts: &[Artifact],
        manifest: Option<FileChange>,
        live: Live,
        dry_run: bool,
        _lock: Option<Held>,
    ) -> Result<()> {
        let local = self.local(artifacts, manifest);
        let steps = plan::plan(&local, &live)?;
        if dry_run {
            crate::output::say_raw(&self.render_plan(&steps, &live));
            crate::say!("dry run: nothing was uploaded, renamed, deleted or written");
            return Ok(());
        }
        self.apply_plan(&local, &live, &steps)
    }
}

/// The clone's lock and the release lease, held together; the lease is
/// released first (fields drop in order).
pub struct Held {
    _lease: crate::lease::Lease,
    _lock: Lock,
}

/// Set while a caller (`release`) holds the lock and lease for its stages,
/// so that the publish inside takes neither again.
static OUTER: AtomicBool = AtomicBool::new(false);

/// True while this process holds the lock and lease for a caller's stages.
pub fn holds_lease() -> bool {
    OUTER.load(Ordering::SeqCst)
}

impl Held {
    /// Holds the lock and lease for the caller's stages (publish, then
    /// verify, so that no other release replaces the bytes being verified).
    pub fn for_stages(job: &Job<'_>) -> Result<Held> {
        let held = job.lock(false)?.context("the release lock was not taken")?;
        OUTER.store(true, Ordering::SeqCst);
        Ok(held)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        OUTER.store(false, Ordering::SeqCst);
    }
}

/// The version gate of publish, run on the VM's state read under the
/// lease (`lease::version_gate` decides; this reads the versions it
/// compares).
fn version_gate_under_lease(
    artifacts: &[Artifact],
    manifest: Option<&FileChange>,
    vm: &vm::VmState,
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
    let live_view = vm
        .manifest
        .as_deref()
        .and_then(|m| view("live manifest", m));
    let live_version = live_view
        .as_ref()
        .and_then(|v| v.version.as_deref())
        .and_then(|v| v.parse().ok());
    let dmg = artifacts
        .iter()
        .find(|a| a.kind == Kind::Dmg)
        .map(|a| a.digest.sha256.as_str());
    let same = dmg.is_some() && live_view.and_then(|v| v.sha256).as_deref() == dmg;
    crate::lease::version_gate(local, live_version, same)
        .map_err(|why| anyhow::anyhow!("refusing to publish: {why}; nothing was changed"))
}

fn tag_for(channel: &Channel, kind: Kind) -> String {
    match kind {
        Kind::Dmg => channel.dmg_tag.clone(),
        Kind::Pkg => channel.pkg_tag.clone(),
    }
}

/// Hashes each artifact in its own thread (two streaming passes side by
/// side), with a progress line.
fn hash_artifacts(valid: &[(Kind, PathBuf)], channel: &Channel) -> Result<Vec<Artifact>> {
    let total: u64 = valid
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
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
            Ok(Artifact {
                kind: *kind,
                path: path.clone(),
                digest: digest?,
                tag: tag_for(channel, *kind),
            })
        })
        .collect()
}
