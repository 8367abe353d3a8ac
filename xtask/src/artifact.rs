//! The artifacts in `release_inbox/`: what they must look like before they
//! are published (what is inside them is `macos`'s part), and the random
//! bytes the samples and benchmarks are padded with.
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

/// Writes `size` pseudo-random bytes to `path`: the hashing benchmark's
/// input, a stream of 1 MiB pieces never all in memory.
pub fn write_random(path: &Path, size: u64, seed: u64) -> Result<()> {
    let mut file =
        fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    write_random_to(&mut file, size, seed)
}

/// The xorshift state of `seed`.
pub fn random_state(seed: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

/// Fills `buf` with pseudo-random bytes (xorshift), advancing `state`.
pub fn fill_random(buf: &mut [u8], state: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
}

/// Pseudo-random bytes written in 1 MiB pieces.
pub fn write_random_to(out: &mut impl Write, mut left: u64, seed: u64) -> Result<()> {
    let mut state = random_state(seed);
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        fill_random(&mut buf, &mut state);
        let n = left.min(buf.len() as u64) as usize;
        out.write_all(&buf[..n])?;
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
        let spec = crate::samples::spec_for(None, Some("2.0.0.4"), None, 1).unwrap();
        let (dmg, pkg) = crate::samples::write_both(dir.path(), 100_000, 60_000, &spec).unwrap();
        assert_eq!(validate(&dmg, Kind::Dmg).unwrap(), 100_000);
        assert_eq!(validate(&pkg, Kind::Pkg).unwrap(), 60_000);
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
