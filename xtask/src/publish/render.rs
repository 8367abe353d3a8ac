//! The plan as people read it (`--dry-run`): each step in words, then the
//! commands and writes it performs, shown by the effect seam
//! (`effect::describe`) from the same `Gh`/`Az` constructors the real run
//! uses. An id that exists only after an upload is shown as a placeholder.

use std::path::Path;

use super::{
    plan::{Live, Step},
    Job,
};
use crate::{archive, changes, effect, hash};

impl Job<'_> {
    /// The plan, each step with the shell lines it runs.
    pub fn render_plan(&self, steps: &[Step], live: &Live) -> String {
        let gh = self.gh();
        let az = self.az();
        let mut out = format!("plan for channel {}:\n", self.channel_name);
        for (i, step) in steps.iter().enumerate() {
            let (title, effects): (String, Vec<String>) = match step {
                Step::Skip { what, why } => (format!("skip {what}: {why}"), vec![]),
                Step::Archive {
                    version,
                    dir,
                    assets,
                    manifest,
                } => {
                    let mut lines: Vec<String> = assets
                        .iter()
                        .map(|(tag, name, _)| gh.prepare_download(tag, name, dir).describe())
                        .collect();
                    if let Some(m) = manifest {
                        lines.push(effect::describe_write(
                            &dir.join(self.manifest_file()),
                            m.as_bytes(),
                        ));
                    }
                    lines.push(effect::describe_write(
                        &dir.join(archive::DONE),
                        format!("{version}\n").as_bytes(),
                    ));
                    (
                        format!("archive live {version} into {}", dir.display()),
                        lines,
                    )
                }
                Step::RemoveLeftover { tag, asset } => (
                    format!("remove leftover {} from {tag}", asset.name),
                    vec![gh.prepare_delete(asset.id).describe()],
                ),
                Step::Restore { tag, asset, name } => (
                    format!("restore {} as {name} in {tag}", asset.name),
                    vec![gh.prepare_rename(asset.id, name).describe()],
                ),
                Step::Upload { local } => (
                    format!(
                        "upload {} ({} bytes, sha256 {}) as {}",
                        local.path.display(),
                        local.digest.size,
                        local.digest.sha256,
                        local.temp_name()
                    ),
                    // The upload goes through a symlink named as the
                    // temporary asset, in a fresh staging directory.
                    vec![gh
                        .prepare_upload(&local.tag, &Path::new("<staging>").join(local.temp_name()))
                        .describe()],
                ),
                Step::Swap { local } => {
                    let release = live.release(&local.tag);
                    let temp = local.temp_name();
                    let new_id = release
                        .and_then(|r| r.asset(&temp))
                        .map_or_else(|| format!("<id of {temp}>"), |a| a.id.to_string());
                    let mut lines = vec![gh.prepare_release_staged(&local.tag).describe()];
                    let live_asset = release.and_then(|r| r.asset(local.name()));
                    if let Some(a) = live_asset {
                        lines.push(gh.prepare_rename(a.id, &local.prev_name(a)).describe());
                    }
                    lines.push(gh.prepare_rename(&new_id, local.name()).describe());
                    if let Some(a) = live_asset {
                        lines.push(gh.prepare_delete(a.id).describe());
                    }
                    (
                        format!(
                            "check {temp} (size and digest), then swap it in as {}",
                            local.name()
                        ),
                        lines,
                    )
                }
                Step::WriteManifest { change } => (
                    format!(
                        "write {}\n{}",
                        change.rel,
                        indent(
                            &changes::unified_diff(std::slice::from_ref(change)),
                            "     "
                        )
                        .trim_end()
                    ),
                    vec![effect::describe_write(&change.abs, change.new.as_bytes())],
                ),
                Step::SyncVm {
                    version,
                    manifest,
                    restart,
                    why,
                } => {
                    let target = self.vm_target();
                    let service = if *restart {
                        format!(
                            "; {why}: config.env checked first (GEMINI_API_KEY, version lines), the previous config.env and VERSION kept, then a wait of at most {}s for is-active, /health and /updates/health to answer {version}, and the previous ones restored if they do not",
                            target.restart_wait_secs
                        )
                    } else {
                        format!("; {why}")
                    };
                    (
                        format!(
                            "sync the VM's manifest to {version} (sha256 {}, flock, backup, keep the newest {} backups){service}",
                            hash::bytes_sha256(manifest.as_bytes()),
                            target.backups_keep,
                        ),
                        vec![az.describe_script(&target.sync_script(version, manifest, *restart))],
                    )
                }
            };
            out.push_str(&format!("  {}. {title}\n", i + 1));
            for effect in effects {
                // A command is a shell line (`$ `), a write is not; a
                // multi-line argument (the VM script) is printed as it is
                // sent, not indented.
                let shown = if effect.starts_with("write ") {
                    effect
                } else {
                    format!("$ {effect}")
                };
                out.push_str("     ");
                out.push_str(&shown);
                out.push('\n');
            }
        }
        out
    }
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines().map(|l| format!("{prefix}{l}\n")).collect()
}
