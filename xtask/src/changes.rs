//! Planned file changes and the one seam that writes them.
//!
//! Tasks compute every edit as plain data (`FileChange`) first. Nothing is
//! written until the whole plan is valid; then every new file is written to
//! a temporary file beside its target and fsynced, and only when all of
//! them are ready are they renamed into place. A failure before the renames
//! removes the temporaries and leaves the tree exactly as it was.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

/// One file's old and new text. `rel` is the path shown to people.
#[derive(Debug, Clone)]
pub struct FileChange {
    pub rel: String,
    pub abs: PathBuf,
    pub old: String,
    pub new: String,
}

/// Reads a UTF-8 text file, naming it (relative to the root) in errors.
pub fn read_text(root: &Path, rel: &str) -> Result<String> {
    let abs = root.join(rel);
    let bytes = fs::read(&abs).with_context(|| {
        if abs.exists() {
            format!("cannot read {rel}; check its permissions")
        } else {
            format!("{rel} is missing; restore it (`git checkout -- {rel}`) or remove it from release.toml")
        }
    })?;
    String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{rel} is not UTF-8 text; restore it from git"))
}

/// Refuses a file that cannot be replaced. Checked while planning, because
/// a rename would replace even a read-only file (and root ignores modes).
pub fn ensure_writable(root: &Path, rel: &str) -> Result<()> {
    let meta = fs::metadata(root.join(rel)).with_context(|| format!("cannot stat {rel}"))?;
    if meta.permissions().readonly() {
        bail!("{rel} is read-only; make it writable (`chmod u+w {rel}`) and run again");
    }
    Ok(())
}

/// The unified diff of every change, as `git diff` would show it.
pub fn unified_diff(changes: &[FileChange]) -> String {
    let mut out = String::new();
    for change in changes {
        let diff = similar::TextDiff::from_lines(&change.old, &change.new);
        out.push_str(
            &diff
                .unified_diff()
                .context_radius(2)
                .header(&format!("a/{}", change.rel), &format!("b/{}", change.rel))
                .missing_newline_hint(true)
                .to_string(),
        );
    }
    out
}

/// Writes every change atomically: all temporaries first, then the renames.
pub fn apply(changes: &[FileChange]) -> Result<()> {
    let mut staged: Vec<(PathBuf, &FileChange)> = Vec::new();
    for change in changes {
        match stage(change) {
            Ok(tmp) => staged.push((tmp, change)),
            Err(err) => {
                for (tmp, _) in &staged {
                    let _ = fs::remove_file(tmp);
                }
                return Err(err.context("nothing was changed"));
            }
        }
    }
    for (tmp, change) in &staged {
        fs::rename(tmp, &change.abs).with_context(|| {
            format!(
                "cannot move the new {} into place; the files listed before it were already written, run the command again",
                change.rel
            )
        })?;
        if let Some(dir) = change.abs.parent() {
            // Persist the rename itself; a crash must not lose it.
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
    }
    Ok(())
}

/// Writes the new text to a temporary file in the same directory (so the
/// rename is atomic) with the original file's permissions.
fn stage(change: &FileChange) -> Result<PathBuf> {
    let dir = change
        .abs
        .parent()
        .with_context(|| format!("{} has no parent directory", change.rel))?;
    let name = change
        .abs
        .file_name()
        .with_context(|| format!("{} has no file name", change.rel))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.xtask-{}.tmp", std::process::id()));
    let perms = fs::metadata(&change.abs).map(|m| m.permissions()).ok();
    let result = (|| -> std::io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(change.new.as_bytes())?;
        if let Some(perms) = perms {
            file.set_permissions(perms)?;
        }
        file.sync_all()
    })();
    if let Err(err) = result {
        let _ = fs::remove_file(&tmp);
        return Err(err)
            .with_context(|| format!("cannot write a temporary file beside {}", change.rel));
    }
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_shows_both_sides_and_missing_newline() {
        let change = FileChange {
            rel: "VERSION".into(),
            abs: PathBuf::from("/nonexistent/VERSION"),
            old: "2.0.0.3".into(),
            new: "2.0.0.4\n".into(),
        };
        let diff = unified_diff(&[change]);
        assert!(diff.contains("--- a/VERSION\n+++ b/VERSION\n"), "{diff}");
        assert!(
            diff.contains("-2.0.0.3\n\\ No newline at end of file\n+2.0.0.4\n"),
            "{diff}"
        );
    }

    #[test]
    fn apply_keeps_permissions_and_replaces_text() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.sh");
        fs::write(&path, "old\r\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o751)).unwrap();
        let change = FileChange {
            rel: "run.sh".into(),
            abs: path.clone(),
            old: "old\r\n".into(),
            new: "new\r\n".into(),
        };
        apply(&[change]).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new\r\n");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o751
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left behind"
        );
    }
}
