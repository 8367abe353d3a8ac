//! The release version: exactly four dot-separated decimal numbers.
//!
//! Nexy versions are `X.Y.Z.W` everywhere (VERSION, manifest `version` and
//! `build`, configs). The grammar is strict on purpose: a version that a
//! human typed slightly wrong (`v2.0.0.4`, `2.0.0.04`) must be refused with
//! the reason, not normalised behind the user's back.

use std::{cmp::Ordering, fmt, str::FromStr};

/// A parsed `X.Y.Z.W` version; compares numerically, part by part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(pub [u32; 4]);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

/// Why a text is not a version; the message says how to write it instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionError(pub String);

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VersionError {}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let shown = text.escape_debug();
        let fail = |why: &str| {
            Err(VersionError(format!(
                "`{shown}` is not a version: {why}; write four numbers like 2.0.0.4"
            )))
        };
        if text.is_empty() {
            return fail("it is empty");
        }
        if text.starts_with(['v', 'V']) {
            return Err(VersionError(format!(
                "`{shown}` is not a version: drop the leading v (write {})",
                &text[1..]
            )));
        }
        if text.chars().any(char::is_whitespace) {
            return fail("it contains whitespace");
        }
        let parts: Vec<&str> = text.split('.').collect();
        if parts.len() != 4 {
            return fail(&format!(
                "it has {} dot-separated parts, not 4",
                parts.len()
            ));
        }
        let mut out = [0u32; 4];
        for (slot, part) in out.iter_mut().zip(&parts) {
            if part.is_empty() {
                return fail("a part is empty");
            }
            if !part.bytes().all(|b| b.is_ascii_digit()) {
                return fail(&format!(
                    "part `{}` is not a plain decimal number (no signs or letters)",
                    part.escape_debug()
                ));
            }
            if part.len() > 1 && part.starts_with('0') {
                return fail(&format!("part `{part}` has a leading zero"));
            }
            *slot = match part.parse::<u32>() {
                Ok(n) => n,
                Err(_) => return fail(&format!("part `{part}` is larger than {}", u32::MAX)),
            };
        }
        Ok(Version(out))
    }
}

/// What is wrong with the VERSION file as a whole, when its text is not
/// exactly one version and a newline.
pub fn parse_version_file(text: &str) -> Result<Version, VersionError> {
    if text.starts_with('\u{feff}') {
        return Err(VersionError(
            "it starts with a UTF-8 byte order mark".to_string(),
        ));
    }
    if text.contains('\r') {
        return Err(VersionError(
            "it has a CRLF (Windows) line ending".to_string(),
        ));
    }
    if text.trim().is_empty() {
        return Err(VersionError("it is empty".to_string()));
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.contains('\n') {
        return Err(VersionError("it holds more than one line".to_string()));
    }
    body.parse()
}

/// How `to` relates to `from`, in words for messages.
pub fn describe_move(from: Version, to: Version) -> &'static str {
    match to.cmp(&from) {
        Ordering::Greater => "upgrade",
        Ordering::Equal => "same version",
        Ordering::Less => "downgrade",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        text.parse::<Version>().unwrap_err().0
    }

    #[test]
    fn accepts_four_numbers() {
        assert_eq!("2.0.0.4".parse(), Ok(Version([2, 0, 0, 4])));
        assert_eq!("0.0.0.0".parse(), Ok(Version([0, 0, 0, 0])));
        assert_eq!(
            "4294967295.1.10.100".parse(),
            Ok(Version([u32::MAX, 1, 10, 100]))
        );
        assert_eq!(Version([2, 0, 0, 32]).to_string(), "2.0.0.32");
    }

    #[test]
    fn refuses_bad_grammar_with_reason() {
        assert!(err("2.0.0").contains("3 dot-separated parts"));
        assert!(err("2.0.0.4.5").contains("5 dot-separated parts"));
        assert!(err("v2.0.0.4").contains("drop the leading v"));
        assert!(err("2.0.0.-1").contains("not a plain decimal"));
        assert!(err("2.0.0.+1").contains("not a plain decimal"));
        assert!(err("2.0.0.04").contains("leading zero"));
        assert!(err("99999999999.0.0.0").contains("larger than 4294967295"));
        assert!(err("2.0. 0.4").contains("whitespace"));
        assert!(err("2.0..4").contains("4 dot-separated") || err("2.0..4").contains("empty"));
        assert!(err("2.0.0.").contains("empty"));
        assert!(err("").contains("empty"));
        assert!(err("2.0.0.٤").contains("not a plain decimal"));
    }

    #[test]
    fn compares_numerically() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        assert!(v("2.0.0.10") > v("2.0.0.9"));
        assert!(v("10.0.0.0") > v("9.99.99.99"));
        assert_eq!(describe_move(v("2.0.0.4"), v("2.0.0.3")), "downgrade");
    }

    #[test]
    fn version_file_problems_are_named() {
        assert_eq!(parse_version_file("2.0.0.4\n"), Ok(Version([2, 0, 0, 4])));
        assert_eq!(parse_version_file("2.0.0.4"), Ok(Version([2, 0, 0, 4])));
        assert!(parse_version_file("").unwrap_err().0.contains("empty"));
        assert!(parse_version_file("\n").unwrap_err().0.contains("empty"));
        assert!(parse_version_file("2.0.0.4\r\n")
            .unwrap_err()
            .0
            .contains("CRLF"));
        assert!(parse_version_file("\u{feff}2.0.0.4\n")
            .unwrap_err()
            .0
            .contains("byte order mark"));
        assert!(parse_version_file("2.0.0.4\n2.0.0.5\n")
            .unwrap_err()
            .0
            .contains("more than one line"));
        assert!(parse_version_file("2.0.0\n").is_err());
    }
}
