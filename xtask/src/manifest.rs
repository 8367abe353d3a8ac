//! The update manifest (`manifest.json`): reading, editing, validating and
//! writing it byte-compatible with the old Python scripts.
//!
//! The team's manifests were written by
//! `json.dumps(obj, indent=2, ensure_ascii=False) + "\n"`. We reproduce that
//! format exactly (key order and unknown keys kept, non-ASCII as is, Python's
//! float and string escaping) so a release diff shows only what changed.

use std::fmt::Write as _;

use anyhow::{bail, Result};
use serde_json::{Map, Value};

use crate::config::Channel;

/// Parses manifest text into its top-level object; `path` names the file.
pub fn parse(path: &str, text: &str) -> Result<Map<String, Value>> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        anyhow::anyhow!("{path} is not valid JSON ({e}); restore it from git (`git checkout -- {path}`) or fix it by hand")
    })?;
    match value {
        Value::Object(map) => Ok(map),
        other => bail!(
            "{path} must hold a JSON object at the top level, found {}; restore it from git",
            kind(&other)
        ),
    }
}

/// The fields of a manifest this tool reads, typed. Writing goes through
/// the map ([`parse`], [`to_python_json`]), which keeps unknown keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub version: Option<String>,
    pub build: Option<String>,
    /// `artifact.sha256`: the DMG the manifest describes.
    pub sha256: Option<String>,
    /// `artifact.size`.
    pub size: Option<u64>,
    /// `artifact.ed25519`: the DMG's signature, base64.
    pub ed25519: Option<String>,
}

impl View {
    pub fn parse(path: &str, text: &str) -> Result<View> {
        Ok(View::of(&parse(path, text)?))
    }

    pub fn of(map: &Map<String, Value>) -> View {
        let art = map.get("artifact");
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        View {
            version: text(map.get("version")),
            build: text(map.get("build")),
            sha256: text(art.and_then(|a| a.get("sha256"))),
            size: art.and_then(|a| a.get("size")).and_then(Value::as_u64),
            ed25519: text(art.and_then(|a| a.get("ed25519"))),
        }
    }
}

/// The manifest's file name on the VM and in an archive
/// (`manifest.json` for stable): the last part of the channel's path.
pub fn file_name(rel: &str) -> String {
    std::path::Path::new(rel)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "manifest.json".to_string())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The manifest text Python would write for `map`.
pub fn to_python_json(map: &Map<String, Value>) -> String {
    let mut out = String::new();
    write_object(&mut out, map, 0);
    out.push('\n');
    out
}

fn write_value(out: &mut String, value: &Value, depth: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&python_number(&n.to_string())),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                out.push_str(if i == 0 { "\n" } else { ",\n" });
                indent(out, depth + 1);
                write_value(out, item, depth + 1);
            }
            out.push('\n');
            indent(out, depth);
            out.push(']');
        }
        Value::Object(map) => write_object(out, map, depth),
    }
}

fn write_object(out: &mut String, map: &Map<String, Value>, depth: usize) {
    if map.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push('{');
    for (i, (key, value)) in map.iter().enumerate() {
        out.push_str(if i == 0 { "\n" } else { ",\n" });
        indent(out, depth + 1);
        write_string(out, key);
        out.push_str(": ");
        write_value(out, value, depth + 1);
    }
    out.push('\n');
    indent(out, depth);
    out.push('}');
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

/// Python's `json` string escaping with `ensure_ascii=False`: only the
/// quote, the backslash and control characters below U+0020 are escaped.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON number as Python re-serialises it: integers keep every digit
/// (Python ints are unbounded), floats use Python's `repr`.
fn python_number(text: &str) -> String {
    let is_float = text.contains(['.', 'e', 'E']);
    if !is_float {
        return if text == "-0" {
            "0".to_string()
        } else {
            text.to_string()
        };
    }
    match text.parse::<f64>() {
        Ok(x) => python_float_repr(x),
        Err(_) => text.to_string(),
    }
}

/// Python's `repr(float)`: the shortest round-trip digits, in fixed notation
/// when the decimal exponent is in [-4, 16), else `d.ddde+XX`.
fn python_float_repr(x: f64) -> String {
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if x.is_nan() {
        return "NaN".to_string();
    }
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if !(-4..16).contains(&exp) {
        let (head, tail) = digits.split_at(1);
        let dot = if tail.is_empty() {
            String::new()
        } else {
            format!(".{tail}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{head}{dot}e{esign}{:02}", exp.abs());
    }
    let point = exp + 1;
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    };
    format!("{sign}{body}")
}

/// Reads a top-level string field, naming the file when it is missing or
/// of the wrong type.
pub fn str_field<'a>(path: &str, map: &'a Map<String, Value>, key: &str) -> Result<&'a str> {
    match map.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => bail!(
            "{path}: \"{key}\" must be a string, found {}; set it to the version in VERSION",
            kind(other)
        ),
        None => bail!(
            "{path}: the manifest has no \"{key}\" key; add \"{key}\": \"X.Y.Z.W\" or restore the file from git"
        ),
    }
}

pub use crate::clock::{is_rfc3339, now_isoformat};

/// Plain http is accepted only on a loopback host (the local stand-in of
/// production); every real client download must be https.
pub fn is_loopback_http(url: &str) -> bool {
    ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
        .iter()
        .any(|p| url.starts_with(p))
}

/// Everything wrong with a manifest's artifact fields against its
/// channel, each problem a sentence that says the fix. The version and
/// build are compared with VERSION by the caller, with the other linked
/// files.
pub fn problems(map: &Map<String, Value>, channel: &Channel) -> Vec<String> {
    let mut out = Vec::new();
    let url_problem = |key: &str, value: Option<&Value>| -> Option<String> {
        let want = &channel.dmg_url;
        match value {
            Some(Value::String(url)) if url == want => None,
            Some(Value::String(url)) if url.contains("appcast") || url.contains("/updates/") => Some(format!(
                "{key} `{url}` points at the update feed, which clients would loop on; set it to {want}"
            )),
            Some(Value::String(url)) if !url.starts_with("https://") && !is_loopback_http(url) => Some(format!(
                "{key} `{url}` is not https; set it to {want}"
            )),
            Some(Value::String(url)) => Some(format!("{key} is `{url}`; set it to the fixed URL {want}")),
            Some(_) | None => Some(format!("{key} is missing or not a string; set it to {want}")),
        }
    };
    match map.get("artifact") {
        Some(Value::Object(art)) => {
            if art.get("type").and_then(Value::as_str) != Some("dmg") {
                out.push("artifact.type must be \"dmg\"".to_string());
            }
            out.extend(url_problem("artifact.url", art.get("url")));
            match art.get("sha256") {
                Some(Value::String(h))
                    if h.len() == 64 && h.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) => {}
                _ => out.push(
                    "artifact.sha256 must be 64 lowercase hex digits; `cargo xtask publish` writes it from the DMG"
                        .to_string(),
                ),
            }
            let size_ok = art
                .get("size")
                .and_then(Value::as_number)
                .map(|n| n.to_string())
                .is_some_and(|t| {
                    !t.starts_with(['-', '0']) && t.bytes().all(|c| c.is_ascii_digit())
                });
            if !size_ok {
                out.push(
                    "artifact.size must be a positive integer (bytes); `cargo xtask publish` writes it from the DMG"
                        .to_string(),
                );
            }
        }
        _ => out
            .push("the \"artifact\" object is missing; restore the manifest from git".to_string()),
    }
    out.extend(url_problem("notes_url", map.get("notes_url")));
    match map.get("release_date") {
        Some(Value::String(d)) if is_rfc3339(d) => {}
        _ => out.push(
            "release_date must be an RFC 3339 date-time like 2026-03-06T02:58:57.245806+00:00"
                .to_string(),
        ),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_python_json_dumps() {
        let text = r#"{"b":1,"a":{"x":[],"y":{},"z":[1,2.50,"é\u0001\"\\\n"]},"n":null,"t":true,"big":123456789012345678901234567890,"f":1e16,"g":0.00001,"h":100.0,"-z":-0}"#;
        let map = parse("m", text).unwrap();
        let expected = "{\n  \"b\": 1,\n  \"a\": {\n    \"x\": [],\n    \"y\": {},\n    \"z\": [\n      1,\n      2.5,\n      \"é\\u0001\\\"\\\\\\n\"\n    ]\n  },\n  \"n\": null,\n  \"t\": true,\n  \"big\": 123456789012345678901234567890,\n  \"f\": 1e+16,\n  \"g\": 1e-05,\n  \"h\": 100.0,\n  \"-z\": 0\n}\n";
        assert_eq!(to_python_json(&map), expected);
    }

    #[test]
    fn float_repr_matches_python() {
        for (x, want) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.5, "1.5"),
            (0.0001, "0.0001"),
            (0.00012, "0.00012"),
            (1e-5, "1e-05"),
            (123456789012345.6, "123456789012345.6"),
            (1e15, "1000000000000000.0"),
            (1.5e16, "1.5e+16"),
            (1e100, "1e+100"),
            (0.1 + 0.2, "0.30000000000000004"),
        ] {
            assert_eq!(python_float_repr(x), want, "{x}");
        }
    }

    #[test]
    fn the_view_reads_the_fields_we_use() {
        let text = "{\"version\": \"2.0.0.5\", \"build\": \"2.0.0.5\", \"artifact\": {\"size\": 12, \"sha256\": \"ab\", \"ed25519\": \"c2ln\"}, \"other\": 1}";
        let view = View::parse("m.json", text).unwrap();
        assert_eq!(
            view,
            View {
                version: Some("2.0.0.5".into()),
                build: Some("2.0.0.5".into()),
                sha256: Some("ab".into()),
                size: Some(12),
                ed25519: Some("c2ln".into()),
            }
        );
        // Missing or mistyped fields read as absent.
        let view = View::parse("m.json", "{\"version\": 5, \"artifact\": []}").unwrap();
        assert_eq!(view, View::default());
        assert_eq!(
            file_name("server/updates/manifests/manifest_beta.json"),
            "manifest_beta.json"
        );
    }

    #[test]
    fn refuses_non_objects() {
        assert!(format!("{}", parse("m.json", "[1]").unwrap_err()).contains("found an array"));
        assert!(format!("{}", parse("m.json", "{").unwrap_err()).contains("not valid JSON"));
    }
}
