//! The bytes of the gRPC call and the verdict on its answer, as pure
//! functions: the framed `InterruptRequest`, curl's header dump split into
//! headers and trailers, the `InterruptResponse`, and what each answer
//! means for the deploy check.
//!
//! The protobuf is encoded and decoded by hand: one string field out, a
//! bool, a repeated string and a string back; a code generator (prost and
//! a build script) would cost more than these lines.

use anyhow::{bail, Context, Result};

/// Header fields, names in lower case.
pub type Fields = Vec<(String, String)>;

/// What came back, whatever it was.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// 0 when no HTTP response came.
    pub http_status: u16,
    /// curl's `%{http_version}`: `2`, `1.1`, or `0` for none.
    pub http_version: String,
    pub content_type: String,
    /// The last header block of the response.
    pub headers: Fields,
    /// The trailers (empty for a trailers-only response).
    pub trailers: Fields,
    pub body: Vec<u8>,
    /// Seconds until TLS was up (0 when it never was) and in all.
    pub tls_secs: f64,
    pub total_secs: f64,
}

/// `InterruptResponse { bool success = 1; repeated string interrupted_sessions = 2; string message = 3; }`
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InterruptResponse {
    pub success: bool,
    pub interrupted_sessions: Vec<String>,
    pub message: String,
}

/// The gRPC message of `InterruptRequest { string hardware_id = 1; }`,
/// framed: no compression, 4-byte big-endian length, the protobuf.
pub fn request_body(hardware_id: &str) -> Vec<u8> {
    let mut msg = vec![0x0a];
    put_varint(&mut msg, hardware_id.len() as u64);
    msg.extend_from_slice(hardware_id.as_bytes());
    let mut out = vec![0u8];
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(&msg);
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

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

/// The one message of a unary answer's body.
pub fn unframe(body: &[u8]) -> Result<&[u8]> {
    let [flag, a, b, c, d, msg @ ..] = body else {
        bail!("{} bytes are no gRPC message frame", body.len());
    };
    if *flag != 0 {
        bail!("the message is compressed (flag {flag}); the call asked for none");
    }
    let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
    msg.get(..len)
        .with_context(|| format!("the frame declares {len} bytes and carries {}", msg.len()))
}

/// Decodes `InterruptResponse`; unknown fields are skipped as protobuf
/// readers do.
pub fn decode_response(mut msg: &[u8]) -> Result<InterruptResponse> {
    let mut out = InterruptResponse::default();
    while !msg.is_empty() {
        let (key, n) = varint(msg)?;
        msg = &msg[n..];
        let field = key >> 3;
        match key & 7 {
            0 => {
                let (v, n) = varint(msg)?;
                if field == 1 {
                    out.success = v != 0;
                }
                msg = &msg[n..];
            }
            2 => {
                let (len, n) = varint(msg)?;
                let bytes = msg
                    .get(n..n + len as usize)
                    .with_context(|| format!("field {field} runs past the message"))?;
                let text = String::from_utf8_lossy(bytes).into_owned();
                match field {
                    2 => out.interrupted_sessions.push(text),
                    3 => out.message = text,
                    _ => {}
                }
                msg = &msg[n + len as usize..];
            }
            1 => msg = msg.get(8..).context("a truncated fixed64")?,
            5 => msg = msg.get(4..).context("a truncated fixed32")?,
            w => bail!("wire type {w} in field {field} is not valid protobuf"),
        }
    }
    Ok(out)
}

/// Splits curl's `-D` dump into the last header block and the trailers
/// that follow it after a blank line. Interim responses (1xx) come first
/// and are dropped.
pub fn parse_dump(text: &str) -> (Fields, Fields) {
    let mut headers = Vec::new();
    let mut trailers = Vec::new();
    let mut in_trailers = false;
    let mut seen_blank = false;
    for line in text.lines().map(|l| l.trim_end_matches('\r')) {
        if line.starts_with("HTTP/") {
            headers.clear();
            trailers.clear();
            in_trailers = false;
            seen_blank = false;
            continue;
        }
        if line.is_empty() {
            seen_blank = true;
            continue;
        }
        if seen_blank {
            in_trailers = true;
        }
        if let Some((k, v)) = line.split_once(':') {
            let field = (k.trim().to_ascii_lowercase(), v.trim().to_string());
            if in_trailers {
                trailers.push(field);
            } else {
                headers.push(field);
            }
        }
    }
    (headers, trailers)
}

pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// grpc-status names (the codes of grpc/status.h).
fn code_name(code: u32) -> &'static str {
    [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ]
    .get(code as usize)
    .copied()
    .unwrap_or("an unknown code")
}

/// `grpc-message` is percent-encoded on the wire.
fn percent_decode(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A short description of a non-gRPC body: an HTML page's title, or the
/// start of the text.
fn describe_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(2048)]).into_owned();
    let lower = text.to_ascii_lowercase();
    if let (Some(a), Some(b)) = (lower.find("<title>"), lower.find("</title>")) {
        if a + 7 <= b {
            return format!("page \"{}\"", text[a + 7..b].trim());
        }
    }
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        "an empty body".to_string()
    } else {
        format!("body \"{}\"", flat.chars().take(80).collect::<String>())
    }
}

/// The verdict on an answer: what the table says, and the fix on failure.
pub fn judge(a: &Answer, endpoint: &str) -> std::result::Result<String, (String, &'static str)> {
    let service_fix = "start the service on the VM: `sudo systemctl restart voice-assistant`, then `journalctl -u voice-assistant -n 50`; redeploy the server (code pipeline, `Seregawpn/Nexy`) if it does not come up";
    let route_fix = "nginx must pass gRPC to voice-assistant: check `grpc_pass` for /streaming.StreamingService/ in the nginx site on the VM, then `sudo nginx -t && sudo systemctl reload nginx`";
    let took = format!("{:.3}s", a.total_secs);
    if a.http_version != "2" {
        return Err((
            format!("{endpoint} answered over HTTP/{} (status {}), not HTTP/2: no gRPC client can call it", a.http_version, a.http_status),
            "check nginx's `listen 443 ssl http2` on the VM",
        ));
    }
    let status = field(&a.trailers, "grpc-status").or_else(|| field(&a.headers, "grpc-status"));
    let Some(status) = status else {
        let what = format!(
            "HTTP {} ({}, {})",
            a.http_status,
            if a.content_type.is_empty() {
                "no content type"
            } else {
                &a.content_type
            },
            describe_body(&a.body)
        );
        return Err(if a.content_type.starts_with("application/grpc") {
            (format!("{endpoint} answered {what} without a grpc-status, in {took}: the call ended without trailers (curl 7.71 dropped HTTP/2 trailers; see `curl --version`)"), service_fix)
        } else if a.http_status == 200 {
            (format!("{endpoint} answered {what} instead of gRPC, in {took}: the TLS front serves a web page where the gRPC service should be"), route_fix)
        } else {
            (format!("{endpoint} answered {what} instead of gRPC, in {took}: the TLS front is up, the service behind it is not"), service_fix)
        });
    };
    let Ok(code) = status.trim().parse::<u32>() else {
        return Err((
            format!("{endpoint} answered grpc-status `{status}`, which is no status code"),
            service_fix,
        ));
    };
    let message = percent_decode(
        field(&a.trailers, "grpc-message")
            .or_else(|| field(&a.headers, "grpc-message"))
            .unwrap_or(""),
    );
    let said = if message.is_empty() {
        String::new()
    } else {
        format!(" \"{message}\"")
    };
    let status_text = format!("{} ({code}){said}", code_name(code));
    match code {
        14 => Err((format!("{endpoint} answered {status_text} (HTTP {}) in {took}: the service behind the TLS front is down or unreachable", a.http_status), service_fix)),
        12 => Err((format!("{endpoint} answered {status_text} in {took}: a gRPC server answers but does not serve streaming.StreamingService/InterruptSession"), "deploy the Nexy server (code pipeline, `Seregawpn/Nexy`) and check that nginx passes gRPC to voice-assistant")),
        4 => Err((format!("{endpoint} answered {status_text} in {took}: the service did not answer within the deadline"), service_fix)),
        0 => {
            let reply = unframe(&a.body).and_then(decode_response).map_err(|e| {
                (format!("{endpoint} answered OK (0) in {took} but its message is not an InterruptResponse: {e:#}"), service_fix)
            })?;
            Ok(format!(
                "InterruptSession answered OK (0) in {took}: success={}, {} session(s) interrupted{}",
                reply.success,
                reply.interrupted_sessions.len(),
                if reply.message.is_empty() { String::new() } else { format!(", \"{}\"", reply.message) }
            ))
        }
        _ => Ok(format!("InterruptSession answered {status_text} in {took}: the service itself answers")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::SMOKE_ID;

    fn answer(
        status: u16,
        ct: &str,
        headers: &[(&str, &str)],
        trailers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let own = |f: &[(&str, &str)]| {
            f.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        Answer {
            http_status: status,
            http_version: "2".into(),
            content_type: ct.into(),
            headers: own(headers),
            trailers: own(trailers),
            body: body.to_vec(),
            tls_secs: 0.001,
            total_secs: 0.002,
        }
    }

    fn ok_body() -> Vec<u8> {
        // success=true, sessions ["s1"], message "done"
        let msg = [8, 1, 0x12, 2, b's', b'1', 0x1a, 4, b'd', b'o', b'n', b'e'];
        let mut b = vec![0, 0, 0, 0, msg.len() as u8];
        b.extend_from_slice(&msg);
        b
    }

    #[test]
    fn the_request_is_one_framed_string_field() {
        let b = request_body(SMOKE_ID);
        assert_eq!(&b[..5], &[0, 0, 0, 0, 34]);
        assert_eq!(&b[5..7], &[0x0a, 32]);
        assert_eq!(&b[7..], SMOKE_ID.as_bytes());
        let long = request_body(&"x".repeat(200));
        assert_eq!(&long[5..8], &[0x0a, 0xc8, 0x01]);
    }

    #[test]
    fn the_response_decodes_and_skips_unknown_fields() {
        let r = decode_response(unframe(&ok_body()).unwrap()).unwrap();
        assert_eq!(
            r,
            InterruptResponse {
                success: true,
                interrupted_sessions: vec!["s1".into()],
                message: "done".into()
            }
        );
        // An unknown varint field 9 and fixed32 field 10 are skipped.
        let r = decode_response(&[0x48, 5, 0x55, 1, 2, 3, 4, 0x1a, 1, b'm']).unwrap();
        assert_eq!(r.message, "m");
        assert!(decode_response(&[0x1a, 9, b'm']).is_err());
        assert!(unframe(&[0, 0, 0, 0, 9, 1])
            .unwrap_err()
            .to_string()
            .contains("declares 9 bytes and carries 1"));
        assert!(unframe(&[1, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn trailers_follow_the_headers_in_curls_dump() {
        let dump = "HTTP/2 200 \r\ncontent-type: application/grpc\r\n\r\ngrpc-status: 0\r\ngrpc-message: \r\n";
        let (h, t) = parse_dump(dump);
        assert_eq!(
            h,
            vec![("content-type".to_string(), "application/grpc".to_string())]
        );
        assert_eq!(field(&t, "grpc-status"), Some("0"));
        let only = "HTTP/2 204 \r\ncontent-type: application/grpc\r\ngrpc-status: 14\r\ngrpc-message: unavailable\r\n\r\n";
        let (h, t) = parse_dump(only);
        assert_eq!(field(&h, "grpc-status"), Some("14"));
        assert!(t.is_empty());
        let interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/2 502 \r\nserver: nginx\r\n\r\n";
        assert_eq!(
            parse_dump(interim).0,
            vec![("server".to_string(), "nginx".to_string())]
        );
    }

    #[test]
    fn statuses_of_the_service_pass_and_fronts_fail() {
        let e = "h:443";
        let ok = judge(
            &answer(
                200,
                "application/grpc",
                &[],
                &[("grpc-status", "0")],
                &ok_body(),
            ),
            e,
        )
        .unwrap();
        assert!(
            ok.contains("OK (0)")
                && ok.contains("success=true, 1 session(s)")
                && ok.contains("\"done\""),
            "{ok}"
        );
        let invalid = judge(
            &answer(
                200,
                "application/grpc",
                &[("grpc-status", "3"), ("grpc-message", "bad%20id")],
                &[],
                b"",
            ),
            e,
        )
        .unwrap();
        assert!(
            invalid.contains("INVALID_ARGUMENT (3) \"bad id\""),
            "{invalid}"
        );
        assert!(judge(
            &answer(200, "application/grpc", &[], &[("grpc-status", "5")], b""),
            e
        )
        .unwrap()
        .contains("NOT_FOUND"));
        let (down, _) = judge(
            &answer(204, "application/grpc", &[("grpc-status", "14")], &[], b""),
            e,
        )
        .unwrap_err();
        assert!(
            down.contains("UNAVAILABLE (14)") && down.contains("HTTP 204"),
            "{down}"
        );
        let (unimpl, _) = judge(
            &answer(200, "application/grpc", &[("grpc-status", "12")], &[], b""),
            e,
        )
        .unwrap_err();
        assert!(unimpl.contains("UNIMPLEMENTED (12)"), "{unimpl}");
        let html = b"<html><head><title>502 Bad Gateway</title></head></html>";
        let (bad, fix) = judge(
            &answer(502, "text/html", &[("server", "nginx")], &[], html),
            e,
        )
        .unwrap_err();
        assert!(
            bad.contains("HTTP 502 (text/html, page \"502 Bad Gateway\")")
                && fix.contains("systemctl restart"),
            "{bad}"
        );
        let (page, fix) = judge(
            &answer(
                200,
                "text/html",
                &[],
                &[],
                b"<title>Welcome to nginx!</title>",
            ),
            e,
        )
        .unwrap_err();
        assert!(
            page.contains("web page") && fix.contains("grpc_pass"),
            "{page}"
        );
        let (none, _) =
            judge(&answer(200, "application/grpc", &[], &[], &ok_body()), e).unwrap_err();
        assert!(none.contains("without a grpc-status"), "{none}");
        let (broken, _) = judge(
            &answer(
                200,
                "application/grpc",
                &[],
                &[("grpc-status", "0")],
                b"\0\0",
            ),
            e,
        )
        .unwrap_err();
        assert!(broken.contains("not an InterruptResponse"), "{broken}");
        let mut h1 = answer(200, "text/html", &[], &[], b"");
        h1.http_version = "1.1".into();
        assert!(judge(&h1, e).unwrap_err().0.contains("HTTP/1.1"));
    }
}
