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

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use serde_json::Value;
use xshell::Shell;

use crate::{
    changes::{self, FileChange},
    check,
    cli::Init,
    config::{self, Config, EditRule, VERSION_SLOT},
    edit::{self, env, yaml},
    version::{self, Version},
    UsageError,
};

/// Where the release files are: from release.toml when there is one,
/// otherwise the Nexy layout's defaults.
#[derive(Debug, Clone)]
pub struct Layout {
    pub version_file: String,
    pub manifest: String,
    pub other_manifests: Vec<String>,
    pub guide: String,
}

impl Layout {
    fn of(config: Option<&Config>) -> Layout {
        match config {
            Some(c) => Layout {
                version_file: c.version_file.clone(),
                manifest: c.stable().map_or_else(
                    |_| "server/updates/manifests/manifest.json".to_string(),
                    |s| s.manifest.clone(),
                ),
                other_manifests: c
                    .channels
                    .iter()
                    .filter(|(name, _)| *name != "stable")
                    .map(|(_, ch)| ch.manifest.clone())
                    .collect(),
                guide: c.guide.clone(),
            },
            None => Layout {
                version_file: "VERSION".into(),
                manifest: "server/updates/manifests/manifest.json".into(),
                other_manifests: Vec::new(),
                guide: "server/Docs/RELEASE_AND_UPDATE_GUIDE.md".into(),
            },
        }
    }
}

/// A version searched for and where it was read; the first is the one
/// the version file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub version: String,
    pub sources: Vec<String>,
}

/// One proposed edit and what it matches now (line, value).
#[derive(Debug, Clone)]
pub struct Proposed {
    pub rule: EditRule,
    pub found: Vec<(usize, String)>,
}

#[derive(Debug, Clone)]
pub struct Proposal {
    pub path: String,
    pub edits: Vec<Proposed>,
}

/// A place that holds a searched version and gets no edit, and why.
#[derive(Debug, Clone)]
pub struct Untouched {
    pub file: String,
    pub line: usize,
    pub version: String,
    pub why: String,
}

#[derive(Debug, Default)]
pub struct Survey {
    pub proposals: Vec<Proposal>,
    pub untouched: Vec<Untouched>,
    /// Places (`file:line`, or the manifest's key) and the other version
    /// they hold.
    pub disagree: Vec<(String, String)>,
}

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
                let text = changes::read_text(&root, &layout.version_file)
                    .context("pass the version with --version X.Y.Z.W")?;
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
        let Some(_) = config else {
            return Err(UsageError(format!(
                "{} does not exist; create it first (copy release.toml of the Nexy xtask), then run `cargo xtask init --write` again",
                config_path.display()
            ))
            .into());
        };
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

/// The version file's version, then the other versions the manifest and
/// the guide's `release_target:` hold.
pub fn candidates(primary: Version, layout: &Layout, files: &[(String, String)]) -> Vec<Candidate> {
    let text_of = |rel: &str| {
        files
            .iter()
            .find(|(r, _)| r == rel)
            .map(|(_, t)| t.as_str())
    };
    let mut found: Vec<(String, String)> = vec![(primary.to_string(), layout.version_file.clone())];
    if let Some(map) = text_of(&layout.manifest).and_then(|t| serde_json::from_str::<Value>(t).ok())
    {
        for key in ["version", "build"] {
            if let Some(v) = map.get(key).and_then(Value::as_str) {
                found.push((v.to_string(), format!("the manifest's {key}")));
            }
        }
    }
    if let Some(text) = text_of(&layout.guide) {
        if let Some(m) = yaml::find_all(text, "release_target.version").first() {
            found.push((m.value.clone(), "the guide's release_target".to_string()));
        }
    }
    let mut out: Vec<Candidate> = Vec::new();
    for (v, source) in found {
        if v.parse::<Version>().is_err() {
            continue;
        }
        match out.iter_mut().find(|c| c.version == v) {
            Some(c) => c.sources.push(source),
            None => out.push(Candidate {
                version: v,
                sources: vec![source],
            }),
        }
    }
    out
}

/// Where the searched versions occur in one file.
struct Occurrence<'a> {
    start: usize,
    end: usize,
    version: &'a str,
}

/// Every file's proposal, what is left alone, and what disagrees.
pub fn survey(layout: &Layout, candidates: &[Candidate], files: &[(String, String)]) -> Survey {
    let mut out = Survey::default();
    let primary = candidates[0].version.as_str();
    if let Some((_, text)) = files.iter().find(|(r, _)| *r == layout.manifest) {
        if let Ok(map) = serde_json::from_str::<Value>(text) {
            for key in ["version", "build"] {
                if let Some(v) = map
                    .get(key)
                    .and_then(Value::as_str)
                    .filter(|v| *v != primary)
                {
                    out.disagree
                        .push((format!("{} \"{key}\"", layout.manifest), v.to_string()));
                }
            }
        }
    }
    for (rel, text) in files {
        if *rel == layout.version_file || *rel == layout.manifest {
            continue;
        }
        let occ = occurrences(text, candidates);
        if occ.is_empty() {
            continue;
        }
        let line_of = |at: usize| text[..at].matches('\n').count() + 1;
        let mut leave = |o: &Occurrence, why: &str| {
            out.untouched.push(Untouched {
                file: rel.clone(),
                line: line_of(o.start),
                version: o.version.to_string(),
                why: why.to_string(),
            })
        };
        if let Some(why) = file_reason(rel, layout) {
            occ.iter().for_each(|o| leave(o, why));
            continue;
        }
        let tests_from = rel
            .ends_with(".rs")
            .then(|| text.find("#[cfg(test)]"))
            .flatten();
        let shape = Shape::of(rel, text);
        let mut rules: Vec<(EditRule, Vec<usize>)> = Vec::new();
        for (i, o) in occ.iter().enumerate() {
            if tests_from.is_some_and(|t| o.start > t) {
                leave(o, "test code or test data");
                continue;
            }
            match shape.propose(text, o, &occ) {
                Ok(rule) => match rules.iter_mut().find(|(r, _)| *r == rule) {
                    Some((_, idx)) => idx.push(i),
                    None => rules.push((rule, vec![i])),
                },
                Err(why) => leave(o, why),
            }
        }
        let mut edits = Vec::new();
        for (mut rule, idx) in rules {
            let found = edit::find_all(text, &rule).unwrap_or_default();
            // An edit that would also change a value that is not a
            // version we searched for is not safe to propose.
            let foreign = found
                .iter()
                .find(|m| !candidates.iter().any(|c| c.version == m.value));
            let covered = idx.iter().all(|&i| {
                found
                    .iter()
                    .any(|m| m.start == occ[i].start && m.end == occ[i].end)
            });
            if foreign.is_some() || !covered {
                let why = match foreign {
                    Some(m) => format!(
                        "its edit {} would also change line {} (`{}`); write an edit by hand",
                        edit::describe(&rule),
                        m.line,
                        m.value
                    ),
                    None => "no edit finds exactly this value; write one by hand".to_string(),
                };
                idx.iter().for_each(|&i| leave(&occ[i], &why));
                continue;
            }
            rule.count = found.len();
            for m in &found {
                if m.value != primary {
                    out.disagree
                        .push((format!("{rel}:{}", m.line), m.value.clone()));
                }
            }
            edits.push(Proposed {
                rule,
                found: found.into_iter().map(|m| (m.line, m.value)).collect(),
            });
        }
        if !edits.is_empty() {
            out.proposals.push(Proposal {
                path: rel.clone(),
                edits,
            });
        }
    }
    out
}

/// Every searched version in `text` that stands alone (not part of a
/// longer version such as 2.0.0.40 or 12.0.0.4), in order.
fn occurrences<'a>(text: &str, candidates: &'a [Candidate]) -> Vec<Occurrence<'a>> {
    let mut out = Vec::new();
    for c in candidates {
        for (start, _) in text.match_indices(c.version.as_str()) {
            let end = start + c.version.len();
            let before = text[..start].chars().next_back();
            let mut after = text[end..].chars();
            let next = after.next();
            let digit_after_dot =
                next == Some('.') && after.next().is_some_and(|c| c.is_ascii_digit());
            let joined = before.is_some_and(|b| b.is_ascii_digit() || b == '.')
                || next.is_some_and(|n| n.is_ascii_digit())
                || digit_after_dot;
            if !joined {
                out.push(Occurrence {
                    start,
                    end,
                    version: &c.version,
                });
            }
        }
    }
    out.sort_by_key(|o| o.start);
    out
}

/// Why a whole file is left alone, if it is.
fn file_reason(rel: &str, layout: &Layout) -> Option<&'static str> {
    if layout.other_manifests.iter().any(|m| m == rel) {
        return Some("another channel's manifest: `publish --channel` writes its version");
    }
    let name = rel.rsplit('/').next().unwrap_or(rel).to_ascii_lowercase();
    let history = [
        "changelog",
        "changes",
        "history",
        "news",
        "release_notes",
        "release-notes",
        "releasenotes",
        "latest_changes",
    ];
    let (stem, ext) = name.split_once('.').unwrap_or((&name, ""));
    let prose = ["", "md", "markdown", "txt", "rst", "adoc"].contains(&ext);
    if prose && history.iter().any(|h| stem.starts_with(h)) {
        return Some("a changelog: past versions stay as they were");
    }
    if name.ends_with(".lock") || name == "package-lock.json" {
        return Some("a lock file");
    }
    let test_dirs = [
        "tests",
        "test",
        "testdata",
        "fixtures",
        "golden",
        "__tests__",
        "spec",
    ];
    let in_test_dir = rel
        .split('/')
        .rev()
        .skip(1)
        .any(|dir| test_dirs.contains(&dir));
    if in_test_dir
        || name.starts_with("test_")
        || ["_test.", ".test.", "_spec."]
            .iter()
            .any(|t| name.contains(t))
    {
        return Some("test code or test data");
    }
    None
}

/// What a file's lines can be read as.
struct Shape {
    yaml_file: bool,
    markdown: bool,
    yaml: Vec<yaml::Entry>,
    env: Vec<env::Assignment>,
    /// Byte ranges inside Markdown code fences.
    fences: Vec<(usize, usize)>,
}

impl Shape {
    fn of(rel: &str, text: &str) -> Shape {
        let yaml_file = rel.ends_with(".yaml") || rel.ends_with(".yml");
        let markdown = rel.ends_with(".md") || rel.ends_with(".markdown");
        let mut fences = Vec::new();
        if markdown {
            let (mut offset, mut open) = (0, None);
            for line in text.split_inclusive('\n') {
                let fence =
                    line.trim_start().starts_with("```") || line.trim_start().starts_with("~~~");
                match (fence, open) {
                    (true, None) => open = Some(offset + line.len()),
                    (true, Some(from)) => {
                        fences.push((from, offset));
                        open = None;
                    }
                    _ => {}
                }
                offset += line.len();
            }
        }
        Shape {
            yaml_file,
            markdown,
            yaml: if yaml_file || markdown {
                yaml::entries(text)
            } else {
                Vec::new()
            },
            env: if markdown {
                Vec::new()
            } else {
                env::assignments(text)
            },
            fences,
        }
    }

    /// The edit that fits the line of `o`, or why there is none.
    fn propose(
        &self,
        text: &str,
        o: &Occurrence,
        all: &[Occurrence],
    ) -> Result<EditRule, &'static str> {
        let line_start = text[..o.start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[o.start..]
            .find('\n')
            .map_or(text.len(), |i| o.start + i);
        let line = text[line_start..line_end].trim_end_matches('\r');
        if all
            .iter()
            .filter(|p| (line_start..line_end).contains(&p.start))
            .count()
            > 1
        {
            return Err("more than one version on the line");
        }
        let body = line.trim_start();
        if body.starts_with('#') || body.starts_with("//") {
            return Err("in a comment or a heading");
        }
        let in_fence = self.fences.iter().any(|(a, b)| (*a..*b).contains(&o.start));
        if self.yaml_file || in_fence {
            if let Some(e) = self
                .yaml
                .iter()
                .find(|e| e.start <= o.start && o.end <= e.end)
            {
                if e.start == o.start && e.end == o.end {
                    return Ok(rule(|r| r.yaml = Some(e.path.clone())));
                }
                return Err("part of a longer YAML value");
            }
            return Err(if in_fence {
                "an example in a code block"
            } else {
                "not a YAML value"
            });
        }
        if let Some(a) = self
            .env
            .iter()
            .find(|a| a.start == o.start && a.end == o.end)
        {
            return Ok(rule(|r| r.env = Some(a.key.clone())));
        }
        let template = template_for(line, o.start - line_start, o.end - line_start)
            .ok_or("not a setting: prose, an example or part of a longer value")?;
        if self.markdown && !template.contains(':') {
            return Err("not a setting: prose, an example or part of a longer value");
        }
        Ok(rule(|r| r.find = Some(template)))
    }
}

/// An edit of one match; `survey` sets the count it really finds.
fn rule(set: impl FnOnce(&mut EditRule)) -> EditRule {
    let mut r = EditRule {
        count: 1,
        ..EditRule::default()
    };
    set(&mut r);
    r
}

/// A line-start template for a version that is the whole value of a
/// setting: after `key:`, `key =`, a bold Markdown label or a call's
/// argument, optionally quoted and `v`-prefixed, with nothing but a
/// comment after it. `None` for prose, examples and longer values.
fn template_for(line: &str, start: usize, end: usize) -> Option<String> {
    let indent = line.len() - line.trim_start().len();
    let prefix = line.get(indent..start)?;
    let mut core = prefix.strip_suffix('v').unwrap_or(prefix);
    let quote = core
        .chars()
        .next_back()
        .filter(|c| matches!(c, '"' | '\'' | '`'));
    if let Some(q) = quote {
        core = &core[..core.len() - q.len_utf8()];
    }
    let suffix = &line[end..];
    let after = match quote {
        Some(q) => {
            let closing: String = suffix
                .strip_prefix(q)?
                .chars()
                .take_while(|c| ")]};,".contains(*c))
                .collect();
            format!("{q}{closing}")
        }
        None if suffix.is_empty() || suffix.starts_with(char::is_whitespace) => String::new(),
        None => return None,
    };
    let rest = suffix[after.len()..].trim();
    let commented = ["#", "//", "<!--"].iter().any(|c| rest.starts_with(c));
    let key = core.trim_end().trim_end_matches('*').trim_end();
    let keyed = key.len() > 1 && key.ends_with([':', '=', ',', '(']);
    if !(rest.is_empty() || commented) || !keyed || prefix.contains(VERSION_SLOT) {
        return None;
    }
    Some(format!("{prefix}{VERSION_SLOT}{after}"))
}

/// `2.0.0.26 (VERSION), 2.0.0.32 (the manifest's version, ...)`.
fn searched(candidates: &[Candidate]) -> String {
    let parts: Vec<String> = candidates
        .iter()
        .map(|c| format!("{} ({})", c.version, c.sources.join(", ")))
        .collect();
    parts.join(" or ")
}

/// One `[[version_files]]` table, each edit commented with what it
/// matches now.
fn entry_toml(p: &Proposal) -> String {
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
fn notes(candidates: &[Candidate], survey: &Survey) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::of(None)
    }

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn proposals(s: &Survey) -> Vec<(String, String)> {
        s.proposals
            .iter()
            .flat_map(|p| {
                p.edits
                    .iter()
                    .map(|e| (p.path.clone(), edit::to_inline_toml(&e.rule)))
            })
            .collect()
    }

    #[test]
    fn each_line_gets_the_edit_that_fits_it() {
        let fs = files(&[
            ("VERSION", "2.0.0.4\n"),
            ("a.yaml", "server:\n  version: 2.0.0.4  # c\napi:\n  version: \"v1\"\n  note: \"built 2.0.0.4\"\n"),
            ("b.py", "def v():\n    return os.getenv('SERVER_VERSION', '2.0.0.4')\n"),
            ("c.env.example", "# SERVER_VERSION=2.0.0.4\nSERVER_BUILD=\"2.0.0.4\"\n"),
            ("d.md", "**Текущий релиз документации:** `v2.0.0.4`\nReleased 2.0.0.4 today.\n```yaml\nrelease_target:\n  version: \"2.0.0.4\"\n```\n```sh\ncargo xtask bump 2.0.0.4\n```\n"),
            ("CHANGELOG.md", "## 2.0.0.4\n"),
            ("x/tests/t.rs", "const V: &str = \"2.0.0.4\";\n"),
            ("e.rs", "fn main() {}\n#[cfg(test)]\nconst V: &str = \"2.0.0.4\";\n"),
            ("f.txt", "2.0.0.40 and 12.0.0.4 and 2.0.0.4.1\n"),
        ]);
        let c = candidates(Version([2, 0, 0, 4]), &layout(), &fs);
        let s = survey(&layout(), &c, &fs);
        assert_eq!(
            proposals(&s),
            [
                ("a.yaml", "{ yaml = \"server.version\", count = 1 }"),
                (
                    "b.py",
                    "{ find = \"return os.getenv('SERVER_VERSION', '{version}')\", count = 1 }"
                ),
                ("c.env.example", "{ env = \"SERVER_BUILD\", count = 1 }"),
                (
                    "d.md",
                    "{ find = \"**Текущий релиз документации:** `v{version}`\", count = 1 }"
                ),
                ("d.md", "{ yaml = \"release_target.version\", count = 1 }"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        let left: Vec<(String, &str)> = s
            .untouched
            .iter()
            .map(|u| (format!("{}:{}", u.file, u.line), u.why.as_str()))
            .collect();
        let want = [
            ("a.yaml:5", "part of a longer YAML value"),
            ("c.env.example:1", "in a comment or a heading"),
            (
                "d.md:2",
                "not a setting: prose, an example or part of a longer value",
            ),
            ("d.md:8", "an example in a code block"),
            (
                "CHANGELOG.md:1",
                "a changelog: past versions stay as they were",
            ),
            ("x/tests/t.rs:1", "test code or test data"),
            ("e.rs:3", "test code or test data"),
        ];
        assert_eq!(left, want.map(|(a, b)| (a.to_string(), b)));
        assert!(s.disagree.is_empty());
    }

    #[test]
    fn a_drifted_repository_is_searched_for_every_version_it_holds() {
        let fs = files(&[
            ("VERSION", "2.0.0.26\n"),
            (
                "server/updates/manifests/manifest.json",
                "{\"version\": \"2.0.0.32\", \"build\": \"2.0.0.32\"}\n",
            ),
            (
                "server/Docs/RELEASE_AND_UPDATE_GUIDE.md",
                "```yaml\nrelease_target:\n  version: \"2.0.0.15\"\n```\n",
            ),
            ("cfg.yaml", "updates:\n  default_version: 2.0.0.32  # c\n"),
        ]);
        let c = candidates(Version([2, 0, 0, 26]), &layout(), &fs);
        let versions: Vec<&str> = c.iter().map(|c| c.version.as_str()).collect();
        assert_eq!(versions, ["2.0.0.26", "2.0.0.32", "2.0.0.15"]);
        assert_eq!(
            c[1].sources,
            ["the manifest's version", "the manifest's build"]
        );
        let s = survey(&layout(), &c, &fs);
        assert_eq!(proposals(&s).len(), 2);
        let at: Vec<&str> = s.disagree.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(
            at,
            [
                "server/updates/manifests/manifest.json \"version\"",
                "server/updates/manifests/manifest.json \"build\"",
                "server/Docs/RELEASE_AND_UPDATE_GUIDE.md:3",
                "cfg.yaml:2",
            ]
        );
        let text = render(&c, &s, &BTreeSet::new());
        assert!(text.contains("#   cfg.yaml:2"), "{text}");
        assert!(
            text.contains("2.0.0.15  (the guide's release_target)"),
            "{text}"
        );
        let parsed: toml::Table = text.parse().expect("the output is TOML");
        assert_eq!(parsed["version_files"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn an_edit_that_would_change_another_value_is_not_proposed() {
        let fs = files(&[
            ("VERSION", "2.0.0.4\n"),
            ("g.ini", "version = 2.0.0.4\n[other]\nversion = 7\n"),
        ]);
        let c = candidates(Version([2, 0, 0, 4]), &layout(), &fs);
        let s = survey(&layout(), &c, &fs);
        assert!(s.proposals.is_empty());
        assert!(
            s.untouched[0]
                .why
                .contains("would also change line 3 (`7`)"),
            "{:?}",
            s.untouched
        );
    }
}
