//! `cargo xtask rollback [--to VERSION]` (runbook section 5): republish an
//! archived version to the same fixed tags with the same no-404 swap,
//! restore its manifest in the repository and on the VM, and verify.
//!
//! A rollback cannot downgrade clients: updaters only install versions
//! newer than their own. It stops new installs of a bad build, but clients
//! that already updated stay where they are. The real remedy is to roll
//! forward with a fixed build under a higher version; we say so before
//! acting.

use std::time::Duration;

use anyhow::{bail, Result};
use xshell::Shell;

use crate::{
    archive,
    cli::Rollback,
    config::{Workspace, INBOX},
    publish::Job,
    report, verify,
    version::Version,
};

impl Rollback {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> Result<bool> {
        let live: Version = verify::released_version(ws, &self.channel)?
            .parse()
            .map_err(|e| {
                anyhow::anyhow!("the repository's manifest version is not a version: {e}")
            })?;
        let archived = archive::versions(&ws.root);
        let target = match &self.to {
            Some(v) => {
                let v: Version = v.parse().map_err(|e| crate::UsageError(format!("{e}")))?;
                if !archived.contains(&v) {
                    bail!(
                        "no complete archive of {v} in {INBOX}/.archive/ (have: {}); archives are made by publish before it replaces a version",
                        list(&archived)
                    );
                }
                v
            }
            None => match archived.iter().rev().find(|v| **v < live) {
                Some(v) => *v,
                None => bail!("no archived version below the live {live} in {INBOX}/.archive/ (have: {}); pass --to VERSION", list(&archived)),
            },
        };
        crate::say!("rollback {live} -> {target}");
        crate::say!(
            "warning: this does not downgrade clients. Updaters install only newer versions, so clients already on {live} stay there;\n\
             \x20        this only stops new installs of {live}. Republishing old bytes under a higher version would make updated\n\
             \x20        clients loop. The remedy for them is to roll forward: fix, `cargo xtask bump <above {live}>`, `cargo xtask release`."
        );
        let dir = archive::root_of(&ws.root).join(target.to_string());
        let mut job = Job::new(sh, ws, &self.channel)?;
        job.command = "rollback";
        let locals = job.artifacts(&dir)?;
        let manifest_file = job.manifest_file();
        let restore = std::fs::read_to_string(dir.join(&manifest_file)).ok();
        if let Err(why) = archive::consistent(&dir, restore.as_deref()) {
            bail!("the archive of {target} is not a rollback point: {why}; pick another with --to");
        }
        // The bytes' own Info.plist must say the target's version too: the
        // archived manifest may have been written for a stale DMG.
        if let Some(why) = crate::preflight_artifacts::version_mismatch(ws, &dir, &target) {
            bail!("the archive of {target} holds other bytes: {why}; restore the real {target} artifacts into {} or pick another with --to", dir.display());
        }
        crate::say!("if this is interrupted, run `cargo xtask rollback --to {target}` again: it resumes from live state");
        if restore.is_none() {
            bail!(
                "{} has no {manifest_file}; cannot restore the manifest of {target}",
                dir.display()
            );
        }
        let change = job.new_manifest(&locals, restore)?;
        job.execute(&locals, change, self.dry_run)?;
        if self.dry_run {
            return Ok(true);
        }
        let results = verify::dod(
            sh,
            ws,
            &self.channel,
            false,
            Duration::from_secs(ws.config.verify.timeout_secs),
        )?;
        crate::output::say_raw(&report::render("verify (DoD)", &results));
        crate::say!("rolled back to {target}; recorded in {INBOX}/.journal.jsonl");
        crate::say!(
            "next: VERSION still says the rolled-back version, so `cargo xtask check` reports drift and a plain `publish` would\n\
             \x20     republish the inbox's artifacts. Roll forward: fix, `cargo xtask bump <above {live}>`, new artifacts, `cargo xtask release`."
        );
        Ok(report::all_pass(&results))
    }
}

fn list(versions: &[Version]) -> String {
    if versions.is_empty() {
        "none".to_string()
    } else {
        versions
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}
