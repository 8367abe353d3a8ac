//! The real Azure CLI the stand-in is driven with: azure-cli 2.91.0 from
//! PyPI in the project's own virtual environment (`target/azure-cli`),
//! installed on first use by `.ci/azure-cli` (which says so and how long
//! it took) and reused after. `sandbox up` and `rehearse` call this; tests
//! never do (they only look for it).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

/// The az executable, installing it first when it is missing.
pub fn ensure(sh: &Shell, project_root: &Path) -> Result<PathBuf> {
    let script = project_root.join(".ci/azure-cli");
    let out = cmd!(sh, "bash {script}")
        .ignore_status()
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    // The installer's progress lines go to our stderr as they are.
    let err = String::from_utf8_lossy(&out.stderr);
    for line in err.lines().filter(|l| !l.starts_with("error:")) {
        crate::say!("{line}");
    }
    if !out.status.success() {
        let why = err
            .lines()
            .rev()
            .find(|l| l.starts_with("error:"))
            .unwrap_or("the azure-cli installer failed");
        bail!("{}", why.trim_start_matches("error: "));
    }
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let path = PathBuf::from(path);
    if !path.is_file() {
        bail!(
            "{} printed no az executable; run it by hand to see why",
            script.display()
        );
    }
    Ok(path)
}
