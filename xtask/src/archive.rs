//! The archive of released versions (`release_inbox/.archive/<version>/`):
//! the rollback points. Each holds the version's assets and the manifest
//! that describes them, and counts only once its `.complete` marker exists.
//! Publish fills it (a copy of what it publishes, or a download of what it
//! replaces), rollback reads it.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use crate::{artifact::Kind, config::INBOX, hash, manifest, version::Version};

/// The file that marks an archive directory as complete.
pub const DONE: &str = ".complete";

/// `release_inbox/.archive` of the workspace at `root`.
pub fn root_of(root: &Path) -> PathBuf {
    root.join(INBOX).join(".archive")
}

/// The versions with a complete archive, oldest first.
pub fn versions(root: &Path) -> Vec<Version> {
    let mut out: Vec<Version> = complete_dirs(&root_of(root))
        .filter_map(|(name, _)| name.parse().ok())
        .collect();
    out.sort();
    out
}

/// Every complete archive with the manifest kept in it (`manifest_file`),
/// by version: what the planner needs to know of the archive.
pub fn complete(archive_root: &Path, manifest_file: &str) -> BTreeMap<String, Option<String>> {
    complete_dirs(archive_root)
        .map(|(name, dir)| (name, fs::read_to_string(dir.join(manifest_file)).ok()))
        .collect()
}

fn complete_dirs(archive_root: &Path) -> impl Iterator<Item = (String, PathBuf)> {
    fs::read_dir(archive_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join(DONE).is_file())
        .filter_map(|e| Some((e.file_name().to_str()?.to_string(), e.path())))
}

/// Checks that an archived DMG is the one its manifest describes.
pub fn consistent(dir: &Path, manifest_text: Option<&str>) -> std::result::Result<(), String> {
    let dmg = dir.join(Kind::Dmg.file_name());
    let (Some(text), true) = (manifest_text, dmg.is_file()) else {
        return Ok(());
    };
    let want = manifest::View::parse("archived manifest", text)
        .ok()
        .and_then(|m| m.sha256);
    let got = hash::file_digest(&dmg)
        .map_err(|e| format!("{e:#}"))?
        .sha256;
    if want.as_deref() == Some(got.as_str()) {
        Ok(())
    } else {
        Err(format!(
            "its Nexy.dmg has sha256 {got} but its manifest says {}",
            want.unwrap_or_else(|| "nothing".into())
        ))
    }
}

/// Marks `dir` complete, with the manifest that describes its assets.
pub fn seal(dir: &Path, version: &str, manifest_file: &str, manifest: Option<&str>) -> Result<()> {
    if let Some(m) = manifest {
        crate::effect::write(&dir.join(manifest_file), m)
            .with_context(|| format!("cannot write the archived manifest in {}", dir.display()))?;
    }
    crate::effect::write(&dir.join(DONE), &format!("{version}\n"))
        .with_context(|| format!("cannot mark {} complete", dir.display()))
}

/// A copy into the archive running beside the publish.
pub struct Copy {
    version: String,
    dir: PathBuf,
    staging: PathBuf,
    manifest: String,
    manifest_file: String,
    handle: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Copy {
    /// Starts copying what is being published into the archive, as the
    /// rollback point of its version, beside the uploads: when the next
    /// release replaces it, nothing has to be downloaded. Copies, not hard
    /// links: a later `cp` over the inbox file would change the archive
    /// too. `files` are the artifacts published: kind, path and sha256.
    /// `None` when that archive already holds exactly this release, or when
    /// the manifest does not describe these bytes.
    pub fn start(
        archive_root: &Path,
        manifest_file: &str,
        files: &[(Kind, &Path, &str)],
        manifest_text: &str,
    ) -> Result<Option<Copy>> {
        let view = manifest::View::parse("the published manifest", manifest_text)?;
        let Some(version) = view.version else {
            return Ok(None);
        };
        let dir = archive_root.join(&version);
        if dir.join(DONE).is_file()
            && fs::read_to_string(dir.join(manifest_file)).ok().as_deref() == Some(manifest_text)
        {
            return Ok(None);
        }
        // Only bytes the manifest describes make a rollback point.
        let dmg = files.iter().find(|(kind, _, _)| *kind == Kind::Dmg);
        if dmg.is_none_or(|(_, _, sha)| Some(*sha) != view.sha256.as_deref()) {
            return Ok(None);
        }
        let staging = archive_root.join(format!(".{version}.partial"));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        let files: Vec<(PathBuf, PathBuf)> = files
            .iter()
            .map(|(kind, path, _)| (path.to_path_buf(), staging.join(kind.file_name())))
            .collect();
        let handle = std::thread::spawn(move || -> std::io::Result<()> {
            background_priority();
            for (from, to) in files {
                fs::copy(from, to)?;
            }
            Ok(())
        });
        Ok(Some(Copy {
            version,
            dir,
            staging,
            manifest: manifest_text.to_string(),
            manifest_file: manifest_file.to_string(),
            handle,
        }))
    }

    /// Completes the archive once everything was published.
    pub fn finish(self) -> Result<()> {
        let Copy {
            version,
            dir,
            staging,
            manifest,
            manifest_file,
            handle,
        } = self;
        let copied = handle
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the copy thread panicked")));
        if let Err(err) = copied {
            let _ = fs::remove_dir_all(&staging);
            crate::say!("  warning: no rollback point kept for {version}: {err}");
            return Ok(());
        }
        seal(&staging, &version, &manifest_file, Some(&manifest))?;
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&staging, &dir)
            .with_context(|| format!("cannot move the archive into {}", dir.display()))?;
        crate::say!("  kept {version} as a rollback point in {}", dir.display());
        Ok(())
    }

    /// Waits for the copy of a publish that failed and removes it: only a
    /// published release is a rollback point.
    pub fn abandon(self) {
        let _ = self.handle.join();
        let _ = fs::remove_dir_all(&self.staging);
    }
}

/// Gives the calling thread the lowest CPU priority, so that the archive
/// copy takes only CPU time the uploads and the swap leave idle: it is a
/// convenience for the next release, they are this one. On Linux threads
/// have their own nice value; elsewhere (macOS, where the copy is an APFS
/// clone anyway) this does nothing.
fn background_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority and gettid only read their integer arguments;
    // a failure leaves the priority as it was, which is harmless.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
}
