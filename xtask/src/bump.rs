//! `cargo xtask bump X.Y.Z.W`: one version everywhere (runbook section 1).
//!
//! The plan (every file's new text) is computed and validated in full
//! before anything is written; `--dry-run` prints that same plan as a diff.

use std::path::Path;

use anyhow::{bail, Result};
use serde_json::Value;
use xshell::Shell;

use crate::{
    changes::{self, FileChange},
    cli::Bump,
    config::Workspace,
    linked, manifest,
    version::{self, Version},
    UsageError,
};

/// What VERSION says before the bump.
enum Current {
    Good(Version),
    /// The file could not be parsed (a note says how); `fallback` is the
    /// manifest's version used for the downgrade check instead.
    Broken {
        fallback: Option<Version>,
    },
}

impl Bump {
    pub fn run(self, _sh: &Shell, ws: &Workspace) -> Result<()> {
        let target: Version = self
            .version
            .parse()
            .map_err(|e| UsageError(format!("{e}")))?;
        let plan = plan(&ws.root, ws, target)?;
        for note in &plan.notes {
            crate::say!("{note}");
        }
        let reference = match &plan.current {
            Current::Good(v) => Some(*v),
            Current::Broken { fallback, .. } => *fallback,
        };
        if let Some(from) = reference {
            if target < from && !self.allow_downgrade {
                bail!(
                    "{target} is lower than the current version {from}; pass --allow-downgrade if you mean to go back"
                );
            }
        }
        if plan.changes.is_empty() {
            crate::say!("nothing to change: every linked file already says {target}");
            return Ok(());
        }
        if self.dry_run {
            crate::output::say_raw(&changes::unified_diff(&plan.changes));
            crate::say!(
                "dry run: {} file(s) would change; nothing was written",
                plan.changes.len()
            );
            return Ok(());
        }
        changes::apply(&plan.changes)?;
        match reference {
            Some(from) if from != target => crate::say!(
                "bumped {from} -> {target} ({})",
                version::describe_move(from, target)
            ),
            _ => crate::say!("synced every linked file to {target}"),
        }
        for change in &plan.changes {
            crate::say!("  changed {}", change.rel);
        }
        Ok(())
    }
}

struct Plan {
    current: Current,
    changes: Vec<FileChange>,
    notes: Vec<String>,
}

/// Computes every file's new text, collecting all problems before failing.
fn plan(root: &Path, ws: &Workspace, target: Version) -> Result<Plan> {
    let config = &ws.config;
    let mut problems = Vec::new();
    let mut changes = Vec::new();
    let mut notes = Vec::new();
    let new_version = target.to_string();

    // The manifest first: its version is the fallback reference when
    // VERSION itself is unreadable.
    let stable = config.stable()?;
    let mut manifest_version = None;
    match changes::read_text(root, &stable.manifest).and_then(|text| {
        let map = manifest::parse(&stable.manifest, &text)?;
        manifest::str_field(&stable.manifest, &map, "version")?;
        manifest::str_field(&stable.manifest, &map, "build")?;
        Ok((text, map))
    }) {
        Ok((text, mut map)) => {
            manifest_version = map
                .get("version")
                .and_then(Value::as_str)
                .and_then(|v| v.parse().ok());
            let differs = ["version", "build"]
                .iter()
                .any(|k| map.get(*k).and_then(Value::as_str) != Some(new_version.as_str()));
            if differs {
                for key in ["version", "build"] {
                    map.insert(key.to_string(), Value::String(new_version.clone()));
                }
                map.insert(
                    "release_date".to_string(),
                    Value::String(manifest::now_isoformat()),
                );
                changes.push(FileChange {
                    rel: stable.manifest.clone(),
                    abs: root.join(&stable.manifest),
                    old: text,
                    new: manifest::to_python_json(&map),
                });
            }
        }
        Err(err) => problems.push(format!("{err:#}")),
    }

    let current = match changes::read_text(root, &config.version_file) {
        Ok(text) => {
            let current = match version::parse_version_file(&text) {
                Ok(v) => Current::Good(v),
                Err(why) => {
                    notes.push(format!(
                        "{} is unreadable ({why}); it will be rewritten as {new_version}",
                        config.version_file
                    ));
                    Current::Broken {
                        fallback: manifest_version,
                    }
                }
            };
            let canonical = format!("{new_version}\n");
            if text != canonical {
                changes.insert(
                    0,
                    FileChange {
                        rel: config.version_file.clone(),
                        abs: root.join(&config.version_file),
                        old: text,
                        new: canonical,
                    },
                );
            }
            current
        }
        Err(err) => {
            problems.push(format!("{err:#}"));
            Current::Broken {
                fallback: manifest_version,
            }
        }
    };

    let (files, linked_problems) = linked::read_all(root, config);
    problems.extend(linked_problems);
    for file in files {
        let spans: Vec<(usize, usize)> = file
            .occurrences
            .iter()
            .filter(|o| o.found != new_version)
            .map(|o| (o.start, o.end))
            .collect();
        if !spans.is_empty() {
            let new = crate::edit::replace_spans(&file.text, &spans, &new_version);
            changes.push(FileChange {
                abs: root.join(&file.rel),
                rel: file.rel,
                old: file.text,
                new,
            });
        }
    }

    for change in &changes {
        if let Err(err) = changes::ensure_writable(root, &change.rel) {
            problems.push(format!("{err:#}"));
        }
    }
    if !problems.is_empty() {
        bail!(
            "bump to {new_version} stopped before writing anything:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(Plan {
        current,
        changes,
        notes,
    })
}
