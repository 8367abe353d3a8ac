//! The GitHub side of a release, through the real `gh` CLI.
//!
//! Reads go through `gh api` (the REST JSON carries `digest`, `state` and
//! `immutable`, which gh 2.23's `release view --json` does not know).
//! Writes are limited to what the no-404 swap needs: upload under a
//! temporary name, rename, delete. Nothing here creates a tag or a release,
//! and the token never appears on a command line: gh reads it from its own
//! config or from `GH_TOKEN` in the environment.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use xshell::{cmd, Shell};

use crate::{
    ghenv, proc,
    progress::{self, FileWatch, Meter},
    util::last_lines,
};

/// Uploads of ~270 MB must finish in this time or the step fails.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const API_TIMEOUT: Duration = Duration::from_secs(120);
/// What gh itself sends with `-f` fields.
const JSON_CONTENT_TYPE: &str = "Content-Type: application/json; charset=utf-8";

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
    /// What the uploader sent as `Content-Type`; GitHub serves it again.
    #[serde(default)]
    pub content_type: String,
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

    /// `gh auth status` for the configured host, to show the operator; its
    /// exit code proves nothing across gh versions (see `auth`), so the
    /// caller reads the raw output.
    pub fn prepare_auth_status(&self) -> Prepared {
        let (sh, host) = (self.sh, &self.host);
        Prepared {
            command: ghenv::command(cmd!(sh, "gh auth status --hostname {host}")),
            what: "gh auth status".to_string(),
            failed: format!("`gh auth status --hostname {host}` failed"),
            timeout: API_TIMEOUT,
            allow_404: false,
            stdin: None,
        }
    }

    /// `gh api PATH` (a GET) on the configured host.
    pub fn prepare_get(&self, path: &str) -> Prepared {
        let (sh, host) = (self.sh, &self.host);
        Prepared {
            command: ghenv::command(cmd!(sh, "gh api --hostname {host} {path}")),
            what: format!("gh api {path}"),
            failed: format!("`gh api {path}` failed"),
            timeout: API_TIMEOUT,
            allow_404: false,
            stdin: None,
        }
    }

    /// The GraphQL `viewer`'s login: who the token is, for tokens that
    /// may not read `GET /user` (GitHub Apps' installation tokens).
    pub fn prepare_viewer(&self) -> Prepared {
        let (sh, host) = (self.sh, &self.host);
        let query = "query=query{viewer{login}}";
        Prepared {
            command: ghenv::command(cmd!(sh, "gh api --hostname {host} graphql -f {query}")),
            what: "gh api graphql viewer".to_string(),
            failed: "`gh api graphql` (viewer) failed".to_string(),
            timeout: API_TIMEOUT,
            allow_404: false,
            stdin: None,
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The release behind a fixed tag, or `None` when the tag has none.
    pub fn release(&self, tag: &str) -> Result<Option<Release>> {
        let out = run_one(self.prepare_release(tag))?;
        parse_release(&out, tag)
    }

    /// The release read, prepared to run beside others.
    pub fn prepare_release(&self, tag: &str) -> Prepared {
        let (sh, host) = (self.sh, &self.host);
        let path = format!("repos/{}/releases/tags/{tag}", self.repo);
        Prepared {
            command: ghenv::command(cmd!(sh, "gh api --hostname {host} {path}")),
            what: format!("gh api {path}"),
            failed: format!("`gh api {path}` failed (check `gh auth status --hostname {host}`)"),
            timeout: API_TIMEOUT,
            allow_404: true,
            stdin: None,
        }
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
            command: ghenv::command(cmd!(sh, "gh release upload {tag} {file} -R {target}")),
            what: format!("gh release upload {tag} {name}"),
            failed: format!("uploading {name} to {tag} failed"),
            timeout: UPLOAD_TIMEOUT,
            allow_404: false,
            stdin: None,
        }
    }

    /// Renames an asset in place (`PATCH .../releases/assets/ID`).
    pub fn rename(&self, asset_id: u64, new_name: &str) -> Result<()> {
        self.stage_rename(asset_id, new_name)?.fire().map(|_| ())
    }

    /// The rename as a call that reads its JSON body (`{"name":"NEW"}`,
    /// what `-f name=NEW` sends) from stdin. `asset_id` is an id, or in a
    /// dry run a placeholder for one not known before an upload.
    pub fn prepare_rename(&self, asset_id: impl std::fmt::Display, new_name: &str) -> Prepared {
        let (sh, host) = (self.sh, &self.host);
        let path = format!("repos/{}/releases/assets/{asset_id}", self.repo);
        let content_type = JSON_CONTENT_TYPE;
        Prepared {
            command: ghenv::command(cmd!(
                sh,
                "gh api --hostname {host} -X PATCH {path} -H {content_type} --input -"
            )),
            what: format!("gh api -X PATCH {path}"),
            failed: format!("renaming asset {asset_id} to {new_name} failed"),
            timeout: API_TIMEOUT,
            allow_404: false,
            stdin: Some(
                serde_json::json!({ "name": new_name })
                    .to_string()
                    .into_bytes(),
            ),
        }
    }

    /// The rename, started and connected but not yet sent: `gh api --input -`
    /// waits for the body until [`StagedCall::fire`]. Only calls that do
    /// nothing without their body may be staged: if our process dies, the
    /// pipe closes and gh sends an empty body, and an empty PATCH renames
    /// nothing. A DELETE needs no body, so deletes are never staged.
    pub fn stage_rename(&self, asset_id: u64, new_name: &str) -> Result<StagedCall> {
        stage(self.prepare_rename(asset_id, new_name))
    }

    /// The release of `tag` as a call that can be staged: `-X GET --input -`
    /// makes gh start, connect and wait for its stdin, and the empty body
    /// it is then sent makes a plain GET (Go's HTTP client sends no body
    /// for an empty one). A read, so it is harmless whenever it is sent,
    /// even by a dying run: the swap stages it while the uploads run.
    pub fn prepare_release_staged(&self, tag: &str) -> Prepared {
        let (sh, host) = (self.sh, &self.host);
        let path = format!("repos/{}/releases/tags/{tag}", self.repo);
        Prepared {
            command: ghenv::command(cmd!(sh, "gh api --hostname {host} -X GET {path} --input -")),
            stdin: Some(Vec::new()),
            ..self.prepare_release(tag)
        }
    }

    /// [`Gh::prepare_release_staged`], started and connected, not yet sent.
    pub fn stage_release(&self, tag: &str) -> Result<StagedCall> {
        stage(self.prepare_release_staged(tag))
    }

    /// Deletes an asset by id; an asset already gone is fine.
    pub fn delete(&self, asset_id: u64) -> Result<()> {
        run_one(self.prepare_delete(asset_id)).map(|_| ())
    }

    pub fn prepare_delete(&self, asset_id: impl std::fmt::Display) -> Prepared {
        let (sh, host) = (self.sh, &self.host);
        let path = format!("repos/{}/releases/assets/{asset_id}", self.repo);
        Prepared {
            command: ghenv::command(cmd!(sh, "gh api --hostname {host} -X DELETE {path}")),
            what: format!("gh api -X DELETE {path}"),
            failed: format!("deleting asset {asset_id} failed"),
            timeout: API_TIMEOUT,
            allow_404: true,
            stdin: None,
        }
    }

    /// Downloads one asset of `tag` into `dir`, prepared to run beside
    /// others (see [`run_metered`]).
    pub fn prepare_download(&self, tag: &str, name: &str, dir: &Path) -> Prepared {
        let sh = self.sh;
        let target = format!("{}/{}", self.host, self.repo);
        Prepared {
            command: ghenv::command(cmd!(
                sh,
                "gh release download {tag} -R {target} --pattern {name} --dir {dir} --clobber"
            )),
            what: format!("gh release download {tag} --pattern {name}"),
            failed: format!("downloading {name} from {tag} failed"),
            timeout: UPLOAD_TIMEOUT,
            allow_404: false,
            stdin: None,
        }
    }
}

/// A gh call built on the one Shell, to run later, possibly beside
/// others (different assets, so independent).
pub struct Prepared {
    command: std::process::Command,
    what: String,
    failed: String,
    timeout: Duration,
    /// A 404 is an answer (a missing release or asset), not a failure.
    allow_404: bool,
    /// The request body gh reads with `--input -`.
    stdin: Option<Vec<u8>>,
}

/// Starts `p` with its stdin held (see [`proc::stage`]).
fn stage(p: Prepared) -> Result<StagedCall> {
    let staged = proc::stage(p.command, &p.what, p.timeout)?;
    Ok(StagedCall {
        staged,
        body: p.stdin.unwrap_or_default(),
        failed: p.failed,
        allow_404: p.allow_404,
    })
}

/// A gh call staged ahead of the moment it matters (see [`proc::Staged`]),
/// with the request body it will send. Dropped unfired, gh is killed
/// before it sent anything.
pub struct StagedCall {
    staged: proc::Staged,
    body: Vec<u8>,
    failed: String,
    allow_404: bool,
}

impl StagedCall {
    /// Sends the request: one round trip, gh's start-up already paid.
    pub fn fire(self) -> Result<proc::Output> {
        check(self.staged.send(&self.body)?, &self.failed, self.allow_404)
    }
}

/// Fires each chain of staged calls in order, the chains side by side,
/// once every call is connected; a failed call drops the rest of its chain
/// unsent. One result per chain: how long it took from its first send to
/// its last answer.
pub fn fire_chains(mut chains: Vec<Vec<StagedCall>>) -> Vec<Result<Duration>> {
    let mut staged: Vec<&mut proc::Staged> =
        chains.iter_mut().flatten().map(|c| &mut c.staged).collect();
    proc::await_connected(&mut staged, Duration::from_secs(2));
    proc::side_by_side(chains, |chain| {
        let started = std::time::Instant::now();
        for call in chain {
            call.fire()?;
        }
        Ok(started.elapsed())
    })
}

/// Fires staged calls side by side once each is connected (at most 2 s
/// from now); one result per call, in order. A call that failed to stage
/// is its error.
pub fn fire_all(mut calls: Vec<Result<StagedCall>>) -> Vec<Result<proc::Output>> {
    let mut staged: Vec<&mut proc::Staged> =
        calls.iter_mut().flatten().map(|c| &mut c.staged).collect();
    proc::await_connected(&mut staged, Duration::from_secs(2));
    proc::side_by_side(calls, |call| call?.fire())
}

/// Runs calls side by side, each bounded; one result per call, in order.
/// A failed call's error carries gh's last words.
pub fn run_outputs(prepared: Vec<Prepared>) -> Vec<Result<proc::Output>> {
    run_outputs_watched(
        prepared
            .into_iter()
            .map(|p| (p, Box::new(|_| {}) as proc::Tick))
            .collect(),
    )
}

/// [`run_outputs`], calling each call's tick at its polls (progress).
pub fn run_outputs_watched(calls: Vec<(Prepared, proc::Tick<'_>)>) -> Vec<Result<proc::Output>> {
    let mut checks = Vec::new();
    let mut commands = Vec::new();
    for (p, tick) in calls {
        let (parts, check) = p.into_parts();
        checks.push(check);
        commands.push((parts, tick));
    }
    proc::run_parallel_watched(commands)
        .into_iter()
        .zip(checks)
        .map(|(out, check)| check(out?))
        .collect()
}

/// Runs transfers side by side (see [`run_outputs`]), showing a progress
/// meter for each one that has a local file: the file gh reads (upload) or
/// writes (download).
pub fn run_metered(calls: Vec<(Prepared, Option<(PathBuf, Meter)>)>) -> Vec<Result<proc::Output>> {
    let (prepared, meters): (Vec<Prepared>, Vec<Option<(PathBuf, Meter)>>) =
        calls.into_iter().unzip();
    let shown: Vec<&Meter> = meters.iter().flatten().map(|(_, m)| m).collect();
    let run = || {
        let calls = prepared
            .into_iter()
            .zip(&meters)
            .map(|(p, meter)| {
                let tick: proc::Tick = match meter {
                    Some((file, meter)) => {
                        let mut watch = FileWatch::new(file, meter);
                        Box::new(move |pid| watch.tick(pid))
                    }
                    None => Box::new(|_| {}),
                };
                (p, tick)
            })
            .collect();
        run_outputs_watched(calls)
    };
    progress::show(&shown, run, |results: &Vec<Result<proc::Output>>| {
        results.iter().all(Result::is_ok)
    })
}

/// A finished call's output, or its failure with gh's last words.
fn check(out: proc::Output, failed: &str, allow_404: bool) -> Result<proc::Output> {
    let answered_404 = allow_404 && out.stderr.contains("HTTP 404");
    if !(out.success() || answered_404) {
        bail!("{failed}: {}", last_lines(&out.stderr, 3));
    }
    Ok(out)
}

impl Prepared {
    /// The call as the shell line it runs (see `effect::describe`).
    pub fn describe(&self) -> String {
        crate::effect::describe(&self.command, self.stdin.as_deref())
    }

    /// The parts `proc::run_parallel` takes, and the check of the output.
    pub fn into_parts(
        self,
    ) -> (
        (std::process::Command, String, Duration),
        impl FnOnce(proc::Output) -> Result<proc::Output>,
    ) {
        let (failed, allow_404) = (self.failed, self.allow_404);
        ((self.command, self.what, self.timeout), move |out| {
            check(out, &failed, allow_404)
        })
    }
}

/// [`run_outputs`] for calls whose output does not matter.
pub fn run_all(prepared: Vec<Prepared>) -> Vec<Result<()>> {
    run_outputs(prepared)
        .into_iter()
        .map(|r| r.map(|_| ()))
        .collect()
}

fn run_one(prepared: Prepared) -> Result<proc::Output> {
    run_outputs(vec![prepared])
        .pop()
        .unwrap_or_else(|| Err(anyhow::anyhow!("the gh call did not run")))
}

/// A release from `gh api .../releases/tags/TAG`; `None` on 404.
pub fn parse_release(out: &proc::Output, tag: &str) -> Result<Option<Release>> {
    if !out.success() {
        return Ok(None);
    }
    let release: Release = serde_json::from_str(&out.stdout)
        .with_context(|| format!("gh's answer for the release `{tag}` is not a release"))?;
    Ok(Some(release))
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
    }
}
