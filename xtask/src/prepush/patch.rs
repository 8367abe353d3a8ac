//! Reading the lines a change adds out of git's patch output, and running
//! the line rules of the secret scan on exactly those lines.
//!
//! The input is `git log -p -U0` (each commit introduced by a line that
//! starts with `\x01`, the format we ask for) or `git diff --cached -U0`
//! (no commit lines). With no context lines, each hunk header says how many
//! lines it removes and adds, so the parser counts them: a hunk's added
//! line that itself starts with `+++ ` or `@@` is content, never a header.

use crate::secrets::{self, Commit, Finding};

/// What one patch adds, as the secret scan sees it.
#[derive(Debug, Default)]
pub struct Scanned {
    pub commits: Vec<Commit>,
    /// Findings of the line rules, in patch order.
    pub findings: Vec<Finding>,
    pub added_lines: usize,
    /// Files to read whole from git: those git showed as binary (a
    /// `.gitattributes` entry can make any file look binary, so they get
    /// the full scan), and one-line files shaped like a base64 key (the
    /// raw Ed25519 rule judges the whole file). The commit is an index
    /// into `commits`.
    pub whole: Vec<WholeFile>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WholeFile {
    pub commit: Option<usize>,
    pub path: String,
    pub binary: bool,
}

/// The header git prints before each commit's patch: `\x01SHA SUBJECT`.
pub const COMMIT_FORMAT: &str = "--format=%x01%H %s";

pub fn scan(patch: &[u8]) -> Scanned {
    let mut out = Scanned::default();
    let mut commit: Option<usize> = None;
    let mut path: Option<String> = None;
    let (mut old_left, mut new_left, mut line_no) = (0usize, 0usize, 0usize);
    for raw in patch.split(|b| *b == b'\n') {
        if old_left > 0 || new_left > 0 {
            match raw.first() {
                Some(b'+') if new_left > 0 => {
                    new_left -= 1;
                    if let Some(path) = &path {
                        added(&mut out, commit, path, line_no, &raw[1..]);
                    }
                    line_no += 1;
                    continue;
                }
                Some(b'-') if old_left > 0 => {
                    old_left -= 1;
                    continue;
                }
                Some(b'\\') => continue,
                // A short hunk: read the line as a header.
                _ => (old_left, new_left) = (0, 0),
            }
        }
        if let Some(rest) = raw.strip_prefix(b"\x01") {
            let text = String::from_utf8_lossy(rest);
            let (sha, subject) = text.split_once(' ').unwrap_or((&text, ""));
            out.commits.push(Commit {
                sha: sha.to_string(),
                subject: subject.to_string(),
            });
            commit = Some(out.commits.len() - 1);
            path = None;
        } else if raw.starts_with(b"diff ") {
            path = None;
        } else if let Some(p) = raw.strip_prefix(b"+++ ") {
            path = new_side(p);
        } else if let Some(h) = raw.strip_prefix(b"@@ ") {
            if let Some((old, new, start)) = hunk_counts(h) {
                (old_left, new_left, line_no) = (old, new, start);
            }
        } else if let Some(b) = raw.strip_prefix(b"Binary files ") {
            if let Some(p) = binary_new_side(b) {
                out.whole.push(WholeFile {
                    commit,
                    path: p,
                    binary: true,
                });
            }
        }
    }
    out
}

/// One added line: the line rules, and whether its file may be a key file.
fn added(out: &mut Scanned, commit: Option<usize>, path: &str, line: usize, raw: &[u8]) {
    out.added_lines += 1;
    let text = String::from_utf8_lossy(raw);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    for (rule, masked) in secrets::scan_line(text) {
        out.findings.push(Finding {
            path: path.to_string(),
            line,
            rule,
            masked,
            commit: commit.map(|i| out.commits[i].clone()),
        });
    }
    let t = text.trim();
    let base64ish = (t.len() == 44 || t.len() == 88)
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if line == 1 && base64ish {
        out.whole.push(WholeFile {
            commit,
            path: path.to_string(),
            binary: false,
        });
    }
}

/// `-a,b +c,d @@ ...` as (b, d, c); a count left out is 1.
fn hunk_counts(header: &[u8]) -> Option<(usize, usize, usize)> {
    let text = std::str::from_utf8(header).ok()?;
    let mut parts = text.split(' ');
    let old = parts.next()?.strip_prefix('-')?;
    let new = parts.next()?.strip_prefix('+')?;
    let count = |range: &str| -> Option<(usize, usize)> {
        match range.split_once(',') {
            Some((start, n)) => Some((start.parse().ok()?, n.parse().ok()?)),
            None => Some((range.parse().ok()?, 1)),
        }
    };
    let ((_, old_n), (new_start, new_n)) = (count(old)?, count(new)?);
    Some((old_n, new_n, new_start))
}

/// The path of a `+++ b/PATH` line; `None` for `/dev/null` (a deletion).
fn new_side(p: &[u8]) -> Option<String> {
    let path = unquote(p);
    path.strip_prefix("b/").map(str::to_string)
}

/// The new path of `A and B differ`; `None` when B is `/dev/null`.
fn binary_new_side(rest: &[u8]) -> Option<String> {
    let text = rest.strip_suffix(b" differ")?;
    let at = text.windows(5).rposition(|w| w == b" and ")?;
    new_side(&text[at + 5..])
}

/// A path as git prints it: as is, or C-quoted (`"b/caf\303\251"`) when it
/// holds a quote, a backslash or a control character.
fn unquote(p: &[u8]) -> String {
    let Some(inner) = p.strip_prefix(b"\"").and_then(|p| p.strip_suffix(b"\"")) else {
        return String::from_utf8_lossy(p).into_owned();
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let b = inner[i];
        i += 1;
        if b != b'\\' || i >= inner.len() {
            out.push(b);
            continue;
        }
        let e = inner[i];
        i += 1;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'0'..=b'3' if i + 1 < inner.len() => {
                let digits = [e, inner[i], inner[i + 1]];
                i += 2;
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d.wrapping_sub(b'0')));
                out.push(u8::try_from(value).unwrap_or(b'?'));
            }
            other => out.push(other),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn google() -> String {
        format!("AI{}{}", "za", "Kq-_".repeat(9))
    }

    #[test]
    fn finds_what_each_commit_adds_with_its_line() {
        let key = google();
        let patch = format!(
            "\x01aaaa first commit\n\ndiff --git a/x.js b/x.js\nnew file mode 100644\n--- /dev/null\n+++ b/x.js\n@@ -0,0 +1,3 @@\n+one\n+two\n+const k = '{key}';\n\
             \x01bbbb remove it\n\ndiff --git a/x.js b/x.js\n--- a/x.js\n+++ b/x.js\n@@ -3 +2,0 @@\n-const k = '{key}';\n"
        );
        let s = scan(patch.as_bytes());
        assert_eq!(s.commits.len(), 2);
        assert_eq!(s.commits[1].subject, "remove it");
        assert_eq!(s.added_lines, 3);
        assert_eq!(s.findings.len(), 1);
        let f = &s.findings[0];
        assert_eq!(
            (f.path.as_str(), f.line, f.rule),
            ("x.js", 3, "google-api-key")
        );
        assert_eq!(f.commit.as_ref().unwrap().sha, "aaaa");
    }

    #[test]
    fn added_lines_that_look_like_headers_are_content() {
        let key = google();
        let patch = format!(
            "diff --git a/n.md b/n.md\n--- a/n.md\n+++ b/n.md\n@@ -1,0 +2,3 @@\n+++ b/other\n+@@ -1 +1 @@\n+{key}\n\\ No newline at end of file\n"
        );
        let s = scan(patch.as_bytes());
        assert_eq!(s.added_lines, 3);
        assert_eq!(s.findings.len(), 1, "{:?}", s.findings);
        assert_eq!(
            (s.findings[0].path.as_str(), s.findings[0].line),
            ("n.md", 4)
        );
        assert!(s.findings[0].commit.is_none());
    }

    #[test]
    fn binary_files_and_key_shaped_files_are_read_whole() {
        let b64 = format!("{}=", "Q".repeat(43));
        let patch = format!(
            "\x01cccc keys\ndiff --git a/k b/k\n--- /dev/null\n+++ b/k\n@@ -0,0 +1 @@\n+{b64}\n\
             diff --git a/img.png b/img.png\nBinary files /dev/null and b/img.png differ\n\
             diff --git a/old.bin b/old.bin\nBinary files a/old.bin and /dev/null differ\n\
             diff --git a/\"q\\\"x\" b/\"q\\\"x\"\n--- a/\"q\\\"x\"\n+++ \"b/caf\\303\\251 \\\"x\\\"\"\n@@ -1 +1 @@\n-a\n+b\n"
        );
        let s = scan(patch.as_bytes());
        let whole: Vec<(&str, bool)> = s
            .whole
            .iter()
            .map(|w| (w.path.as_str(), w.binary))
            .collect();
        assert_eq!(whole, [("k", false), ("img.png", true)]);
        assert_eq!(s.added_lines, 2);
        assert!(s.findings.is_empty());
        assert_eq!(
            new_side(b"\"b/caf\\303\\251 \\\"x\\\"\"").unwrap(),
            "café \"x\""
        );
        assert_eq!(new_side(b"/dev/null"), None);
    }

    #[test]
    fn hunk_headers() {
        assert_eq!(hunk_counts(b"-0,0 +1,3 @@"), Some((0, 3, 1)));
        assert_eq!(hunk_counts(b"-3 +2,0 @@ fn x"), Some((1, 0, 2)));
        assert_eq!(hunk_counts(b"-7 +7 @@"), Some((1, 1, 7)));
        assert_eq!(hunk_counts(b"garbage"), None);
    }
}
