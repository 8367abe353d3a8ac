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

use std::{fs, path::PathBuf, thread::JoinHandle};

use anyhow::{bail, Result};

use super::{apply::tempdir_in, hash_artifacts, Job};
use crate::{config::INBOX, journal::Journal};

/// The uploads begun before preflight's verdict.
pub struct Early {
    /// Tag and temporary name of each upload begun.
    begun: Vec<(String, String)>,
    running: Option<JoinHandle<Vec<Result<()>>>>,
    staging: Option<PathBuf>,
    journal: Option<Journal>,
}

impl Job<'_> {
    /// Begins the uploads this release will need: each artifact whose
    /// live asset differs and whose temporary name is not in its release
    /// yet. Nothing is begun (and preflight then says why) when the inbox
    /// is not fit or the releases cannot be read.
    pub fn start_early(&self) -> Early {
        let none = Early {
            begun: Vec::new(),
            running: None,
            staging: None,
            journal: None,
        };
        let inbox = self.ws.root.join(self.ws.inbox_dir(&self.channel_name));
        let Ok(artifacts) = self
            .validated(&inbox)
            .and_then(|valid| hash_artifacts(&valid, &self.channel))
        else {
            return none;
        };
        let gh = self.gh();
        let mut prepared = Vec::new();
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
                "  upload {} ({} bytes) to {} as {temp}, beside the checks (clients see only {})",
                art.name(),
                art.digest.size,
                art.tag,
                art.name()
            );
            prepared.push(gh.prepare_upload(&art.tag, &link));
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
            running: Some(std::thread::spawn(move || crate::gh::run_all(prepared))),
            staging: Some(staging),
            journal: Some(journal),
        }
    }
}

impl Early {
    /// How many uploads were begun.
    pub fn len(&self) -> usize {
        self.begun.len()
    }

    /// Waits for the uploads (each bounded by gh's upload timeout); one
    /// that failed is reported, and publish's plan does it again.
    pub fn finish(mut self) {
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
        Ok(())
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
