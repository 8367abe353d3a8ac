//! Output for people and for machines.
//!
//! With `--json`, stdout carries exactly one JSON document (schema
//! `nexy-xtask/v1`, documented in the README) and the human-readable
//! lines go to stderr, so CI can gate on the document while a person
//! still sees progress. Without it, everything human goes to stdout.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{json, Value};

use crate::report::{CheckResult, Status};

static JSON: AtomicBool = AtomicBool::new(false);

/// The version of the JSON document's shape; bumped on any breaking change.
pub const SCHEMA: &str = "nexy-xtask/v1";

pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Prints human text (already ending in a newline where wanted).
pub fn say_raw(text: &str) {
    if json() {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

/// `println!` for human lines: stderr when stdout carries JSON.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::say_raw(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// One check as JSON: `{id, status, message, fix, figures}`.
pub fn check_json(r: &CheckResult) -> Value {
    json!({
        "id": r.id,
        "status": match r.status { Status::Pass => "pass", Status::Fail => "fail", Status::Skip => "skip", Status::Warn => "warn" },
        "message": r.message,
        "fix": r.fix,
        "figures": r.figures.clone().unwrap_or_else(|| json!({})),
    })
}

/// The document of a command made of checks.
pub fn checks_doc(command: &str, results: &[CheckResult]) -> Value {
    json!({
        "schema": SCHEMA,
        "command": command,
        "ok": crate::report::all_pass(results),
        "checks": results.iter().map(check_json).collect::<Vec<_>>(),
    })
}

/// Prints the document on stdout when `--json` is on.
pub fn emit(doc: &Value) {
    if json() {
        println!(
            "{}",
            serde_json::to_string_pretty(doc).unwrap_or_else(|_| "{}".to_string())
        );
    }
}
