//! The no-404 swap: each uploaded temporary asset is checked against the
//! local file, then renamed over the live one (live -> `.prev-`, temp ->
//! fixed name) with both gh calls started before the first is sent. The
//! reads it starts with are staged while the uploads run.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{plan::Artifact, Job};
use crate::gh::{Release, StagedCall};

impl Job<'_> {
    /// Checks each uploaded temporary asset, then swaps them in: live ->
    /// `.prev-`, temp -> fixed name, back to back with both gh calls
    /// already started, so every fixed URL is missing for one request; the
    /// assets side by side. The deletes of the `.prev-` assets are started
    /// and returned, for the caller to wait on after the steps that follow.
    ///
    /// `reads` are each artifact's release as read after its upload: the
    /// staged reads of [`Job::fire_swap_reads`], or the plan's own when
    /// nothing changed the releases since (`apply.rs`).
    pub(super) fn swap_all(
        &self,
        artifacts: &[&Artifact],
        reads: Vec<Result<Release>>,
    ) -> Result<Cleanup> {
        let gh = self.gh();
        let mut reads = reads;
        // A read staged long ago may have lost its connection (or outlived
        // its deadline during a long upload); a read is safe to repeat.
        let again: Vec<usize> = (0..reads.len()).filter(|&i| reads[i].is_err()).collect();
        if !again.is_empty() {
            let retried = self.fire_swap_reads(
                &again.iter().map(|&i| artifacts[i]).collect::<Vec<_>>(),
                again
                    .iter()
                    .map(|&i| gh.stage_release(&artifacts[i].tag))
                    .collect(),
            );
            for (i, read) in again.into_iter().zip(retried) {
                reads[i] = read;
            }
        }
        let mut plans = Vec::new();
        for (local, read) in artifacts.iter().zip(reads) {
            let temp = local.temp_name();
            let release = read?;
            // A call of an interrupted run that was still in flight may have
            // finished this swap meanwhile: then there is nothing to do.
            if release.asset(&temp).is_none()
                && release
                    .asset(local.name())
                    .is_some_and(|a| local.matches(a))
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
            if !local.matches(&uploaded) {
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
            let live = release
                .asset(local.name())
                .map(|a| (a.id, local.prev_name(a)));
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

    /// The reads the swap of `artifacts` starts with (their releases, for
    /// the uploaded assets' ids and GitHub's digests), started and
    /// connected but not sent: staged while the uploads run, gh's start-up
    /// is paid then, and after the uploads each read costs one round trip.
    pub(super) fn stage_swap_reads(&self, artifacts: &[&Artifact]) -> Vec<Result<StagedCall>> {
        let gh = self.gh();
        artifacts.iter().map(|l| gh.stage_release(&l.tag)).collect()
    }

    /// Sends the staged reads of `artifacts`' releases, side by side.
    pub(super) fn fire_swap_reads(
        &self,
        artifacts: &[&Artifact],
        staged: Vec<Result<StagedCall>>,
    ) -> Vec<Result<Release>> {
        crate::gh::fire_all(staged)
            .into_iter()
            .zip(artifacts)
            .map(|(out, local)| {
                crate::gh::parse_release(&out?, &local.tag)?
                    .context("the release disappeared during publish")
            })
            .collect()
    }
}

/// The deletes of the replaced assets after a swap, running beside the
/// steps that follow; [`Cleanup::finish`] waits for them.
pub struct Cleanup(std::thread::JoinHandle<Vec<Result<()>>>);

impl Cleanup {
    pub fn finish(self) -> Result<()> {
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
