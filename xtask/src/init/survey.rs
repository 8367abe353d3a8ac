//! The survey of `init`: which versions to look for, where they occur in
//! the tracked files, and the edit (or the reason for none) each gets.
//! A pure function of the files' texts, tested on tables of them.

use serde_json::Value;

use super::shape::Shape;
use crate::{
    config::{Config, EditRule},
    edit::{self, yaml},
    version::Version,
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
    pub fn of(config: Option<&Config>) -> Layout {
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
pub struct Occurrence<'a> {
    pub start: usize,
    pub end: usize,
    pub version: &'a str,
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
    let is_history = |h: &&str| {
        stem.strip_prefix(*h)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['_', '-']))
    };
    if prose && history.iter().any(is_history) {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::init::render::render;

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
            ("RELEASE_NOTES-2.md", "- 2.0.0.4\n"),
            ("newsletter.md", "**Версия:** `v2.0.0.4`\n"),
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
                (
                    "newsletter.md",
                    "{ find = \"**Версия:** `v{version}`\", count = 1 }"
                ),
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
            (
                "RELEASE_NOTES-2.md:1",
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
