//! The Azure fault knobs (`"azure": {...}` in `faults.json`): how Azure
//! really misbehaves under `az vm run-command invoke`. Each knob with
//! `times` answers that many times after the faults were set (every time
//! when `times` is absent).

use serde::{Deserialize, Serialize};

/// Counters of the Azure faults; reset whenever the faults are replaced
/// (they live in the server's fault state).
#[derive(Default, Debug, Clone)]
pub struct Counters {
    pub busy: u32,
    pub expired: u32,
    pub post_errors: u32,
    pub poll_errors: u32,
    pub failed: u32,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AzureFaults {
    /// The POST answers 409 `Conflict` "Run command extension execution is
    /// in progress" (a second operator's run-command), as it also does on
    /// its own while another run-command on the VM is still running.
    pub busy: Option<Times>,
    /// `stopped` or `deallocated`: the POST answers 409
    /// `OperationNotAllowed` (not transient).
    pub power_state: Option<String>,
    /// Every ARM call answers 401 `ExpiredAuthenticationToken`.
    pub token_expired: Option<Times>,
    /// The POST answers 403 `AuthorizationFailed` (no rights on the VM).
    pub forbidden: bool,
    /// The POST answers this 5xx (`status`) `times` times.
    pub post_error: Option<StatusTimes>,
    /// Every poll of the operation answers this 5xx `times` times.
    pub poll_error: Option<StatusTimes>,
    /// The operation ends `Failed` (the script still ran: a caller that
    /// retries runs it twice).
    pub operation_failed: Option<Times>,
    /// The operation stays `InProgress` at least this long (a slow VM);
    /// overrides the latency profile.
    pub run_ms: Option<u64>,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Times {
    pub times: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StatusTimes {
    pub status: u16,
    #[serde(default)]
    pub times: Option<u32>,
}

impl Times {
    /// Whether the knob still answers after `used` answers.
    pub fn applies(&self, used: u32) -> bool {
        self.times.is_none_or(|t| used < t)
    }
}

impl StatusTimes {
    pub fn applies(&self, used: u32) -> bool {
        self.times.is_none_or(|t| used < t)
    }
}
