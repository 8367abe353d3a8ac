//! `cargo xtask install-hook`: a git pre-push hook that runs the check on
//! what is being pushed (`check --pre-push`).
//!
//! The hook carries a marker line so that a rerun recognises its own file,
//! also one an older version wrote, and replaces it with the current one;
//! it never overwrites a hook someone else wrote unless told to with
//! `--force`.

use std::{fs, os::unix::fs::PermissionsExt, path::PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{changes, cli::InstallHook, config::Workspace};

const MARKER: &str = "# installed by `cargo xtask install-hook`";

fn hook_text() -> String {
    format!(
        "#!/bin/sh\n{MARKER}; reinstall with the same command.\n\
         # Refuses a push whose new commits add a secret, or whose pushed tip\n\
         # fails the release check. git gives the remote as $1, the refs on stdin.\n\
         exec cargo xtask check --pre-push \"$1\"\n"
    )
}

impl InstallHook {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> Result<()> {
        let root = &ws.root;
        let hooks = cmd!(sh, "git -C {root} rev-parse --git-path hooks")
            .quiet()
            .read()
            .context(
                "`git rev-parse` failed; install-hook needs a git checkout (run `git init` first)",
            )?;
        let hooks = {
            let p = PathBuf::from(hooks.trim());
            if p.is_absolute() {
                p
            } else {
                root.join(p)
            }
        };
        let path = hooks.join("pre-push");
        let want = hook_text();
        let shown = path.display();
        match fs::read_to_string(&path) {
            Ok(existing) if existing == want => {
                crate::say!("pre-push hook already installed at {shown}");
                return Ok(());
            }
            Ok(existing) if !existing.contains(MARKER) && !self.force => bail!(
                "{shown} exists and was not written by this tool; merge `cargo xtask check` into it by hand or pass --force to replace it"
            ),
            Ok(_) | Err(_) => {}
        }
        fs::create_dir_all(&hooks).with_context(|| format!("cannot create {}", hooks.display()))?;
        if !path.exists() {
            fs::write(&path, "").with_context(|| format!("cannot create {shown}"))?;
        }
        let old = fs::read_to_string(&path).unwrap_or_default();
        let verb = if old.contains(MARKER) {
            "updated"
        } else {
            "installed"
        };
        changes::apply(&[changes::FileChange {
            rel: shown.to_string(),
            abs: path.clone(),
            old,
            new: want,
        }])?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {shown} executable"))?;
        crate::say!("{verb} pre-push hook at {shown}");
        Ok(())
    }
}
