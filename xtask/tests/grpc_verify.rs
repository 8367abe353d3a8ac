//! `verify` calls the gRPC service after a release that restarted it: the
//! journal's VM sync (which ends in `systemctl restart voice-assistant`)
//! tells it so, and the stand-in's log shows the call after the restart.

mod common;

use common::stage::Stage;
use nexy_sandbox::{grpc::GrpcAnswer, grpc::GrpcFault, Faults, LoggedRequest};

fn grpc_row(out: &str, section: &str) -> String {
    let table = out.split(section).nth(1).unwrap_or("");
    table
        .lines()
        .find(|l| l.trim_start().starts_with("grpc-call "))
        .unwrap_or_else(|| panic!("no grpc-call row after `{section}`:\n{out}"))
        .trim()
        .to_string()
}

fn is_smoke_call(r: &LoggedRequest) -> bool {
    r.grpc.as_ref().is_some_and(|c| {
        c.path == "/streaming.StreamingService/InterruptSession"
            && c.content_type == "application/grpc"
            && c.hardware_id.as_deref() == Some("smoke_test_hardware_id_interrupt")
            && c.problems.is_empty()
    })
}

#[test]
fn verify_calls_the_service_after_a_release_that_restarted_it() {
    let st = Stage::new();

    // Nothing restarted yet: verify does not call the service.
    let from = st.log_len();
    let run = st.run(&["verify", "--timeout", "0"]);
    let row = grpc_row(&run.stdout, "verify (DoD)");
    assert!(
        row.contains("skip") && row.contains("records no restart of voice-assistant into 2.0.0.4"),
        "{row}"
    );
    assert!(!st.sb.requests()[from..].iter().any(|r| r.kind == "grpc"));

    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(1, 1 << 20);
    let from = st.log_len();
    let run = st.run(&["release"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let row = grpc_row(&run.stdout, "verify (DoD)");
    assert!(
        row.contains(" ok ") && row.contains("InterruptSession answered OK (0)"),
        "{row}"
    );
    // One call by preflight before the release, one by verify after the
    // restart the VM sync made.
    let log = &st.sb.requests()[from..];
    let restart = log
        .iter()
        .position(|r| r.kind == "systemctl" && r.method == "restart")
        .unwrap_or_else(|| panic!("no restart in {log:#?}"));
    let before = log[..restart].iter().filter(|r| is_smoke_call(r)).count();
    let after = log[restart..].iter().filter(|r| is_smoke_call(r)).count();
    assert_eq!((before, after), (1, 1), "{log:#?}");

    // A later verify of the same release calls again, and fails when the
    // service is down behind its TLS front.
    st.sb
        .set_faults(Faults {
            grpc: Some(GrpcFault {
                answer: GrpcAnswer::Down,
                ..GrpcFault::default()
            }),
            ..Faults::default()
        })
        .unwrap();
    let run = st.run(&["verify", "--timeout", "0"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let row = grpc_row(&run.stdout, "verify (DoD)");
    assert!(
        row.contains("FAIL") && row.contains("UNAVAILABLE (14)"),
        "{row}\n{}",
        run.stdout
    );
}
