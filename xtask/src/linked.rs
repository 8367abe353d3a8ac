//! The version-linked files named in `release.toml`, read once and matched
//! against their edits. `bump` edits what this finds; `check` reports
//! what disagrees with VERSION.

use std::path::Path;

use crate::{changes, config::Config, edit};

/// One place in a linked file that carries the version.
#[derive(Debug, Clone)]
pub struct Occurrence {
    pub file: String,
    pub line: usize,
    pub found: String,
    pub start: usize,
    pub end: usize,
}

/// A linked file's text and its occurrences.
#[derive(Debug, Clone)]
pub struct LinkedFile {
    pub rel: String,
    pub text: String,
    pub occurrences: Vec<Occurrence>,
}

/// Reads every linked file; problems (missing files, template counts) are
/// collected, not thrown, so that all of them are reported together.
pub fn read_all(root: &Path, config: &Config) -> (Vec<LinkedFile>, Vec<String>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for vf in &config.version_files {
        let text = match changes::read_text(root, &vf.path) {
            Ok(text) => text,
            Err(err) => {
                problems.push(format!("{err:#}"));
                continue;
            }
        };
        let mut occurrences = Vec::new();
        for rule in &vf.edits {
            match edit::matches(&vf.path, &text, rule) {
                Ok(found) => occurrences.extend(found.into_iter().map(|m| Occurrence {
                    file: vf.path.clone(),
                    line: m.line,
                    found: m.value,
                    start: m.start,
                    end: m.end,
                })),
                Err(err) => problems.push(format!("{err:#}")),
            }
        }
        files.push(LinkedFile {
            rel: vf.path.clone(),
            text,
            occurrences,
        });
    }
    (files, problems)
}
