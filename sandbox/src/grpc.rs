//! The gRPC service behind the stand-in's TLS endpoint, as production runs
//! it: nginx terminates TLS on 443 and passes HTTP/2 to `voice-assistant`,
//! whose `streaming.StreamingService` answers `InterruptSession`.
//!
//! A unary call is `POST /streaming.StreamingService/InterruptSession` with
//! `content-type: application/grpc` and `te: trailers`; its body is one
//! gRPC message (a compressed flag, a 4-byte big-endian length, then the
//! protobuf `InterruptRequest { string hardware_id = 1; }`). The answer is
//! HEADERS (`:status 200`), DATA (the framed `InterruptResponse`) and a
//! trailing HEADERS with `grpc-status` and `grpc-message`; errors come as a
//! trailers-only response (one HEADERS with the status), as grpcio sends
//! them. Every call is logged with what it carried so tests can check it
//! was well formed. The `grpc` fault makes the front or the service fail
//! the way they do in production (see [`GrpcAnswer`]).
//!
//! The real server's answer to the smoke-test id is not recorded; the
//! stand-in answers OK with `success: true` and no interrupted sessions.

use crate::faults::{Faults, MAX_SLEEP_MS};
use crate::h2::{self, Frame};
use crate::reqlog::LoggedRequest;
use anyhow::{bail, Result};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

pub const PATH: &str = "/streaming.StreamingService/InterruptSession";

pub use crate::faults::{GrpcAnswer, GrpcFault};
pub use crate::reqlog::GrpcCall;

/// A stream's request as it arrives.
#[derive(Default)]
struct Pending {
    block: Vec<u8>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    ended: bool,
}

/// Serves one HTTP/2 connection (after TLS with ALPN h2). Bounded: at most
/// `MAX_FRAMES` frames, each read under the socket's read timeout.
pub fn serve(io: &mut (impl Read + Write), dir: &Path) -> Result<()> {
    const MAX_FRAMES: usize = 256;
    let mut preface = [0u8; 24];
    if io.read_exact(&mut preface).is_err() {
        // A handshake-only probe (the ALPN check) closes here.
        return Ok(());
    }
    if &preface != h2::PREFACE {
        bail!("not an HTTP/2 client preface");
    }
    // SETTINGS_MAX_CONCURRENT_STREAMS = 100, as grpcio announces.
    h2::write_frame(io, h2::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100])?;
    let mut decoder = h2::HeaderDecoder::default();
    let mut streams: HashMap<u32, Pending> = HashMap::new();
    let mut continuing: Option<u32> = None;
    for _ in 0..MAX_FRAMES {
        let Ok(f) = h2::read_frame(io) else {
            return Ok(());
        };
        if let Some(id) = continuing {
            if f.kind != h2::CONTINUATION || f.stream != id {
                bail!("a header block was interrupted by another frame");
            }
        }
        match f.kind {
            h2::SETTINGS if f.flags & h2::ACK == 0 => {
                h2::write_frame(io, h2::SETTINGS, h2::ACK, 0, &[])?
            }
            h2::PING if f.flags & h2::ACK == 0 => {
                h2::write_frame(io, h2::PING, h2::ACK, 0, &f.payload)?
            }
            h2::GOAWAY => return Ok(()),
            h2::RST_STREAM => {
                streams.remove(&f.stream);
            }
            h2::HEADERS | h2::CONTINUATION => {
                let p = streams.entry(f.stream).or_default();
                let fragment = if f.kind == h2::HEADERS {
                    h2::content(&f)?
                } else {
                    &f.payload
                };
                p.block.extend_from_slice(fragment);
                if f.kind == h2::HEADERS && f.flags & h2::END_STREAM != 0 {
                    p.ended = true;
                }
                if f.flags & h2::END_HEADERS == 0 {
                    continuing = Some(f.stream);
                    continue;
                }
                continuing = None;
                let block = std::mem::take(&mut p.block);
                let fields = decoder.decode(&block)?;
                p.headers.extend(fields);
                if p.ended {
                    answer_stream(io, dir, f.stream, &mut streams)?;
                }
            }
            h2::DATA => {
                let data = h2::content(&f)?.to_vec();
                let p = streams.entry(f.stream).or_default();
                p.body.extend_from_slice(&data);
                if f.flags & h2::END_STREAM != 0 {
                    p.ended = true;
                    answer_stream(io, dir, f.stream, &mut streams)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn answer_stream(
    io: &mut impl Write,
    dir: &Path,
    id: u32,
    streams: &mut HashMap<u32, Pending>,
) -> Result<()> {
    let Some(p) = streams.remove(&id) else {
        return Ok(());
    };
    let fault = Faults::load(&dir.join("faults.json"))
        .ok()
        .and_then(|f| f.grpc)
        .unwrap_or_default();
    let mut call = inspect(&p.headers, &p.body);
    let frames = respond(&mut call, &fault, id);
    let mut entry = LoggedRequest::new(
        "grpc",
        &call.method,
        &format!("{}://{}{}", call.scheme, call.authority, call.path),
        i64::from(call.http_status),
        b"",
    );
    entry.body_len = p.body.len() as u64;
    entry.grpc = Some(call);
    // Logged when the call arrived, before a slow answer: a client that
    // gives up still leaves its request in the log.
    let _ = entry.append_to(&dir.join("requests.jsonl"));
    if fault.delay_ms > 0 {
        std::thread::sleep(Duration::from_millis(fault.delay_ms.min(MAX_SLEEP_MS)));
    }
    // One write: separate small TLS records would meet Nagle's algorithm
    // and the client's delayed ACK (40 ms per answer).
    let bytes: Vec<u8> = frames
        .iter()
        .flat_map(|f| h2::frame(f.kind, f.flags, f.stream, &f.payload))
        .collect();
    io.write_all(&bytes)?;
    io.flush()?;
    Ok(())
}

/// Reads the request's headers and gRPC frame into a log record.
pub fn inspect(headers: &[(String, String)], body: &[u8]) -> GrpcCall {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut call = GrpcCall {
        path: get(":path"),
        method: get(":method"),
        scheme: get(":scheme"),
        authority: get(":authority"),
        content_type: get("content-type"),
        te: get("te"),
        grpc_timeout: get("grpc-timeout"),
        body_len: body.len(),
        ..GrpcCall::default()
    };
    if call.method != "POST" {
        call.problems
            .push(format!("method {} is not POST", call.method));
    }
    if call.te != "trailers" {
        call.problems.push("te: trailers is missing".into());
    }
    match body {
        [flag, a, b, c, d, msg @ ..] => {
            let len = u32::from_be_bytes([*a, *b, *c, *d]);
            call.compressed = Some(*flag);
            call.declared_len = Some(len);
            if *flag != 0 {
                call.problems
                    .push("the message is flagged compressed".into());
            }
            if len as usize != msg.len() {
                call.problems.push(format!(
                    "the frame declares {len} bytes and carries {}",
                    msg.len()
                ));
            } else {
                match hardware_id(msg) {
                    Ok(id) => call.hardware_id = Some(id),
                    Err(e) => call.problems.push(format!("InterruptRequest: {e}")),
                }
            }
        }
        _ => call
            .problems
            .push(format!("the body ({} bytes) is no gRPC frame", body.len())),
    }
    call
}

/// The answer's frames for `call` under `fault`; records what was answered.
fn respond(call: &mut GrpcCall, fault: &GrpcFault, id: u32) -> Vec<Frame> {
    let headers = |fields: &[(&str, &str)], flags: u8| Frame {
        kind: h2::HEADERS,
        flags: flags | h2::END_HEADERS,
        stream: id,
        payload: h2::encode_headers(fields),
    };
    let page = |status: u16, page: &str| {
        let len = page.len().to_string();
        let code = status.to_string();
        vec![
            headers(
                &[
                    (":status", &code),
                    ("server", "nginx/1.24.0"),
                    ("content-type", "text/html"),
                    ("content-length", &len),
                ],
                0,
            ),
            Frame {
                kind: h2::DATA,
                flags: h2::END_STREAM,
                stream: id,
                payload: page.as_bytes().to_vec(),
            },
        ]
    };
    let trailers_only = |call: &mut GrpcCall, http: u16, status: u32, message: &str| {
        call.http_status = http;
        call.grpc_status = Some(status);
        let (http, status) = (http.to_string(), status.to_string());
        vec![headers(
            &[
                (":status", &http),
                ("content-type", "application/grpc"),
                ("grpc-status", &status),
                ("grpc-message", message),
            ],
            h2::END_STREAM,
        )]
    };
    match fault.answer {
        GrpcAnswer::BadGateway => {
            call.http_status = 502;
            return page(502, BAD_GATEWAY);
        }
        GrpcAnswer::Html => {
            call.http_status = 200;
            return page(200, WELCOME);
        }
        GrpcAnswer::Down => return trailers_only(call, 204, 14, "unavailable"),
        GrpcAnswer::Status => {
            return trailers_only(call, 200, fault.status, &fault.message.clone())
        }
        GrpcAnswer::Normal => {}
    }
    if call.path != PATH {
        return trailers_only(call, 200, 12, "Method not found!");
    }
    if !call.content_type.starts_with("application/grpc") {
        call.http_status = 415;
        return vec![headers(
            &[(":status", "415"), ("content-type", "text/plain")],
            h2::END_STREAM,
        )];
    }
    if !call.problems.is_empty() {
        let message = call.problems.join("; ");
        return trailers_only(call, 200, 13, &message);
    }
    if call.hardware_id.as_deref().unwrap_or("").is_empty() {
        return trailers_only(call, 200, 3, "hardware_id is required");
    }
    call.http_status = 200;
    call.grpc_status = Some(0);
    let message = interrupt_response(true, &[], "no active sessions to interrupt");
    let mut data = vec![0u8];
    data.extend_from_slice(&(message.len() as u32).to_be_bytes());
    data.extend_from_slice(&message);
    vec![
        headers(
            &[(":status", "200"), ("content-type", "application/grpc")],
            0,
        ),
        Frame {
            kind: h2::DATA,
            flags: 0,
            stream: id,
            payload: data,
        },
        headers(
            &[("grpc-status", "0"), ("grpc-message", "")],
            h2::END_STREAM,
        ),
    ]
}

const BAD_GATEWAY: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>\r\n";
const WELCOME: &str = "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n<h1>Welcome to nginx!</h1>\n</body>\n</html>\n";

/// Reads a protobuf varint at the start of `b`: (value, bytes used).
fn varint(b: &[u8]) -> Result<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    bail!("a truncated varint")
}

/// `InterruptRequest.hardware_id` (field 1, a string); other fields are
/// skipped as protobuf readers do.
pub fn hardware_id(mut msg: &[u8]) -> Result<String> {
    let mut id = String::new();
    while !msg.is_empty() {
        let (key, n) = varint(msg)?;
        msg = &msg[n..];
        match key & 7 {
            0 => msg = &msg[varint(msg)?.1..],
            2 => {
                let (len, n) = varint(msg)?;
                let end = n + len as usize;
                let Some(bytes) = msg.get(n..end) else {
                    bail!("field {} runs past the message", key >> 3);
                };
                if key >> 3 == 1 {
                    id = String::from_utf8(bytes.to_vec())
                        .map_err(|_| anyhow::anyhow!("hardware_id is not UTF-8"))?;
                }
                msg = &msg[end..];
            }
            1 => msg = msg.get(8..).unwrap_or_default(),
            5 => msg = msg.get(4..).unwrap_or_default(),
            w => bail!("wire type {w} is not valid here"),
        }
    }
    Ok(id)
}

/// `InterruptResponse { bool success = 1; repeated string interrupted_sessions = 2; string message = 3; }`
pub fn interrupt_response(success: bool, sessions: &[&str], message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if success {
        out.extend_from_slice(&[0x08, 0x01]);
    }
    let mut string = |field: u8, s: &str| {
        out.push(field << 3 | 2);
        let mut len = s.len();
        while len >= 0x80 {
            out.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(s.as_bytes());
    };
    for s in sessions {
        string(2, s);
    }
    if !message.is_empty() {
        string(3, message);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(path: &str) -> Vec<(String, String)> {
        [
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "h:443"),
            (":path", path),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .to_vec()
    }

    fn body(id: &str) -> Vec<u8> {
        let mut msg = vec![0x0a, id.len() as u8];
        msg.extend_from_slice(id.as_bytes());
        let mut b = vec![0];
        b.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        b.extend_from_slice(&msg);
        b
    }

    #[test]
    fn a_well_formed_call_is_answered_with_trailers() {
        let mut call = inspect(&headers(PATH), &body("smoke"));
        assert!(call.problems.is_empty(), "{:?}", call.problems);
        assert_eq!(call.hardware_id.as_deref(), Some("smoke"));
        let frames = respond(&mut call, &GrpcFault::default(), 1);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[2].flags, h2::END_STREAM | h2::END_HEADERS);
        let trailers = h2::HeaderDecoder::default()
            .decode(&frames[2].payload)
            .unwrap();
        assert_eq!(trailers[0], ("grpc-status".into(), "0".into()));
    }

    #[test]
    fn malformed_calls_are_named() {
        let call = inspect(&headers(PATH), &body("x")[..6]);
        assert!(call.problems[0].contains("declares 3 bytes and carries 1"));
        let mut call = inspect(&headers("/other.Service/X"), &body("x"));
        respond(&mut call, &GrpcFault::default(), 1);
        assert_eq!(call.grpc_status, Some(12));
        assert!(hardware_id(&[0x0a, 5, b'a']).is_err());
        assert_eq!(
            interrupt_response(true, &["s1"], "m"),
            [8, 1, 0x12, 2, b's', b'1', 0x1a, 1, b'm']
        );
    }
}
