//! Applying a plan: each step in order, recorded in the journal; the
//! archive downloads and the uploads side by side, the swaps back to back
//! (`swap.rs`), the copy of this release into its archive beside them all.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{bail, Context, Result};

use super::{
    plan::{Artifact, Live, Local, Step},
    swap::Cleanup,
    Job,
};
use crate::{
    archive, artifact::Kind, changes, config::INBOX, journal::Journal, progress::Meter, vm,
};

impl Job<'_> {
    /// Applies `steps`, waits for the work they left running (the deletes
    /// after a swap, the archive copy) and reports. `live` is the state
    /// the plan was made from, read under the lock just before.
    pub(super) fn apply_plan(&self, local: &Local, live: &Live, steps: &[Step]) -> Result<()> {
        // Staging directories of a run that was killed hold only symlinks;
        // with the lock held, no other run can be using them.
        if let Ok(entries) = fs::read_dir(self.ws.root.join(INBOX)) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(".staging-") {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        let journal = Journal::open(&self.ws.root.join(INBOX).join(".journal.jsonl"));
        // Which gh did the work: its behaviour differs across versions.
        journal.record(
            "run",
            &crate::ghenv::version()
                .map_or_else(|e| format!("gh unknown: {e:#}"), |v| format!("gh {v}")),
        )?;
        // The copy of this release into its archive runs beside everything
        // else: an upload waits on the network, the copy on the local disk.
        let archive_copy = match &local.manifest {
            Some(change) => {
                let files: Vec<(Kind, &Path, &str)> = local
                    .artifacts
                    .iter()
                    .map(|a| (a.kind, a.path.as_path(), a.digest.sha256.as_str()))
                    .collect();
                archive::Copy::start(
                    &local.archive_root,
                    &self.manifest_file(),
                    &files,
                    &change.new,
                )?
            }
            None => None,
        };
        let mut cleanups = Vec::new();
        let ran = self.run_steps(steps, live, &journal, &mut cleanups);
        // Background work is waited for even after a failure, so that
        // nothing of this run lands once its lock is released. A replaced
        // asset left behind is a smaller matter than a lost rollback point,
        // so the archive is completed first.
        let cleaned: Vec<Result<()>> = cleanups.into_iter().map(Cleanup::finish).collect();
        let archived = match archive_copy {
            Some(copy) if ran.is_ok() => copy.finish(),
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
        live: &Live,
        journal: &Journal,
        cleanups: &mut Vec<Cleanup>,
    ) -> Result<()> {
        let record = |phase: &str, steps: &[Step]| -> Result<()> {
            for step in steps {
                journal.record(phase, &step.label())?;
            }
            Ok(())
        };
        let mut swapped_at: Option<Instant> = None;
        // The VM sync's az is not started ahead: az 2.91 reads the script
        // early but loads the command's modules after it (about 0.7 s from
        // stdin to the POST either way), and its start-up beside the
        // renames slowed them (a 137 ms fixed-URL gap under load).
        let mut staged_reads = None;
        // True while no step has changed a release since `live` was read.
        let mut untouched = true;
        let mut i = 0;
        while i < steps.len() {
            // The archive downloads and the uploads are independent
            // transfers: they run side by side.
            let batch = steps[i..]
                .iter()
                .take_while(|s| matches!(s, Step::Archive { .. } | Step::Upload { .. }))
                .count();
            // The swaps run phase by phase across all assets.
            let swaps = swaps_at(&steps[i..]);
            if !swaps.is_empty() {
                let group = &steps[i..i + swaps.len()];
                record("start", group)?;
                let reads = match staged_reads.take() {
                    Some(staged) => self.fire_swap_reads(&swaps, staged),
                    // Uploaded before the plan's read (`early.rs`), with
                    // nothing changed since under the lock: that read is
                    // the swap's, one round trip less.
                    None if untouched => swaps
                        .iter()
                        .map(|l| {
                            live.release(&l.tag)
                                .cloned()
                                .with_context(|| format!("the plan read no release `{}`", l.tag))
                        })
                        .collect(),
                    None => self.fire_swap_reads(&swaps, self.stage_swap_reads(&swaps)),
                };
                untouched = false;
                cleanups.push(self.swap_all(&swaps, reads)?);
                if swaps.iter().any(|l| l.kind == Kind::Dmg) {
                    swapped_at = Some(Instant::now());
                }
                record("done", group)?;
                i += swaps.len();
                continue;
            }
            if batch > 0 {
                let transfers = &steps[i..i + batch];
                // The swaps that follow the transfers read their releases
                // first: those reads are staged now, beside the transfers.
                let next = swaps_at(&steps[i + batch..]);
                if !next.is_empty() {
                    staged_reads = Some(self.stage_swap_reads(&next));
                }
                record("start", transfers)?;
                untouched &= !transfers.iter().any(|s| matches!(s, Step::Upload { .. }));
                self.apply_transfers(transfers)?;
                record("done", transfers)?;
                i += batch;
                continue;
            }
            let step = std::slice::from_ref(&steps[i]);
            i += 1;
            record("start", step)?;
            untouched &= !matches!(
                step[0],
                Step::RemoveLeftover { .. } | Step::Restore { .. } | Step::Swap { .. }
            );
            self.apply(&step[0], journal)?;
            if let (Step::SyncVm { .. }, Some(at)) = (&step[0], swapped_at) {
                crate::say!(
                    "  DMG swap to VM manifest sync: {:.2}s (clients could see the new DMG with the old checksum and would refuse it)",
                    at.elapsed().as_secs_f64()
                );
            }
            record("done", step)?;
        }
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
                    if let Err(why) = archive::consistent(dir, manifest.as_deref()) {
                        // Not a rollback point: better none than a wrong one.
                        let _ = fs::remove_dir_all(dir);
                        crate::say!("  warning: archive of {version} dropped: {why}");
                        continue;
                    }
                    archive::seal(dir, version, &self.manifest_file(), manifest.as_deref())?;
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

    fn apply(&self, step: &Step, journal: &Journal) -> Result<()> {
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
            Step::Swap { local } => self
                .swap_all(
                    &[local],
                    self.fire_swap_reads(&[local], self.stage_swap_reads(&[local])),
                )?
                .finish()?,
            Step::WriteManifest { change } => {
                crate::say!("  write {}", change.rel);
                changes::apply(std::slice::from_ref(change))?;
            }
            Step::SyncVm {
                version,
                manifest,
                restart,
                why,
            } => {
                crate::say!("  sync the VM's manifest to {version}; {why}");
                let target = self.vm_target();
                let synced = vm::sync(&self.az(), &target, version, manifest, *restart)?;
                for line in synced.report() {
                    crate::say!("    {line}");
                }
                // What happened to the service is recorded whatever it
                // was, before a failed restart fails the release.
                journal.record("note", &synced.journal_step())?;
                if let Some(why) = synced.failure(target.restart_wait_secs) {
                    bail!("{why}");
                }
            }
        }
        Ok(())
    }
}

/// The artifacts of the swaps `steps` begin with.
fn swaps_at(steps: &[Step]) -> Vec<&Artifact> {
    steps
        .iter()
        .map_while(|s| match s {
            Step::Swap { local } => Some(local),
            _ => None,
        })
        .collect()
}

/// A fresh private directory under `parent` for staging upload names.
pub(super) fn tempdir_in(parent: &Path) -> Result<PathBuf> {
    for i in 0..100 {
        let dir = parent.join(format!(".staging-{}-{i}", std::process::id()));
        if fs::create_dir(&dir).is_ok() {
            return Ok(dir);
        }
    }
    bail!("cannot create a staging directory in {}", parent.display())
}
