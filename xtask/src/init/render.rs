//! What `init` prints: the proposed `[[version_files]]` as TOML, and the
//! notes (what is left alone, what disagrees) as TOML comments, so the
//! output can be pasted or redirected as it is.

use std::collections::BTreeSet;

use super::survey::{Candidate, Proposal, Survey};
use crate::edit;

/// `2.0.0.26 (VERSION) or 2.0.0.32 (the manifest's version, ...)`.
pub fn searched(candidates: &[Candidate]) -> String {
    let parts: Vec<String> = candidates
        .iter()
        .map(|c| format!("{} ({})", c.version, c.sources.join(", ")))
        .collect();
    parts.join(" or ")
}

/// One `[[version_files]]` table, each edit commented with what it
/// matches now.
pub fn entry_toml(p: &Proposal) -> String {
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    let mut out = format!("[[version_files]]\npath = {}\nedits = [\n", quote(&p.path));
    for e in &p.edits {
        let lines: Vec<String> = e.found.iter().map(|(l, _)| l.to_string()).collect();
        let values: BTreeSet<&str> = e.found.iter().map(|(_, v)| v.as_str()).collect();
        let values: Vec<&str> = values.into_iter().collect();
        out.push_str(&format!(
            "  {},  # line {}: {}\n",
            edit::to_inline_toml(&e.rule),
            lines.join(", "),
            values.join(", ")
        ));
    }
    out.push_str("]\n");
    out
}

/// The proposal as TOML for release.toml; notes are TOML comments, so the
/// whole output can be pasted or redirected as it is.
pub fn render(candidates: &[Candidate], survey: &Survey, listed: &BTreeSet<String>) -> String {
    let mut out = format!(
        "# Proposed by `cargo xtask init` for release.toml: the tracked files that hold\n# {}.\n# Review the edits, then add them with `cargo xtask init --write`.\n",
        searched(candidates)
    );
    if survey.proposals.is_empty() {
        out.push_str("# No tracked file besides the version file and the manifest holds them.\n");
    }
    for p in &survey.proposals {
        out.push('\n');
        if listed.contains(&p.path) {
            out.push_str("# release.toml lists this file already; --write keeps its entry.\n");
        }
        out.push_str(&entry_toml(p));
    }
    out.push_str(&notes(candidates, survey));
    out
}

/// What is left alone and what disagrees, as comment lines.
pub fn notes(candidates: &[Candidate], survey: &Survey) -> String {
    let mut out = String::new();
    if !survey.untouched.is_empty() {
        out.push_str("\n# Not touched (judge them by hand):\n");
        // One row per file and reason, its lines listed: tests alone can
        // hold the version hundreds of times.
        let mut rows: Vec<(&str, Vec<usize>, BTreeSet<&str>, &str)> = Vec::new();
        for u in &survey.untouched {
            match rows.last_mut() {
                Some((file, lines, versions, why)) if *file == u.file && *why == u.why => {
                    if lines.last() != Some(&u.line) {
                        lines.push(u.line);
                    }
                    versions.insert(&u.version);
                }
                _ => rows.push((
                    &u.file,
                    vec![u.line],
                    BTreeSet::from([u.version.as_str()]),
                    &u.why,
                )),
            }
        }
        for (file, lines, versions, why) in rows {
            let shown: Vec<String> = lines.iter().take(8).map(ToString::to_string).collect();
            let more = if lines.len() > 8 {
                format!(",... ({} lines)", lines.len())
            } else {
                String::new()
            };
            let versions: Vec<&str> = versions.into_iter().collect();
            out.push_str(&format!(
                "#   {file}:{}{more}  {}: {why}\n",
                shown.join(","),
                versions.join(", ")
            ));
        }
    }
    if !survey.disagree.is_empty() {
        let primary = &candidates[0];
        out.push_str(&format!(
            "\n# These disagree with {} ({}):\n",
            primary.sources[0], primary.version
        ));
        let width = survey
            .disagree
            .iter()
            .map(|(at, _)| at.len())
            .max()
            .unwrap_or(0);
        for (at, found) in &survey.disagree {
            let from = candidates
                .iter()
                .find(|c| &c.version == found)
                .map_or(String::new(), |c| format!("  ({})", c.sources.join(", ")));
            out.push_str(&format!("#   {at:<width$}  {found}{from}\n"));
        }
        out.push_str(
            "# With the entries in release.toml, `cargo xtask check` lists this drift and\n# `cargo xtask bump X.Y.Z.W` puts one version everywhere.\n",
        );
    }
    out
}
