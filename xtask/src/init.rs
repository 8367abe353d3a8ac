//! `cargo xtask init [--write] [--version X.Y.Z.W]`: adopting the tool in
//! an existing monorepo.
//!
//! It reads the version (the version file, or `--version`) and, because a
//! drifted repository is the normal case, also the versions that the stable
//! manifest and the guide's `release_target:` hold. It finds every tracked
//! text file that holds any of them and proposes one `[[version_files]]`
//! entry per file, with the kind of edit that fits each line (a YAML key
//! path, an env `KEY=`, or a literal template) and the count that edit
//! matches. Occurrences it would not touch (a changelog, tests, prose) are
//! listed for a person to judge, and every place that holds another version
//! than the version file is named. The survey is a pure function of the
//! files' texts; only `--write` changes anything, and it appends to
//! release.toml so that the file's own comments stay.

mod render;
mod shape;
mod survey;

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use xshell::Shell;

use crate::{
    changes::{self, FileChange},
    check,
    cli::Init,
    config::{self, Config},
    version::{self, Version},
    UsageError,
};

use self::{
    render::{entry_toml, notes, render, searched},
    survey::{candidates, survey, Candidate, Layout, Proposal, Survey},
};

impl Init {
    pub fn run(self, sh: &Shell, root: Option<&Path>, config: Option<&Path>) -> Result<()> {
        let usage = |e: anyhow::Error| anyhow::Error::new(UsageError(format!("{e:#}")));
        // Adopting the tool often starts without a release.toml: then the
        // current directory is the root.
        let root = match root {
            Some(_) => config::find_root(root).map_err(usage)?,
            None => config::find_root(None).or_else(|_| {
                std::env::current_dir().context("cannot read the current directory")
            })?,
        };
        let config_path = config.map_or_else(|| root.join("release.toml"), Path::to_path_buf);
        let config = if config_path.is_file() {
            Some(Config::load(&config_path).map_err(usage)?)
        } else {
            None
        };
        let layout = Layout::of(config.as_ref());
        let primary: Version = match &self.version {
            Some(v) => v
                .parse()
                .map_err(|e| UsageError(format!("--version {v}: {e}")))?,
            None => {
                let text = changes::read_text(&root, &layout.version_file).map_err(|e| {
                    anyhow::anyhow!("{e:#}; or pass the version with --version X.Y.Z.W")
                })?;
                version::parse_version_file(&text).map_err(|why| {
                    anyhow::anyhow!(
                        "{} is unreadable ({why}); pass the version with --version X.Y.Z.W",
                        layout.version_file
                    )
                })?
            }
        };
        let files = read_tracked(sh, &root)?;
        let candidates = candidates(primary, &layout, &files);
        let survey = survey(&layout, &candidates, &files);
        let listed: BTreeSet<String> = config
            .iter()
            .flat_map(|c| &c.version_files)
            .map(|f| f.path.clone())
            .collect();
        if !self.write {
            crate::output::say_raw(&render(&candidates, &survey, &listed));
            return Ok(());
        }
        if config.is_none() {
            return Err(UsageError(format!(
                "{} does not exist; create it first (copy release.toml of the Nexy xtask), then run `cargo xtask init --write` again",
                config_path.display()
            ))
            .into());
        }
        write(&config_path, &candidates, &survey, &listed)
    }
}

/// Appends the entries of files release.toml does not list yet, after
/// checking that the result is still a valid configuration.
fn write(
    config_path: &Path,
    candidates: &[Candidate],
    survey: &Survey,
    listed: &BTreeSet<String>,
) -> Result<()> {
    let fresh: Vec<&Proposal> = survey
        .proposals
        .iter()
        .filter(|p| !listed.contains(&p.path))
        .collect();
    let shown = config_path.display().to_string();
    if fresh.is_empty() {
        crate::say!("{shown} already lists every file that holds the version; nothing written");
    } else {
        let old =
            fs::read_to_string(config_path).with_context(|| format!("cannot read {shown}"))?;
        let mut new = old.clone();
        if !new.ends_with('\n') {
            new.push('\n');
        }
        new.push_str(&format!(
            "\n# Added by `cargo xtask init`: the tracked files that held {}.\n",
            searched(candidates)
        ));
        for p in &fresh {
            new.push('\n');
            new.push_str(&entry_toml(p));
        }
        Config::parse(&new, config_path).context(
            "the proposed entries do not make a valid release config; nothing was written",
        )?;
        let (dir, name) = (
            config_path.parent().unwrap_or(Path::new(".")),
            config_path
                .file_name()
                .map_or_else(|| shown.clone(), |n| n.to_string_lossy().into_owned()),
        );
        changes::ensure_writable(dir, &name)?;
        changes::apply(&[FileChange {
            rel: shown.clone(),
            abs: PathBuf::from(config_path),
            old,
            new,
        }])?;
        crate::say!(
            "added {} [[version_files]] entries to {shown}:",
            fresh.len()
        );
        for p in &fresh {
            crate::say!("  {}", p.path);
        }
    }
    for p in survey.proposals.iter().filter(|p| listed.contains(&p.path)) {
        crate::say!("  kept {} as release.toml lists it", p.path);
    }
    crate::output::say_raw(&notes(candidates, survey));
    Ok(())
}

/// The tracked text files and their contents; binary, huge and unreadable
/// files are skipped, since no version edit applies to them.
fn read_tracked(sh: &Shell, root: &Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for rel in check::tracked_files(sh, root)? {
        let path = root.join(&rel);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_file() || meta.len() > 8 << 20 {
            continue;
        }
        let Ok(bytes) = fs::read(&path) else { continue };
        if bytes.contains(&0) {
            continue;
        }
        if let Ok(text) = String::from_utf8(bytes) {
            out.push((rel, text));
        }
    }
    Ok(out)
}
