//! A DMG: the UDIF container, its partition table, and the HFS+ or APFS
//! volumes in it, searched for app bundles at the volume's root (where
//! release DMGs put `Nexy.app`, beside an `Applications` symlink).

use std::{fs::File, path::Path};

use anyhow::{bail, Context, Result};

use super::{
    bundle,
    partition::{self, Fs, Part},
    udif::Disk,
    App, Artifact, Slice,
};

/// Info.plist larger than this is not an Info.plist.
const MAX_PLIST: u64 = 4 << 20;
/// An executable read whole (only when the filesystem cannot stream it,
/// as for a decmpfs-compressed file) is refused above this size.
const MAX_WHOLE_EXE: u64 = 256 << 20;

pub fn inspect(path: &Path, file: File, len: u64) -> Result<Artifact> {
    let (artifact, _) = inspect_counted(path, file, len)?;
    Ok(artifact)
}

/// Like [`inspect`], also returning how many chunks were decoded (for the
/// benchmark and the test that proves reads are lazy).
pub fn inspect_counted(path: &Path, file: File, len: u64) -> Result<(Artifact, u64)> {
    let mut disk = Disk::open(file, len)?;
    let size = disk.size;
    let (table, parts) = partition::find(&mut disk, size)?;
    if parts.is_empty() {
        bail!("its {table} partition table has no HFS+ or APFS partition");
    }
    let mut apps = Vec::new();
    let mut volumes = Vec::new();
    for part in &parts {
        let found = read_volume(&mut disk, part)
            .with_context(|| format!("the {} volume in {}", part.fs.name(), part.label))?;
        volumes.push(format!(
            "{} in {}{}",
            part.fs.name(),
            part.label,
            if found.is_empty() {
                " (no app in it)"
            } else {
                ""
            }
        ));
        apps.extend(found);
    }
    let layout = format!(
        "UDIF v{} ({}), {table}: {}",
        disk.koly.version,
        disk.codecs().join("+"),
        volumes.join(", ")
    );
    let artifact = Artifact {
        path: path.to_path_buf(),
        format: "dmg",
        layout,
        signed: disk.signed(),
        apps,
        packages: Vec::new(),
        product: None,
    };
    Ok((artifact, disk.decoded))
}

fn read_volume(disk: &mut Disk, part: &Part) -> Result<Vec<App>> {
    let view = Slice::new(disk, part.start, part.len);
    match part.fs {
        Fs::HfsPlus => {
            let vol = hfsplus::HfsVolume::open(view).map_err(|e| anyhow::anyhow!("{e}"))?;
            root_apps(vol)
        }
        Fs::Apfs => match apfs::ApfsVolume::open(view) {
            Ok(vol) => root_apps(vol),
            Err(apfs::ApfsError::NoVolume) => Ok(Vec::new()),
            Err(e) => bail!("{e}"),
        },
    }
}

/// What the app search needs of a filesystem: the HFS+ and APFS crates
/// have the same shape of API with their own types.
trait Volume {
    /// The names of the directories in the root whose name ends `.app`.
    fn app_dirs(&mut self) -> Result<Vec<String>>;
    fn size(&mut self, path: &str) -> Option<u64>;
    fn read(&mut self, path: &str) -> Result<Vec<u8>>;
    /// The executable's headers, streamed when the filesystem can.
    fn executable(&mut self, name: &str, path: &str) -> super::Executable;
}

macro_rules! volume {
    ($vol:ty, $kind:path) => {
        impl<R: std::io::Read + std::io::Seek> Volume for $vol {
            fn app_dirs(&mut self) -> Result<Vec<String>> {
                Ok(self
                    .list_directory("/")
                    .map_err(|e| anyhow::anyhow!("cannot list the root: {e}"))?
                    .into_iter()
                    .filter(|e| e.kind == $kind && e.name.ends_with(".app"))
                    .map(|e| e.name)
                    .collect())
            }

            fn size(&mut self, path: &str) -> Option<u64> {
                self.stat(path).map(|s| s.size).ok()
            }

            fn read(&mut self, path: &str) -> Result<Vec<u8>> {
                self.read_file(path)
                    .map_err(|e| anyhow::anyhow!("cannot read {path}: {e}"))
            }

            fn executable(&mut self, name: &str, path: &str) -> super::Executable {
                if let Ok(reader) = self.open_file(path) {
                    return bundle::executable(name, reader);
                }
                let size = self.size(path);
                whole(name, size, || self.read(path))
            }
        }
    };
}

volume!(hfsplus::HfsVolume<R>, hfsplus::EntryKind::Directory);
volume!(apfs::ApfsVolume<R>, apfs::EntryKind::Directory);

/// The app bundles at the root of a volume.
fn root_apps(mut vol: impl Volume) -> Result<Vec<App>> {
    let mut apps = Vec::new();
    for name in vol.app_dirs()? {
        let plist_path = format!("/{name}/Contents/Info.plist");
        let size = vol.size(&plist_path).unwrap_or(0);
        if size > MAX_PLIST {
            bail!("{plist_path} is {size} bytes, too large for an Info.plist");
        }
        let bytes = vol.read(&plist_path)?;
        let info = bundle::parse_info(&bytes).with_context(|| plist_path.clone())?;
        let mut app = App::from_info(name.clone(), &info);
        if let Some(exe) = info.executable.as_deref() {
            app.executable = Some(vol.executable(exe, &format!("/{name}/Contents/MacOS/{exe}")));
        }
        apps.push(app);
    }
    Ok(apps)
}

/// An executable the filesystem can only hand over whole (compressed).
fn whole(
    name: &str,
    size: Option<u64>,
    read: impl FnOnce() -> Result<Vec<u8>>,
) -> super::Executable {
    let problem = |why: String| super::Executable {
        name: name.to_string(),
        problem: Some(why),
        ..super::Executable::default()
    };
    match size {
        Some(n) if n > MAX_WHOLE_EXE => problem(format!(
            "{n} bytes, compressed on the volume: too large to read whole"
        )),
        _ => match read() {
            Ok(bytes) => bundle::executable(name, std::io::Cursor::new(bytes)),
            Err(e) => problem(format!("cannot read it: {e:#}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_chunks_the_filesystem_asks_for_are_decoded() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/macos/hfs-gpt-udzo.dmg");
        let file = File::open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        let stored = Disk::open(File::open(&path).unwrap(), len)
            .unwrap()
            .tables
            .iter()
            .flat_map(|t| &t.chunks)
            .filter(|c| c.kind == super::super::udif::kind::ZLIB)
            .count() as u64;
        let (artifact, decoded) = inspect_counted(&path, file, len).unwrap();
        assert_eq!(artifact.apps.len(), 1);
        assert!(
            decoded > 0 && decoded < stored,
            "decoded {decoded} of {stored} zlib chunks"
        );
    }
}
