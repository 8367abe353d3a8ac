//! The few pieces of HTTP/2 (RFC 9113) the gRPC stand-in needs: the
//! client preface, the 9-byte frame header, padding and priority fields,
//! and HPACK header blocks.
//!
//! Written by hand because the only complete HTTP/2 servers in Rust (`h2`,
//! `hyper`) need an async runtime, which every test build would pay for.
//! The stand-in serves one unary call per connection from `curl` or a gRPC
//! client: frames are read in order, header blocks are decoded with a
//! small, dependency-free HPACK crate (clients Huffman-code their headers
//! and index them in the dynamic table, so a decoder has to be complete),
//! and the answers are tiny, so flow control never comes into play.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};

/// What every HTTP/2 client sends first.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY: u8 = 0x20;

/// The largest frame payload a peer may send before SETTINGS say more.
pub const MAX_FRAME: usize = 16_384;

#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

/// Reads one frame; refuses frames larger than the default maximum.
pub fn read_frame(r: &mut impl Read) -> Result<Frame> {
    let mut head = [0u8; 9];
    r.read_exact(&mut head).context("read frame header")?;
    let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
    if len > MAX_FRAME {
        bail!("frame of {len} bytes exceeds SETTINGS_MAX_FRAME_SIZE");
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).context("read frame payload")?;
    Ok(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    })
}

/// The bytes of one frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn write_frame(
    w: &mut impl Write,
    kind: u8,
    flags: u8,
    stream: u32,
    payload: &[u8],
) -> Result<()> {
    w.write_all(&frame(kind, flags, stream, payload))
        .context("write frame")?;
    w.flush().context("flush frame")
}

/// The header block fragment or data of a HEADERS/DATA frame, without
/// its padding and (for HEADERS) its priority fields.
pub fn content(f: &Frame) -> Result<&[u8]> {
    let mut body = f.payload.as_slice();
    let mut pad = 0usize;
    if f.flags & PADDED != 0 {
        let (&n, rest) = body
            .split_first()
            .context("PADDED frame without a pad length")?;
        pad = usize::from(n);
        body = rest;
    }
    if f.kind == HEADERS && f.flags & PRIORITY != 0 {
        body = body
            .get(5..)
            .context("PRIORITY flag without priority fields")?;
    }
    if pad > body.len() {
        bail!("padding longer than the frame");
    }
    Ok(&body[..body.len() - pad])
}

/// An HPACK decoder that lives as long as the connection (the dynamic
/// table is shared by every header block of it).
pub struct HeaderDecoder(httlib_hpack::Decoder<'static>);

impl Default for HeaderDecoder {
    fn default() -> Self {
        HeaderDecoder(httlib_hpack::Decoder::with_dynamic_size(4096))
    }
}

impl HeaderDecoder {
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<(String, String)>> {
        let mut buf = block.to_vec();
        let mut fields = Vec::new();
        self.0
            .decode(&mut buf, &mut fields)
            .map_err(|e| anyhow::anyhow!("HPACK: {e}"))?;
        Ok(fields
            .into_iter()
            .map(|(n, v, _)| {
                (
                    String::from_utf8_lossy(&n).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect())
    }
}

/// An HPACK block of `fields`, Huffman-coded and indexed as servers do.
pub fn encode_headers(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut enc = httlib_hpack::Encoder::default();
    let mut out = Vec::new();
    for (name, value) in fields {
        // Huffman value, incremental indexing, best representation.
        let flags = 0x2 | 0x4 | 0x10;
        if enc
            .encode(
                (name.as_bytes().to_vec(), value.as_bytes().to_vec(), flags),
                &mut out,
            )
            .is_err()
        {
            // A literal without Huffman or indexing cannot fail.
            let _ = enc.encode(
                (name.as_bytes().to_vec(), value.as_bytes().to_vec(), 0),
                &mut out,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 7541 C.4: three requests with Huffman coding on one connection,
    /// the later ones indexing into the dynamic table the first filled.
    #[test]
    fn decodes_the_rfc_huffman_requests() {
        let mut d = HeaderDecoder::default();
        let first = d
            .decode(&hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"))
            .unwrap();
        assert_eq!(
            first,
            [
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com")
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        let second = d.decode(&hex("8286 84be 5886 a8eb 1064 9cbf")).unwrap();
        assert_eq!(second[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(second[4], ("cache-control".into(), "no-cache".into()));
        let third = d
            .decode(&hex(
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
            ))
            .unwrap();
        assert_eq!(third[1], (":scheme".into(), "https".into()));
        assert_eq!(third[4], ("custom-key".into(), "custom-value".into()));
        assert!(d.decode(&[0x80]).is_err(), "index 0 is invalid");
    }

    #[test]
    fn frames_round_trip_and_padding_is_stripped() {
        let bytes = frame(HEADERS, END_HEADERS | PADDED | PRIORITY, 3, &{
            let mut p = vec![2u8];
            p.extend_from_slice(&[0, 0, 0, 0, 16]);
            p.extend_from_slice(b"abc");
            p.extend_from_slice(&[0, 0]);
            p
        });
        let f = read_frame(&mut bytes.as_slice()).unwrap();
        assert_eq!((f.kind, f.stream), (HEADERS, 3));
        assert_eq!(content(&f).unwrap(), b"abc");
        let block = encode_headers(&[(":status", "200"), ("grpc-status", "0")]);
        let got = HeaderDecoder::default().decode(&block).unwrap();
        assert_eq!(got[1], ("grpc-status".into(), "0".into()));
    }
}
