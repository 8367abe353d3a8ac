//! The artifacts in `release_inbox/`: what they must look like before they
//! are published, and realistic samples for rehearsals.
//!
//! A DMG is a UDIF image whose last 512 bytes are the `koly` trailer; a PKG
//! is a xar archive starting with `xar!`. Checking both catches a
//! mislabelled or truncated file before users download it.

use std::{
    fs,
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

/// The content type gh sends for a `.dmg` (a fixed type in gh, whatever
/// the machine's MIME table says) and the old flow's DMG carried. A PKG's
/// comes from the uploading machine's MIME table, so it is only reported.
pub const DMG_CONTENT_TYPE: &str = "application/x-apple-diskimage";

/// The two artifacts of a release, by their fixed asset names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dmg,
    Pkg,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Dmg, Kind::Pkg];

    pub fn file_name(self) -> &'static str {
        match self {
            Kind::Dmg => "Nexy.dmg",
            Kind::Pkg => "Nexy.pkg",
        }
    }
}

/// The release notes that travel with the DMG.
pub const NOTES: &str = "LATEST_CHANGES.md";

/// Checks one artifact file; the error says what is wrong and the fix.
pub fn validate(path: &Path, kind: Kind) -> Result<u64> {
    let shown = path.display();
    let meta = fs::symlink_metadata(path).with_context(|| format!("{shown} is missing"))?;
    if meta.file_type().is_symlink() {
        bail!("{shown} is a symlink; copy the real file into release_inbox/");
    }
    if !meta.is_file() {
        bail!("{shown} is not a regular file");
    }
    if meta.len() == 0 {
        bail!("{shown} is empty; rebuild it");
    }
    let mut file = fs::File::open(path).with_context(|| format!("cannot open {shown}"))?;
    match kind {
        Kind::Dmg => {
            let mut trailer = [0u8; 4];
            let ok = meta.len() >= 512
                && file.seek(SeekFrom::End(-512)).is_ok()
                && file.read_exact(&mut trailer).is_ok()
                && &trailer == b"koly";
            if !ok {
                bail!("{shown} has no UDIF `koly` trailer, so it is not a DMG (truncated or mislabelled); rebuild it with hdiutil");
            }
        }
        Kind::Pkg => {
            let mut magic = [0u8; 4];
            if file.read_exact(&mut magic).is_err() || &magic != b"xar!" {
                bail!("{shown} does not start with the xar magic `xar!`, so it is not a flat PKG; rebuild it with productbuild");
            }
        }
    }
    Ok(meta.len())
}

/// The artifacts present in an inbox directory.
pub fn present(inbox: &Path) -> Vec<(Kind, PathBuf)> {
    Kind::ALL
        .iter()
        .map(|k| (*k, inbox.join(k.file_name())))
        .filter(|(_, p)| fs::symlink_metadata(p).is_ok())
        .collect()
}

impl crate::cli::Samples {
    pub fn run(self) -> Result<()> {
        fs::create_dir_all(&self.out)
            .with_context(|| format!("cannot create {}", self.out.display()))?;
        let dmg = self.out.join(Kind::Dmg.file_name());
        let pkg = self.out.join(Kind::Pkg.file_name());
        write_sample_dmg(&dmg, self.dmg_size, self.seed)?;
        write_sample_pkg(&pkg, self.pkg_size, self.seed.wrapping_add(1))?;
        println!("wrote {} and {}", dmg.display(), pkg.display());
        Ok(())
    }
}

/// Writes a realistic DMG of `size` bytes: varied content ending in a
/// 512-byte `koly` trailer. `seed` makes two samples differ.
pub fn write_sample_dmg(path: &Path, size: u64, seed: u64) -> Result<()> {
    let size = size.max(1024);
    let mut file =
        fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    write_pattern(&mut file, size - 512, seed)?;
    let mut trailer = [0u8; 512];
    trailer[..4].copy_from_slice(b"koly");
    trailer[4..8].copy_from_slice(&4u32.to_be_bytes());
    trailer[8..12].copy_from_slice(&512u32.to_be_bytes());
    file.write_all(&trailer)?;
    Ok(())
}

/// Writes a realistic flat PKG: a xar header, then varied content.
pub fn write_sample_pkg(path: &Path, size: u64, seed: u64) -> Result<()> {
    let size = size.max(64);
    let mut file =
        fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut header = Vec::with_capacity(28);
    header.extend_from_slice(b"xar!");
    header.extend_from_slice(&28u16.to_be_bytes());
    header.extend_from_slice(&1u16.to_be_bytes());
    header.extend_from_slice(&0u64.to_be_bytes());
    header.extend_from_slice(&0u64.to_be_bytes());
    header.extend_from_slice(&1u32.to_be_bytes());
    file.write_all(&header)?;
    write_pattern(&mut file, size - 28, seed)?;
    Ok(())
}

/// Pseudo-random bytes (xorshift), written in 1 MiB chunks.
fn write_pattern(file: &mut fs::File, mut left: u64, seed: u64) -> Result<()> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bytes = state.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        let n = left.min(buf.len() as u64) as usize;
        file.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_validate_and_mislabels_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let dmg = dir.path().join("Nexy.dmg");
        let pkg = dir.path().join("Nexy.pkg");
        write_sample_dmg(&dmg, 10_000, 1).unwrap();
        write_sample_pkg(&pkg, 10_000, 2).unwrap();
        assert_eq!(validate(&dmg, Kind::Dmg).unwrap(), 10_000);
        assert_eq!(validate(&pkg, Kind::Pkg).unwrap(), 10_000);
        let err = validate(&pkg, Kind::Dmg).unwrap_err().to_string();
        assert!(err.contains("koly"), "{err}");
        let err = validate(&dmg, Kind::Pkg).unwrap_err().to_string();
        assert!(err.contains("xar"), "{err}");
        let link = dir.path().join("link.dmg");
        std::os::unix::fs::symlink(&dmg, &link).unwrap();
        assert!(validate(&link, Kind::Dmg)
            .unwrap_err()
            .to_string()
            .contains("symlink"));
        fs::write(dir.path().join("e.dmg"), b"").unwrap();
        assert!(validate(&dir.path().join("e.dmg"), Kind::Dmg)
            .unwrap_err()
            .to_string()
            .contains("empty"));
    }
}
