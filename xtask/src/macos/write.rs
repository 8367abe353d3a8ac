//! Writers of the formats the reader reads, for real sample artifacts:
//! odc cpio, xar, and UDIF.

use std::io::Write;

use anyhow::Result;

/// Writes one odc cpio member (`070707`, octal fields, no padding).
pub fn odc_entry(out: &mut impl Write, name: &str, mode: u32, data: &[u8]) -> Result<()> {
    static INO: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let ino = INO.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 0o777777;
    let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
    write!(
        out,
        "070707{:06o}{:06o}{:06o}{:06o}{:06o}{:06o}{:06o}{:011o}{:06o}{:011o}",
        0o1,
        ino,
        mode,
        0,
        80,
        nlink,
        0,
        0,
        name.len() + 1,
        data.len()
    )?;
    out.write_all(name.as_bytes())?;
    out.write_all(&[0])?;
    out.write_all(data)?;
    Ok(())
}

/// The odc end marker.
pub fn odc_trailer(out: &mut impl Write) -> Result<()> {
    write!(
        out,
        "070707{:06o}{:06o}{:06o}{:06o}{:06o}{:06o}{:06o}{:011o}{:06o}{:011o}",
        0, 0, 0, 0, 0, 1, 0, 0, 11, 0
    )?;
    out.write_all(b"TRAILER!!!\0")?;
    Ok(())
}

/// What a xar member holds.
pub enum XarData<'a> {
    /// Stored zlib-compressed (`application/x-gzip`, which means zlib).
    Zlib(&'a [u8]),
    /// Stored as is (`application/octet-stream`): a payload that is
    /// compressed already.
    Raw(&'a [u8]),
    /// Pseudo-random filler of `len` bytes of `seed`, stored as is and
    /// written in 1 MiB pieces; no checksums, so it is never hashed.
    Random { len: u64, seed: u64 },
}

pub struct XarFile<'a> {
    /// A path of `/`-separated names; parent directories are implied.
    pub path: &'a str,
    pub mode: u32,
    pub data: XarData<'a>,
}

struct Stored {
    bytes: Vec<u8>,
    size: u64,
    encoding: &'static str,
    extracted_sha1: Option<String>,
    archived_sha1: Option<String>,
}

fn sha1_hex(b: &[u8]) -> String {
    use sha1::Digest;
    sha1::Sha1::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn store(d: &XarData<'_>) -> Result<Stored> {
    Ok(match d {
        XarData::Zlib(b) => {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            z.write_all(b)?;
            let bytes = z.finish()?;
            Stored {
                extracted_sha1: Some(sha1_hex(b)),
                archived_sha1: Some(sha1_hex(&bytes)),
                size: b.len() as u64,
                bytes,
                encoding: "application/x-gzip",
            }
        }
        XarData::Raw(b) => Stored {
            extracted_sha1: Some(sha1_hex(b)),
            archived_sha1: Some(sha1_hex(b)),
            size: b.len() as u64,
            bytes: b.to_vec(),
            encoding: "application/octet-stream",
        },
        XarData::Random { len, .. } => Stored {
            bytes: Vec::new(),
            size: *len,
            encoding: "application/octet-stream",
            extracted_sha1: None,
            archived_sha1: None,
        },
    })
}

/// The TOC XML for `files` whose stored forms are `stored`, the heap
/// starting with the 20-byte SHA-1 of the compressed TOC.
fn toc_xml(files: &[XarFile<'_>], stored: &[Stored], pad: usize) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xar>\n <toc>\n  <checksum style=\"sha1\">\n   <offset>0</offset>\n   <size>20</size>\n  </checksum>\n");
    let mut offset = 20u64;
    let mut open: Vec<&str> = Vec::new();
    let mut id = 0;
    for (f, s) in files.iter().zip(stored) {
        let (dirs, name) = match f.path.rsplit_once('/') {
            Some((d, n)) => (d.split('/').collect::<Vec<_>>(), n),
            None => (Vec::new(), f.path),
        };
        while !dirs.starts_with(&open) {
            open.pop();
            xml.push_str("  </file>\n");
        }
        for d in &dirs[open.len()..] {
            id += 1;
            xml.push_str(&format!("  <file id=\"{id}\">\n   <name>{d}</name>\n   <type>directory</type>\n   <mode>0755</mode>\n"));
            open.push(d);
        }
        id += 1;
        let len = s.bytes.len() as u64 + if s.bytes.is_empty() { s.size } else { 0 };
        xml.push_str(&format!(
            "  <file id=\"{id}\">\n   <name>{name}</name>\n   <type>file</type>\n   <mode>{:04o}</mode>\n   <data>\n    <length>{len}</length>\n    <encoding style=\"{}\"/>\n    <offset>{offset}</offset>\n    <size>{}</size>\n",
            f.mode, s.encoding, s.size
        ));
        if let (Some(e), Some(a)) = (&s.extracted_sha1, &s.archived_sha1) {
            xml.push_str(&format!("    <extracted-checksum style=\"sha1\">{e}</extracted-checksum>\n    <archived-checksum style=\"sha1\">{a}</archived-checksum>\n"));
        }
        xml.push_str("   </data>\n  </file>\n");
        offset += len;
    }
    for _ in open {
        xml.push_str("  </file>\n");
    }
    xml.push_str(&" ".repeat(pad));
    xml.push_str(" </toc>\n</xar>\n");
    xml
}

fn compress_toc(xml: &str) -> Result<Vec<u8>> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(xml.as_bytes())?;
    Ok(z.finish()?)
}

/// The size of the archive `write_xar` would write with `pad` spaces of
/// whitespace in its TOC.
pub fn xar_len(files: &[XarFile<'_>], pad: usize) -> Result<u64> {
    let stored: Vec<Stored> = files
        .iter()
        .map(|f| store(&f.data))
        .collect::<Result<_>>()?;
    let toc = compress_toc(&toc_xml(files, &stored, pad))?;
    let heap: u64 = stored
        .iter()
        .map(|s| {
            if s.bytes.is_empty() {
                s.size
            } else {
                s.bytes.len() as u64
            }
        })
        .sum();
    Ok(28 + toc.len() as u64 + 20 + heap)
}

/// Writes a xar archive with a SHA-1 TOC checksum, as pkgutil expects.
pub fn write_xar(out: &mut impl Write, files: &[XarFile<'_>], pad: usize) -> Result<u64> {
    let stored: Vec<Stored> = files
        .iter()
        .map(|f| store(&f.data))
        .collect::<Result<_>>()?;
    let xml = toc_xml(files, &stored, pad);
    let toc = compress_toc(&xml)?;
    out.write_all(b"xar!")?;
    out.write_all(&28u16.to_be_bytes())?;
    out.write_all(&1u16.to_be_bytes())?;
    out.write_all(&(toc.len() as u64).to_be_bytes())?;
    out.write_all(&(xml.len() as u64).to_be_bytes())?;
    out.write_all(&1u32.to_be_bytes())?;
    out.write_all(&toc)?;
    use sha1::Digest;
    out.write_all(&sha1::Sha1::digest(&toc))?;
    let mut total = 28 + toc.len() as u64 + 20;
    for (f, s) in files.iter().zip(&stored) {
        if let XarData::Random { len, seed } = f.data {
            crate::artifact::write_random_to(out, len, seed)?;
            total += len;
        } else {
            out.write_all(&s.bytes)?;
            total += s.bytes.len() as u64;
        }
    }
    out.flush()?;
    Ok(total)
}
