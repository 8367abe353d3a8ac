//! The partition table of a decoded disk: GPT, Apple Partition Map, or a
//! whole-disk filesystem. The table is parsed from the disk itself; the
//! `blkx` names (`disk image (Apple_HFS : 4)`) are hints and are not used.

use std::io::{Read, Seek, SeekFrom};

use anyhow::{bail, Context, Result};

/// A filesystem we can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fs {
    HfsPlus,
    Apfs,
}

impl Fs {
    pub fn name(self) -> &'static str {
        match self {
            Fs::HfsPlus => "HFS+",
            Fs::Apfs => "APFS",
        }
    }
}

/// A partition that holds (or by its type should hold) a volume.
#[derive(Debug, Clone)]
pub struct Part {
    pub start: u64,
    pub len: u64,
    pub fs: Fs,
    /// `GPT partition 2`, `APM partition 3 (Apple_HFS)`, `whole disk`.
    pub label: String,
}

pub const GUID_HFS: [u8; 16] = guid(
    0x4846_5300,
    0x0000,
    0x11aa,
    [0xaa, 0x11, 0x00, 0x30, 0x65, 0x43, 0xec, 0xac],
);
pub const GUID_APFS: [u8; 16] = guid(
    0x7c34_57ef,
    0x0000,
    0x11aa,
    [0xaa, 0x11, 0x00, 0x30, 0x65, 0x43, 0xec, 0xac],
);

/// A GUID in its on-disk (mixed-endian) byte order.
pub const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

fn read_at<R: Read + Seek>(r: &mut R, at: u64, len: usize) -> Result<Vec<u8>> {
    r.seek(SeekFrom::Start(at))?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)
        .with_context(|| format!("cannot read {len} bytes at {at} of the disk"))?;
    Ok(buf)
}

/// Which filesystem starts at `at`, judged by its superblock magic.
pub fn sniff<R: Read + Seek>(r: &mut R, at: u64) -> Result<Option<Fs>> {
    let b = read_at(r, at, 1026)?;
    if &b[1024..1026] == b"H+" || &b[1024..1026] == b"HX" {
        return Ok(Some(Fs::HfsPlus));
    }
    if &b[32..36] == b"NXSB" {
        return Ok(Some(Fs::Apfs));
    }
    Ok(None)
}

/// The partitions of a disk of `size` bytes that hold HFS+ or APFS.
pub fn find<R: Read + Seek>(r: &mut R, size: u64) -> Result<(String, Vec<Part>)> {
    if size < 2048 {
        bail!("the disk is only {size} bytes");
    }
    let s1 = read_at(r, 512, 512)?;
    if &s1[..8] == b"EFI PART" {
        return Ok(("GPT".to_string(), gpt(r, &s1, size)?));
    }
    let s0 = read_at(r, 0, 512)?;
    if &s0[..2] == b"ER" && &s1[..2] == b"PM" {
        return Ok(("APM".to_string(), apm(r, &s0, size)?));
    }
    if let Some(fs) = sniff(r, 0)? {
        let part = Part {
            start: 0,
            len: size,
            fs,
            label: "whole disk".to_string(),
        };
        return Ok(("whole disk".to_string(), vec![part]));
    }
    bail!("the disk has no GPT, no Apple Partition Map and no HFS+ or APFS volume at its start")
}

fn gpt<R: Read + Seek>(r: &mut R, header: &[u8], size: u64) -> Result<Vec<Part>> {
    let le32 = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4"));
    let le64 = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8"));
    let entries_lba = le64(header, 72);
    let count = le32(header, 80) as usize;
    let entry_size = le32(header, 84) as usize;
    if !(128..=4096).contains(&entry_size) || count > 1024 {
        bail!("the GPT header is corrupt ({count} entries of {entry_size} bytes)");
    }
    let table = read_at(r, entries_lba * 512, count * entry_size)?;
    let mut parts = Vec::new();
    for (i, e) in table.chunks(entry_size).enumerate() {
        let ty: [u8; 16] = e[..16].try_into().expect("16");
        if ty == [0; 16] {
            continue;
        }
        let first = le64(e, 32);
        let last = le64(e, 40);
        let (start, len) = (first * 512, (last + 1).saturating_sub(first) * 512);
        if start + len > size {
            bail!("GPT partition {} runs past the end of the disk", i + 1);
        }
        let fs = if ty == GUID_HFS {
            Some(Fs::HfsPlus)
        } else if ty == GUID_APFS {
            Some(Fs::Apfs)
        } else {
            sniff(r, start)?
        };
        if let Some(fs) = fs {
            parts.push(Part {
                start,
                len,
                fs,
                label: format!("GPT partition {}", i + 1),
            });
        }
    }
    Ok(parts)
}

fn apm<R: Read + Seek>(r: &mut R, block0: &[u8], size: u64) -> Result<Vec<Part>> {
    let be16 = |b: &[u8], at: usize| u16::from_be_bytes(b[at..at + 2].try_into().expect("2"));
    let be32 = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().expect("4"));
    let block = u64::from(be16(block0, 2)).max(512);
    let first = read_at(r, block, 512)?;
    let count = u64::from(be32(&first, 4)).min(256);
    let mut parts = Vec::new();
    for i in 1..=count {
        let e = read_at(r, i * block, 512)?;
        if &e[..2] != b"PM" {
            break;
        }
        let start = u64::from(be32(&e, 8)) * block;
        let len = u64::from(be32(&e, 12)) * block;
        let ty = String::from_utf8_lossy(&e[48..80])
            .trim_end_matches('\0')
            .to_string();
        if start + len > size || len == 0 {
            continue;
        }
        let fs = match ty.as_str() {
            "Apple_HFS" | "Apple_HFSX" => Some(Fs::HfsPlus),
            "Apple_APFS" => Some(Fs::Apfs),
            _ => None,
        };
        if let Some(fs) = fs {
            parts.push(Part {
                start,
                len,
                fs,
                label: format!("APM partition {i} ({ty})"),
            });
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hfs_guid_in_disk_order() {
        // 48465300-0000-11AA-AA11-00306543ECAC as stored on disk.
        assert_eq!(
            GUID_HFS,
            [
                0x00, 0x53, 0x46, 0x48, 0x00, 0x00, 0xaa, 0x11, 0xaa, 0x11, 0x00, 0x30, 0x65, 0x43,
                0xec, 0xac
            ]
        );
    }

    #[test]
    fn apm_and_whole_disk_layouts() {
        // An APM disk: block 0 `ER`, the map's own entry, an Apple_HFS
        // entry at block 8 holding an `H+` header.
        let mut disk = vec![0u8; 64 * 512];
        disk[..2].copy_from_slice(b"ER");
        disk[2..4].copy_from_slice(&512u16.to_be_bytes());
        for (i, (start, len, ty)) in [(1u32, 2u32, "Apple_partition_map"), (8, 40, "Apple_HFS")]
            .iter()
            .enumerate()
        {
            let e = &mut disk[(i + 1) * 512..(i + 2) * 512];
            e[..2].copy_from_slice(b"PM");
            e[4..8].copy_from_slice(&2u32.to_be_bytes());
            e[8..12].copy_from_slice(&start.to_be_bytes());
            e[12..16].copy_from_slice(&len.to_be_bytes());
            e[48..48 + ty.len()].copy_from_slice(ty.as_bytes());
        }
        disk[8 * 512 + 1024..8 * 512 + 1026].copy_from_slice(b"H+");
        let size = disk.len() as u64;
        let (layout, parts) = find(&mut std::io::Cursor::new(disk.clone()), size).unwrap();
        assert_eq!(layout, "APM");
        assert_eq!(parts.len(), 1);
        assert_eq!(
            (parts[0].start, parts[0].len, parts[0].fs),
            (8 * 512, 40 * 512, Fs::HfsPlus)
        );

        let mut whole = vec![0u8; 8 * 512];
        whole[1024..1026].copy_from_slice(b"H+");
        let (layout, parts) = find(&mut std::io::Cursor::new(whole), 8 * 512).unwrap();
        assert_eq!((layout.as_str(), parts[0].start), ("whole disk", 0));

        let err = find(&mut std::io::Cursor::new(vec![0u8; 8 * 512]), 8 * 512).unwrap_err();
        assert!(err.to_string().contains("no GPT"), "{err}");
    }
}
