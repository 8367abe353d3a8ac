//! A deliberately small HTTP/1.1 server core (std `TcpStream`, one thread per
//! connection): enough for Go's `net/http` client behind a proxy, curl and the
//! tests. Bodies are read with `Content-Length` or `chunked` framing; answers
//! always carry `Content-Length` (no compression, which gh accepts).

use anyhow::{bail, Context, Result};
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;

/// Request line and headers, before the body is read (the body is read by
/// the caller because an upload fault may want to cut it short).
#[derive(Debug, Clone)]
pub struct Head {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn framing(&self) -> Result<Framing> {
        if self
            .header("transfer-encoding")
            .map(|v| v.to_ascii_lowercase().contains("chunked"))
            .unwrap_or(false)
        {
            return Ok(Framing::Chunked);
        }
        match self.header("content-length") {
            Some(v) => Ok(Framing::Length(
                v.trim().parse().context("bad Content-Length")?,
            )),
            None => Ok(Framing::Length(0)),
        }
    }

    /// Whether the client wants the connection kept (HTTP/1.1 default).
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").unwrap_or("").to_ascii_lowercase();
        if self.version == "HTTP/1.0" {
            conn.contains("keep-alive")
        } else {
            !conn.contains("close")
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Framing {
    Length(u64),
    Chunked,
}

const MAX_HEAD: usize = 64 * 1024;

fn read_line<R: BufRead>(r: &mut R, budget: &mut usize) -> Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r
        .by_ref()
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut buf)
        .context("read header line")?;
    if n == 0 {
        return Ok(None);
    }
    if n > *budget {
        bail!("request head too large");
    }
    *budget -= n;
    while buf
        .last()
        .map(|b| *b == b'\n' || *b == b'\r')
        .unwrap_or(false)
    {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Read a request head; `Ok(None)` at a clean end of stream between requests.
pub fn read_head<R: BufRead>(r: &mut R) -> Result<Option<Head>> {
    let mut budget = MAX_HEAD;
    let mut line = match read_line(r, &mut budget)? {
        Some(l) => l,
        None => return Ok(None),
    };
    // Tolerate stray blank lines between pipelined requests (RFC 7230 3.5).
    let mut skipped = 0;
    while line.is_empty() && skipped < 4 {
        skipped += 1;
        line = match read_line(r, &mut budget)? {
            Some(l) => l,
            None => return Ok(None),
        };
    }
    let mut parts = line.split_whitespace();
    let (method, target, version) = match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v)) => (m.to_string(), t.to_string(), v.to_string()),
        _ => bail!("bad request line {line:?}"),
    };
    let mut headers = Vec::new();
    loop {
        let l = read_line(r, &mut budget)?.context("eof inside request head")?;
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Some(Head {
        method,
        target,
        version,
        headers,
    }))
}

/// Read a body completely, or only its first `cut` bytes (the rest is left
/// unread: the caller then drops the connection, which is the point).
pub fn read_body<R: BufRead>(r: &mut R, framing: Framing, cut: Option<u64>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    match framing {
        Framing::Length(n) => {
            let want = cut.map(|c| c.min(n)).unwrap_or(n);
            r.by_ref()
                .take(want)
                .read_to_end(&mut out)
                .context("read body")?;
            if (out.len() as u64) < want {
                bail!("body ended after {} of {} bytes", out.len(), want);
            }
        }
        Framing::Chunked => loop {
            let mut budget = 1024;
            let size_line = read_line(r, &mut budget)?.context("eof in chunk size")?;
            let size_hex = size_line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_hex, 16).context("bad chunk size")?;
            if size == 0 {
                // Trailers, then the final blank line.
                let mut budget = MAX_HEAD;
                while let Some(l) = read_line(r, &mut budget)? {
                    if l.is_empty() {
                        break;
                    }
                }
                break;
            }
            if let Some(c) = cut {
                let room = c.saturating_sub(out.len() as u64);
                if room < size {
                    r.by_ref()
                        .take(room)
                        .read_to_end(&mut out)
                        .context("read chunk")?;
                    break;
                }
            }
            let before = out.len();
            r.by_ref()
                .take(size)
                .read_to_end(&mut out)
                .context("read chunk")?;
            if (out.len() - before) as u64 != size {
                bail!("chunk ended early");
            }
            let mut budget = 16;
            read_line(r, &mut budget)?;
        },
    }
    Ok(out)
}

/// A response body: in memory, or a file streamed from disk (asset bytes).
#[derive(Debug, Clone)]
pub enum Body {
    Bytes(Vec<u8>),
    File(PathBuf, u64),
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// Close the connection after this response.
    pub close: bool,
    /// Fault: send only this many body bytes, then close.
    pub drop_after: Option<u64>,
    /// Fault: send nothing at all and drop the connection (cut-short upload).
    pub abort: bool,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: Body::Bytes(body),
            close: false,
            drop_after: None,
            abort: false,
        }
    }

    pub fn json(status: u16, v: &serde_json::Value) -> Response {
        // serde_json's Display never fails for a Value.
        Response::new(
            status,
            "application/json; charset=utf-8",
            v.to_string().into_bytes(),
        )
    }

    pub fn text(status: u16, s: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", s.as_bytes().to_vec())
    }

    pub fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
            close: false,
            drop_after: None,
            abort: false,
        }
    }

    pub fn with_header(mut self, k: &str, v: &str) -> Response {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    pub fn body_len(&self) -> u64 {
        match &self.body {
            Body::Bytes(b) => b.len() as u64,
            Body::File(_, n) => *n,
        }
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Write a response. `head_only` for HEAD requests.
pub fn write_response<W: Write>(w: &mut W, resp: &Response, head_only: bool) -> Result<()> {
    let len = resp.body_len();
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Date: {}\r\n",
        crate::util::http_date(crate::util::now_ms())
    ));
    if resp.status != 204 && resp.status != 304 {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    if resp.close || resp.drop_after.is_some() {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes()).context("write head")?;
    if head_only || resp.status == 204 || resp.status == 304 {
        return w.flush().context("flush");
    }
    let limit = resp.drop_after.unwrap_or(u64::MAX);
    match &resp.body {
        Body::Bytes(b) => {
            let n = (b.len() as u64).min(limit) as usize;
            w.write_all(&b[..n]).context("write body")?;
        }
        Body::File(path, _) => {
            let f =
                std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
            let mut src = f.take(limit);
            std::io::copy(&mut src, w).context("stream body")?;
        }
    }
    w.flush().context("flush")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    #[test]
    fn chunked_and_length() {
        let raw = b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nGET /y HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi";
        let mut r = BufReader::new(&raw[..]);
        let h = read_head(&mut r).unwrap().unwrap();
        assert_eq!(h.framing().unwrap(), Framing::Chunked);
        assert_eq!(read_body(&mut r, Framing::Chunked, None).unwrap(), b"abcde");
        let h2 = read_head(&mut r).unwrap().unwrap();
        assert_eq!(h2.target, "/y");
        assert_eq!(
            read_body(&mut r, h2.framing().unwrap(), None).unwrap(),
            b"hi"
        );
        assert!(read_head(&mut r).unwrap().is_none());
    }

    #[test]
    fn cut_body() {
        let raw = b"0123456789";
        let mut r = BufReader::new(&raw[..]);
        assert_eq!(
            read_body(&mut r, Framing::Length(10), Some(4)).unwrap(),
            b"0123"
        );
    }
}
