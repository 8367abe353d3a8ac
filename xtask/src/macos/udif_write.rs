//! A small UDIF writer: a disk given as named regions becomes a DMG with
//! one `blkx` table per region (hdiutil's layout), zlib chunks of 1 MiB,
//! zero chunks for empty space, raw chunks for incompressible filler, and
//! CRC32 checksums per table, over the data fork and as the master
//! checksum, as `hdiutil verify` checks them.
//!
//! Hand-written for the samples: `apple-dmg` writes only whole-disk zlib
//! images, and our own reader already knows every field.

use std::io::{Seek, Write};

use anyhow::{Context, Result};
use flate2::{write::ZlibEncoder, Compression, Crc};

use super::udif::{kind, SECTOR};

/// Where a region's bytes come from.
pub enum Source<'a> {
    /// Bytes in memory (the template's sectors), zlib-compressed.
    Bytes(&'a [u8]),
    /// Pseudo-random bytes of `seed`, stored raw: incompressible filler.
    Random { sectors: u64, seed: u64 },
}

pub struct Region<'a> {
    /// The blkx name, e.g. `disk image (Apple_HFS : 4)`.
    pub name: String,
    pub source: Source<'a>,
}

impl Region<'_> {
    fn sectors(&self) -> u64 {
        match self.source {
            Source::Bytes(b) => (b.len() as u64).div_ceil(SECTOR),
            Source::Random { sectors, .. } => sectors,
        }
    }
}

/// Sectors per chunk: 1 MiB, as hdiutil writes.
const CHUNK_SECTORS: u64 = 2048;

struct Written {
    mish: Vec<u8>,
}

/// Options that only tests change.
#[derive(Default, Clone, Copy)]
pub struct Options {
    /// Store chunk offsets relative to each table's own start and put that
    /// start in the table's data-offset field (as images of 2003 did)
    /// instead of absolute offsets with a zero data offset.
    pub relative_offsets: bool,
    /// Bytes of XML whitespace added at the end of the plist, to reach an
    /// exact file size.
    pub plist_padding: usize,
}

/// The size of the resource plist for these regions: it depends only on
/// their names and chunk counts, never on the bytes, so a caller can aim
/// at an exact file size before writing anything.
pub fn plist_len(regions: &[Region<'_>], plst: &[u8]) -> Result<usize> {
    let mish: Vec<Vec<u8>> = regions
        .iter()
        .map(|r| vec![0u8; 204 + 40 * (chunk_count(r) + 1)])
        .collect();
    Ok(render_plist(regions, &mish, plst, 0)?.len())
}

/// The data fork's length for these regions: the template's sectors are
/// compressed to measure them (they are small); filler is stored raw.
pub fn fork_len(regions: &[Region<'_>]) -> Result<u64> {
    let mut len = 0;
    for r in regions {
        match r.source {
            Source::Random { sectors, .. } => len += sectors * SECTOR,
            Source::Bytes(b) => {
                for chunk in b.chunks((CHUNK_SECTORS * SECTOR) as usize) {
                    if chunk.iter().any(|&x| x != 0) {
                        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
                        z.write_all(chunk)?;
                        len += z.finish()?.len() as u64;
                    }
                }
            }
        }
    }
    Ok(len)
}

/// Chunks of a region: one per 1 MiB (zero chunks included).
fn chunk_count(r: &Region<'_>) -> usize {
    r.sectors().div_ceil(CHUNK_SECTORS) as usize
}

/// Writes the DMG; returns its length.
pub fn write<W: Write + Seek>(
    out: &mut W,
    regions: &[Region<'_>],
    plst: &[u8],
    opts: Options,
) -> Result<u64> {
    let mut fork = 0u64;
    let mut fork_crc = Crc::new();
    let mut first = 0u64;
    let mut written = Vec::new();
    let mut table_crcs = Vec::new();
    for (id, r) in regions.iter().enumerate() {
        let sectors = r.sectors();
        let table_start = fork;
        let mut crc = Crc::new();
        let mut chunks: Vec<[u64; 4]> = Vec::new();
        let mut kinds: Vec<u32> = Vec::new();
        let mut rng = match r.source {
            Source::Random { seed, .. } => crate::artifact::random_state(seed),
            Source::Bytes(_) => 0,
        };
        let mut at = 0u64;
        while at < sectors {
            let n = CHUNK_SECTORS.min(sectors - at);
            let mut data = vec![0u8; (n * SECTOR) as usize];
            match r.source {
                Source::Bytes(b) => {
                    let from = (at * SECTOR) as usize;
                    let to = (from + data.len()).min(b.len());
                    data[..to - from].copy_from_slice(&b[from..to]);
                }
                Source::Random { .. } => crate::artifact::fill_random(&mut data, &mut rng),
            }
            crc.update(&data);
            let (k, stored) = if data.iter().all(|&b| b == 0) {
                (kind::ZERO, Vec::new())
            } else if matches!(r.source, Source::Random { .. }) {
                (kind::RAW, data)
            } else {
                let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
                z.write_all(&data)?;
                (kind::ZLIB, z.finish()?)
            };
            let offset = if opts.relative_offsets {
                fork - table_start
            } else {
                fork
            };
            out.write_all(&stored).context("cannot write the DMG")?;
            fork_crc.update(&stored);
            chunks.push([at, n, offset, stored.len() as u64]);
            kinds.push(k);
            fork += stored.len() as u64;
            at += n;
        }
        let mut m = Vec::with_capacity(204 + 40 * (chunks.len() + 1));
        m.extend_from_slice(b"mish");
        m.extend_from_slice(&1u32.to_be_bytes());
        m.extend_from_slice(&first.to_be_bytes());
        m.extend_from_slice(&sectors.to_be_bytes());
        let data_offset = if opts.relative_offsets {
            table_start
        } else {
            0
        };
        m.extend_from_slice(&data_offset.to_be_bytes());
        m.extend_from_slice(&((CHUNK_SECTORS as u32) + 8).to_be_bytes());
        m.extend_from_slice(&(id as u32).to_be_bytes());
        m.extend_from_slice(&[0u8; 24]);
        m.extend_from_slice(&checksum(crc.sum()));
        m.extend_from_slice(&((chunks.len() + 1) as u32).to_be_bytes());
        for (c, k) in chunks.iter().zip(&kinds) {
            m.extend_from_slice(&k.to_be_bytes());
            m.extend_from_slice(&0u32.to_be_bytes());
            for v in c {
                m.extend_from_slice(&v.to_be_bytes());
            }
        }
        m.extend_from_slice(&kind::END.to_be_bytes());
        m.extend_from_slice(&0u32.to_be_bytes());
        m.extend_from_slice(&sectors.to_be_bytes());
        m.extend_from_slice(&0u64.to_be_bytes());
        m.extend_from_slice(
            &(if opts.relative_offsets {
                fork - table_start
            } else {
                fork
            })
            .to_be_bytes(),
        );
        m.extend_from_slice(&0u64.to_be_bytes());
        table_crcs.extend_from_slice(&crc.sum().to_be_bytes());
        written.push(Written { mish: m });
        first += sectors;
    }
    let mish: Vec<Vec<u8>> = written.into_iter().map(|w| w.mish).collect();
    let xml = render_plist(regions, &mish, plst, opts.plist_padding)?;
    out.write_all(&xml)?;
    let mut master = Crc::new();
    master.update(&table_crcs);
    let mut k = [0u8; 512];
    k[..4].copy_from_slice(b"koly");
    k[4..8].copy_from_slice(&4u32.to_be_bytes());
    k[8..12].copy_from_slice(&512u32.to_be_bytes());
    k[12..16].copy_from_slice(&1u32.to_be_bytes());
    k[32..40].copy_from_slice(&fork.to_be_bytes());
    k[56..60].copy_from_slice(&1u32.to_be_bytes());
    k[60..64].copy_from_slice(&1u32.to_be_bytes());
    k[64..80].copy_from_slice(&segment_id(first, fork));
    k[80..216].copy_from_slice(&checksum(fork_crc.sum()));
    k[216..224].copy_from_slice(&fork.to_be_bytes());
    k[224..232].copy_from_slice(&(xml.len() as u64).to_be_bytes());
    k[352..488].copy_from_slice(&checksum(master.sum()));
    k[488..492].copy_from_slice(&1u32.to_be_bytes());
    k[492..500].copy_from_slice(&first.to_be_bytes());
    out.write_all(&k)?;
    out.flush()?;
    Ok(fork + xml.len() as u64 + 512)
}

/// A UDIF checksum field: type 2 (CRC32), 32 bits, the value.
fn checksum(crc: u32) -> [u8; 136] {
    let mut c = [0u8; 136];
    c[..4].copy_from_slice(&2u32.to_be_bytes());
    c[4..8].copy_from_slice(&32u32.to_be_bytes());
    c[8..12].copy_from_slice(&crc.to_be_bytes());
    c
}

/// A segment id that differs between images (a UUID's worth of bytes
/// derived from the image's shape; uniqueness is all it needs).
fn segment_id(sectors: u64, fork: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&sectors.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    id[8..].copy_from_slice(&fork.wrapping_mul(0xC2B2_AE3D_27D4_EB4F).to_be_bytes());
    id
}

fn render_plist(
    regions: &[Region<'_>],
    mish: &[Vec<u8>],
    plst: &[u8],
    padding: usize,
) -> Result<Vec<u8>> {
    let mut blkx = Vec::new();
    for (i, (r, m)) in regions.iter().zip(mish).enumerate() {
        let mut d = plist::Dictionary::new();
        d.insert("Attributes".into(), "0x0050".into());
        d.insert("CFName".into(), r.name.clone().into());
        d.insert("Data".into(), plist::Value::Data(m.clone()));
        d.insert("ID".into(), (i as i64 - 1).to_string().into());
        d.insert("Name".into(), r.name.clone().into());
        blkx.push(plist::Value::Dictionary(d));
    }
    let mut fork = plist::Dictionary::new();
    fork.insert("blkx".into(), plist::Value::Array(blkx));
    if !plst.is_empty() {
        let mut d = plist::Dictionary::new();
        d.insert("Attributes".into(), "0x0050".into());
        d.insert("Data".into(), plist::Value::Data(plst.to_vec()));
        d.insert("ID".into(), "0".into());
        d.insert("Name".into(), "".into());
        fork.insert(
            "plst".into(),
            plist::Value::Array(vec![plist::Value::Dictionary(d)]),
        );
    }
    let mut root = plist::Dictionary::new();
    root.insert("resource-fork".into(), plist::Value::Dictionary(fork));
    let mut xml = Vec::new();
    plist::Value::Dictionary(root)
        .to_writer_xml(&mut xml)
        .context("cannot render the resource plist")?;
    // The padding goes before the closing tag: dmg2img refuses anything
    // after `</plist>`.
    let end = xml
        .windows(8)
        .rposition(|w| w == b"</plist>")
        .context("the resource plist has no </plist>")?;
    xml.splice(end..end, std::iter::repeat_n(b' ', padding));
    xml.push(b'\n');
    Ok(xml)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::macos::udif::Disk;
    use std::io::{Cursor, Read};

    #[test]
    fn written_images_read_back_with_either_offset_style() {
        let mut disk = vec![0u8; 3 << 20];
        for (i, b) in disk.iter_mut().enumerate().skip(4096).take(600_000) {
            *b = (i % 251) as u8;
        }
        for relative in [false, true] {
            let regions = [
                Region {
                    name: "a".into(),
                    source: Source::Bytes(&disk[..1 << 20]),
                },
                Region {
                    name: "b".into(),
                    source: Source::Bytes(&disk[1 << 20..]),
                },
                Region {
                    name: "c".into(),
                    source: Source::Random {
                        sectors: 5,
                        seed: 3,
                    },
                },
            ];
            let opts = Options {
                relative_offsets: relative,
                plist_padding: 7,
            };
            let mut out = Cursor::new(Vec::new());
            let len = write(&mut out, &regions, b"", opts).unwrap();
            let bytes = out.into_inner();
            assert_eq!(len, bytes.len() as u64);
            let want =
                fork_len(&regions).unwrap() + plist_len(&regions, b"").unwrap() as u64 + 7 + 512;
            assert_eq!(len, want, "the size is known before writing");
            let mut d = Disk::from_reader(Cursor::new(&bytes), len).unwrap();
            let mut back = Vec::new();
            d.read_to_end(&mut back).unwrap();
            assert_eq!(back.len(), disk.len() + 5 * 512);
            assert_eq!(
                &back[..disk.len()],
                &disk[..],
                "relative offsets: {relative}"
            );
            let offsets: Vec<u64> = d.tables[1].chunks.iter().map(|c| c.offset).collect();
            assert!(offsets.iter().all(|&o| o > 0), "{offsets:?}");
        }
    }
}
