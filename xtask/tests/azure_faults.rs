//! Azure as it really behaves, end to end: each fault of the Azure
//! stand-in, met by the real az 2.91 and then by our tool. Transient ones
//! (another run-command in progress, a 5xx az gave up on, an operation that
//! ended Failed) are retried and the release converges; the rest (a stopped
//! VM, an expired token, no rights, a wrong VM) stop at once with the fix.

mod common;
#[path = "common/more.rs"]
mod more;

use common::{stage::Stage, Run};
use more::edit_config;
use nexy_sandbox::arm::AzureFaults;
use nexy_sandbox::azure_faults::{StatusTimes, Times};
use nexy_sandbox::Faults;

/// A stand-in with a releasable 2.0.0.5 in the inbox.
fn ready() -> Stage {
    let st = Stage::new();
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(1, 1 << 20);
    st
}

fn azure(st: &Stage, f: AzureFaults) {
    st.sb
        .set_faults(Faults {
            azure: f,
            ..Faults::default()
        })
        .unwrap();
}

/// Statuses of the run-command POSTs since `from`.
fn posts(st: &Stage, from: usize) -> Vec<i64> {
    st.sb
        .requests()
        .into_iter()
        .skip(from)
        .filter(|r| r.kind == "arm" && r.method == "POST" && r.url.contains("/runCommand"))
        .map(|r| r.status)
        .collect()
}

fn released(st: &Stage, run: &Run) {
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(st.vm_manifest(), st.fx.read(common::stage::MANIFEST));
    assert_eq!(
        st.sb.asset_bytes("Update", "Nexy.dmg").as_deref(),
        Some(&st.inbox_bytes("Nexy.dmg")[..])
    );
}

/// Preflight failed on the VM check with `detail` and `fix` in its row.
fn preflight_fails(st: &Stage, detail: &str, fix: &str) -> Run {
    let run = st.run(&["preflight"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let row = run
        .stdout
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("gemini-key"))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(row.contains("FAIL"), "{}", run.stdout);
    assert!(row.contains(detail), "{row}");
    assert!(row.contains(fix), "{row}");
    run
}

#[test]
fn another_run_command_in_progress_is_retried_and_the_release_converges() {
    let st = ready();
    azure(
        &st,
        AzureFaults {
            busy: Some(Times { times: Some(2) }),
            ..Default::default()
        },
    );
    let from = st.log_len();
    let run = st.run(&["release"]);
    released(&st, &run);
    assert!(
        run.all()
            .contains("another run-command is in progress on the VM"),
        "{}",
        run.all()
    );
    let p = posts(&st, from);
    assert_eq!(p[..3], [409, 409, 202], "{p:?}");
}

#[test]
fn a_deallocated_vm_is_a_409_that_is_not_retried() {
    let st = ready();
    azure(
        &st,
        AzureFaults {
            power_state: Some("deallocated".into()),
            ..Default::default()
        },
    );
    let from = st.log_len();
    preflight_fails(
        &st,
        "OperationNotAllowed",
        "az vm start -g NexyNewRG -n NexyNew",
    );
    assert_eq!(posts(&st, from), [409], "told apart from the busy 409");
}

#[test]
fn an_expired_token_says_az_login() {
    let st = ready();
    azure(
        &st,
        AzureFaults {
            token_expired: Some(Times::default()),
            ..Default::default()
        },
    );
    let from = st.log_len();
    preflight_fails(&st, "ExpiredAuthenticationToken", "run `az login`");
    assert_eq!(posts(&st, from), [401], "az neither refreshes nor retries");
}

#[test]
fn no_rights_on_the_vm_names_the_role() {
    let st = ready();
    azure(
        &st,
        AzureFaults {
            forbidden: true,
            ..Default::default()
        },
    );
    preflight_fails(&st, "AuthorizationFailed", "Virtual Machine Contributor");
}

#[test]
fn a_wrong_vm_is_az_exit_3_and_names_the_config_keys() {
    let st = ready();
    edit_config(&st, "vm_name = \"NexyNew\"", "vm_name = \"NexyGone\"");
    let from = st.log_len();
    preflight_fails(&st, "ResourceNotFound", "azure.vm_name `NexyGone`");
    assert_eq!(posts(&st, from), [404]);
}

#[test]
fn server_errors_on_the_post_and_the_polls_are_retried() {
    let st = ready();
    // az tries a POST 4 times itself; the fifth 500 meets our retry.
    azure(
        &st,
        AzureFaults {
            post_error: Some(StatusTimes {
                status: 500,
                times: Some(5),
            }),
            ..Default::default()
        },
    );
    let from = st.log_len();
    let run = st.run(&["preflight"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.all().contains("Azure answered a server error"),
        "{}",
        run.all()
    );
    assert_eq!(posts(&st, from), [500, 500, 500, 500, 500, 202]);
    azure(
        &st,
        AzureFaults {
            poll_error: Some(StatusTimes {
                status: 503,
                times: Some(4),
            }),
            ..Default::default()
        },
    );
    let run = st.run(&["release"]);
    released(&st, &run);
}

#[test]
fn a_failed_operation_is_retried_and_running_the_sync_twice_is_safe() {
    let st = ready();
    // Every run-command of the release ends Failed once after the script
    // ran: the preflight check, the VM read and the VM sync each run twice.
    azure(
        &st,
        AzureFaults {
            operation_failed: Some(Times { times: Some(3) }),
            ..Default::default()
        },
    );
    let run = st.run(&["release"]);
    released(&st, &run);
    assert!(
        run.all().contains("the run-command failed on Azure's side"),
        "{}",
        run.all()
    );
    let verify = st.run(&["verify"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
}

#[test]
fn a_slow_vm_keeps_the_operation_in_progress() {
    let st = ready();
    azure(
        &st,
        AzureFaults {
            run_ms: Some(3000),
            ..Default::default()
        },
    );
    let from = st.log_len();
    let started = std::time::Instant::now();
    let run = st.run(&["preflight"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(started.elapsed() >= std::time::Duration::from_secs(3));
    let polls = st
        .sb
        .requests()
        .into_iter()
        .skip(from)
        .filter(|r| r.kind == "arm" && r.url.contains("/operations/"))
        .count();
    assert!(polls >= 3, "az polled {polls} times");
}
