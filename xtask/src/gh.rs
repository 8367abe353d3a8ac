//! The GitHub side of a release, through the real `gh` CLI.
//!
//! Reads go through `gh api` (the REST JSON carries `digest`, `state` and
//! `immutable`, which gh 2.23's `release view --json` does not know).
//! Writes are limited to what the no-404 swap needs: upload under a
//! temporary name, rename, delete. Nothing here creates a tag or a release,
//! and the token never appears on a command line: gh reads it from its own
//! config or from `GH_TOKEN` in the environment.

use std::{path::Path, time::Duration};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use xshell::{cmd, Shell};

use crate::proc;

/// Uploads of ~270 MB must finish in this time or the step fails.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const API_TIMEOUT: Duration = Duration::from_secs(120);

/// A release as the REST API returns it (the fields we use).
#[derive(Debug, Clone, Deserialize)]
pub struct Release {
    #[serde(default)]
    pub immutable: bool,
    #[serde(default)]
    pub assets: Vec<Asset>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Asset {
    pub id: u64,
    pub name: String,
    pub size: u64,
    #[serde(default)]
    pub state: String,
    /// `sha256:<hex>`, computed by GitHub on upload.
    #[serde(default)]
    pub digest: Option<String>,
}

impl Asset {
    /// The hex sha256 from `digest`, when GitHub reported one.
    pub fn sha256(&self) -> Option<&str> {
        self.digest
            .as_deref()
            .and_then(|d| d.strip_prefix("sha256:"))
    }
}

impl Release {
    pub fn asset(&self, name: &str) -> Option<&Asset> {
        self.assets.iter().find(|a| a.name == name)
    }
}

/// `gh` bound to one host and one repository.
pub struct Gh<'a> {
    sh: &'a Shell,
    host: String,
    repo: String,
}

impl<'a> Gh<'a> {
    pub fn new(sh: &'a Shell, host: &str, repo: &str) -> Gh<'a> {
        Gh {
            sh,
            host: host.to_string(),
            repo: repo.to_string(),
        }
    }

    pub fn repo(&self) -> &str {
        &self.repo
    }

    /// `gh auth status` for the configured host; the error carries gh's own
    /// words (which never include the token).
    pub fn auth_status(&self) -> Result<()> {
        let (sh, host) = (self.sh, &self.host);
        let out = proc::run(
            cmd!(sh, "gh auth status --hostname {host}"),
            "gh auth status",
            API_TIMEOUT,
        )?;
        if !out.success() {
            let said = last_lines(&format!("{}{}", out.stdout, out.stderr), 3);
            bail!("gh is not logged in to {host}: {said}; run `gh auth login --hostname {host}` or export GH_TOKEN");
        }
        Ok(())
    }

    /// The release behind a fixed tag, or `None` when the tag has none.
    pub fn release(&self, tag: &str) -> Result<Option<Release>> {
        let (sh, host) = (self.sh, &self.host);
        let path = format!("repos/{}/releases/tags/{tag}", self.repo);
        let out = proc::run(
            cmd!(sh, "gh api --hostname {host} {path}"),
            &format!("gh api {path}"),
            API_TIMEOUT,
        )?;
        if !out.success() {
            if out.stderr.contains("HTTP 404") {
                return Ok(None);
            }
            bail!(
                "`gh api {path}` failed: {}; check `gh auth status --hostname {host}`",
                last_lines(&out.stderr, 2)
            );
        }
        let release: Release = serde_json::from_str(&out.stdout)
            .with_context(|| format!("`gh api {path}` answered something that is not a release"))?;
        Ok(Some(release))
    }

    /// Uploads `file` to the release of `tag` under the file's own name,
    /// prepared to run beside others (see [`run_all`]). Never with
    /// `--clobber`: an existing asset of that name is an error.
    pub fn prepare_upload(&self, tag: &str, file: &Path) -> Prepared {
        let sh = self.sh;
        let target = format!("{}/{}", self.host, self.repo);
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Prepared {
            command: cmd!(sh, "gh release upload {tag} {file} -R {target}").into(),
            what: format!("gh release upload {tag} {name}"),
            failed: format!("uploading {name} to {tag} failed"),
        }
    }

    /// Renames an asset in place (`PATCH .../releases/assets/ID`).
    pub fn rename(&self, asset_id: u64, new_name: &str) -> Result<()> {
        let (sh, host) = (self.sh, &self.host);
        let path = format!("repos/{}/releases/assets/{asset_id}", self.repo);
        let field = format!("name={new_name}");
        let out = proc::run(
            cmd!(sh, "gh api --hostname {host} -X PATCH {path} -f {field}"),
            &format!("gh api -X PATCH {path}"),
            API_TIMEOUT,
        )?;
        if !out.success() {
            bail!(
                "renaming asset {asset_id} to {new_name} failed: {}",
                last_lines(&out.stderr, 2)
            );
        }
        Ok(())
    }

    /// Deletes an asset by id.
    pub fn delete(&self, asset_id: u64) -> Result<()> {
        let (sh, host) = (self.sh, &self.host);
        let path = format!("repos/{}/releases/assets/{asset_id}", self.repo);
        let out = proc::run(
            cmd!(sh, "gh api --hostname {host} -X DELETE {path}"),
            &format!("gh api -X DELETE {path}"),
            API_TIMEOUT,
        )?;
        if !out.success() && !out.stderr.contains("HTTP 404") {
            bail!(
                "deleting asset {asset_id} failed: {}",
                last_lines(&out.stderr, 2)
            );
        }
        Ok(())
    }

    /// Downloads one asset of `tag` into `dir`.
    pub fn download(&self, tag: &str, name: &str, dir: &Path) -> Result<()> {
        run_all(vec![self.prepare_download(tag, name, dir)])
            .pop()
            .unwrap_or_else(|| Err(anyhow::anyhow!("the download did not run")))
    }

    /// The download, prepared to run beside others (see [`run_all`]).
    pub fn prepare_download(&self, tag: &str, name: &str, dir: &Path) -> Prepared {
        let sh = self.sh;
        let target = format!("{}/{}", self.host, self.repo);
        Prepared {
            command: cmd!(
                sh,
                "gh release download {tag} -R {target} --pattern {name} --dir {dir} --clobber"
            )
            .into(),
            what: format!("gh release download {tag} --pattern {name}"),
            failed: format!("downloading {name} from {tag} failed"),
        }
    }
}

/// A long gh transfer, built on the one Shell, to run later.
pub struct Prepared {
    command: std::process::Command,
    what: String,
    failed: String,
}

/// Runs transfers side by side (they are independent: different assets),
/// each bounded; one result per transfer, in order.
pub fn run_all(prepared: Vec<Prepared>) -> Vec<Result<()>> {
    let failed: Vec<String> = prepared.iter().map(|p| p.failed.clone()).collect();
    let outputs = proc::run_parallel(
        prepared
            .into_iter()
            .map(|p| (p.command, p.what, UPLOAD_TIMEOUT))
            .collect(),
    );
    outputs
        .into_iter()
        .zip(failed)
        .map(|(out, failed)| {
            let out = out?;
            if !out.success() {
                bail!("{failed}: {}", last_lines(&out.stderr, 3));
            }
            Ok(())
        })
        .collect()
}

/// The last `n` non-empty lines of a command's output, joined.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(n);
    let joined = lines[start..].join(" / ");
    if joined.is_empty() {
        "no output".to_string()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rest_release_json() {
        // Fields we do not use (id, tag_name, urls) are ignored.
        let json = r#"{"id":1001,"tag_name":"Update","draft":false,"immutable":false,
            "assets":[{"id":7,"name":"Nexy.dmg","size":3,"state":"uploaded",
            "digest":"sha256:abc","url":"x","browser_download_url":"y"}]}"#;
        let r: Release = serde_json::from_str(json).unwrap();
        assert_eq!(r.asset("Nexy.dmg").unwrap().sha256(), Some("abc"));
        assert!(r.asset("Nexy.pkg").is_none());
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b / c");
    }
}
