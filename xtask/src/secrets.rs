//! The secret scan of `check`: what must never be pushed.
//!
//! Hand-written matchers instead of a regex engine keep the xtask light to
//! compile and make each rule's edges explicit. Findings carry a masked
//! value only: the scan itself must never print a secret.

use std::{collections::BTreeSet, fmt::Write as _};

use base64::Engine as _;

/// One secret found, with enough to find it and nothing to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: String,
    pub line: usize,
    pub rule: &'static str,
    pub masked: String,
    /// The commit that added the line, when the scan read history (the
    /// pre-push and CI range scans); `None` for the tree and the index.
    pub commit: Option<Commit>,
}

/// A commit named in a finding: its id and its subject line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub sha: String,
    pub subject: String,
}

/// Words that make an assigned value a placeholder wherever they stand
/// between separators (`example`, `my-dummy-key`, `CHANGEME`).
const PLACEHOLDER_WORDS: &[&str] = &["changeme", "example", "dummy"];
const GITHUB_PREFIXES: &[&str] = &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"];
const GITHUB_PAT: &str = "github_pat_";

/// Every finding in one file's bytes. Binary files are only checked for
/// being a raw Ed25519 key.
pub fn scan(path: &str, bytes: &[u8]) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(f) = raw_ed25519_key(path, bytes) {
        out.push(f);
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return out;
    };
    for (index, line) in text.lines().enumerate() {
        out.extend(scan_line(line).into_iter().map(|(rule, masked)| Finding {
            path: path.to_string(),
            line: index + 1,
            rule,
            masked,
            commit: None,
        }));
    }
    out
}

/// The line rules on one line of text: (rule id, masked value) pairs. The
/// shapes of real keys (PEM private keys, GitHub tokens, Google keys) are
/// reported wherever they stand, in code and documentation alike; only the
/// `GEMINI_API_KEY=` assignment, whose value has no shape, excuses the
/// placeholders of [`is_placeholder`].
pub fn scan_line(line: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(value) = gemini_value(line) {
        out.push((
            "gemini-api-key",
            format!("GEMINI_API_KEY={}", mask(value, 0)),
        ));
    }
    if is_pem_private_key(line) {
        out.push((
            "pem-private-key",
            "-----BEGIN … PRIVATE KEY-----".to_string(),
        ));
    }
    out.extend(github_tokens(line).into_iter().map(|t| ("github-token", t)));
    out.extend(google_keys(line).into_iter().map(|k| ("google-api-key", k)));
    out
}

/// Whether an assigned value is a placeholder, not a secret. The list,
/// compared case-insensitively (also in the README):
/// - empty, or one character repeated (`xxxxxxxx`, `0000`, `****`);
/// - `your…here` (`your_api_key_here`, `YOUR_GEMINI_API_KEY_HERE`);
/// - `<…>` (`<your key>`), and `$VAR` / `${VAR}` references;
/// - anything starting with `xxx`;
/// - `changeme`, `example` or `dummy`, alone or as a word between
///   non-alphanumeric separators (`example_key`, `dummy-token`).
pub fn is_placeholder(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    let Some(first) = v.chars().next() else {
        return true;
    };
    v.chars().all(|c| c == first)
        || (v.starts_with('<') && v.ends_with('>'))
        || v.starts_with('$')
        || (v.starts_with("your") && v.ends_with("here"))
        || v.starts_with("xxx")
        || v.split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| PLACEHOLDER_WORDS.contains(&word))
}

/// Shows `keep` leading characters, then stars and the length.
fn mask(value: &str, keep: usize) -> String {
    let head: String = value.chars().take(keep).collect();
    format!("{head}******** ({} chars)", value.chars().count())
}

/// The value of an env-style `GEMINI_API_KEY=value` line when it is a real
/// key: not a placeholder.
fn gemini_value(line: &str) -> Option<&str> {
    let trimmed = line.trim_start();
    let trimmed = trimmed.strip_prefix("export ").unwrap_or(trimmed);
    let rest = trimmed.strip_prefix("GEMINI_API_KEY=")?;
    let value = rest.split(" #").next().unwrap_or(rest).trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    (!is_placeholder(value)).then_some(value)
}

/// A PEM header of any private key: RSA, EC, OPENSSH, ENCRYPTED or PKCS#8.
fn is_pem_private_key(line: &str) -> bool {
    let Some(at) = line.find("-----BEGIN ") else {
        return false;
    };
    let rest = &line[at + "-----BEGIN ".len()..];
    let Some(end) = rest.find("-----") else {
        return false;
    };
    let label = &rest[..end];
    label.ends_with("PRIVATE KEY")
        && label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b' ' || b.is_ascii_digit())
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// GitHub tokens: classic (`ghp_` and kin, 36 characters after the prefix)
/// and fine-grained (`github_pat_`, 82 after it). Shorter runs are left
/// alone so that prose about the prefixes is not flagged.
fn github_tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    for prefix in GITHUB_PREFIXES.iter().chain([&GITHUB_PAT]) {
        let min = if *prefix == GITHUB_PAT { 60 } else { 36 };
        for (at, _) in line.match_indices(prefix) {
            if at > 0 && is_token_char(bytes[at - 1]) && *prefix != GITHUB_PAT {
                continue;
            }
            let body = bytes[at + prefix.len()..]
                .iter()
                .take_while(|b| is_token_char(**b))
                .count();
            if body >= min {
                out.push(mask(&line[at..at + prefix.len() + body], prefix.len()));
            }
        }
    }
    out
}

/// Google API keys: `AIza` and 35 characters of [A-Za-z0-9_-].
fn google_keys(line: &str) -> Vec<String> {
    let bytes = line.as_bytes();
    line.match_indices("AIza")
        .filter_map(|(at, _)| {
            let body = bytes[at + 4..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'-')
                .count();
            (body >= 35).then(|| mask(&line[at..at + 4 + body], 4))
        })
        .collect()
}

/// A raw Ed25519 private key file as Sparkle's tools write it: the whole
/// file is the base64 of a 32-byte seed (`generate_keys -x`) or of a
/// 64-byte key (seed and public key, or the legacy expanded key of
/// orlp/ed25519); or the raw bytes themselves in a file named like a key.
///
/// Public keys and signatures have the same base64 shape, so the bytes
/// decide where they can: 64 bytes are a key when their second half is the
/// public key of the first or their first half is a clamped scalar (a
/// signature's first half is a curve point, clamped-looking 1 time in 32,
/// so a key is never missed); 32 bytes are a seed unless the file's name
/// says `pub` and the bytes are a valid curve point, as a public key is.
pub fn raw_ed25519_key(path: &str, bytes: &[u8]) -> Option<Finding> {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let public_name = name.contains("pub");
    let decoded = std::str::from_utf8(bytes).ok().and_then(|text| {
        let t = text.trim();
        (t.len() == 44 || t.len() == 88)
            .then(|| base64::engine::general_purpose::STANDARD.decode(t).ok())
            .flatten()
    });
    let key = match decoded.as_deref() {
        Some(b) if b.len() == 64 => keypair(b) || clamped(&b[..32]),
        Some(b) if b.len() == 32 => !(public_name && is_point(b)),
        Some(_) => false,
        None => {
            let keyish =
                name.contains("ed25519") || name.contains("private") || name.ends_with(".key");
            !public_name && keyish && (bytes.len() == 32 || bytes.len() == 64)
        }
    };
    key.then(|| Finding {
        path: path.to_string(),
        line: 1,
        rule: "ed25519-private-key",
        masked: format!(
            "<{}-byte key file>",
            decoded.as_ref().map_or(bytes.len(), Vec::len)
        ),
        commit: None,
    })
}

/// A 64-byte key as libsodium and Sparkle 2 keep it: seed, then its public key.
fn keypair(bytes: &[u8]) -> bool {
    let (Ok(seed), Ok(public)) = (
        <[u8; 32]>::try_from(&bytes[..32]),
        <[u8; 32]>::try_from(&bytes[32..]),
    ) else {
        return false;
    };
    ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .as_bytes()
        == &public
}

/// An Ed25519 scalar as key generation clamps it (low 3 bits clear, top
/// bit clear, second-highest bit set): the first half of an expanded key.
fn clamped(half: &[u8]) -> bool {
    half[0] & 7 == 0 && half[31] & 0xc0 == 0x40
}

/// Whether 32 bytes decode as a point of the curve, as every public key does.
fn is_point(bytes: &[u8]) -> bool {
    <[u8; 32]>::try_from(bytes).is_ok_and(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).is_ok())
}

/// The path of a finding in a commit's subject line.
pub const MESSAGE: &str = "(commit message)";

/// A commit's sha as shown: its first 12 hex digits.
pub fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The secrets found in commits, with the remedy for history: a later
/// commit that deletes a key leaves it readable in the earlier one.
pub fn render_history(findings: &[&Finding]) -> String {
    let mut out = String::from(
        "secrets added by the pushed commits (deleting one in a later commit does not help: every pushed commit stays readable on the remote):\n",
    );
    for f in findings {
        let Some(c) = &f.commit else { continue };
        let subject = if scan_line(&c.subject).is_empty() {
            c.subject.as_str()
        } else {
            "(subject withheld)"
        };
        let _ = writeln!(
            out,
            "  commit {} \"{subject}\"  {}:{}  {}  {}",
            short(&c.sha),
            f.path,
            f.line,
            f.rule,
            f.masked
        );
    }
    let oldest = findings
        .iter()
        .find_map(|f| f.commit.as_ref())
        .map_or("", |c| short(&c.sha));
    let files: BTreeSet<&str> = findings
        .iter()
        .map(|f| f.path.as_str())
        .filter(|p| *p != MESSAGE)
        .collect();
    let paths: String = files.iter().map(|p| format!(" --path {p}")).collect();
    let _ = writeln!(
        out,
        "  to fix: 1. rotate each key now: treat it as leaked;\n\
         \x20         2. take it out of every unpushed commit: `git rebase -i {oldest}~1` (`--root` if it is the first commit), mark each commit above `edit` (`reword` for a commit message), remove the secret, `git commit --amend`, `git rebase --continue`;"
    );
    if !files.is_empty() {
        let _ = writeln!(
            out,
            "             or drop the files from all of history: `git filter-repo --invert-paths{paths}`;"
        );
    }
    let _ = writeln!(
        out,
        "          3. push again. A harmless value goes to [check] secret_allowlist in release.toml."
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fixtures are assembled at run time so that the repository's own
    // source never holds a string the scan would flag.
    fn gh_token() -> String {
        format!("gh{}_{}", "p", "A1b2C3d4".repeat(5))
    }

    fn rules(path: &str, text: &str) -> Vec<&'static str> {
        scan(path, text.as_bytes())
            .into_iter()
            .map(|f| f.rule)
            .collect()
    }

    #[test]
    fn gemini_placeholders_pass_and_real_values_fail() {
        assert!(rules("config.env", "GEMINI_API_KEY=\n").is_empty());
        assert!(rules("config.env", "GEMINI_API_KEY=YOUR_GEMINI_API_KEY_HERE\n").is_empty());
        assert!(rules("config.env", "GEMINI_API_KEY=\"$GEMINI_API_KEY\"\n").is_empty());
        assert!(rules("a.py", "key = os.getenv('GEMINI_API_KEY=')\n").is_empty());
        let found = scan("config.env", b"x=1\nexport GEMINI_API_KEY='s3cr3tvalue'\n");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].line, 2);
        assert!(!found[0].masked.contains("s3cr3t"), "{:?}", found[0]);
    }

    #[test]
    fn tokens_and_keys_are_found_and_masked() {
        let token = gh_token();
        let found = scan("ci.yml", format!("token: {token}\n").as_bytes());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rule, "github-token");
        assert!(!found[0].masked.contains(&token[4..]));
        let pat = format!("{}{}", GITHUB_PAT, "x".repeat(82));
        assert_eq!(rules("a", &pat), ["github-token"]);
        let google = format!("AI{}{}", "za", "Sy".repeat(18));
        assert_eq!(rules("a.js", &format!("k='{google}'")), ["google-api-key"]);
        assert!(rules("doc.md", "tokens start with ghp_ or github_pat_\n").is_empty());
    }

    #[test]
    fn pem_and_raw_ed25519_keys() {
        let pem = format!("-----BEGIN {} PRIVATE KEY-----\nMIIE\n", "OPENSSH");
        assert_eq!(rules("id", &pem), ["pem-private-key"]);
        assert!(rules("cert.pem", "-----BEGIN CERTIFICATE-----\n").is_empty());
        let b64 = format!("{}=\n", "A".repeat(43));
        assert_eq!(rules("sparkle_key", &b64), ["ed25519-private-key"]);
        assert!(rules("sparkle_key.pub", &b64).is_empty());
        assert_eq!(
            scan("signing.ed25519", &[7u8; 64])
                .iter()
                .map(|f| f.rule)
                .collect::<Vec<_>>(),
            ["ed25519-private-key"]
        );
        assert!(scan("blob.bin", &[7u8; 64]).is_empty());
    }

    #[test]
    fn the_placeholder_list() {
        for value in [
            "",
            " ",
            "x",
            "xxxxxxxx",
            "XXX-replace",
            "0000",
            "****",
            "your_api_key_here",
            "YOUR_GEMINI_API_KEY_HERE",
            "<key>",
            "$KEY",
            "${KEY}",
            "changeme",
            "ChangeMe",
            "example",
            "an-example-key",
            "DUMMY",
            "dummy_value",
        ] {
            assert!(is_placeholder(value), "`{value}` is a placeholder");
        }
        for value in [
            "s3cr3tvalue",
            "examplekey42",
            "yours",
            "abab",
            "dummies-not",
        ] {
            assert!(!is_placeholder(value), "`{value}` is not a placeholder");
        }
    }

    #[test]
    fn history_findings_say_how_to_rewrite_history() {
        let f = Finding {
            path: "keys/sparkle_private_key".into(),
            line: 1,
            rule: "ed25519-private-key",
            masked: "<32-byte key file>".into(),
            commit: Some(Commit {
                sha: "1111111111111111111111111111111111111111".into(),
                subject: "add key".into(),
            }),
        };
        let text = render_history(&[&f]);
        assert!(
            text.contains("commit 111111111111 \"add key\"  keys/sparkle_private_key:1"),
            "{text}"
        );
        assert!(text.contains("git rebase -i 111111111111~1"), "{text}");
        assert!(
            text.contains("git filter-repo --invert-paths --path keys/sparkle_private_key"),
            "{text}"
        );
        assert!(text.contains("rotate"), "{text}");
    }
}
