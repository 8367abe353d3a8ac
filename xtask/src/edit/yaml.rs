//! The values of YAML keys, read line by line with their byte spans.
//!
//! A YAML library would parse the files but loses where each value sits and
//! how it is written, and a bump must change only the version's characters;
//! so this reads the small block-mapping subset the configs use (nested
//! `key:` lines by indentation, scalar values unquoted, '...' or "...",
//! trailing `# comments`). Keys are named by their dotted path from the top
//! (`server.version`), which tells `server.version` from `api.version`; a
//! path may leave out leading parents (`default_version`).
//! Markdown with a fenced YAML block reads the same way: the block's
//! top-level key sits at indentation 0, and prose lines in between close
//! every open key.

use super::Match;

/// One `key: value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number.
    pub line: usize,
    /// The dotted key path, such as `server.version`.
    pub path: String,
    /// The value's span, inside its quotes when it is quoted.
    pub start: usize,
    pub end: usize,
    pub value: String,
    pub quote: Option<char>,
}

/// Every scalar `key: value` line of `text` with its key path.
pub fn entries(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    // The open parent keys and their indentation.
    let mut stack: Vec<(usize, &str)> = Vec::new();
    for (number, line_start, line) in super::lines(text) {
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let indent = line.len() - body.len();
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let Some((key, after_colon)) = split_key(body) else {
            continue;
        };
        let rest = &body[after_colon..];
        let value = rest.trim_start();
        if value.is_empty() || value.starts_with('#') {
            stack.push((indent, key));
            continue;
        }
        let Some((start, end, quote)) = scalar(value) else {
            continue;
        };
        let base = line_start + indent + after_colon + (rest.len() - value.len());
        let mut path: Vec<&str> = stack.iter().map(|(_, k)| *k).collect();
        path.push(key);
        out.push(Entry {
            line: number,
            path: path.join("."),
            start: base + start,
            end: base + end,
            value: value[start..end].to_string(),
            quote,
        });
    }
    out
}

/// The values of every line whose key path is `key` or ends with it:
/// `default_version` finds `updates.default_version` whatever its parent
/// is called, `server.version` only the server's.
pub fn find_all(text: &str, key: &str) -> Vec<Match> {
    entries(text)
        .into_iter()
        .filter(|e| {
            e.path == key
                || e.path
                    .strip_suffix(key)
                    .is_some_and(|parent| parent.ends_with('.'))
        })
        .map(|e| Match {
            line: e.line,
            start: e.start,
            end: e.end,
            value: e.value,
        })
        .collect()
}

/// A plain key and the byte offset just past its `:`; `None` for list
/// items, quoted or complex keys and lines that are not `key:` at all.
fn split_key(body: &str) -> Option<(&str, usize)> {
    if body.starts_with("- ")
        || body == "-"
        || body.starts_with([
            '"', '\'', '?', '[', '{', '|', '>', '*', '&', '!', '%', '@', '`',
        ])
    {
        return None;
    }
    let bytes = body.as_bytes();
    let colon = body.char_indices().find_map(|(i, c)| {
        let next = bytes.get(i + 1).copied();
        (c == ':' && next.is_none_or(|b| b == b' ' || b == b'\t')).then_some(i)
    })?;
    let key = body[..colon].trim_end();
    if key.is_empty() || key.contains(" #") {
        return None;
    }
    Some((key, colon + 1))
}

/// The span of a scalar value at the start of `value` (quotes excluded)
/// and its quote; `None` for flow collections, block scalars, anchors and
/// tags, whose values are not a single version.
fn scalar(value: &str) -> Option<(usize, usize, Option<char>)> {
    if let Some(inner) = value.strip_prefix('"') {
        let mut escaped = false;
        for (i, c) in inner.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => return Some((1, 1 + i, Some('"'))),
                _ => {}
            }
        }
        return None;
    }
    if let Some(inner) = value.strip_prefix('\'') {
        let mut chars = inner.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                // '' is an escaped quote inside a single-quoted scalar.
                if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                    chars.next();
                    continue;
                }
                return Some((1, 1 + i, Some('\'')));
            }
        }
        return None;
    }
    if value.starts_with(['[', '{', '|', '>', '&', '*', '!', '%', '@', '`']) {
        return None;
    }
    let end = [" #", "\t#"]
        .iter()
        .filter_map(|c| value.find(c))
        .min()
        .unwrap_or(value.len());
    Some((0, value[..end].trim_end().len(), None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::replace_spans;

    /// The shape of the real `server/config/unified_config.yaml`.
    const REAL: &str = "server:\n  name: \"voice-assistant\"\n  version: 2.0.0.32  # release\n  build: 2.0.0.32  # build\napi:\n  version: \"v1\"  # schema\nupdates:\n  default_version: 2.0.0.32  # fallback\nlayout:\n  version: '3'\n";

    #[test]
    fn key_paths_tell_the_release_from_other_version_keys() {
        let all = entries(REAL);
        let paths: Vec<(&str, &str, Option<char>)> = all
            .iter()
            .map(|e| (e.path.as_str(), e.value.as_str(), e.quote))
            .collect();
        assert_eq!(
            paths,
            [
                ("server.name", "voice-assistant", Some('"')),
                ("server.version", "2.0.0.32", None),
                ("server.build", "2.0.0.32", None),
                ("api.version", "v1", Some('"')),
                ("updates.default_version", "2.0.0.32", None),
                ("layout.version", "3", Some('\'')),
            ]
        );
        let found = find_all(REAL, "server.version");
        assert_eq!(found.len(), 1);
        // A path matches at its end, on whole keys only.
        assert_eq!(find_all(REAL, "version").len(), 3);
        assert_eq!(find_all(REAL, "default_version").len(), 1);
        assert_eq!(find_all(REAL, "ersion").len(), 0);
        assert_eq!(find_all(REAL, "s.default_version").len(), 0);
        assert_eq!(found[0].line, 3);
        assert_eq!(&REAL[found[0].start..found[0].end], "2.0.0.32");
    }

    #[test]
    fn replacing_the_span_keeps_quotes_spacing_and_comments() {
        for (line, want) in [
            ("  version: 2.0.0.32  # c\n", "  version: 2.0.0.33  # c\n"),
            (
                "  version: \"2.0.0.32\" # c\r\n",
                "  version: \"2.0.0.33\" # c\r\n",
            ),
            ("  version:   '2.0.0.32'\n", "  version:   '2.0.0.33'\n"),
            ("  version: 2.0.0.32", "  version: 2.0.0.33"),
            (
                "  version: 2.0.0.32\t# tab\n",
                "  version: 2.0.0.33\t# tab\n",
            ),
        ] {
            let text = format!("server:\n{line}");
            let found = find_all(&text, "server.version");
            assert_eq!(found.len(), 1, "{line:?}");
            assert_eq!(found[0].value, "2.0.0.32", "{line:?}");
            let spans = [(found[0].start, found[0].end)];
            assert_eq!(
                replace_spans(&text, &spans, "2.0.0.33"),
                format!("server:\n{want}")
            );
        }
    }

    #[test]
    fn markdown_with_a_fenced_block_reads_the_block() {
        let text = "# Guide\n\n**Статус:** Active  \n**Текущий релиз документации:** `v2.0.0.32`\n\nОбновляются:\n- `VERSION`\n\n```yaml\nrelease_target:\n  version: \"2.0.0.15\"\n  azure:\n    vm_name: \"NexyNew\"\n```\nversion: 9\n";
        let found = find_all(text, "release_target.version");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].value, "2.0.0.15");
        assert_eq!(find_all(text, "release_target.azure.vm_name").len(), 1);
        // The fence's end closed the block: the last line is top-level.
        let last = entries(text).pop().unwrap();
        assert_eq!((last.path.as_str(), last.value.as_str()), ("version", "9"));
    }

    #[test]
    fn lists_block_scalars_and_urls_are_not_misread() {
        let text = "a:\n  - version: 1\n  b: |\n    x\n  url: https://h/p:1  # c\n  c: [1, 2]\n";
        let paths: Vec<String> = entries(text).into_iter().map(|e| e.path).collect();
        assert_eq!(paths, ["a.url"]);
        assert_eq!(find_all(text, "a.url")[0].value, "https://h/p:1");
    }
}
