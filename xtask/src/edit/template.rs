//! Literal templates such as `**Release:** `v{version}``.
//!
//! A template matches at the start of a line after its indentation (or
//! anywhere on a line when asked), so `version:` never matches inside
//! `default_version:`. Only the span of the version itself is ever
//! replaced: comments, quotes, indentation and line endings around it stay
//! byte for byte as they were.

use super::Match;
use crate::config::{EditRule, VERSION_SLOT};

/// Every match of the template `find` of `rule`, without the count check.
pub fn find_all(text: &str, find: &str, rule: &EditRule) -> Result<Vec<Match>, String> {
    let (before, after) = find
        .split_once(VERSION_SLOT)
        .ok_or_else(|| format!("template `{find}` has no {VERSION_SLOT}"))?;
    let mut in_region = rule.after.is_none();
    let mut saw_anchor = false;
    let mut out = Vec::new();
    for (number, line_start, line) in super::lines(text) {
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
                line: number,
                start: line_start + value_start,
                end: line_start + value_start + value_len,
                value: rest[..value_len].to_string(),
            });
        }
    }
    if let (Some(anchor), false) = (&rule.after, saw_anchor) {
        return Err(format!(
            "the line `{anchor}` that template `{find}` is searched after was not found"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::{replace_spans, tests::template};

    fn find(text: &str, rule: &EditRule) -> Vec<Match> {
        find_all(text, rule.find.as_deref().unwrap(), rule).unwrap()
    }

    #[test]
    fn anchors_at_line_start_after_indent() {
        let text =
            "server:\n  default_version: \"1.0.0.0\"  # keep\n  version: \"1.0.0.0\" # c\r\n";
        let found = find(text, &template("version: \"{version}\"", 1));
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
        let found = find(text, &template("SERVER_VERSION={version}", 1));
        assert_eq!(found[0].value, "2.0.0.3");
        let found = find(text, &template("SERVER_BUILD={version}", 1));
        assert_eq!(found[0].value, "2.0.0.3");
    }

    #[test]
    fn anywhere_finds_mid_line() {
        let mut r = template("getenv('V', '{version}')", 2);
        r.anywhere = true;
        let text = "a = os.getenv('V', '1.0.0.1')\nb = os.getenv('V', '9')\n";
        let found = find(text, &r);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].value, "1.0.0.1");
    }

    #[test]
    fn after_limits_search_to_the_fenced_block() {
        let mut r = template("version: \"{version}\"", 1);
        r.after = Some("release_target:".to_string());
        let text = "version: \"0\"\n```yaml\nrelease_target:\n  version: \"2.0.0.4\"\n```\nversion: \"9\"\n";
        let found = find(text, &r);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].value, "2.0.0.4");
        let err = find_all("version: \"1\"\n", "version: \"{version}\"", &r).unwrap_err();
        assert!(err.contains("`release_target:`"), "{err}");
    }
}
