//! The plan as people read it (`--dry-run`), with the commands each step
//! runs.

use super::{
    plan::{Step, PREV},
    Job,
};
use crate::{changes, hash};

impl Job<'_> {
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
                    "{n}. check {} (size and digest), then swap it in as {}\n     $ gh api --hostname {host} repos/{repo}/releases/tags/{}\n     $ gh api --hostname {host} -X PATCH repos/{repo}/releases/assets/<live id> -f name={}{PREV}<sha12>\n     $ gh api --hostname {host} -X PATCH repos/{repo}/releases/assets/<new id> -f name={}\n     $ gh api --hostname {host} -X DELETE repos/{repo}/releases/assets/<live id>",
                    local.temp_name(),
                    local.name(),
                    local.tag,
                    local.name(),
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
                    self.vm_target().sync_script(version, manifest, self.channel_name == "stable").len()
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
