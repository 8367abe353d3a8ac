//! `preflight` against the stand-in: each broken precondition is one clear
//! failure (exit 1, the check's id, what is wrong and the fix), and nothing
//! in production changes.

mod common;
#[path = "common/more.rs"]
mod more;

use std::fs;

use common::{stage::Stage, Run};
use more::{edit_config, run_with_env};

/// A stand-in with a releasable 2.0.0.5 in the inbox.
fn ready() -> Stage {
    let st = Stage::new();
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(1, 1 << 20);
    st
}

/// One row of the preflight table: (id, status, detail, fix).
#[derive(Debug)]
struct Row {
    id: String,
    status: String,
    detail: String,
    fix: String,
}

fn rows(out: &str) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut in_table = false;
    for line in out.lines() {
        if line.starts_with("  check ") {
            in_table = true;
            continue;
        }
        if !in_table || !line.starts_with("  ") {
            in_table = in_table && line.starts_with("  ");
            continue;
        }
        let trimmed = line.trim_start();
        if let Some(fix) = trimmed.strip_prefix("fix: ") {
            rows.last_mut().expect("a fix follows a row").fix = fix.to_string();
            continue;
        }
        let mut parts = trimmed.splitn(2, char::is_whitespace);
        let id = parts.next().unwrap_or("").to_string();
        let rest = parts.next().unwrap_or("").trim_start();
        let mut parts = rest.splitn(2, char::is_whitespace);
        let status = parts.next().unwrap_or("").to_string();
        let detail = parts.next().unwrap_or("").trim_start().to_string();
        rows.push(Row {
            id,
            status,
            detail,
            fix: String::new(),
        });
    }
    rows
}

/// Preflight failed with exit 1, and exactly the checks `ids` failed.
fn failed(run: &Run, ids: &[&str]) -> Vec<Row> {
    assert_eq!(
        run.code, 1,
        "preflight must exit 1:\n{}\n{}",
        run.stdout, run.stderr
    );
    let all = rows(&run.stdout);
    assert!(all.len() >= 10, "no table:\n{}", run.stdout);
    let fails: Vec<Row> = all.into_iter().filter(|r| r.status == "FAIL").collect();
    let got: Vec<&str> = fails.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(got, ids, "failing checks:\n{}", run.stdout);
    for r in &fails {
        assert!(!r.fix.is_empty(), "{} has no fix:\n{}", r.id, run.stdout);
    }
    assert!(
        run.stdout
            .contains(&format!("preflight: {} check(s) failed", ids.len())),
        "{}",
        run.stdout
    );
    fails
}

fn row<'a>(rows: &'a [Row], id: &str) -> &'a Row {
    rows.iter().find(|r| r.id == id).unwrap()
}

#[test]
fn preflight_passes_on_a_healthy_stand_in() {
    let st = ready();
    let from = st.log_len();
    let run = st.run(&["preflight"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("preflight: all checks passed"),
        "{}",
        run.stdout
    );
    let rows = rows(&run.stdout);
    for id in [
        "gh-version",
        "gh-auth-status",
        "gh-token",
        "inbox-dmg",
        "inbox-pkg",
        "server-health",
        "server-status",
        "updates-health",
        "grpc-tls",
        "grpc-call",
        "gemini-key",
        "fixed-tag",
        "target",
        "workspace",
        "version",
    ] {
        assert!(
            rows.iter().any(|r| r.id == id && r.status == "ok"),
            "{id} not ok:\n{}",
            run.stdout
        );
    }
    assert!(
        st.mutating_since(from).is_empty(),
        "{:?}",
        st.mutating_since(from)
    );
}

/// The old runbook's check of the key, as run on the VM.
const RUNBOOK_GEMINI_CHECK: &str = "grep -q '^GEMINI_API_KEY=.' /home/azureuser/voice-assistant/config.env || { echo MISSING; exit 1; }";

#[test]
fn a_missing_gemini_key_fails_by_the_scripts_marker() {
    let st = ready();
    let env = st.sb.vm_app_dir().join("config.env");
    // An old key left commented out: its value must never be printed.
    fs::write(
        &env,
        "#GEMINI_API_KEY=old-key-never-printed\nSERVER_VERSION=2.0.0.4\nSERVER_BUILD=2.0.0.4\n",
    )
    .unwrap();
    // The quirk comes from the real az: a script that prints MISSING and
    // exits 1 makes az exit 0, the failure only in the message.
    let quirk = st.az_script(RUNBOOK_GEMINI_CHECK);
    let said = String::from_utf8_lossy(&quirk.stdout);
    assert_eq!(quirk.status.code(), Some(0), "{said}");
    assert!(
        said.contains(r#""message": "Enable succeeded: \n[stdout]\nMISSING\n\n[stderr]\n""#),
        "{said}"
    );
    let from = st.log_len();
    let run = st.run(&["preflight"]);
    assert!(
        !run.all().contains("old-key-never-printed"),
        "{}",
        run.all()
    );
    let fails = failed(&run, &["gemini-key"]);
    let r = row(&fails, "gemini-key");
    assert!(
        r.detail.contains("GEMINI_API_KEY is missing or empty"),
        "{r:?}"
    );
    assert!(
        r.detail
            .contains("/home/azureuser/voice-assistant/config.env"),
        "{r:?}"
    );
    assert!(r.fix.contains("set GEMINI_API_KEY=<key>"), "{r:?}");
    assert!(r.fix.contains("systemctl restart voice-assistant"), "{r:?}");
    // az itself said nothing was wrong: the verdict is the script's marker.
    let az: Vec<_> = st
        .sb
        .requests()
        .into_iter()
        .skip(from)
        .filter(|r| r.kind == "arm" && r.url.contains("/runCommand"))
        .collect();
    assert!(!az.is_empty(), "no run-command was sent");
    // The real az sent it and was answered as a success (it exits 0).
    assert!(
        az.iter().all(|r| r.status == 202
            && r.user_agent
                .as_deref()
                .is_some_and(|u| u.starts_with("AZURECLI/2.91.0"))),
        "{az:?}"
    );
}

#[test]
fn a_placeholder_gemini_key_fails() {
    let st = ready();
    let env = st.sb.vm_app_dir().join("config.env");
    fs::write(
        &env,
        "GEMINI_API_KEY=YOUR_GEMINI_API_KEY_HERE\nSERVER_VERSION=2.0.0.4\nSERVER_BUILD=2.0.0.4\n",
    )
    .unwrap();
    let run = st.run(&["preflight"]);
    let fails = failed(&run, &["gemini-key"]);
    let r = row(&fails, "gemini-key");
    assert!(r.detail.contains("is the placeholder"), "{r:?}");
    assert!(r.fix.contains("set GEMINI_API_KEY=<key>"), "{r:?}");
    assert!(!run.all().contains("sandbox-key-not-real"));
}

#[test]
fn a_wrong_github_token_fails_gh_token() {
    let st = ready();
    let run = run_with_env(
        &st,
        &["preflight"],
        &[("GH_TOKEN", "ghp_wrong0token0for0the0stand0in00000")],
    );
    let fails = failed(&run, &["gh-token"]);
    let r = row(&fails, "gh-token");
    assert!(
        r.detail
            .contains("gh has no valid token for github.localhost"),
        "{r:?}"
    );
    assert!(
        r.fix.contains("gh auth login") && r.fix.contains("GH_TOKEN"),
        "{r:?}"
    );
    // The token is never echoed.
    assert!(!run.all().contains("ghp_wrong0token"), "{}", run.all());
    // The tag checks wait for a working gh instead of failing twice.
    let all = rows(&run.stdout);
    assert!(
        all.iter()
            .filter(|r| r.id == "fixed-tag")
            .all(|r| r.status == "skip"),
        "{}",
        run.stdout
    );
}

#[test]
fn az_not_logged_in_says_az_login() {
    let st = ready();
    st.sb.set_az_logged_in(false).unwrap();
    let run = st.run(&["preflight"]);
    let fails = failed(&run, &["gemini-key"]);
    let r = row(&fails, "gemini-key");
    assert!(r.detail.contains("az login"), "{r:?}");
    assert!(r.fix.contains("az login"), "{r:?}");
}

#[test]
fn a_missing_fixed_tag_is_never_created() {
    let st = ready();
    edit_config(&st, "dmg_tag = \"Update\"", "dmg_tag = \"Missing\"");
    edit_config(
        &st,
        "/releases/download/Update/Nexy.dmg\"",
        "/releases/download/Missing/Nexy.dmg\"",
    );
    let from = st.log_len();
    let run = st.run(&["preflight"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let fails: Vec<Row> = rows(&run.stdout)
        .into_iter()
        .filter(|r| r.status == "FAIL")
        .collect();
    let r = fails
        .iter()
        .find(|r| r.id == "fixed-tag")
        .unwrap_or_else(|| panic!("no fixed-tag failure:\n{}", run.stdout));
    assert!(
        r.detail.contains("no release for the fixed tag `Missing`"),
        "{r:?}"
    );
    assert!(r.fix.contains("never creates tags"), "{r:?}");
    // The only other complaint may be the workspace's manifest URL, which
    // now disagrees with the edited config.
    for other in fails.iter().filter(|r| r.id != "fixed-tag") {
        assert_eq!(other.id, "workspace", "{}", run.stdout);
    }
    // publish refuses too, the same way; nothing is created or changed.
    let run = st.run(&["publish"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("no release for the fixed tag `Missing`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("never creates tags"), "{}", run.stderr);
    assert!(st.creations().is_empty(), "{:?}", st.creations());
    assert!(
        st.mutating_since(from).is_empty(),
        "{:?}",
        st.mutating_since(from)
    );
}

#[test]
fn an_immutable_release_stops_before_anything_changes() {
    let st = ready();
    st.sb.set_immutable("Update", true).unwrap();
    let vm = more::tree(&st.sb.vm_app_dir());
    let workspace = st.fx.snapshot();
    let from = st.log_len();
    let run = st.run(&["preflight"]);
    let fails = failed(&run, &["fixed-tag"]);
    let r = row(&fails, "fixed-tag");
    assert!(
        r.detail.contains("`Update` release") && r.detail.contains("immutable"),
        "{r:?}"
    );
    assert!(r.fix.contains("turn off immutable releases"), "{r:?}");

    let run = st.run(&["release"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("release stopped at preflight: production is untouched"),
        "{}",
        run.stdout
    );
    let run = st.run(&["publish"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("immutable"), "{}", run.stderr);
    assert!(
        st.mutating_since(from).is_empty(),
        "{:?}",
        st.mutating_since(from)
    );
    assert!(st.sb.asset_bytes("Update", "Nexy.dmg").is_none());
    assert!(st.sb.asset_bytes("App", "Nexy.pkg").is_none());
    assert!(more::tree(&st.sb.vm_app_dir()) == vm, "the VM changed");
    assert!(st.fx.snapshot() == workspace, "the workspace changed");
}

#[test]
fn an_unreachable_feed_fails_the_server_checks() {
    let st = ready();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = st.sb.base_url();
    edit_config(
        &st,
        &format!("base_url = \"{base}\""),
        &format!("base_url = \"http://127.0.0.1:{closed}\""),
    );
    let run = st.run(&["preflight"]);
    let fails = failed(
        &run,
        &[
            "server-health",
            "server-status",
            "updates-health",
            "version",
        ],
    );
    for id in ["server-health", "server-status", "updates-health"] {
        let r = row(&fails, id);
        assert!(r.detail.contains(&format!("127.0.0.1:{closed}")), "{r:?}");
        assert!(r.fix.contains("deploy the server first"), "{r:?}");
    }
    assert!(row(&fails, "version")
        .detail
        .contains("live version is unknown"));
}

#[test]
fn a_mislabelled_artifact_fails_the_koly_check() {
    let st = ready();
    let inbox = st.fx.path("release_inbox");
    fs::rename(inbox.join("Nexy.pkg"), inbox.join("Nexy.dmg")).unwrap();
    let run = st.run(&["preflight"]);
    let fails = failed(&run, &["inbox-dmg"]);
    let r = row(&fails, "inbox-dmg");
    assert!(r.detail.contains("koly"), "{r:?}");
    assert!(r.fix.contains("rebuild the artifact"), "{r:?}");
}

#[test]
fn a_legacy_target_is_refused_naming_the_canonical_one() {
    let st = ready();
    edit_config(
        &st,
        "resource_group = \"NexyNewRG\"",
        "resource_group = \"NetworkWatcherRG\"",
    );
    let from = st.log_len();
    let run = st.run(&["preflight"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("NetworkWatcherRG"), "{}", run.stderr);
    assert!(run.stderr.contains("NexyNewRG"), "{}", run.stderr);
    assert!(
        st.sb
            .requests()
            .into_iter()
            .skip(from)
            .all(|r| r.kind != "arm"),
        "az was called for a legacy target"
    );
}

/// The gRPC calls the stand-in received since log index `from`.
fn grpc_calls(st: &Stage, from: usize) -> Vec<nexy_sandbox::grpc::GrpcCall> {
    st.sb
        .requests()
        .into_iter()
        .skip(from)
        .filter(|r| r.kind == "grpc")
        .filter_map(|r| r.grpc)
        .collect()
}

fn grpc_fault(st: &Stage, fault: serde_json::Value) {
    let fault = serde_json::from_value(fault).unwrap();
    st.sb
        .set_faults(nexy_sandbox::Faults {
            grpc: Some(fault),
            ..Default::default()
        })
        .unwrap();
}

#[test]
fn preflight_makes_one_well_formed_grpc_call_and_shows_its_status() {
    let st = ready();
    let from = st.log_len();
    let run = st.run(&["preflight"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let all = rows(&run.stdout);
    let r = row(&all, "grpc-call");
    assert_eq!(r.status, "ok", "{}", run.stdout);
    assert!(
        r.detail.contains("InterruptSession answered OK (0)")
            && r.detail.contains("success=true, 0 session(s) interrupted"),
        "{}",
        run.stdout
    );
    // What the service received is a well-formed unary gRPC call.
    let calls = grpc_calls(&st, from);
    assert_eq!(calls.len(), 1, "{calls:?}");
    let c = &calls[0];
    assert_eq!(c.method, "POST");
    assert_eq!(c.path, "/streaming.StreamingService/InterruptSession");
    assert_eq!(c.scheme, "https");
    assert_eq!(
        c.authority,
        "nexy-prod-sergiy.canadacentral.cloudapp.azure.com"
    );
    assert_eq!(c.content_type, "application/grpc");
    assert_eq!(c.te, "trailers");
    assert_eq!(c.grpc_timeout, "10000m");
    assert_eq!(c.compressed, Some(0));
    assert_eq!(c.declared_len, Some(34));
    assert_eq!(c.body_len, 5 + 34);
    assert_eq!(
        c.hardware_id.as_deref(),
        Some("smoke_test_hardware_id_interrupt")
    );
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    assert_eq!((c.http_status, c.grpc_status), (200, Some(0)));

    // An application error is the service answering: it passes, shown.
    grpc_fault(
        &st,
        serde_json::json!({"answer": "status", "status": 5, "message": "no session for this id"}),
    );
    let run = st.run(&["preflight"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let all = rows(&run.stdout);
    let r = row(&all, "grpc-call");
    assert!(
        r.detail
            .contains("answered NOT_FOUND (5) \"no session for this id\""),
        "{}",
        run.stdout
    );
}

#[test]
fn preflight_fails_when_the_service_is_down_behind_its_tls_front() {
    let st = ready();
    grpc_fault(&st, serde_json::json!({"answer": "down"}));
    let run = st.run(&["preflight"]);
    // The TLS handshake alone still passes: that is why the call exists.
    assert_eq!(row(&rows(&run.stdout), "grpc-tls").status, "ok");
    let fails = failed(&run, &["grpc-call"]);
    let r = row(&fails, "grpc-call");
    assert!(
        r.detail
            .contains("UNAVAILABLE (14) \"unavailable\" (HTTP 204)")
            && r.detail.contains("service behind the TLS front is down"),
        "{}",
        run.stdout
    );
    assert!(
        r.fix.contains("systemctl restart voice-assistant"),
        "{}",
        r.fix
    );

    // A gRPC server without the service fails too.
    grpc_fault(
        &st,
        serde_json::json!({"answer": "status", "status": 12, "message": "Method not found!"}),
    );
    let run = st.run(&["preflight"]);
    let fails = failed(&run, &["grpc-call"]);
    assert!(
        row(&fails, "grpc-call")
            .detail
            .contains("UNIMPLEMENTED (12) \"Method not found!\""),
        "{}",
        run.stdout
    );
}

#[test]
fn preflight_fails_when_the_front_answers_http_502_or_a_web_page() {
    let st = ready();
    grpc_fault(&st, serde_json::json!({"answer": "bad_gateway"}));
    let run = st.run(&["preflight"]);
    let fails = failed(&run, &["grpc-call"]);
    let r = row(&fails, "grpc-call");
    assert!(
        r.detail
            .contains("answered HTTP 502 (text/html, page \"502 Bad Gateway\") instead of gRPC"),
        "{}",
        run.stdout
    );
    assert!(r.fix.contains("voice-assistant"), "{}", r.fix);

    grpc_fault(&st, serde_json::json!({"answer": "html"}));
    let run = st.run(&["preflight"]);
    let fails = failed(&run, &["grpc-call"]);
    let r = row(&fails, "grpc-call");
    assert!(
        r.detail
            .contains("HTTP 200 (text/html, page \"Welcome to nginx!\") instead of gRPC"),
        "{}",
        run.stdout
    );
    assert!(r.fix.contains("grpc_pass"), "{}", r.fix);
}

#[test]
fn preflight_fails_when_the_service_answers_too_slowly() {
    let st = ready();
    edit_config(&st, "tls = true", "tls = true\ntimeout_ms = 400");
    grpc_fault(&st, serde_json::json!({"delay_ms": 5000}));
    let from = st.log_len();
    let run = st.run(&["preflight"]);
    let fails = failed(&run, &["grpc-call"]);
    let r = row(&fails, "grpc-call");
    assert!(
        r.detail.contains("no gRPC answer came within 400 ms")
            && r.detail
                .contains("the front is up, the service behind it hangs or is too slow"),
        "{}",
        run.stdout
    );
    // The call was made, and given up on at the configured timeout.
    assert_eq!(grpc_calls(&st, from).len(), 1);
}

#[test]
fn preflight_names_a_missing_curl_with_the_fix() {
    let st = ready();
    // Every program of the machine but curl.
    let bin = st.state_dir().join("no-curl-bin");
    fs::create_dir_all(&bin).unwrap();
    for dir in ["/usr/local/bin", "/usr/bin", "/bin"] {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let link = bin.join(&name);
            if name != "curl" && !link.exists() {
                std::os::unix::fs::symlink(entry.path(), link).unwrap();
            }
        }
    }
    let path = format!("{}:{}", st.state_dir().join("bin").display(), bin.display());
    let from = st.log_len();
    let run = st.run_env(&["preflight"], &[("PATH", &path)]);
    let fails = failed(&run, &["grpc-call"]);
    let r = row(&fails, "grpc-call");
    assert!(r.detail.contains("curl is not installed"), "{}", run.stdout);
    assert!(r.fix.contains("apt-get install curl"), "{}", r.fix);
    assert!(grpc_calls(&st, from).is_empty());
}
