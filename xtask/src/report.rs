//! Check results as data, and the table people read them in.
//!
//! preflight and verify run every check before deciding, then print one
//! table: a release engineer sees all that is wrong at once, each line
//! with its fix.

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Skip,
    /// Passes, but a person should look (an unsigned artifact, a PKG
    /// version that disagrees with VERSION).
    Warn,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "ok",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
            Status::Warn => "warn",
        }
    }
}

/// One line of a check table.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub id: &'static str,
    pub status: Status,
    /// What was seen (for a failure: what is wrong).
    pub message: String,
    /// The exact fix; empty when passing.
    pub fix: String,
    /// Measured values for machines (sizes, versions, seconds).
    pub figures: Option<serde_json::Value>,
}

impl CheckResult {
    pub fn pass(id: &'static str, message: impl Into<String>) -> Self {
        CheckResult {
            id,
            status: Status::Pass,
            message: message.into(),
            fix: String::new(),
            figures: None,
        }
    }

    pub fn fail(id: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        CheckResult {
            id,
            status: Status::Fail,
            message: message.into(),
            fix: fix.into(),
            figures: None,
        }
    }

    pub fn warn(id: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        CheckResult {
            id,
            status: Status::Warn,
            message: message.into(),
            fix: fix.into(),
            figures: None,
        }
    }

    pub fn skip(id: &'static str, message: impl Into<String>) -> Self {
        CheckResult {
            id,
            status: Status::Skip,
            message: message.into(),
            fix: String::new(),
            figures: None,
        }
    }

    /// Attaches measured values for the JSON document.
    pub fn with(mut self, figures: serde_json::Value) -> Self {
        self.figures = Some(figures);
        self
    }

    /// A result from a fallible probe: its error becomes the failure text.
    pub fn from_result(id: &'static str, result: anyhow::Result<String>, fix: &str) -> Self {
        match result {
            Ok(msg) => Self::pass(id, msg),
            Err(err) => Self::fail(id, format!("{err:#}"), fix),
        }
    }
}

pub fn all_pass(results: &[CheckResult]) -> bool {
    results.iter().all(|r| r.status != Status::Fail)
}

/// The table: one line per check, fixes indented under failures.
pub fn render(title: &str, results: &[CheckResult]) -> String {
    let width = results.iter().map(|r| r.id.len()).max().unwrap_or(5).max(5);
    let mut out = format!("{title}\n");
    let _ = writeln!(out, "  {:<width$}  {:<6}  detail", "check", "status");
    for r in results {
        let _ = writeln!(
            out,
            "  {:<width$}  {:<6}  {}",
            r.id,
            r.status.label(),
            r.message
        );
        if !r.fix.is_empty() {
            let _ = writeln!(out, "  {:<width$}  {:<6}  fix: {}", "", "", r.fix);
        }
    }
    let failed = results.iter().filter(|r| r.status == Status::Fail).count();
    let warned = results.iter().filter(|r| r.status == Status::Warn).count();
    let warnings = if warned == 0 {
        String::new()
    } else {
        format!(", {warned} warning(s)")
    };
    let _ = writeln!(
        out,
        "{title}: {}{warnings}",
        if failed == 0 {
            "all checks passed".to_string()
        } else {
            format!("{failed} check(s) failed")
        }
    );
    out
}
