//! nexy-sandbox: a local stand-in for GitHub releases (for the real `gh`),
//! Azure (ARM and Entra ID over HTTPS, for the real `az`), the production
//! VM behind its run-command, and the update feed.
//!
//! One process serves everything on 127.0.0.1: point gh at it with
//! `GH_HOST=github.localhost` and `http(s)_proxy=http://127.0.0.1:PORT`
//! (see `Sandbox::env`). State lives in a directory and survives restarts:
//!
//! - `DIR/env`, `DIR/ca.pem`, `DIR/sandbox.json` (ports), `DIR/faults.json`
//! - `DIR/requests.jsonl`: every request / az / systemctl call, one JSON a line
//! - `DIR/github/` releases and asset blobs
//! - `DIR/vm/home/azureuser/voice-assistant/`: the VM's service directory
//! - `DIR/feed/running.json`: the version the service runs since its last restart
//! - `DIR/azure-config/`: the real az's `AZURE_CONFIG_DIR` (fresh at start)
//! - `DIR/azure/`: the service principal's secret and the tokens issued
//! - `DIR/bin/az`: link to the real az; `DIR/vm-bin/systemctl`: the VM's shim
//!
//! The TLS port serves the gRPC `InterruptSession` over HTTP/2 (`grpc.rs`);
//! each call is logged with kind `grpc` and what it carried.
//!
//! Control endpoints on `http://127.0.0.1:PORT/_sandbox/`: `GET requests`,
//! `GET|POST faults` (a `Faults` JSON; `read_only_token` adds a valid token
//! without write access, see `tokens`), `POST immutable`
//! (`{"tag":"Update","immutable":true}`), `POST seed-asset?tag=T&name=N` (raw
//! bytes), `GET info`.

pub mod app;
pub mod arm;
pub mod azcli;
pub mod azure_faults;
pub mod faults;
pub mod feed;
pub mod github;
pub mod grpc;
pub mod h2;
pub mod handle;
pub mod http;
pub mod latency;
pub mod outcome;
pub mod reqlog;
pub mod runscript;
pub mod server;
pub mod store;
pub mod systemctl;
pub mod tls;
pub mod tokens;
pub mod uplink;
pub mod util;
pub mod vm;
pub mod vmrun;

pub use faults::Faults;
pub use handle::{Options, Sandbox};
pub use reqlog::LoggedRequest;
