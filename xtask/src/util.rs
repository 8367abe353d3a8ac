//! Small helpers shared by several modules: the tail of a command's output
//! and the one base64 engine.

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Standard base64 (RFC 4648 alphabet). It writes padding; it reads text
/// with or without it, as the hand-written decoder it replaced did (keys
/// pasted by people sometimes lose their `=`).
pub const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The last `n` non-empty lines of a command's output, joined.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(n);
    let joined = lines[start..].join(" / ");
    if joined.is_empty() {
        "no output".to_string()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_non_empty_lines() {
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b / c");
        assert_eq!(last_lines("\n \n", 2), "no output");
    }

    #[test]
    fn base64_reads_with_and_without_padding() {
        use base64::Engine as _;
        assert_eq!(BASE64.encode(b"abcd"), "YWJjZA==");
        assert_eq!(BASE64.decode("YWJjZA==").unwrap(), b"abcd");
        assert_eq!(BASE64.decode("YWJjZA").unwrap(), b"abcd");
        assert!(BASE64.decode("YWJj*A==").is_err());
    }
}
