//! The seam every effect of a release passes besides the child processes
//! themselves (which `proc.rs` bounds and counts): how a prepared command
//! is shown, and how a file is written.
//!
//! The dry run does not describe steps in words of its own: it shows the
//! very `Command` values that `gh.rs` and `az.rs` prepare for the real run
//! (with [`describe`]), and the writes the real run would make. So what
//! `--dry-run` prints is what would run.

use std::{path::Path, process::Command};

use anyhow::Result;

/// A command as a POSIX shell line: the program and each argument, quoted
/// where a shell would split or expand it; `stdin`, when given, follows as
/// a here-string (what `--input -` reads). The environment is not shown:
/// tokens travel there and are never printed.
pub fn describe(command: &Command, stdin: Option<&[u8]>) -> String {
    let mut line = word(&command.get_program().to_string_lossy());
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&word(&arg.to_string_lossy()));
    }
    if let Some(body) = stdin {
        line.push_str(" <<< ");
        line.push_str(&crate::proc::sh_quote(&String::from_utf8_lossy(body)));
    }
    line
}

/// One shell word: as is when it holds only characters no shell treats
/// specially, single-quoted otherwise.
fn word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.,/:=@%+".contains(c));
    if plain {
        text.to_string()
    } else {
        crate::proc::sh_quote(text)
    }
}

/// How a write of `bytes` to `path` shows in a dry run.
pub fn describe_write(path: &Path, bytes: &[u8]) -> String {
    format!(
        "write {} ({} bytes, sha256 {})",
        path.display(),
        bytes.len(),
        crate::hash::bytes_sha256(bytes)
    )
}

/// Writes `text` to `path` whole or not at all, through the one file
/// writer (`changes::apply`: a temporary file beside it, synced, then
/// renamed over it).
pub fn write(path: &Path, text: &str) -> Result<()> {
    crate::changes::apply(&[crate::changes::FileChange {
        rel: path.display().to_string(),
        abs: path.to_path_buf(),
        old: String::new(),
        new: text.to_string(),
    }])
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn commands_show_as_shell_lines() {
        let mut c = Command::new("gh");
        c.args([
            "api",
            "--hostname",
            "github.com",
            "-H",
            "Content-Type: application/json",
        ])
        .args(["repos/o/r", "it's", ""])
        .env("GH_TOKEN", "secret");
        assert_eq!(
            describe(&c, Some(b"{\"name\":\"Nexy.dmg\"}")),
            "gh api --hostname github.com -H 'Content-Type: application/json' repos/o/r 'it'\\''s' '' <<< '{\"name\":\"Nexy.dmg\"}'"
        );
        assert!(!describe(&c, None).contains("secret"));
    }

    #[test]
    fn writes_are_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        write(&path, "one").unwrap();
        write(&path, "two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(write(&dir.path().join("missing/x"), "x").is_err());
        assert!(describe_write(&path, b"two")
            .starts_with(&format!("write {} (3 bytes, sha256 ", path.display())));
    }
}
