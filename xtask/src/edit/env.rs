//! The values of an env file's `KEY=value` lines.
//!
//! Only uncommented assignments count (`export KEY=` too), so the stale
//! `# SERVER_VERSION=1.6.0.35` lines that the real `config.env.example`
//! keeps are never edited. A value may be unquoted (up to whitespace) or
//! quoted; the span excludes the quotes so they stay as they were.

use super::Match;

/// One uncommented `KEY=value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub line: usize,
    pub key: String,
    pub start: usize,
    pub end: usize,
    pub value: String,
}

/// Every uncommented assignment of `text`.
pub fn assignments(text: &str) -> Vec<Assignment> {
    let mut out = Vec::new();
    for (number, line_start, line) in super::lines(text) {
        let mut body = line.trim_start();
        if let Some(rest) = body.strip_prefix("export ") {
            body = rest.trim_start();
        }
        let Some(eq) = body.find('=') else {
            continue;
        };
        let key = &body[..eq];
        if !is_name(key) {
            continue;
        }
        let value = &body[eq + 1..];
        let (start, end) = match value.chars().next() {
            Some(q @ ('"' | '\'')) => match value[1..].find(q) {
                Some(close) => (1, 1 + close),
                None => continue,
            },
            _ => (0, value.find(char::is_whitespace).unwrap_or(value.len())),
        };
        let base = line_start + (line.len() - body.len()) + eq + 1;
        out.push(Assignment {
            line: number,
            key: key.to_string(),
            start: base + start,
            end: base + end,
            value: value[start..end].to_string(),
        });
    }
    out
}

/// The values of every uncommented `key=` line.
pub fn find_all(text: &str, key: &str) -> Vec<Match> {
    assignments(text)
        .into_iter()
        .filter(|a| a.key == key)
        .map(|a| Match {
            line: a.line,
            start: a.start,
            end: a.end,
            value: a.value,
        })
        .collect()
}

fn is_name(key: &str) -> bool {
    key.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::replace_spans;

    #[test]
    fn only_live_lines_count_and_quotes_stay() {
        let text = "# SERVER_VERSION=1.6.0.35\nSERVER_VERSION=2.0.0.4\r\nexport SERVER_BUILD=\"2.0.0.4\"  # c\nMY_SERVER_VERSION=9\n  SERVER_VERSION='2.0.0.4'\n";
        let found = find_all(text, "SERVER_VERSION");
        let lines: Vec<usize> = found.iter().map(|m| m.line).collect();
        assert_eq!(lines, [2, 5]);
        let build = find_all(text, "SERVER_BUILD");
        assert_eq!(build[0].value, "2.0.0.4");
        let spans: Vec<(usize, usize)> = found
            .iter()
            .chain(&build)
            .map(|m| (m.start, m.end))
            .collect();
        assert_eq!(
            replace_spans(text, &spans, "2.0.0.5"),
            "# SERVER_VERSION=1.6.0.35\nSERVER_VERSION=2.0.0.5\r\nexport SERVER_BUILD=\"2.0.0.5\"  # c\nMY_SERVER_VERSION=9\n  SERVER_VERSION='2.0.0.5'\n"
        );
    }

    #[test]
    fn an_empty_value_is_a_match_with_an_empty_span() {
        let found = find_all("SERVER_VERSION=\n", "SERVER_VERSION");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].value, "");
    }
}
