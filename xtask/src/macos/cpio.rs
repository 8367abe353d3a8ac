//! A PKG payload: cpio in the portable ASCII (odc, `070707`) format, gzip-
//! or pbzx-compressed. Both readers stream: one pass, front to back.
//!
//! Hand-written: the `cpio` crate reads only newc (`070701`), and PKG
//! payloads are odc; pbzx is a few lines over the xz decoder we have.

use std::io::{self, Read};

use anyhow::{bail, Context, Result};

/// One member's header; its data follows in the stream.
#[derive(Debug, Clone)]
pub struct Header {
    pub name: String,
    pub mode: u32,
    pub size: u64,
}

impl Header {
    pub fn is_file(&self) -> bool {
        self.mode & 0o170000 == 0o100000
    }
}

fn octal(field: &[u8], what: &str) -> Result<u64> {
    let s = std::str::from_utf8(field).context("a cpio header field is not text")?;
    u64::from_str_radix(s, 8).with_context(|| format!("cpio {what} `{s}` is not octal"))
}

/// Reads the next odc header, or `None` at the `TRAILER!!!`. The caller
/// must consume exactly `size` data bytes before the next call.
pub fn next_header(r: &mut impl Read) -> Result<Option<Header>> {
    let mut h = [0u8; 76];
    r.read_exact(&mut h)
        .context("the cpio archive ends without its TRAILER!!! entry: truncated")?;
    match &h[..6] {
        b"070707" => {}
        b"070701" | b"070702" => bail!("the payload is newc cpio, not the odc format PKGs use"),
        other => bail!(
            "the payload is not odc cpio (starts with {:?})",
            String::from_utf8_lossy(other)
        ),
    }
    let mode = octal(&h[18..24], "mode")? as u32;
    let namesize = octal(&h[59..65], "name size")? as usize;
    let size = octal(&h[65..76], "file size")?;
    if namesize == 0 || namesize > 4096 {
        bail!("a cpio name of {namesize} bytes is corrupt");
    }
    let mut name = vec![0u8; namesize];
    r.read_exact(&mut name)
        .context("a cpio name is cut short")?;
    name.pop();
    let name = String::from_utf8_lossy(&name).into_owned();
    if name == "TRAILER!!!" {
        return Ok(None);
    }
    Ok(Some(Header { name, mode, size }))
}

/// Skips `n` bytes of member data.
pub fn skip(r: &mut impl Read, n: u64) -> Result<()> {
    let copied = io::copy(&mut r.take(n), &mut io::sink())?;
    if copied != n {
        bail!("a cpio member is cut short: truncated payload");
    }
    Ok(())
}

/// Decompresses a pbzx stream (the payload format of Apple's own PKGs):
/// `pbzx`, a flags word, then chunks of (flags, length, data), each data
/// an xz stream or, when not compressible, stored as is.
pub struct Pbzx<R> {
    inner: R,
    chunk: Vec<u8>,
    at: usize,
    done: bool,
}

/// A pbzx chunk decodes to at most this much (Apple uses 16 MiB).
const MAX_PBZX_CHUNK: u64 = 64 << 20;

impl<R: Read> Pbzx<R> {
    pub fn new(mut inner: R) -> Result<Pbzx<R>> {
        let mut h = [0u8; 12];
        inner
            .read_exact(&mut h)
            .context("the pbzx header is cut short")?;
        if &h[..4] != b"pbzx" {
            bail!("not a pbzx stream");
        }
        Ok(Pbzx {
            inner,
            chunk: Vec::new(),
            at: 0,
            done: false,
        })
    }

    fn next_chunk(&mut self) -> io::Result<bool> {
        let mut h = [0u8; 16];
        let mut got = 0;
        while got < 16 {
            match self.inner.read(&mut h[got..])? {
                0 if got == 0 => return Ok(false),
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "pbzx chunk header cut short",
                    ))
                }
                n => got += n,
            }
        }
        let len = u64::from_be_bytes(h[8..16].try_into().expect("8"));
        if len > MAX_PBZX_CHUNK {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("pbzx chunk of {len} bytes is corrupt"),
            ));
        }
        let mut stored = vec![0u8; len as usize];
        self.inner.read_exact(&mut stored)?;
        self.chunk.clear();
        self.at = 0;
        if stored.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            lzma_rs::xz_decompress(&mut &stored[..], &mut self.chunk).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("pbzx chunk is corrupt xz: {e}"),
                )
            })?;
        } else {
            self.chunk = stored;
        }
        Ok(true)
    }
}

impl<R: Read> Read for Pbzx<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            if self.done || !self.next_chunk()? {
                self.done = true;
                return Ok(0);
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odc_members_and_trailer() {
        let mut a = Vec::new();
        super::super::write::odc_entry(&mut a, "./Nexy.app", 0o040755, b"").unwrap();
        super::super::write::odc_entry(&mut a, "./Nexy.app/x", 0o100644, b"hello").unwrap();
        super::super::write::odc_trailer(&mut a).unwrap();
        let mut r = &a[..];
        let d = next_header(&mut r).unwrap().unwrap();
        assert_eq!(
            (d.name.as_str(), d.is_file(), d.size),
            ("./Nexy.app", false, 0)
        );
        let f = next_header(&mut r).unwrap().unwrap();
        assert!(f.is_file());
        let mut data = vec![0u8; f.size as usize];
        r.read_exact(&mut data).unwrap();
        assert_eq!(data, b"hello");
        assert!(next_header(&mut r).unwrap().is_none());
        let err = next_header(&mut &b"070701"[..]).unwrap_err();
        assert!(format!("{err:#}").contains("truncated"), "{err:#}");
    }

    #[test]
    fn pbzx_with_stored_and_xz_chunks() {
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &b"world"[..], &mut xz).unwrap();
        let mut s = Vec::new();
        s.extend_from_slice(b"pbzx");
        s.extend_from_slice(&(16u64 << 20).to_be_bytes());
        for part in [&b"hello "[..], &xz[..]] {
            s.extend_from_slice(&(16u64 << 20).to_be_bytes());
            s.extend_from_slice(&(part.len() as u64).to_be_bytes());
            s.extend_from_slice(part);
        }
        let mut out = String::new();
        Pbzx::new(&s[..]).unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello world");
    }
}
