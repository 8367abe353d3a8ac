//! sha256 and size of a file in one streaming pass.
//!
//! Real DMGs are about 270 MB: the file is read in fixed 1 MiB chunks so
//! memory stays flat whatever the size, and sha2 picks the CPU's SHA
//! extensions at run time where they exist.

use std::{
    fs::File,
    io::Read,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// A file's identity as GitHub and the manifest record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub sha256: String,
    pub size: u64,
}

/// Hashes `path` in one pass with a fixed-size buffer.
pub fn file_digest(path: &Path) -> Result<FileDigest> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    digest_reader(file).with_context(|| format!("cannot read {}", path.display()))
}

/// Hashes `path` like [`file_digest`], adding each chunk's length to
/// `progress` as it goes (for a progress line).
pub fn file_digest_counted(path: &Path, progress: &AtomicU64) -> Result<FileDigest> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    digest_counted(file, progress).with_context(|| format!("cannot read {}", path.display()))
}

/// Hashes everything `reader` yields, 1 MiB at a time.
pub fn digest_reader(reader: impl Read) -> std::io::Result<FileDigest> {
    digest_counted(reader, &AtomicU64::new(0))
}

fn digest_counted(mut reader: impl Read, progress: &AtomicU64) -> std::io::Result<FileDigest> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
        progress.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok(FileDigest {
        sha256: hex(&hasher.finalize()),
        size,
    })
}

/// sha256 of bytes in memory (small payloads such as a manifest).
pub fn bytes_sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            bytes_sha256(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        // Larger than one buffer, so the chunk loop is exercised.
        let data: Vec<u8> = (0..(3 << 20) + 7).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let d = file_digest(&path).unwrap();
        assert_eq!(d.size, data.len() as u64);
        assert_eq!(d.sha256, bytes_sha256(&data));
    }
}
