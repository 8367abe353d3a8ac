//! UDIF, the DMG container: the `koly` trailer, the `blkx` block tables of
//! the resource plist, and [`Disk`], a seekable view of the decoded disk
//! that decodes one chunk at a time, on demand.
//!
//! Hand-written: the `udif` crate decodes whole partitions into memory or
//! a writer, so it cannot serve the random reads a filesystem reader makes
//! into a 270 MB image, and it ignores a block table's data offset.

use std::{
    fs::File,
    io::{BufReader, Read, Seek, SeekFrom},
};

use anyhow::{bail, Context, Result};

pub const SECTOR: u64 = 512;

/// Chunk types of a block table.
pub mod kind {
    pub const ZERO: u32 = 0x0000_0000;
    pub const RAW: u32 = 0x0000_0001;
    pub const IGNORE: u32 = 0x0000_0002;
    pub const ADC: u32 = 0x8000_0004;
    pub const ZLIB: u32 = 0x8000_0005;
    pub const BZIP2: u32 = 0x8000_0006;
    pub const LZFSE: u32 = 0x8000_0007;
    pub const LZMA: u32 = 0x8000_0008;
    pub const COMMENT: u32 = 0x7fff_fffe;
    pub const END: u32 = 0xffff_ffff;
}

/// The codec name of a chunk type, for messages and the layout line.
pub fn kind_name(k: u32) -> &'static str {
    match k {
        kind::ZERO => "zero",
        kind::RAW => "raw",
        kind::IGNORE => "ignore",
        kind::ADC => "ADC",
        kind::ZLIB => "zlib",
        kind::BZIP2 => "bzip2",
        kind::LZFSE => "LZFSE",
        kind::LZMA => "LZMA",
        _ => "unknown",
    }
}

/// The fields of the 512-byte trailer that a reader needs.
#[derive(Debug, Clone)]
pub struct Koly {
    pub version: u32,
    pub data_fork_offset: u64,
    pub xml_offset: u64,
    pub xml_length: u64,
    pub code_signature_offset: u64,
    pub code_signature_length: u64,
    pub sector_count: u64,
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Koly {
    pub fn parse(b: &[u8; 512]) -> Result<Koly> {
        if &b[..4] != b"koly" {
            bail!("no koly trailer");
        }
        let header_size = be32(b, 8);
        if header_size != 512 {
            bail!("the koly trailer says its size is {header_size}, not 512");
        }
        Ok(Koly {
            version: be32(b, 4),
            data_fork_offset: be64(b, 24),
            xml_offset: be64(b, 216),
            xml_length: be64(b, 224),
            code_signature_offset: be64(b, 296),
            code_signature_length: be64(b, 304),
            sector_count: be64(b, 492),
        })
    }
}

/// One chunk, with sectors and file offsets made absolute.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub kind: u32,
    /// First sector on the decoded disk.
    pub sector: u64,
    pub sectors: u64,
    /// Byte offset in the file (data fork offset + table data offset +
    /// chunk offset).
    pub offset: u64,
    pub length: u64,
}

/// One `blkx` entry: a named block table.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub chunks: Vec<Chunk>,
}

/// Parses one `mish` block table.
pub fn parse_mish(data: &[u8], name: &str, data_fork_offset: u64) -> Result<Table> {
    if data.len() < 204 || &data[..4] != b"mish" {
        bail!("block table `{name}` is not a mish table");
    }
    let first_sector = be64(data, 8);
    let data_offset = be64(data, 24);
    let count = be32(data, 200) as usize;
    if data.len() < 204 + count * 40 {
        bail!("block table `{name}` announces {count} chunks but holds fewer");
    }
    let mut chunks = Vec::with_capacity(count);
    for i in 0..count {
        let c = &data[204 + i * 40..204 + (i + 1) * 40];
        let kind = be32(c, 0);
        if kind == kind::END {
            break;
        }
        if kind == kind::COMMENT {
            continue;
        }
        let rel = be64(c, 8);
        let n = be64(c, 16);
        chunks.push(Chunk {
            kind,
            sector: first_sector
                .checked_add(rel)
                .context("chunk sector overflows")?,
            sectors: n,
            offset: data_fork_offset
                .checked_add(data_offset)
                .and_then(|o| o.checked_add(be64(c, 24)))
                .context("chunk offset overflows")?,
            length: be64(c, 32),
        });
    }
    Ok(Table {
        name: name.to_string(),
        chunks,
    })
}

/// The decoded disk of a UDIF image, readable and seekable like a raw
/// disk. Only the chunks a read touches are decoded; the last few decoded
/// chunks are kept, because filesystem readers go back and forth between
/// B-tree nodes.
pub struct Disk<R = BufReader<File>> {
    file: R,
    file_len: u64,
    pub koly: Koly,
    pub tables: Vec<Table>,
    /// The resource plist as stored (the sample writer carries its `plst`).
    pub resources: Vec<u8>,
    /// Every chunk of every table, sorted by sector.
    index: Vec<Chunk>,
    pub size: u64,
    pos: u64,
    cache: Vec<(usize, Vec<u8>)>,
    /// How many chunks were decoded: the benchmark and tests read it.
    pub decoded: u64,
}

/// A chunk larger than this decoded is refused: hdiutil writes 1 MiB
/// chunks, and the bound is what keeps memory bounded.
const MAX_CHUNK: u64 = 64 << 20;
const CACHE_CHUNKS: usize = 4;

impl Disk {
    pub fn open(file: File, file_len: u64) -> Result<Disk> {
        Disk::from_reader(BufReader::with_capacity(64 << 10, file), file_len)
    }
}

impl<R: Read + Seek> Disk<R> {
    pub fn from_reader(mut file: R, file_len: u64) -> Result<Disk<R>> {
        let mut trailer = [0u8; 512];
        file.seek(SeekFrom::Start(file_len - 512))?;
        file.read_exact(&mut trailer)?;
        let koly = Koly::parse(&trailer)?;
        if koly.xml_length == 0 {
            bail!("the image has no resource plist (an old NDIF or resource-fork image); convert it with `hdiutil convert -format UDZO`");
        }
        if koly.xml_length > 64 << 20 || koly.xml_offset.saturating_add(koly.xml_length) > file_len
        {
            bail!(
                "the koly trailer points its plist at {}+{} outside the file of {file_len} bytes: truncated or corrupt",
                koly.xml_offset,
                koly.xml_length
            );
        }
        file.seek(SeekFrom::Start(koly.xml_offset))?;
        let mut xml = vec![0u8; koly.xml_length as usize];
        file.read_exact(&mut xml)?;
        let tables = parse_plist(&xml, koly.data_fork_offset)?;
        let resources = xml;
        let mut index: Vec<Chunk> = tables.iter().flat_map(|t| t.chunks.clone()).collect();
        index.sort_by_key(|c| c.sector);
        let end = index
            .iter()
            .map(|c| c.sector + c.sectors)
            .max()
            .unwrap_or(0);
        let size_sectors = koly.sector_count.max(end);
        for c in &index {
            if c.sectors.saturating_mul(SECTOR) > MAX_CHUNK {
                bail!(
                    "a chunk decodes to {} bytes, above the {MAX_CHUNK}-byte bound",
                    c.sectors * SECTOR
                );
            }
            let stored = !matches!(c.kind, kind::ZERO | kind::IGNORE);
            if stored && c.offset.saturating_add(c.length) > file_len {
                bail!(
                    "a {} chunk at sector {} lies at {}+{}, past the end of the file ({file_len} bytes): truncated or corrupt",
                    kind_name(c.kind),
                    c.sector,
                    c.offset,
                    c.length
                );
            }
            if !matches!(
                c.kind,
                kind::ZERO
                    | kind::RAW
                    | kind::IGNORE
                    | kind::ADC
                    | kind::ZLIB
                    | kind::BZIP2
                    | kind::LZFSE
                    | kind::LZMA
            ) {
                bail!(
                    "chunk type {:#010x} at sector {} is unknown",
                    c.kind,
                    c.sector
                );
            }
        }
        Ok(Disk {
            file,
            file_len,
            koly,
            tables,
            resources,
            index,
            size: size_sectors * SECTOR,
            pos: 0,
            cache: Vec::new(),
            decoded: 0,
        })
    }

    /// The codecs the image uses, by name, sorted and unique.
    pub fn codecs(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self
            .index
            .iter()
            .filter(|c| !matches!(c.kind, kind::ZERO | kind::IGNORE))
            .map(|c| kind_name(c.kind))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The UDIF code signature lies inside the file.
    pub fn signed(&self) -> bool {
        self.koly.code_signature_length > 0
            && self
                .koly
                .code_signature_offset
                .saturating_add(self.koly.code_signature_length)
                <= self.file_len
    }

    fn chunk_at(&self, sector: u64) -> Option<usize> {
        let i = self.index.partition_point(|c| c.sector <= sector);
        let i = i.checked_sub(1)?;
        let c = &self.index[i];
        (sector < c.sector + c.sectors).then_some(i)
    }

    fn decoded_chunk(&mut self, i: usize) -> std::io::Result<&[u8]> {
        if let Some(at) = self.cache.iter().position(|(k, _)| *k == i) {
            let hit = self.cache.remove(at);
            self.cache.push(hit);
        } else {
            let c = self.index[i].clone();
            let data = self.decode(&c).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} chunk at sector {}: {e:#}", kind_name(c.kind), c.sector),
                )
            })?;
            self.decoded += 1;
            if self.cache.len() == CACHE_CHUNKS {
                self.cache.remove(0);
            }
            self.cache.push((i, data));
        }
        Ok(&self.cache.last().expect("just pushed").1)
    }

    fn decode(&mut self, c: &Chunk) -> Result<Vec<u8>> {
        let want = (c.sectors * SECTOR) as usize;
        if matches!(c.kind, kind::ZERO | kind::IGNORE) {
            return Ok(vec![0; want]);
        }
        if c.length > MAX_CHUNK * 2 {
            bail!("stored length {} is beyond any real chunk", c.length);
        }
        self.file.seek(SeekFrom::Start(c.offset))?;
        let mut stored = vec![0u8; c.length as usize];
        self.file.read_exact(&mut stored)?;
        let mut out = decode_chunk(c.kind, &stored, want)?;
        if out.len() < want {
            // A short last chunk is padded the way hdiutil reads it.
            out.resize(want, 0);
        }
        out.truncate(want);
        Ok(out)
    }
}

/// Decodes one stored chunk of `kind` into at most `want` bytes.
pub fn decode_chunk(k: u32, stored: &[u8], want: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(want);
    match k {
        kind::RAW => out.extend_from_slice(&stored[..stored.len().min(want)]),
        kind::ZLIB => {
            // One byte more than the chunk holds, so that the decoder reads
            // on to the stream's end and checks its Adler-32.
            flate2::read::ZlibDecoder::new(stored)
                .take(want as u64 + 1)
                .read_to_end(&mut out)
                .context("zlib data is corrupt")?;
        }
        kind::BZIP2 => {
            bzip2::read::BzDecoder::new(stored)
                .take(want as u64 + 1)
                .read_to_end(&mut out)
                .context("bzip2 data is corrupt")?;
        }
        kind::LZFSE => {
            lzfse_rust::decode_bytes(stored, &mut out)
                .map_err(|e| anyhow::anyhow!("LZFSE data is corrupt: {e}"))?;
        }
        kind::LZMA => {
            let mut input = stored;
            if stored.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
                lzma_rs::xz_decompress(&mut input, &mut out)
                    .map_err(|e| anyhow::anyhow!("xz data is corrupt: {e}"))?;
            } else {
                lzma_rs::lzma_decompress(&mut input, &mut out)
                    .map_err(|e| anyhow::anyhow!("LZMA data is corrupt: {e}"))?;
            }
        }
        kind::ADC => adc_decode(stored, want, &mut out)?,
        other => bail!("cannot decode chunk type {other:#010x}"),
    }
    if out.len() > want {
        bail!(
            "{} data decodes to more than the {want} bytes its chunk holds",
            kind_name(k)
        );
    }
    Ok(out)
}

/// Apple Data Compression, the LZ77 codec of pre-10.4 images: a literal
/// run (high bit set), or a two- or three-byte back reference.
pub fn adc_decode(src: &[u8], want: usize, out: &mut Vec<u8>) -> Result<()> {
    let mut i = 0;
    while i < src.len() && out.len() < want {
        let b = src[i];
        let (len, dist, used) = if b & 0x80 != 0 {
            let n = (b & 0x7f) as usize + 1;
            let lit = src
                .get(i + 1..i + 1 + n)
                .context("ADC literal runs past the data")?;
            out.extend_from_slice(lit);
            i += 1 + n;
            continue;
        } else if b & 0x40 != 0 {
            let hi = *src.get(i + 1).context("ADC reference cut short")? as usize;
            let lo = *src.get(i + 2).context("ADC reference cut short")? as usize;
            ((b & 0x3f) as usize + 4, (hi << 8 | lo) + 1, 3)
        } else {
            let lo = *src.get(i + 1).context("ADC reference cut short")? as usize;
            (
                ((b & 0x3f) >> 2) as usize + 3,
                (((b & 0x03) as usize) << 8 | lo) + 1,
                2,
            )
        };
        if dist > out.len() {
            bail!("ADC reference points before the start of the chunk");
        }
        for _ in 0..len {
            let v = out[out.len() - dist];
            out.push(v);
        }
        i += used;
    }
    Ok(())
}

/// The block tables of the resource plist (`resource-fork` > `blkx`).
pub fn parse_plist(xml: &[u8], data_fork_offset: u64) -> Result<Vec<Table>> {
    let value = plist::Value::from_reader_xml(xml).context("the resource plist is not a plist")?;
    let blkx = value
        .as_dictionary()
        .and_then(|d| d.get("resource-fork"))
        .and_then(|v| v.as_dictionary())
        .and_then(|d| d.get("blkx"))
        .and_then(|v| v.as_array())
        .context("the resource plist has no resource-fork/blkx array")?;
    let mut tables = Vec::new();
    for entry in blkx {
        let d = entry
            .as_dictionary()
            .context("a blkx entry is not a dictionary")?;
        let name = d
            .get("Name")
            .or_else(|| d.get("CFName"))
            .and_then(|v| v.as_string())
            .unwrap_or("")
            .to_string();
        let data = d
            .get("Data")
            .and_then(|v| v.as_data())
            .with_context(|| format!("blkx entry `{name}` has no Data"))?;
        tables.push(parse_mish(data, &name, data_fork_offset)?);
    }
    if tables.is_empty() {
        bail!("the resource plist lists no block tables");
    }
    Ok(tables)
}

impl<R: Read + Seek> Read for Disk<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let sector = self.pos / SECTOR;
        let Some(i) = self.chunk_at(sector) else {
            // A gap between tables reads as zeros, as on a fresh disk.
            let next = self
                .index
                .get(self.index.partition_point(|c| c.sector <= sector))
                .map_or(self.size, |c| c.sector * SECTOR);
            let n = (buf.len() as u64).min(next - self.pos) as usize;
            buf[..n].fill(0);
            self.pos += n as u64;
            return Ok(n);
        };
        let start = self.index[i].sector * SECTOR;
        let kind = self.index[i].kind;
        let within = (self.pos - start) as usize;
        let n = if matches!(kind, kind::ZERO | kind::IGNORE) {
            let len = (self.index[i].sectors * SECTOR) as usize;
            let n = buf.len().min(len - within);
            buf[..n].fill(0);
            n
        } else {
            let data = self.decoded_chunk(i)?;
            let n = buf.len().min(data.len() - within);
            buf[..n].copy_from_slice(&data[within..within + n]);
            n
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for Disk<R> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = super::seek_in(self.pos, self.size, to)?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adc_literals_and_back_references() {
        // "abcabcabcX": literal "abc", a two-byte reference (length 6,
        // distance 3), literal "X".
        let src = [0x82, b'a', b'b', b'c', 0x0c, 0x02, 0x80, b'X'];
        let mut out = Vec::new();
        adc_decode(&src, 100, &mut out).unwrap();
        assert_eq!(out, b"abcabcabcX");
        // A three-byte reference: length 4, distance 1.
        let mut out = Vec::new();
        adc_decode(&[0x80, b'z', 0x40, 0x00, 0x00], 100, &mut out).unwrap();
        assert_eq!(out, b"zzzzz");
        let mut out = Vec::new();
        assert!(adc_decode(&[0x0c, 0x05], 100, &mut out).is_err());
    }

    #[test]
    fn mish_offsets_are_absolute_and_honour_the_data_offset() {
        let mut m = vec![0u8; 204 + 2 * 40];
        m[..4].copy_from_slice(b"mish");
        m[8..16].copy_from_slice(&10u64.to_be_bytes());
        m[16..24].copy_from_slice(&4u64.to_be_bytes());
        m[24..32].copy_from_slice(&1000u64.to_be_bytes());
        m[200..204].copy_from_slice(&2u32.to_be_bytes());
        let c = &mut m[204..244];
        c[..4].copy_from_slice(&kind::ZLIB.to_be_bytes());
        c[8..16].copy_from_slice(&0u64.to_be_bytes());
        c[16..24].copy_from_slice(&4u64.to_be_bytes());
        c[24..32].copy_from_slice(&7u64.to_be_bytes());
        c[32..40].copy_from_slice(&9u64.to_be_bytes());
        m[244..248].copy_from_slice(&kind::END.to_be_bytes());
        let t = parse_mish(&m, "t", 100).unwrap();
        assert_eq!(t.chunks.len(), 1);
        assert_eq!(t.chunks[0].sector, 10);
        assert_eq!(t.chunks[0].offset, 100 + 1000 + 7);
    }
}
