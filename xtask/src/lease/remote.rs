//! The gh calls of the lease, each bounded and read for the one refusal
//! that is not an error (a name taken: someone else holds it; an id gone:
//! someone removed it first).

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{config::Workspace, ghenv, proc};

use std::path::Path;

use super::{
    state::{parse_read, Seen},
    API_TIMEOUT, NAME,
};

/// gh calls for the lease, bound to the lease's release.
pub struct Remote {
    host: String,
    repo: String,
    tag: String,
}

impl Remote {
    pub fn of(ws: &Workspace) -> Result<Remote> {
        let stable =
            ws.config.channels.get("stable").context(
                "release.toml has no [channels.stable]; the lease lives on its DMG release",
            )?;
        Ok(Remote {
            host: ws.config.github.host.clone(),
            repo: ws.config.github.assets_repo.clone(),
            tag: stable.dmg_tag.clone(),
        })
    }

    pub fn where_(&self) -> String {
        format!("{NAME} on the `{}` release of {}", self.tag, self.repo)
    }

    pub fn read(&self, sh: &Shell) -> Result<Option<Seen>> {
        let (host, path) = (
            &self.host,
            format!("repos/{}/releases/tags/{}", self.repo, self.tag),
        );
        let out = proc::run_command(
            ghenv::command(cmd!(sh, "gh api -i --hostname {host} {path}")),
            "gh api -i (lease)",
            API_TIMEOUT,
        )?;
        if !out.success() && out.stderr.contains("HTTP 404") {
            bail!(
                "{} has no release for the fixed tag `{}`; a maintainer must restore it (this tool never creates tags)",
                self.repo,
                self.tag
            );
        }
        if !out.success() {
            bail!(
                "reading the lease failed (`gh api {path}`): {}; check `gh auth status --hostname {host}`",
                crate::util::last_lines(&out.stderr, 2)
            );
        }
        Ok(parse_read(&out.stdout)?.1)
    }

    /// Uploads the lease; `false` when an asset of that name exists.
    pub(super) fn upload(
        &self,
        sh: &Shell,
        file: &Path,
        label: &str,
        command: &str,
    ) -> Result<bool> {
        let (tag, target) = (&self.tag, format!("{}/{}", self.host, self.repo));
        let arg = format!("{}#{label}", file.display());
        let out = proc::run_command(
            ghenv::command(cmd!(sh, "gh release upload {tag} {arg} -R {target}")),
            "gh release upload (lease)",
            API_TIMEOUT,
        )?;
        if out.success() {
            return Ok(true);
        }
        // gh's own check ("already exists") or GitHub's 422 code; any other
        // refusal (an immutable release) is an error, never a wait.
        if out.stderr.contains("already exists") || out.stderr.contains("already_exists") {
            return Ok(false);
        }
        bail!(
            "taking the lease failed (gh release upload {tag} {NAME}): {}\nnothing was changed; check `gh auth status`, then run `cargo xtask {command}` again",
            crate::util::last_lines(&out.stderr, 2)
        )
    }

    /// Deletes the lease asset `id`; one that is gone already is fine.
    pub fn delete(&self, sh: &Shell, id: u64) -> Result<()> {
        let (host, path) = (
            &self.host,
            format!("repos/{}/releases/assets/{id}", self.repo),
        );
        let out = proc::run_command(
            ghenv::command(cmd!(sh, "gh api --hostname {host} -X DELETE {path}")),
            "gh api -X DELETE (lease)",
            API_TIMEOUT,
        )?;
        if out.success() || out.stderr.contains("HTTP 404") {
            return Ok(());
        }
        bail!(
            "removing the lease {id} failed: {}",
            crate::util::last_lines(&out.stderr, 2)
        )
    }

    /// Renews lease `id` with a new label; `false` when it is gone.
    pub(super) fn renew(&self, sh: &Shell, id: u64, label: &str) -> Result<bool> {
        let (host, path) = (
            &self.host,
            format!("repos/{}/releases/assets/{id}", self.repo),
        );
        let field = format!("label={label}");
        let out = proc::run_command(
            ghenv::command(cmd!(
                sh,
                "gh api --hostname {host} -X PATCH {path} -f {field}"
            )),
            "gh api -X PATCH (lease)",
            API_TIMEOUT,
        )?;
        if out.success() {
            return Ok(true);
        }
        if out.stderr.contains("HTTP 404") {
            return Ok(false);
        }
        bail!(
            "renewing the lease failed: {}",
            crate::util::last_lines(&out.stderr, 2)
        )
    }
}
