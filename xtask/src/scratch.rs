//! A scratch directory of a command of its own (the benchmarks, the
//! pre-push check's checkout, the rehearsal), removed with everything in it
//! when dropped. In a module of its own so that its users do not import
//! each other for it (`prepush` once took it from `bench`, which imports
//! `check`, which imports `prepush`: a cycle).

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

/// A scratch directory removed, with everything in it, when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory `PREFIX-PID-N` in `base` (created if missing),
    /// by its canonical path.
    pub fn named(base: &Path, prefix: &str) -> Result<TempDir> {
        fs::create_dir_all(base).with_context(|| format!("cannot create {}", base.display()))?;
        for i in 0..100 {
            let dir = base.join(format!("{prefix}-{}-{i}", std::process::id()));
            if fs::create_dir(&dir).is_ok() {
                let dir = fs::canonicalize(&dir)
                    .with_context(|| format!("cannot resolve {}", dir.display()))?;
                return Ok(TempDir(dir));
            }
        }
        bail!("cannot create a scratch directory in {}", base.display())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_directory_goes_with_its_guard() {
        let base = tempfile::tempdir().unwrap();
        let a = TempDir::named(base.path(), "x").unwrap();
        let b = TempDir::named(base.path(), "x").unwrap();
        assert_ne!(a.path(), b.path());
        fs::write(a.path().join("f"), "1").unwrap();
        let kept = a.path().to_path_buf();
        drop(a);
        assert!(!kept.exists());
        assert!(b.path().is_dir());
    }
}
