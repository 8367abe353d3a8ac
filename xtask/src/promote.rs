//! `cargo xtask promote --from beta --to stable`: the exact bytes tested on
//! one channel, to another.
//!
//! Nothing is rebuilt and no tag is created: the assets are downloaded from
//! the source channel's fixed tags, checked against the source manifest's
//! sha256 and size, and published to the target channel's tags with the
//! same no-404 swap; the target manifest takes the source's version,
//! digest and signature. Promoting what is already live is a no-op that
//! says so.

use std::{fs, time::Duration};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use xshell::Shell;

use crate::{
    artifact::Kind,
    changes::{self, FileChange},
    cli::Promote,
    config::{Workspace, INBOX},
    gh::Gh,
    hash, manifest,
    progress::Meter,
    publish::{Artifact, Job},
    report, say, verify,
};

impl Promote {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> Result<bool> {
        if self.from == self.to {
            bail!(
                "--from and --to are both `{}`; promote copies between two channels",
                self.from
            );
        }
        let from = ws.channel(&self.from)?.clone();
        let to = ws.channel(&self.to)?.clone();
        let source_text = changes::read_text(&ws.root, &from.manifest)?;
        let source = manifest::parse(&from.manifest, &source_text)?;
        let source_view = manifest::View::of(&source);
        let version = source_view.version.clone().with_context(|| {
            format!(
                "{} has no version; publish to {} first",
                from.manifest, self.from
            )
        })?;
        let want_sha = source_view.sha256.clone().unwrap_or_default();
        let want_size = source_view.size.unwrap_or(0);

        let gh = Gh::new(sh, &ws.config.github.host, &ws.config.github.assets_repo);
        let live_of = |tag: &str, name: &str| -> Result<Option<crate::gh::Asset>> {
            Ok(gh.release(tag)?.and_then(|r| r.asset(name).cloned()))
        };
        let src_dmg = live_of(&from.dmg_tag, "Nexy.dmg")?.with_context(|| {
            format!(
                "`{}` has no Nexy.dmg; publish to {} first",
                from.dmg_tag, self.from
            )
        })?;
        if src_dmg.sha256() != Some(want_sha.as_str()) || src_dmg.size != want_size {
            bail!(
                "the live {} Nexy.dmg ({} bytes, {:?}) is not what {} describes ({want_size} bytes, sha256:{want_sha}); verify {} before promoting",
                self.from, src_dmg.size, src_dmg.digest, from.manifest, self.from
            );
        }
        let src_pkg = live_of(&from.pkg_tag, "Nexy.pkg")?;

        // Already live on the target? Then there is nothing to copy.
        let dst_dmg = live_of(&to.dmg_tag, "Nexy.dmg")?;
        let dst_pkg = live_of(&to.pkg_tag, "Nexy.pkg")?;
        let target_text = changes::read_text(&ws.root, &to.manifest)?;
        let target = manifest::parse(&to.manifest, &target_text)?;
        let same = |a: &Option<crate::gh::Asset>, b: &Option<crate::gh::Asset>| match (a, b) {
            (Some(a), Some(b)) => a.digest.is_some() && a.digest == b.digest && a.size == b.size,
            (None, None) => true,
            _ => false,
        };
        let target_view = manifest::View::of(&target);
        if same(&Some(src_dmg.clone()), &dst_dmg)
            && same(&src_pkg, &dst_pkg)
            && target_view.version.as_deref() == Some(version.as_str())
            && target_view.sha256.as_deref() == Some(want_sha.as_str())
        {
            say!(
                "nothing to promote: {} already serves {version} with the same bytes as {}",
                self.to,
                self.from
            );
            let results = verify::dod(
                sh,
                ws,
                &self.to,
                false,
                Duration::from_secs(ws.config.verify.timeout_secs),
            )?;
            crate::output::say_raw(&report::render("verify (DoD)", &results));
            return Ok(report::all_pass(&results));
        }

        say!("promote {version} from {} to {}", self.from, self.to);
        let staging = ws
            .root
            .join(INBOX)
            .join(format!(".promote-{}", std::process::id()));
        let sources = [
            (Kind::Dmg, &from.dmg_tag, &to.dmg_tag, Some(&src_dmg)),
            (Kind::Pkg, &from.pkg_tag, &to.pkg_tag, src_pkg.as_ref()),
        ];
        let new = promoted_manifest(&target, &source, &to.dmg_url)?;
        let change = FileChange {
            rel: to.manifest.clone(),
            abs: ws.root.join(&to.manifest),
            old: target_text.clone(),
            new,
        };
        let mut job = Job::new(sh, ws, &self.to)?;
        job.command = "promote";
        if self.dry_run {
            // The same plan the real run makes, from the digests GitHub
            // reports for the source assets (the real run checks the
            // downloaded bytes against them).
            let mut artifacts = Vec::new();
            for (kind, tag, dst_tag, asset) in sources {
                let Some(asset) = asset else { continue };
                say!(
                    "  download {} from {tag} ({} bytes)",
                    kind.file_name(),
                    asset.size
                );
                say!(
                    "     $ {}",
                    gh.prepare_download(tag, kind.file_name(), &staging)
                        .describe()
                );
                artifacts.push(Artifact {
                    kind,
                    path: staging.join(kind.file_name()),
                    digest: hash::FileDigest {
                        sha256: asset.sha256().unwrap_or_default().to_string(),
                        size: asset.size,
                    },
                    tag: dst_tag.clone(),
                });
            }
            job.execute(&artifacts, Some(change), true)?;
            return Ok(true);
        }
        fs::create_dir_all(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        let result = (|| -> Result<bool> {
            let mut artifacts = Vec::new();
            for (kind, tag, dst_tag, asset) in sources {
                let Some(asset) = asset else { continue };
                let path = staging.join(kind.file_name());
                let meter = Meter::new("download", kind.file_name(), asset.size);
                let call = gh.prepare_download(tag, kind.file_name(), &staging);
                crate::gh::run_metered(vec![(call, Some((path.clone(), meter)))])
                    .pop()
                    .unwrap_or_else(|| Err(anyhow::anyhow!("the download did not run")))?;
                let digest = hash::file_digest(&path)?;
                if Some(digest.sha256.as_str()) != asset.sha256() || digest.size != asset.size {
                    bail!(
                        "the downloaded {} does not match {tag}'s digest (got sha256:{}); nothing was changed, run promote again",
                        kind.file_name(),
                        digest.sha256
                    );
                }
                artifacts.push(Artifact {
                    kind,
                    path,
                    digest,
                    tag: dst_tag.clone(),
                });
            }
            job.execute(&artifacts, Some(change), false)?;
            let results = verify::dod(
                sh,
                ws,
                &self.to,
                false,
                Duration::from_secs(ws.config.verify.timeout_secs),
            )?;
            crate::output::say_raw(&report::render("verify (DoD)", &results));
            Ok(report::all_pass(&results))
        })();
        let _ = fs::remove_dir_all(&staging);
        result
    }
}

/// The target manifest carrying the source's release: version, build,
/// size, sha256 and signature from the source; URLs of the target.
fn promoted_manifest(
    target: &serde_json::Map<String, Value>,
    source: &serde_json::Map<String, Value>,
    url: &str,
) -> Result<String> {
    let mut out = target.clone();
    for key in ["version", "build"] {
        if let Some(v) = source.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let src_art = source
        .get("artifact")
        .and_then(Value::as_object)
        .context("the source manifest has no artifact")?;
    let art = out
        .entry("artifact")
        .or_insert_with(|| Value::Object(serde_json::Map::new()))
        .as_object_mut()
        .context("the target manifest's artifact is not an object")?;
    for key in ["type", "size", "sha256", "ed25519", "arch", "min_os"] {
        if let Some(v) = src_art.get(key) {
            art.insert(key.into(), v.clone());
        }
    }
    art.insert("url".into(), Value::String(url.to_string()));
    out.insert("notes_url".into(), Value::String(url.to_string()));
    out.insert(
        "release_date".into(),
        Value::String(manifest::now_isoformat()),
    );
    Ok(manifest::to_python_json(&out))
}
