//! Uploads started early: `release` takes the clone's lock and the
//! release lease, then begins the uploads under their temporary names
//! (`Nexy.next-<sha12>.dmg`, invisible to clients, who fetch only the
//! fixed names) while preflight's slow checks run. Only once every check
//! has passed does publish run, find the uploads done (its plan sees a
//! matching temporary asset and goes straight to the swap) and swap.
//!
//! When a check fails, [`Early::abandon`] waits for the uploads it began
//! and removes every temporary asset they made, so that production (the
//! fixed URLs, the manifest, the VM) is exactly as before and nothing of
//! the run is left in the releases. An early upload that fails is not an
//! error of its own: publish's plan removes what it left and uploads again.
//!
//! `publish` on its own does the same beside its one VM read
//! ([`Job::gather_beside_vm_read`]), the slow part of its live state.

use std::{fs, path::PathBuf, thread::JoinHandle};

use anyhow::{bail, Context, Result};

use super::{apply::tempdir_in, hash_artifacts, version_gate_under_lease, Artifact, Job, Live};
use crate::{changes::FileChange, config::INBOX, journal::Journal, progress::Meter, vm};

/// The uploads begun before the checks' verdict (preflight's, or the VM
/// read's of a publish on its own).
pub struct Early {
    /// Tag and temporary name of each upload begun.
    begun: Vec<(String, String)>,
    running: Option<JoinHandle<Vec<Result<()>>>>,
    staging: Option<PathBuf>,
    journal: Option<Journal>,
    /// What the uploads ran beside, for the line that says they went.
    beside: Beside,
}

/// What the uploads run beside: `release`'s preflight checks, or the VM
/// read of a publish on its own.
#[derive(Clone, Copy)]
enum Beside {
    Checks,
    VmRead,
}

impl Beside {
    fn words(self) -> &'static str {
        match self {
            Beside::Checks => "beside the checks",
            Beside::VmRead => "beside the VM read",
        }
    }
}

/// What a standalone publish gathered beside its VM read: the hashed
/// artifacts, the new manifest, live state read after the uploads, and
/// the uploads (to be removed if the plan refuses).
pub(super) struct Gathered {
    pub artifacts: Vec<Artifact>,
    pub manifest: Option<FileChange>,
    pub live: Live,
    pub early: Early,
}

impl Job<'_> {
    /// `publish` on its own (not inside `release`, which read the VM and
    /// began its uploads beside preflight): the VM read, a run-command of
    /// tens of seconds in production, runs beside the hashing and the
    /// uploads under temporary names, which take as long. The version gate
    /// is judged as soon as the VM's state is in; the releases are read
    /// once the uploads are done, so that the plan sees them and goes
    /// straight to the swap. Whatever stops the run before its plan
    /// removes the uploads it began. The caller holds the lock and lease.
    pub(super) fn gather_beside_vm_read(
        &self,
        hashed: impl FnOnce() -> Result<Vec<Artifact>>,
        tags: &[String],
    ) -> Result<Gathered> {
        // Built on this thread (the Shell stays here), run on another.
        let read = self.az().attempts(&self.vm_target().read_script());
        let (artifacts, early, state) = std::thread::scope(|scope| {
            let reading = scope.spawn(move || read.run());
            let artifacts = hashed();
            let early = match &artifacts {
                Ok(artifacts) => self.start_uploads(artifacts, Beside::VmRead),
                Err(_) => Early::none(),
            };
            let state = reading
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the VM read's thread panicked")));
            (artifacts, early, state)
        });
        let gathered = artifacts.and_then(|artifacts| {
            let state = vm::parse_state(&state.context("reading the VM's state failed")?)?;
            let manifest = self.new_manifest(&artifacts, None)?;
            // Under the lease, the VM's manifest is another release's if
            // one ran first: never publish over a higher version.
            version_gate_under_lease(&artifacts, manifest.as_ref(), &state)?;
            Ok((artifacts, manifest, state))
        });
        let (artifacts, manifest, state) = match gathered {
            Ok(g) => g,
            Err(err) => return Err(early.fail(self, err)),
        };
        // The releases are read once the uploads are done, by gh calls
        // started (and connected) while they run.
        let gh = self.gh();
        let staged: Vec<_> = tags.iter().map(|t| gh.stage_release(t)).collect();
        let mut early = early;
        early.settle();
        let mut outputs = crate::gh::fire_all(staged);
        if outputs.iter().any(Result::is_err) {
            // A read staged during a long upload may have outlived its
            // deadline or lost its connection; reads are safe to repeat.
            outputs = crate::gh::run_outputs(tags.iter().map(|t| gh.prepare_release(t)).collect());
        }
        let reads = outputs
            .into_iter()
            .zip(tags)
            .map(|(out, tag)| Ok((tag.clone(), out?)))
            .collect();
        match self.releases_from(reads) {
            Ok(releases) => Ok(Gathered {
                artifacts,
                manifest,
                live: Live {
                    releases,
                    vm: state,
                },
                early,
            }),
            Err(err) => Err(early.fail(self, err)),
        }
    }

    /// Begins the uploads this release will need: each artifact whose
    /// live asset differs and whose temporary name is not in its release
    /// yet. Nothing is begun (and preflight then says why) when the inbox
    /// is not fit or the releases cannot be read.
    pub fn start_early(&self) -> Early {
        let inbox = self.ws.root.join(self.ws.inbox_dir(&self.channel_name));
        match self
            .validated(&inbox)
            .and_then(|valid| hash_artifacts(&valid, &self.channel))
        {
            Ok(artifacts) => self.start_uploads(&artifacts, Beside::Checks),
            Err(_) => Early::none(),
        }
    }

    /// Begins the uploads of `artifacts` that their releases lack, under
    /// temporary names; `beside` says what they run beside.
    fn start_uploads(&self, artifacts: &[Artifact], beside: Beside) -> Early {
        let none = Early::none();
        let gh = self.gh();
        let mut prepared = Vec::new();
        let mut meters = Vec::new();
        let mut begun = Vec::new();
        let Ok(staging) = tempdir_in(&self.ws.root.join(INBOX)) else {
            return none;
        };
        // Both releases read side by side (each a round trip).
        let reads = crate::gh::run_outputs(
            artifacts
                .iter()
                .map(|a| gh.prepare_release(&a.tag))
                .collect(),
        );
        for (art, read) in artifacts.iter().zip(reads) {
            let Ok(Some(release)) = read.and_then(|out| crate::gh::parse_release(&out, &art.tag))
            else {
                continue;
            };
            let temp = art.temp_name();
            let live_matches = release.asset(art.name()).is_some_and(|a| art.matches(a));
            if release.immutable || live_matches || release.asset(&temp).is_some() {
                continue;
            }
            let link = staging.join(&temp);
            let Ok(target) = fs::canonicalize(&art.path) else {
                continue;
            };
            if std::os::unix::fs::symlink(&target, &link).is_err() {
                continue;
            }
            crate::say!(
                "  upload {} ({} bytes) to {} as {temp}, {} (clients see only {})",
                art.name(),
                art.digest.size,
                art.tag,
                beside.words(),
                art.name()
            );
            prepared.push(gh.prepare_upload(&art.tag, &link));
            meters.push(Some((
                target,
                Meter::new("upload", art.name(), art.digest.size),
            )));
            begun.push((art.tag.clone(), temp));
        }
        if begun.is_empty() {
            let _ = fs::remove_dir_all(&staging);
            return none;
        }
        let journal = Journal::open(&self.ws.root.join(INBOX).join(".journal.jsonl"));
        for (_, temp) in &begun {
            let _ = journal.record("start", &format!("upload {temp} (early)"));
        }
        Early {
            begun,
            beside,
            running: Some(std::thread::spawn(move || {
                let outputs = match beside {
                    // Nothing else prints meanwhile: the bars are drawn.
                    Beside::VmRead => {
                        crate::gh::run_metered(prepared.into_iter().zip(meters).collect())
                    }
                    // Preflight prints its table meanwhile: no bars.
                    Beside::Checks => crate::gh::run_outputs(prepared),
                };
                outputs.into_iter().map(|r| r.map(drop)).collect()
            })),
            staging: Some(staging),
            journal: Some(journal),
        }
    }
}

impl Early {
    fn none() -> Early {
        Early {
            begun: Vec::new(),
            running: None,
            staging: None,
            journal: None,
            beside: Beside::Checks,
        }
    }

    /// Waits for the uploads (each bounded by gh's upload timeout); one
    /// that failed is reported, and publish's plan does it again.
    pub fn finish(mut self) {
        self.settle();
    }

    /// [`Early::finish`] without giving the uploads up, so that they can
    /// still be removed if the plan refuses; a second call does nothing.
    pub fn settle(&mut self) {
        let results = self.wait();
        for ((_, temp), result) in self.begun.iter().zip(results) {
            match result {
                Ok(()) => {
                    if let Some(j) = &self.journal {
                        let _ = j.record("done", &format!("upload {temp} (early)"));
                    }
                }
                Err(err) => crate::say!(
                    "  the early upload of {temp} failed ({err:#}); publish uploads it again"
                ),
            }
        }
    }

    /// A check failed: waits for the uploads, then removes every
    /// temporary asset they made. Errs, naming what is left and how to
    /// remove it, when one could not be removed.
    pub fn abandon(mut self, job: &Job<'_>) -> Result<()> {
        if self.begun.is_empty() {
            return Ok(());
        }
        let _ = self.wait();
        let gh = job.gh();
        let mut left = Vec::new();
        for (tag, temp) in &self.begun {
            let removed =
                gh.release(tag)
                    .and_then(|r| match r.and_then(|r| r.asset(temp).cloned()) {
                        Some(asset) => gh.delete(asset.id),
                        None => Ok(()),
                    });
            match removed {
                Ok(()) => {
                    crate::say!("  removed the early upload {temp} from {tag}");
                    if let Some(j) = &self.journal {
                        let _ = j.record("note", &format!("removed {temp} (a check failed)"));
                    }
                }
                Err(err) => left.push(format!(
                    "{temp} in {tag} ({err:#}): remove it with `gh release delete-asset {tag} {temp}`"
                )),
            }
        }
        if !left.is_empty() {
            bail!(
                "a check failed and an early upload could not be removed: {}; the fixed URLs, the manifest and the VM are untouched",
                left.join("; ")
            );
        }
        crate::say!(
            "  the {} upload(s) begun {} were removed",
            self.begun.len(),
            self.beside.words()
        );
        Ok(())
    }

    /// The run stopped with `err` before its plan: the uploads it began
    /// are removed, and the error says so (or names what is left).
    pub fn fail(self, job: &Job<'_>, err: anyhow::Error) -> anyhow::Error {
        match self.abandon(job) {
            Ok(()) => err,
            Err(left) => anyhow::anyhow!("{err:#}\nalso: {left:#}"),
        }
    }

    fn wait(&mut self) -> Vec<Result<()>> {
        let results = match self.running.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| vec![Err(anyhow::anyhow!("the upload thread panicked"))]),
            None => Vec::new(),
        };
        if let Some(dir) = self.staging.take() {
            let _ = fs::remove_dir_all(dir);
        }
        results
    }
}

impl Drop for Early {
    /// Never leaves an upload running past the run (an error path that
    /// did not call `finish` or `abandon` still waits for it).
    fn drop(&mut self) {
        let _ = self.wait();
    }
}
