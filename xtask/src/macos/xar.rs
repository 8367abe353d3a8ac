//! xar, the container of a flat PKG: a 28-byte header (`xar!`), a
//! zlib-compressed TOC in XML, then the heap the TOC's entries point into.
//!
//! Hand-written: `xara` reads `application/x-gzip` entries as gzip (they
//! are zlib) and has no bzip2; `apple-xar` works but brings 85+ crates and
//! C liblzma/bzip2 into a build that must stay light.

use std::{
    fs::File,
    io::{BufReader, Read, Seek, SeekFrom},
};

use anyhow::{bail, Context, Result};
use quick_xml::events::Event;

/// One file of the TOC, with its path made of its ancestors' names.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub path: String,
    pub kind: String,
    /// Heap offset and stored length; `None` for directories.
    pub data: Option<Data>,
}

#[derive(Debug, Clone, Default)]
pub struct Data {
    pub offset: u64,
    pub length: u64,
    pub size: u64,
    pub encoding: String,
}

pub struct Xar {
    file: BufReader<File>,
    file_len: u64,
    heap: u64,
    pub entries: Vec<Entry>,
    /// The TOC carries a `<signature>` or `<x-signature>`.
    pub signed: bool,
}

const MAX_TOC: u64 = 64 << 20;

impl Xar {
    pub fn open(file: File) -> Result<Xar> {
        let file_len = file.metadata()?.len();
        let mut file = BufReader::new(file);
        file.seek(SeekFrom::Start(0))?;
        let mut h = [0u8; 28];
        file.read_exact(&mut h)
            .context("the xar header is cut short: truncated")?;
        if &h[..4] != b"xar!" {
            bail!("no xar magic");
        }
        let header_size = u64::from(u16::from_be_bytes([h[4], h[5]]));
        let toc_stored = u64::from_be_bytes(h[8..16].try_into().expect("8"));
        let toc_size = u64::from_be_bytes(h[16..24].try_into().expect("8"));
        if header_size < 28 || toc_size > MAX_TOC || header_size + toc_stored > file_len {
            bail!("the xar header is corrupt (TOC of {toc_stored} bytes stored, {toc_size} unpacked, in a file of {file_len}): truncated or not a PKG");
        }
        file.seek(SeekFrom::Start(header_size))?;
        let mut xml = Vec::with_capacity(toc_size as usize);
        flate2::read::ZlibDecoder::new((&mut file).take(toc_stored))
            .take(toc_size)
            .read_to_end(&mut xml)
            .context("the xar TOC is not valid zlib: corrupt")?;
        let (entries, signed) = parse_toc(&xml)?;
        Ok(Xar {
            file,
            file_len,
            heap: header_size + toc_stored,
            entries,
            signed,
        })
    }

    pub fn find(&self, path: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.path == path)
    }

    /// A reader of the entry's decoded bytes, streaming from the file.
    pub fn open_entry(&mut self, entry: &Entry) -> Result<Box<dyn Read + '_>> {
        let data = entry
            .data
            .as_ref()
            .with_context(|| format!("{} has no data", entry.path))?;
        let start = self.heap + data.offset;
        if start.saturating_add(data.length) > self.file_len {
            bail!(
                "{} lies at {}+{} past the end of the file ({} bytes): truncated",
                entry.path,
                start,
                data.length,
                self.file_len
            );
        }
        self.file.seek(SeekFrom::Start(start))?;
        let raw = (&mut self.file).take(data.length);
        Ok(match data.encoding.as_str() {
            "" | "application/octet-stream" => Box::new(raw),
            // xar's "gzip" is zlib (78 xx); accept real gzip too.
            "application/x-gzip" | "application/zlib" => {
                let mut raw = std::io::BufReader::new(raw);
                let head = std::io::BufRead::fill_buf(&mut raw)?;
                if head.starts_with(&[0x1f, 0x8b]) {
                    Box::new(flate2::read::MultiGzDecoder::new(raw))
                } else {
                    Box::new(flate2::read::ZlibDecoder::new(raw))
                }
            }
            "application/x-bzip2" => Box::new(bzip2::read::BzDecoder::new(raw)),
            "application/x-xz" | "application/x-lzma" => {
                // lzma-rs decodes into a writer, so an xz entry is decoded
                // whole, within a bound.
                if data.size > MAX_TOC {
                    bail!(
                        "{} is an xz entry of {} bytes, beyond what is decoded in memory",
                        entry.path,
                        data.size
                    );
                }
                let mut input = std::io::BufReader::new(raw);
                let mut out = Vec::new();
                lzma_rs::xz_decompress(&mut input, &mut out)
                    .map_err(|e| anyhow::anyhow!("{} is corrupt xz: {e}", entry.path))?;
                Box::new(std::io::Cursor::new(out))
            }
            other => bail!("{} has the unknown encoding {other}", entry.path),
        })
    }

    /// The whole decoded entry, refused above `max` bytes.
    pub fn read_entry(&mut self, path: &str, max: u64) -> Result<Option<Vec<u8>>> {
        let Some(entry) = self.find(path).cloned() else {
            return Ok(None);
        };
        let mut out = Vec::new();
        self.open_entry(&entry)?
            .take(max + 1)
            .read_to_end(&mut out)
            .with_context(|| format!("cannot decode {path}"))?;
        if out.len() as u64 > max {
            bail!("{path} is larger than {max} bytes");
        }
        Ok(Some(out))
    }
}

/// The files of a TOC, and whether it is signed.
pub fn parse_toc(xml: &[u8]) -> Result<(Vec<Entry>, bool)> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut files: Vec<Entry> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut signed = false;
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .context("the xar TOC is not well-formed XML")?;
        match ev {
            Event::Start(e) => {
                let tag = e.name().as_ref().to_string();
                if tag == "signature" || tag == "x-signature" {
                    signed = true;
                }
                if tag == "file" {
                    open.push(files.len());
                    files.push(Entry::default());
                    names.push(String::new());
                }
                if tag == "encoding" && stack.last().is_some_and(|t| t == "data") {
                    set_encoding(&e, &open, &mut files);
                }
                stack.push(tag);
            }
            Event::Empty(e) => {
                let tag = e.name();
                if tag.as_ref() == "encoding" && stack.last().is_some_and(|t| t == "data") {
                    set_encoding(&e, &open, &mut files);
                }
                if tag.as_ref() == "signature" || tag.as_ref() == "x-signature" {
                    signed = true;
                }
            }
            Event::Text(t) => {
                let text = t.xml10_content().into_owned();
                let (Some(tag), Some(&i)) = (stack.last(), open.last()) else {
                    continue;
                };
                let parent = stack.len().checked_sub(2).map(|p| stack[p].as_str());
                let number = || {
                    text.trim()
                        .parse::<u64>()
                        .context("a number in the xar TOC is not a number")
                };
                match (parent, tag.as_str()) {
                    (Some("file"), "name") => {
                        let depth = open.len() - 1;
                        names[depth] = text.trim().to_string();
                    }
                    (Some("file"), "type") => files[i].kind = text.trim().to_string(),
                    (Some("data"), "offset") => {
                        files[i].data.get_or_insert_with(Data::default).offset = number()?
                    }
                    (Some("data"), "length") => {
                        files[i].data.get_or_insert_with(Data::default).length = number()?
                    }
                    (Some("data"), "size") => {
                        files[i].data.get_or_insert_with(Data::default).size = number()?
                    }
                    _ => {}
                }
            }
            Event::End(_) if stack.pop().as_deref() == Some("file") => {
                let i = open.pop().expect("a file is open");
                files[i].path = names.join("/");
                names.pop();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok((files, signed))
}

fn set_encoding(e: &quick_xml::events::BytesStart<'_>, open: &[usize], files: &mut [Entry]) {
    let Some(&i) = open.last() else { return };
    for a in e.attributes().flatten() {
        if a.key.as_ref() == "style" {
            files[i].data.get_or_insert_with(Data::default).encoding = a.value.clone().into_owned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toc_paths_nest_and_signatures_are_seen() {
        let toc = br#"<?xml version="1.0"?><xar><toc>
<signature style="RSA"><offset>20</offset><size>256</size></signature>
<file id="1"><name>Distribution</name><type>file</type>
  <data><length>5</length><offset>0</offset><size>9</size><encoding style="application/x-gzip"/></data></file>
<file id="2"><name>Nexy.pkg</name><type>directory</type>
  <file id="3"><name>Payload</name><type>file</type>
    <data><offset>5</offset><length>7</length><size>7</size><encoding style="application/octet-stream"></encoding></data></file>
</file></toc></xar>"#;
        let (files, signed) = parse_toc(toc).unwrap();
        assert!(signed);
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["Distribution", "Nexy.pkg", "Nexy.pkg/Payload"]);
        let d = files[0].data.as_ref().unwrap();
        assert_eq!(
            (d.offset, d.length, d.size, d.encoding.as_str()),
            (0, 5, 9, "application/x-gzip")
        );
        assert_eq!(files[2].data.as_ref().unwrap().offset, 5);
        assert!(files[1].data.is_none());
    }
}
