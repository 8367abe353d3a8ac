//! `POST .../virtualMachines/VM/runCommand` as Azure runs it: a
//! long-running operation. The POST answers 202 with `Location`,
//! `Azure-AsyncOperation` and (per the latency profile) `Retry-After`, in
//! the `fast` profile once the script is done (`Latency::post_waits_ms`);
//! the script runs in the VM root meanwhile (`crate::vmrun::execute`: the mount
//! namespace mapping `/home/azureuser/voice-assistant`); the async-operation
//! URL says `InProgress` until the script is done and the profile's (or the
//! slow-VM fault's) minimum time has passed, then `Succeeded` with the
//! output, which the `Location` URL also serves (202 while running).
//!
//! The output is the message real run-command builds: `Enable succeeded:`,
//! the script's stdout and stderr each cut to their last 4,096 bytes, no
//! `time` field; the script's exit code appears nowhere. Azure runs one
//! run-command per VM at a time: a POST while another is in progress on the
//! VM answers 409 `Conflict`.

use super::{arm_error, Arm, ArmReq, AzureFaults, Counters, LOCATION, SUBSCRIPTION, VMS};
use crate::app::{lock, App};
use crate::http::Response;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The outcome of the script: its stdout and stderr tails, or why it could
/// not run.
type Outcome = Option<std::result::Result<(String, String), String>>;

/// One run-command operation.
pub(crate) struct Op {
    /// `rg/vm`, lower-case.
    vm: String,
    started_ms: u64,
    min_ms: u64,
    fail: bool,
    result: Arc<Mutex<Outcome>>,
}

impl Op {
    fn running(&self) -> bool {
        lock(&self.result).is_none()
            || crate::util::now_ms() < self.started_ms.saturating_add(self.min_ms)
    }
}

fn count(
    app: &App,
    pick: impl FnOnce(&mut Counters) -> &mut u32,
    applies: impl Fn(u32) -> bool,
) -> bool {
    let mut fs = lock(&app.faults);
    let c = pick(&mut fs.azure);
    if applies(*c) {
        *c += 1;
        true
    } else {
        false
    }
}

fn op_urls(arm: &Arm, id: &str) -> (String, String) {
    let base = format!(
        "{}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/{LOCATION}/operations/{id}?p=standin",
        arm.base()
    );
    (
        format!("{base}&api-version=2024-11-01"),
        format!("{base}&monitor=true&api-version=2024-11-01"),
    )
}

fn with_retry_after(r: Response, arm: &Arm) -> Response {
    match arm.latency.retry_after_secs {
        Some(s) => r.with_header("Retry-After", &s.to_string()),
        None => r,
    }
}

/// The runCommand routes (the caller has checked the token).
pub fn handle(
    app: &App,
    arm: &Arm,
    req: &ArmReq,
    segs: &[&str],
    faults: &AzureFaults,
) -> Result<Response> {
    match (req.method.as_str(), segs) {
        (
            "POST",
            ["subscriptions", s, "resourceGroups", rg, "providers", "Microsoft.Compute", "virtualMachines", vm, "runCommand"],
        ) => post(app, arm, req, s, rg, vm, faults),
        (
            "GET",
            ["subscriptions", _, "providers", "Microsoft.Compute", "locations", _, "operations", id],
        ) => poll(app, arm, req, id, faults),
        _ => Ok(arm_error(
            404,
            "InvalidResourceType",
            &format!(
                "The resource type could not be found for {} {}.",
                req.method, req.path
            ),
        )),
    }
}

fn post(
    app: &App,
    arm: &Arm,
    req: &ArmReq,
    sub: &str,
    rg: &str,
    vm: &str,
    faults: &AzureFaults,
) -> Result<Response> {
    let hang = app.faults_snapshot().az_hang_ms;
    if hang > 0 {
        std::thread::sleep(Duration::from_millis(hang.min(crate::faults::MAX_SLEEP_MS)));
    }
    let scope = format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}"
    );
    if faults.forbidden {
        return Ok(arm_error(
            403,
            "AuthorizationFailed",
            &format!("The client '{}' with object id '{}' does not have authorization to perform action 'Microsoft.Compute/virtualMachines/runCommand/action' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.", super::APP_ID, super::APP_ID),
        ));
    }
    if !sub.eq_ignore_ascii_case(SUBSCRIPTION) {
        return Ok(arm_error(
            404,
            "SubscriptionNotFound",
            &format!("The subscription '{sub}' could not be found."),
        ));
    }
    if !VMS.iter().any(|(g, _)| g.eq_ignore_ascii_case(rg)) {
        return Ok(arm_error(
            404,
            "ResourceGroupNotFound",
            &format!("Resource group '{rg}' could not be found."),
        ));
    }
    if !VMS
        .iter()
        .any(|(g, n)| g.eq_ignore_ascii_case(rg) && n.eq_ignore_ascii_case(vm))
    {
        return Ok(arm_error(
            404,
            "ResourceNotFound",
            &format!("The Resource 'Microsoft.Compute/virtualMachines/{vm}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"),
        ));
    }
    if let Some(state) = faults.power_state.as_deref().filter(|s| *s != "running") {
        return Ok(arm_error(
            409,
            "OperationNotAllowed",
            &format!("Operation 'RunCommand' is not allowed on VM '{vm}' since the VM is {state}. Start the VM and try again."),
        ));
    }
    if let Some(e) = &faults.post_error {
        if count(app, |c| &mut c.post_errors, |u| e.applies(u)) {
            return Ok(server_error(e.status));
        }
    }
    let key = format!("{rg}/{vm}").to_ascii_lowercase();
    let busy_fault = faults
        .busy
        .as_ref()
        .is_some_and(|b| count(app, |c| &mut c.busy, |u| b.applies(u)));
    let mut ops = lock(&arm.ops);
    if busy_fault || ops.values().any(|o| o.vm == key && o.running()) {
        return Ok(arm_error(
            409,
            "Conflict",
            "Run command extension execution is in progress. Please wait for completion before invoking a run command.",
        ));
    }
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    if body["commandId"] != "RunShellScript" {
        return Ok(arm_error(
            404,
            "NotFound",
            &format!("The entity was not found in this Azure location. Command id '{}' is not available for this Linux VM.", body["commandId"].as_str().unwrap_or("")),
        ));
    }
    // az sends one array element per --scripts word; the VM joins them.
    let script = body["script"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let fail = faults
        .operation_failed
        .as_ref()
        .is_some_and(|f| count(app, |c| &mut c.failed, |u| f.applies(u)));
    let id = uuid()?;
    let result: Arc<Mutex<Outcome>> = Arc::new(Mutex::new(None));
    let (dir, res) = (app.dir.clone(), result.clone());
    // Bounded by the script timeout inside `execute`.
    std::thread::Builder::new()
        .name("nexy-run-command".into())
        .spawn(move || {
            let r = crate::vmrun::execute(&dir, &script).map_err(|e| format!("{e:#}"));
            *lock(&res) = Some(r);
        })
        .context("spawn run-command thread")?;
    let started_ms = crate::util::now_ms();
    let min_ms = faults.run_ms.unwrap_or(arm.latency.run_command_ms);
    ops.insert(
        id.clone(),
        Op {
            vm: key,
            started_ms,
            min_ms,
            fail,
            result: result.clone(),
        },
    );
    drop(ops);
    // The profile's wait for the script (see `Latency::post_waits_ms`);
    // the op is registered first, so that a POST meanwhile is refused
    // with 409 as while any run-command is in progress.
    let until =
        started_ms.saturating_add(arm.latency.post_waits_ms.min(crate::faults::MAX_SLEEP_MS));
    while crate::util::now_ms() < until
        && (lock(&result).is_none() || crate::util::now_ms() < started_ms.saturating_add(min_ms))
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (async_url, location) = op_urls(arm, &id);
    Ok(with_retry_after(
        Response::empty(202)
            .with_header("Azure-AsyncOperation", &async_url)
            .with_header("Location", &location),
        arm,
    ))
}

fn server_error(status: u16) -> Response {
    let (code, msg) = if status == 503 {
        (
            "ServiceUnavailable",
            "The service is temporarily unavailable. Please try again later.",
        )
    } else {
        (
            "InternalServerError",
            "An internal server error occurred. Please try again later.",
        )
    };
    arm_error(status, code, msg)
}

fn poll(app: &App, arm: &Arm, req: &ArmReq, id: &str, faults: &AzureFaults) -> Result<Response> {
    if let Some(e) = &faults.poll_error {
        if count(app, |c| &mut c.poll_errors, |u| e.applies(u)) {
            return Ok(server_error(e.status));
        }
    }
    let monitor = req.q("monitor") == Some("true");
    let ops = lock(&arm.ops);
    let Some(op) = ops.get(id) else {
        return Ok(arm_error(
            404,
            "NotFound",
            &format!("Operation '{id}' was not found."),
        ));
    };
    let start = crate::util::iso_utc(op.started_ms);
    if op.running() {
        return Ok(with_retry_after(
            if monitor {
                let (_, location) = op_urls(arm, id);
                Response::empty(202).with_header("Location", &location)
            } else {
                Response::json(
                    200,
                    &json!({"startTime": start, "status": "InProgress", "name": id}),
                )
            },
            arm,
        ));
    }
    let end = crate::util::iso_utc(crate::util::now_ms());
    let outcome = lock(&op.result).clone().unwrap_or(Err("no result".into()));
    let failed = |code: &str, message: &str| {
        Response::json(
            200,
            &json!({"startTime": start, "endTime": end, "status": "Failed", "name": id,
                    "error": {"code": code, "message": message}}),
        )
    };
    if op.fail {
        return Ok(failed(
            "VMAgentStatusCommunicationError",
            "VM 'NexyNew' has not reported status for VM agent or extensions. Verify that the OS is up and healthy, the VM has a running VM agent, and that it can establish outbound connections to Azure storage.",
        ));
    }
    let (so, se) = match outcome {
        Ok(t) => t,
        Err(why) => return Ok(failed("InternalExecutionError", &why)),
    };
    let output = json!({"value": [{
        "code": "ProvisioningState/succeeded",
        "level": "Info",
        "displayStatus": "Provisioning succeeded",
        "message": format!("Enable succeeded: \n[stdout]\n{so}\n[stderr]\n{se}"),
    }]});
    if monitor {
        return Ok(Response::json(200, &output));
    }
    Ok(Response::json(
        200,
        &json!({"startTime": start, "endTime": end, "status": "Succeeded", "name": id,
                "properties": {"output": output}}),
    ))
}

/// A random version-4 UUID.
fn uuid() -> Result<String> {
    let h = super::random_hex(16)?;
    Ok(format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    ))
}
