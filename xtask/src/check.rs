//! `cargo xtask check`: the developer pre-push check. Offline and fast.
//!
//! Every check runs, and all problems are reported together: version drift
//! of every linked file against VERSION, the manifest's validity, the
//! guide's `release_target:` block against the config, and a scan of the
//! tracked files for secrets. Exit 0 when clean, 1 with problems.
//! `--pre-push` and `--staged` (in `prepush.rs`) run the same tree checks on
//! a commit or the index and scan the lines being added instead.

use std::{collections::BTreeMap, fs, path::Path};

use anyhow::Result;
use serde_json::json;
use xshell::{cmd, Shell};

use crate::{
    changes,
    config::{AllowEntry, Config, Workspace},
    linked, manifest,
    report::CheckResult,
    secrets::{self, Finding},
    version,
};

/// The line that names the documented release in both guides.
pub const MARKER: &str = "**Текущий релиз документации:**";

/// A linked value that disagrees with VERSION.
pub(crate) struct Drift {
    at: String,
    expected: String,
    found: String,
}

#[derive(Default)]
pub(crate) struct Report {
    pub drift: Vec<Drift>,
    /// (section, problem) pairs; each problem says its fix.
    pub problems: Vec<(&'static str, String)>,
    pub secrets: Vec<Finding>,
    pub scanned: usize,
}

impl Report {
    pub fn count(&self) -> usize {
        self.drift.len() + self.problems.len() + self.secrets.len()
    }
}

/// Runs every check and prints the report; `Ok(false)` means problems.
pub fn run(sh: &Shell, ws: &Workspace) -> Result<bool> {
    let report = collect(sh, ws);
    crate::output::say_raw(&render(&report, ws));
    crate::output::emit(&crate::output::checks_doc("check", &as_checks(&report)));
    Ok(report.count() == 0)
}

/// The report as check results, for the JSON document: one failing check
/// per drift row, problem and secret, or one passing check when clean.
pub(crate) fn as_checks(report: &Report) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for d in &report.drift {
        out.push(
            CheckResult::fail(
                "version-drift",
                format!("{} says {}, VERSION says {}", d.at, d.found, d.expected),
                format!("cargo xtask bump {}", d.expected),
            )
            .with(json!({"file": d.at, "expected": d.expected, "found": d.found})),
        );
    }
    for (section, problem) in &report.problems {
        let id = match *section {
            "version" => "version-file",
            "linked files" => "linked-files",
            "manifest" => "manifest",
            "guide" => "guide",
            _ => "secrets",
        };
        out.push(CheckResult::fail(id, problem.clone(), "see the message"));
    }
    for f in &report.secrets {
        let (at, fix) = match &f.commit {
            Some(c) => (
                format!("commit {} {}:{}", c.sha, f.path, f.line),
                "rotate it, then remove it from the unpushed history (`git rebase -i`, or `git filter-repo --invert-paths --path FILE`) and push again",
            ),
            None => (
                format!("{}:{}", f.path, f.line),
                "remove it from the tracked file, rotate it, or allowlist it in release.toml",
            ),
        };
        let commit = f.commit.as_ref().map(|c| c.sha.as_str());
        out.push(
            CheckResult::fail("secret", format!("{at} {} {}", f.rule, f.masked), fix)
                .with(json!({"path": f.path, "line": f.line, "rule": f.rule, "commit": commit})),
        );
    }
    if out.is_empty() {
        out.push(
            CheckResult::pass("check", "clean").with(json!({"tracked_files": report.scanned})),
        );
    }
    out
}

/// What `check` finds, as typed results (the ones its JSON document
/// carries), for preflight.
pub fn results(sh: &Shell, ws: &Workspace) -> Vec<CheckResult> {
    as_checks(&collect(sh, ws))
}

fn collect(sh: &Shell, ws: &Workspace) -> Report {
    let (root, config) = (&ws.root, &ws.config);
    let mut report = tree_report(root, config);
    match tracked_files(sh, root) {
        Ok(paths) => {
            report.scanned = paths.len();
            for rel in paths {
                let Ok(meta) = fs::symlink_metadata(root.join(&rel)) else {
                    continue;
                };
                // Symlinks and huge files are not text we wrote by hand.
                if !meta.is_file() || meta.len() > 8 << 20 {
                    continue;
                }
                if let Ok(bytes) = fs::read(root.join(&rel)) {
                    report.secrets.extend(
                        secrets::scan(&rel, &bytes)
                            .into_iter()
                            .filter(|f| !allowed(&config.check.secret_allowlist, f)),
                    );
                }
            }
        }
        Err(err) => report.problems.push(("secrets", format!("{err:#}"))),
    }
    report
}

/// Every check but the secret scan, on the files under `root` (the working
/// tree, or a commit's files written out by the pre-push check).
pub(crate) fn tree_report(root: &Path, config: &Config) -> Report {
    let mut report = Report::default();
    let expected = match changes::read_text(root, &config.version_file) {
        Ok(text) => match version::parse_version_file(&text) {
            Ok(v) => Some(v.to_string()),
            Err(why) => {
                report.problems.push((
                    "version",
                    format!(
                        "{} is unreadable ({why}); repair it with `cargo xtask bump X.Y.Z.W`",
                        config.version_file
                    ),
                ));
                None
            }
        },
        Err(err) => {
            report.problems.push(("version", format!("{err:#}")));
            None
        }
    };

    let (files, problems) = linked::read_all(root, config);
    report
        .problems
        .extend(problems.into_iter().map(|p| ("linked files", p)));
    if let Some(expected) = &expected {
        for o in files.iter().flat_map(|f| &f.occurrences) {
            if &o.found != expected {
                report.drift.push(Drift {
                    at: format!("{}:{}", o.file, o.line),
                    expected: expected.clone(),
                    found: o.found.clone(),
                });
            }
        }
    }

    check_manifests(root, config, expected.as_deref(), &mut report);
    check_guide(root, config, expected.as_deref(), &mut report);
    report
}

/// The files the tree checks read, relative to the root: what the
/// pre-push check takes out of the pushed commit.
pub(crate) fn tree_files(config: &Config) -> Vec<String> {
    let mut out = vec![config.version_file.clone(), config.guide.clone()];
    out.extend(config.version_files.iter().map(|f| f.path.clone()));
    out.extend(config.channels.values().map(|c| c.manifest.clone()));
    out.sort();
    out.dedup();
    out
}

/// Manifest problems of every channel; the stable manifest's version and
/// build go to the drift table like every other linked value.
fn check_manifests(root: &Path, config: &Config, expected: Option<&str>, report: &mut Report) {
    for (name, channel) in &config.channels {
        let rel = &channel.manifest;
        let map = match changes::read_text(root, rel).and_then(|t| manifest::parse(rel, &t)) {
            Ok(map) => map,
            Err(err) => {
                report.problems.push(("manifest", format!("{err:#}")));
                continue;
            }
        };
        // Only stable follows VERSION; beta runs its own versions.
        let expected = if name == "stable" { expected } else { None };
        for key in ["version", "build"] {
            match (map.get(key).and_then(serde_json::Value::as_str), expected) {
                (Some(found), Some(want)) if found != want => report.drift.push(Drift {
                    at: format!("{rel} \"{key}\""),
                    expected: want.to_string(),
                    found: found.to_string(),
                }),
                (Some(_), _) => {}
                (None, _) => report.problems.push((
                    "manifest",
                    format!("{rel}: \"{key}\" is missing or not a string; run `cargo xtask bump X.Y.Z.W`"),
                )),
            }
        }
        for problem in manifest::problems(&map, channel) {
            report
                .problems
                .push(("manifest", format!("{rel}: {problem}")));
        }
    }
}

/// The guide's marker and `release_target:` block against the config.
fn check_guide(root: &Path, config: &Config, expected: Option<&str>, report: &mut Report) {
    let rel = &config.guide;
    let text = match changes::read_text(root, rel) {
        Ok(text) => text,
        Err(err) => {
            report.problems.push(("guide", format!("{err:#}")));
            return;
        }
    };
    if !text.lines().any(|l| l.trim_start().starts_with(MARKER)) {
        report.problems.push((
            "guide",
            format!(
                "{rel}: the marker line `{MARKER} `vX.Y.Z.W`` is missing; add it under the title"
            ),
        ));
    }
    let Some(block) = release_target_block(&text) else {
        report.problems.push((
            "guide",
            format!("{rel}: no `release_target:` block; restore it from git"),
        ));
        return;
    };
    let stable = config.stable().ok();
    let tls = config.grpc.tls.to_string();
    // The version is compared here only when the guide is not a linked
    // file already; otherwise the drift table reports it.
    let guide_is_linked = config.version_files.iter().any(|f| &f.path == rel);
    let mut wanted: Vec<(&str, Option<&str>)> = vec![
        ("azure.resource_group", Some(&config.azure.resource_group)),
        ("azure.vm_name", Some(&config.azure.vm_name)),
        ("server.host", Some(&config.server.host)),
        ("grpc.endpoint", Some(&config.grpc.endpoint)),
        ("grpc.tls", Some(&tls)),
        ("update.dmg_url", stable.map(|c| c.dmg_url.as_str())),
        ("update.pkg_url", stable.map(|c| c.pkg_url.as_str())),
    ];
    if !guide_is_linked {
        wanted.push(("version", expected));
    }
    for (key, want) in wanted {
        let Some(want) = want else { continue };
        match block.get(key) {
            Some(found) if found == want => {}
            Some(found) => report.problems.push((
                "guide",
                format!("{rel}: release_target {key} is `{found}` but the config says `{want}`; make them agree"),
            )),
            None => report.problems.push((
                "guide",
                format!("{rel}: release_target has no {key}; add `{want}`"),
            )),
        }
    }
}

/// The `release_target:` block as dotted keys and unquoted values. Only
/// the small YAML subset the guide uses (nested maps of scalars) is read.
fn release_target_block(text: &str) -> Option<BTreeMap<String, String>> {
    let mut lines = text.lines().skip_while(|l| l.trim() != "release_target:");
    lines.next()?;
    let mut out = BTreeMap::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    for line in lines {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || (!line.is_empty() && trimmed.len() == line.len()) {
            break;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let Some((key, value)) = trimmed.split_once(':') else {
            continue;
        };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let value = value.split(" #").next().unwrap_or("").trim();
        if value.is_empty() {
            stack.push((indent, key.trim().to_string()));
            continue;
        }
        let value = value.trim_matches('"').trim_matches('\'');
        let mut path: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
        path.push(key.trim());
        out.insert(path.join("."), value.to_string());
    }
    Some(out)
}

pub(crate) fn allowed(list: &[AllowEntry], finding: &Finding) -> bool {
    list.iter().any(|entry| {
        let path_ok = if entry.path.ends_with('/') {
            finding.path.starts_with(&entry.path)
        } else {
            finding.path == entry.path
        };
        path_ok && entry.rule.as_deref().is_none_or(|r| r == finding.rule)
    })
}

/// The files a push would carry: git's tracked files, or every file when
/// the root is not a git checkout (a release tarball, a test copy).
pub(crate) fn tracked_files(sh: &Shell, root: &Path) -> Result<Vec<String>> {
    let is_repo = root.join(".git").exists();
    if is_repo {
        let out = cmd!(sh, "git -C {root} ls-files -z")
            .quiet()
            .read()
            .map_err(|e| anyhow::anyhow!("`git ls-files` failed ({e}); is git installed?"))?;
        return Ok(out
            .split('\0')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect());
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if matches!(name.to_str(), Some(".git" | "target")) {
            continue;
        }
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(root, &path, out),
            Ok(t) if t.is_file() => {
                if let Ok(rel) = path.strip_prefix(root) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
            _ => {}
        }
    }
}

fn render(report: &Report, ws: &Workspace) -> String {
    let mut out = render_problems(report);
    if report.count() == 0 {
        out.push_str(&format!(
            "check: ok ({} linked files agree, {} manifest(s) and the guide valid, {} tracked files free of secrets)\n",
            ws.config.version_files.len() + 2,
            ws.config.channels.len(),
            report.scanned
        ));
    } else {
        out.push_str(&format!("check: {} problem(s)\n", report.count()));
    }
    out
}

/// The drift table, the problems by section and the secrets, without the
/// closing line. Secrets found in commits get the history remedy: a
/// deletion in a later commit leaves the key readable on the remote.
pub(crate) fn render_problems(report: &Report) -> String {
    let mut out = String::new();
    if !report.drift.is_empty() {
        out.push_str("version drift (fix: `cargo xtask bump <VERSION>` re-syncs every file):\n");
        let width = report
            .drift
            .iter()
            .map(|d| d.at.len())
            .max()
            .unwrap_or(4)
            .max(4);
        out.push_str(&format!(
            "  {:<width$}  {:<12}  found\n",
            "file", "expected"
        ));
        for d in &report.drift {
            out.push_str(&format!(
                "  {:<width$}  {:<12}  {}\n",
                d.at, d.expected, d.found
            ));
        }
    }
    let mut last = "";
    for (section, problem) in &report.problems {
        if *section != last {
            out.push_str(&format!("{section}:\n"));
            last = section;
        }
        out.push_str(&format!("  - {problem}\n"));
    }
    let (from_history, in_tree): (Vec<&Finding>, Vec<&Finding>) =
        report.secrets.iter().partition(|f| f.commit.is_some());
    if !from_history.is_empty() {
        out.push_str(&crate::secrets::render_history(&from_history));
    }
    if !in_tree.is_empty() {
        out.push_str(
            "secrets in tracked files (remove them, rotate the key, and `git rm --cached` if needed; \
             a harmless one goes to [check] secret_allowlist in release.toml):\n",
        );
        for f in in_tree {
            out.push_str(&format!(
                "  {}:{}  {}  {}\n",
                f.path, f.line, f.rule, f.masked
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_release_target_block() {
        let text = "x\n```yaml\nrelease_target:\n  version: \"2.0.0.4\"\n  azure:\n    resource_group: \"NexyNewRG\"  # c\n    vm_name: NexyNew\n  grpc:\n    tls: true\n```\nversion: \"9\"\n";
        let block = release_target_block(text).unwrap();
        assert_eq!(block["version"], "2.0.0.4");
        assert_eq!(block["azure.resource_group"], "NexyNewRG");
        assert_eq!(block["azure.vm_name"], "NexyNew");
        assert_eq!(block["grpc.tls"], "true");
        assert_eq!(block.len(), 4);
        assert!(release_target_block("nothing").is_none());
    }
}
