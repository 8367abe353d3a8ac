//! nexy-sandbox: a local stand-in for GitHub releases (for the real `gh`),
//! the production Azure VM (through an `az` stand-in) and the update feed.
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
//! - `DIR/az/profile.json`: az login state and which RG/VM exist
//! - `DIR/bin/az`, `DIR/vm-bin/systemctl`: links to the `az` stand-in binary
//!
//! Control endpoints on `http://127.0.0.1:PORT/_sandbox/`: `GET requests`,
//! `GET|POST faults` (a `Faults` JSON), `POST immutable`
//! (`{"tag":"Update","immutable":true}`), `POST seed-asset?tag=T&name=N` (raw
//! bytes), `POST az-login` (`{"logged_in":false}`), `GET info`.

pub mod app;
pub mod az;
pub mod faults;
pub mod feed;
pub mod github;
pub mod handle;
pub mod http;
pub mod outcome;
pub mod reqlog;
pub mod runscript;
pub mod server;
pub mod store;
pub mod systemctl;
pub mod tls;
pub mod util;
pub mod vm;

pub use faults::Faults;
pub use handle::{Options, Sandbox};
pub use reqlog::LoggedRequest;
