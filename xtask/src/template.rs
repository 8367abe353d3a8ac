//! Finding version text in files through templates such as
//! `SERVER_VERSION={version}`.
//!
//! A template matches at the start of a line after its indentation (or
//! anywhere on a line when asked), so `version:` never matches inside
//! `default_version:`. Only the span of the version itself is ever
//! replaced: comments, quotes, indentation and line endings around it stay
//! byte for byte as they were.

use anyhow::{bail, Result};

use crate::config::{EditRule, VERSION_SLOT};

/// One place where a template matched; offsets are bytes into the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// 1-based line number, for messages.
    pub line: usize,
    pub start: usize,
    pub end: usize,
    pub value: String,
}

/// Every match of `rule` in `text`, checked against the count the rule
/// states. `path` only names the file in errors.
pub fn matches(path: &str, text: &str, rule: &EditRule) -> Result<Vec<Match>> {
    let found = find_all(text, rule).map_err(|why| anyhow::anyhow!("{path}: {why}"))?;
    if found.len() != rule.count {
        let lines: Vec<String> = found.iter().map(|m| m.line.to_string()).collect();
        let at = if lines.is_empty() {
            String::new()
        } else {
            format!(" (lines {})", lines.join(", "))
        };
        bail!(
            "{path}: expected {} match(es) of `{}` but found {}{at}; fix the file or the count in release.toml",
            rule.count,
            rule.find,
            found.len()
        );
    }
    Ok(if rule.first_only {
        found.into_iter().take(1).collect()
    } else {
        found
    })
}

/// All matches without the count check.
fn find_all(text: &str, rule: &EditRule) -> Result<Vec<Match>, String> {
    let (before, after) = rule
        .find
        .split_once(VERSION_SLOT)
        .ok_or_else(|| format!("template `{}` has no {VERSION_SLOT}", rule.find))?;
    let mut in_region = rule.after.is_none();
    let mut saw_anchor = false;
    let mut out = Vec::new();
    let mut offset = 0;
    for (index, raw_line) in text.split_inclusive('\n').enumerate() {
        let line_start = offset;
        offset += raw_line.len();
        let line = raw_line.trim_end_matches(['\n', '\r']);
        if let Some(anchor) = &rule.after {
            if !saw_anchor {
                if line.trim() == anchor {
                    saw_anchor = true;
                    in_region = true;
                }
                continue;
            }
            if in_region && line.trim_start().starts_with("```") {
                in_region = false;
            }
        }
        if !in_region {
            continue;
        }
        let starts: Vec<usize> = if rule.anywhere {
            line.match_indices(before).map(|(i, _)| i).collect()
        } else {
            let indent = line.len() - line.trim_start().len();
            if line[indent..].starts_with(before) {
                vec![indent]
            } else {
                Vec::new()
            }
        };
        for at in starts {
            let value_start = at + before.len();
            let rest = &line[value_start..];
            let value_len = if after.is_empty() {
                rest.find(char::is_whitespace).unwrap_or(rest.len())
            } else {
                match rest.find(after) {
                    Some(n) => n,
                    None => continue,
                }
            };
            out.push(Match {
                line: index + 1,
                start: line_start + value_start,
                end: line_start + value_start + value_len,
                value: rest[..value_len].to_string(),
            });
        }
    }
    if let (Some(anchor), false) = (&rule.after, saw_anchor) {
        return Err(format!(
            "the line `{anchor}` that template `{}` is searched after was not found",
            rule.find
        ));
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(find: &str, count: usize) -> EditRule {
        EditRule {
            find: find.to_string(),
            count,
            first_only: false,
            anywhere: false,
            after: None,
        }
    }

    #[test]
    fn anchors_at_line_start_after_indent() {
        let text =
            "server:\n  default_version: \"1.0.0.0\"  # keep\n  version: \"1.0.0.0\" # c\r\n";
        let found = matches("f", text, &rule("version: \"{version}\"", 1)).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].line, 3);
        assert_eq!(found[0].value, "1.0.0.0");
        let out = replace_spans(text, &[(found[0].start, found[0].end)], "2.0.0.4");
        assert_eq!(
            out,
            "server:\n  default_version: \"1.0.0.0\"  # keep\n  version: \"2.0.0.4\" # c\r\n"
        );
    }

    #[test]
    fn empty_suffix_stops_at_whitespace_or_line_end() {
        let text = "SERVER_VERSION=2.0.0.3\r\nSERVER_BUILD=2.0.0.3 # x\n";
        let found = matches("f", text, &rule("SERVER_VERSION={version}", 1)).unwrap();
        assert_eq!(found[0].value, "2.0.0.3");
        let found = matches("f", text, &rule("SERVER_BUILD={version}", 1)).unwrap();
        assert_eq!(found[0].value, "2.0.0.3");
    }

    #[test]
    fn anywhere_and_first_only() {
        let mut r = rule("getenv('V', '{version}')", 2);
        r.anywhere = true;
        r.first_only = true;
        let text = "a = os.getenv('V', '1.0.0.1')\nb = os.getenv('V', '9')\n";
        let found = matches("f", text, &r).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].value, "1.0.0.1");
    }

    #[test]
    fn count_mismatch_names_file_pattern_and_count() {
        let err = matches(
            "cfg.yaml",
            "version: \"1\"\nversion: \"2\"\n",
            &rule("version: \"{version}\"", 1),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("cfg.yaml"), "{err}");
        assert!(
            err.contains("expected 1 match(es) of `version: \"{version}\"` but found 2"),
            "{err}"
        );
        let err = matches("cfg.yaml", "nothing\n", &rule("version: \"{version}\"", 1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("found 0"), "{err}");
    }

    #[test]
    fn after_limits_search_to_the_fenced_block() {
        let mut r = rule("version: \"{version}\"", 1);
        r.after = Some("release_target:".to_string());
        let text = "version: \"0\"\n```yaml\nrelease_target:\n  version: \"2.0.0.4\"\n```\nversion: \"9\"\n";
        let found = matches("g", text, &r).unwrap();
        assert_eq!(found[0].value, "2.0.0.4");
        let err = matches("g", "version: \"1\"\n", &r)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`release_target:`"), "{err}");
    }
}
