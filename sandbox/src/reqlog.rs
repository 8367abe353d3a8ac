//! The request log that tests read to prove what a tool did and did not send.
//!
//! One JSON object per line in `DIR/requests.jsonl`. The server and every `az`
//! invocation append to the same file (single O_APPEND writes), so the file is
//! the one source of truth and `Sandbox::requests()` simply parses it.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LoggedRequest {
    /// `http` for a request the server answered, `arm` for one of the Azure
    /// stand-in (HTTPS), `systemctl` for the VM's systemctl shim.
    pub kind: String,
    pub ts: String,
    pub ts_ms: u64,
    /// HTTP method (`CONNECT` included); for `az`/`systemctl` the subcommand.
    pub method: String,
    /// Absolute URL (`http://api.github.localhost/repos/...`); for `az` the
    /// command line joined with spaces.
    pub url: String,
    /// HTTP status, or the exit code of `az`/`systemctl`.
    pub status: i64,
    pub body_len: u64,
    /// The request body when it is short UTF-8 text (JSON bodies, scripts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// argv of a `systemctl` invocation; for `arm`, `az` and the words of
    /// az's `CommandName` header (`["az","vm","run-command","invoke"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// What a gRPC call carried (kind `grpc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcCall>,
    /// The client's User-Agent (`arm` requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl LoggedRequest {
    pub fn new(kind: &str, method: &str, url: &str, status: i64, body: &[u8]) -> LoggedRequest {
        let ts_ms = crate::util::now_ms();
        let text = if body.len() <= 8192 {
            std::str::from_utf8(body).ok().map(str::to_string)
        } else {
            None
        };
        LoggedRequest {
            kind: kind.to_string(),
            ts: crate::util::iso_utc(ts_ms),
            ts_ms,
            method: method.to_string(),
            url: url.to_string(),
            status,
            body_len: body.len() as u64,
            body: text.filter(|t| !t.is_empty()),
            command: None,
            grpc: None,
            user_agent: None,
        }
    }

    pub fn append_to(&self, path: &Path) -> Result<()> {
        let line = serde_json::to_string(self).context("serialise log line")?;
        crate::util::append_line(path, &line)
    }
}

/// Read the whole log; a torn last line (crash mid-write) is skipped.
pub fn read_log(path: &Path) -> Result<Vec<LoggedRequest>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// What the stand-in received, as the request log records it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct GrpcCall {
    pub path: String,
    pub method: String,
    pub scheme: String,
    pub authority: String,
    pub content_type: String,
    pub te: String,
    pub grpc_timeout: String,
    /// The gRPC frame: compressed flag, declared and received lengths.
    pub compressed: Option<u8>,
    pub declared_len: Option<u32>,
    pub body_len: usize,
    /// `InterruptRequest.hardware_id`, when the message decoded.
    pub hardware_id: Option<String>,
    /// What made the call malformed (empty when it was well formed).
    pub problems: Vec<String>,
    /// What was answered: HTTP status and `grpc-status` (none for HTML).
    pub http_status: u16,
    pub grpc_status: Option<u32>,
}
