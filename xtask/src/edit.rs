//! The edits of `[[version_files]]`: where a linked file carries the
//! version, and the count check every edit states.
//!
//! Three kinds fit the files as they are: a literal template
//! (`template.rs`), the value of a YAML key path (`yaml.rs`) and the value
//! of an env file's `KEY=` lines (`env.rs`). Each finds spans of bytes that
//! hold the value and nothing else, so quoting, spacing, comments and line
//! endings around a value survive a bump byte for byte.

pub mod env;
pub mod template;
pub mod yaml;

use anyhow::{bail, Result};

use crate::config::{EditKind, EditRule};

/// One place where an edit matched; offsets are bytes into the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// 1-based line number, for messages.
    pub line: usize,
    pub start: usize,
    pub end: usize,
    pub value: String,
}

/// Every match of `rule` in `text`, without the count check.
pub fn find_all(text: &str, rule: &EditRule) -> Result<Vec<Match>, String> {
    match rule.kind()? {
        EditKind::Template(find) => template::find_all(text, find, rule),
        EditKind::Yaml(key) => Ok(yaml::find_all(text, key)),
        EditKind::Env(key) => Ok(env::find_all(text, key)),
    }
}

/// How an edit is named in messages.
pub fn describe(rule: &EditRule) -> String {
    match rule.kind() {
        Ok(EditKind::Template(find)) => format!("`{find}`"),
        Ok(EditKind::Yaml(key)) => format!("YAML key `{key}`"),
        Ok(EditKind::Env(key)) => format!("`{key}=` lines"),
        Err(why) => why,
    }
}

/// Every match of `rule` in `text`, checked against the count the rule
/// states ("zero or that many" when it is optional). `path` only names the
/// file in errors.
pub fn matches(path: &str, text: &str, rule: &EditRule) -> Result<Vec<Match>> {
    let found = find_all(text, rule).map_err(|why| anyhow::anyhow!("{path}: {why}"))?;
    let fine = found.len() == rule.count || (rule.optional && found.is_empty());
    if !fine {
        let lines: Vec<String> = found.iter().map(|m| m.line.to_string()).collect();
        let at = if lines.is_empty() {
            String::new()
        } else {
            format!(" (lines {})", lines.join(", "))
        };
        let expected = if rule.optional {
            format!("0 or {}", rule.count)
        } else {
            rule.count.to_string()
        };
        bail!(
            "{path}: expected {expected} match(es) of {} but found {}{at}; fix the file or the count in release.toml",
            describe(rule),
            found.len()
        );
    }
    Ok(if rule.first_only {
        found.into_iter().take(1).collect()
    } else {
        found
    })
}

/// Each line of `text` without its line ending, with its 1-based number
/// and the byte offset where it starts: what every finder walks.
pub fn lines(text: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    let mut offset = 0;
    text.split_inclusive('\n')
        .enumerate()
        .map(move |(index, raw)| {
            let start = offset;
            offset += raw.len();
            (index + 1, start, raw.trim_end_matches(['\n', '\r']))
        })
}

/// `text` with every span replaced by `new`; spans must not overlap.
pub fn replace_spans(text: &str, spans: &[(usize, usize)], new: &str) -> String {
    let mut sorted = spans.to_vec();
    sorted.sort_unstable();
    let mut out = String::with_capacity(text.len() + spans.len() * new.len());
    let mut pos = 0;
    for (start, end) in sorted {
        out.push_str(&text[pos..start]);
        out.push_str(new);
        pos = end;
    }
    out.push_str(&text[pos..]);
    out
}

/// The rule as a TOML inline table in the order release.toml uses,
/// leaving out the defaults: `{ yaml = "server.version", count = 1 }`.
pub fn to_inline_toml(rule: &EditRule) -> String {
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    let mut parts = Vec::new();
    for (key, value) in [
        ("find", &rule.find),
        ("yaml", &rule.yaml),
        ("env", &rule.env),
    ] {
        if let Some(value) = value {
            parts.push(format!("{key} = {}", quote(value)));
        }
    }
    parts.push(format!("count = {}", rule.count));
    for (key, on) in [
        ("optional", rule.optional),
        ("first_only", rule.first_only),
        ("anywhere", rule.anywhere),
    ] {
        if on {
            parts.push(format!("{key} = true"));
        }
    }
    if let Some(after) = &rule.after {
        parts.push(format!("after = {}", quote(after)));
    }
    format!("{{ {} }}", parts.join(", "))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn template(find: &str, count: usize) -> EditRule {
        EditRule {
            find: Some(find.to_string()),
            count,
            ..EditRule::default()
        }
    }

    pub(crate) fn yaml(key: &str, count: usize) -> EditRule {
        EditRule {
            yaml: Some(key.to_string()),
            count,
            ..EditRule::default()
        }
    }

    pub(crate) fn env(key: &str, count: usize) -> EditRule {
        EditRule {
            env: Some(key.to_string()),
            count,
            ..EditRule::default()
        }
    }

    #[test]
    fn count_mismatch_names_file_pattern_and_count() {
        let err = matches(
            "cfg.yaml",
            "version: \"1\"\nversion: \"2\"\n",
            &template("version: \"{version}\"", 1),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("cfg.yaml"), "{err}");
        assert!(
            err.contains(
                "expected 1 match(es) of `version: \"{version}\"` but found 2 (lines 1, 2)"
            ),
            "{err}"
        );
        let err = matches("cfg.yaml", "nothing\n", &yaml("server.version", 1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected 1 match(es) of YAML key `server.version` but found 0"),
            "{err}"
        );
    }

    #[test]
    fn optional_means_zero_or_the_stated_count() {
        let mut r = env("SERVER_VERSION", 1);
        r.optional = true;
        let stale = "# SERVER_VERSION=1.6.0.35\nGEMINI_API_KEY=x\n";
        assert_eq!(matches("config.env.example", stale, &r).unwrap(), vec![]);
        let one = "SERVER_VERSION=2.0.0.4\n";
        assert_eq!(matches("e", one, &r).unwrap().len(), 1);
        let two = "SERVER_VERSION=2.0.0.4\nSERVER_VERSION=2.0.0.5\n";
        let err = matches("config.env.example", two, &r)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "config.env.example: expected 0 or 1 match(es) of `SERVER_VERSION=` lines but found 2 (lines 1, 2)"
            ),
            "{err}"
        );
        // Without the flag, a missing line is an error.
        r.optional = false;
        let err = matches("e", stale, &r).unwrap_err().to_string();
        assert!(
            err.contains("expected 1 match(es)") && err.contains("found 0"),
            "{err}"
        );
    }

    #[test]
    fn first_only_keeps_the_first_of_the_counted_matches() {
        let mut r = template("v = '{version}'", 2);
        r.first_only = true;
        let found = matches("f", "v = '1.0.0.1'\nv = '9'\n", &r).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].value, "1.0.0.1");
    }

    #[test]
    fn inline_toml_round_trips() {
        let mut r = template("**Релиз:** `v{version}`", 1);
        r.after = Some("release_target:".into());
        for rule in [r, yaml("server.version", 1), env("SERVER_BUILD", 2)] {
            let text = format!("e = {}", to_inline_toml(&rule));
            let table: toml::Table = text.parse().unwrap();
            let back: EditRule = table["e"].clone().try_into().unwrap();
            assert_eq!(back, rule, "{text}");
        }
        assert_eq!(
            to_inline_toml(&yaml("server.version", 1)),
            "{ yaml = \"server.version\", count = 1 }"
        );
    }
}
