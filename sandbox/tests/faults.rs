//! Every fault knob, exercised against the real gh, az, or raw HTTP.

mod common;
use common::*;
use nexy_sandbox::arm::AzureFaults;
use nexy_sandbox::azure_faults::Times;
use nexy_sandbox::faults::{Delay, DownloadDrop, UploadCut, UploadFail};
use nexy_sandbox::{Faults, Options};
use std::time::{Duration, Instant};

fn upload_posts(sb: &nexy_sandbox::Sandbox) -> Vec<i64> {
    sb.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.url.starts_with("http://uploads.github.localhost/"))
        .map(|r| r.status)
        .collect()
}

#[test]
fn fault_upload_5xx_gh_retries_then_fails() {
    let sb = start();
    let dir = scratch(&sb, "f");
    let f = write_file(&dir, "Nexy.dmg", &bytes(100_000, 9));
    sb.set_faults(Faults {
        upload_fail: Some(UploadFail {
            nth: 1,
            count: 4,
            status: 502,
        }),
        ..Default::default()
    })
    .unwrap();
    let o = gh_upload(&sb, "Update", f.to_str().unwrap(), &[]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("HTTP 502"), "{}", o.stderr);
    assert_eq!(
        upload_posts(&sb),
        vec![502, 502, 502, 502],
        "gh tries 4 times in all"
    );
    assert!(sb.asset_bytes("Update", "Nexy.dmg").is_none());
}

#[test]
fn fault_upload_5xx_once_gh_retry_succeeds() {
    // Set at start, through Options, as `up --faults FILE` does.
    let sb = start_with(Options {
        faults: Some(Faults {
            upload_fail: Some(UploadFail {
                nth: 1,
                count: 1,
                status: 503,
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let data = bytes(100_000, 10);
    let f = write_file(&scratch(&sb, "g"), "Nexy.dmg", &data);
    let o = gh_upload(&sb, "Update", f.to_str().unwrap(), &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(upload_posts(&sb), vec![503, 201]);
    assert_eq!(sb.asset_bytes("Update", "Nexy.dmg").unwrap(), data);
}

#[test]
fn fault_upload_cut_short_leaves_starter_asset() {
    let sb = start();
    let f = write_file(&scratch(&sb, "f"), "Nexy.dmg", &bytes(300_000, 11));
    sb.set_faults(Faults {
        upload_cut: Some(UploadCut {
            nth: 1,
            after_bytes: 1000,
        }),
        ..Default::default()
    })
    .unwrap();
    let o = gh_upload(&sb, "Update", f.to_str().unwrap(), &[]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    let posts = upload_posts(&sb);
    assert_eq!(posts[0], 0, "first upload dropped without an answer");
    let r = get(
        sb.port(),
        &format!("http://api.github.localhost/repos/{REPO}/releases/tags/Update"),
    );
    let a = &r.json()["assets"][0];
    assert_eq!(a["state"], "starter");
    assert_eq!(a["digest"], serde_json::Value::Null);
    // A broken upload cannot be downloaded.
    let dl = scratch(&sb, "dl");
    let o = gh_download(&sb, "Update", "Nexy.dmg", dl.to_str().unwrap(), &[]);
    assert_eq!(o.code, 1);
    assert_eq!(
        get(
            sb.port(),
            &format!("/{REPO}/releases/download/Update/Nexy.dmg")
        )
        .status,
        404
    );
    // --clobber deletes the starter and uploads again (fault was for upload #1 only).
    let o = gh_upload(&sb, "Update", f.to_str().unwrap(), &["--clobber"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(sb.asset_bytes("Update", "Nexy.dmg").unwrap().len(), 300_000);
}

#[test]
fn fault_delay_holds_matching_requests() {
    let sb = start();
    sb.set_faults(Faults {
        delays: vec![Delay {
            method: Some("GET".into()),
            path_contains: "/releases/tags/Update".into(),
            ms: 800,
        }],
        ..Default::default()
    })
    .unwrap();
    let o = gh(&sb, &["release", "view", "Update", "-R", REPO]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.elapsed >= Duration::from_millis(800), "{:?}", o.elapsed);
    let t = Instant::now();
    assert_eq!(get(sb.port(), "/health").status, 200);
    assert!(t.elapsed() < Duration::from_millis(800));
    // Through the control endpoint, as JSON.
    let r = http(
        sb.port(),
        "POST",
        "/_sandbox/faults",
        &[],
        br#"{"delays":[{"path_contains":"/status","ms":300}]}"#,
    );
    assert_eq!(r.status, 200);
    let t = Instant::now();
    assert_eq!(get(sb.port(), "/status").status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(sb.faults().delays.len(), 1);
    assert_eq!(
        http(
            sb.port(),
            "POST",
            "/_sandbox/faults",
            &[],
            br#"{"bogus":1}"#
        )
        .status,
        400
    );
}

#[test]
fn fault_feed_serves_old_version_for_a_while_after_restart() {
    let sb = start_az();
    sb.set_faults(Faults {
        feed_stale_secs: 2,
        ..Default::default()
    })
    .unwrap();
    // The restart happens inside az's call (which then polls for about a
    // second), so the stale window is counted from before the call.
    let restarted = Instant::now();
    let o = az_script(&sb, "cd /home/azureuser/voice-assistant && sed -i -e 's/^SERVER_VERSION=.*/SERVER_VERSION=2.0.0.60/' -e 's/^SERVER_BUILD=.*/SERVER_BUILD=2.0.0.60/' config.env && systemctl restart voice-assistant && echo restarted");
    assert!(az_message(&o).contains("restarted"));
    let v = get(sb.port(), "/health").json();
    if restarted.elapsed() < Duration::from_millis(1500) {
        assert_eq!(v["latest_version"], "2.0.0.32", "stale right after restart");
    }
    // Bounded poll until the new version shows.
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        seen = get(sb.port(), "/health").json()["latest_version"]
            .as_str()
            .unwrap()
            .to_string();
        if seen == "2.0.0.60" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(seen, "2.0.0.60");
    assert!(restarted.elapsed() >= Duration::from_millis(1900));
}

#[test]
fn fault_azure_busy_then_recovers_and_hang_holds_the_post() {
    let sb = start_az();
    sb.set_faults(Faults {
        azure: AzureFaults {
            busy: Some(Times { times: Some(1) }),
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    let o = az_script(&sb, "echo hi");
    assert_eq!(o.code, 1);
    assert_eq!(o.stdout, "");
    assert!(
        o.stderr
            .starts_with("ERROR: (Conflict) Run command extension execution is in progress."),
        "{}",
        o.stderr
    );
    let o = az_script(&sb, "echo hi");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(az_message(&o).contains("hi"));
    let codes: Vec<i64> = sb
        .requests()
        .iter()
        .filter(|r| r.kind == "arm" && r.method == "POST" && r.url.contains("/runCommand"))
        .map(|r| r.status)
        .collect();
    assert_eq!(codes, vec![409, 202]);
    sb.set_faults(Faults {
        az_hang_ms: 1500,
        ..Default::default()
    })
    .unwrap();
    let o = az_script(&sb, "echo held");
    assert_eq!(o.code, 0);
    assert!(o.elapsed >= Duration::from_millis(1500), "{:?}", o.elapsed);
}

#[test]
fn fault_download_dropped_mid_body() {
    let sb = start();
    let data = bytes(200_000, 12);
    sb.seed_asset("Update", "Nexy.dmg", &data).unwrap();
    sb.set_faults(Faults {
        download_drop: Some(DownloadDrop {
            after_bytes: 1000,
            times: Some(1),
        }),
        ..Default::default()
    })
    .unwrap();
    let dl = scratch(&sb, "dl");
    let o = gh(
        &sb,
        &[
            "release",
            "download",
            "Update",
            "-R",
            REPO,
            "--pattern",
            "Nexy.dmg",
            "--dir",
            dl.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("unexpected EOF"), "{}", o.stderr);
    // Second download (fault used up) is whole.
    let o = gh_download(
        &sb,
        "Update",
        "Nexy.dmg",
        dl.to_str().unwrap(),
        &["--clobber"],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(std::fs::read(dl.join("Nexy.dmg")).unwrap(), data);
    // Raw: Content-Length promises everything, the body stops short.
    sb.set_faults(Faults {
        download_drop: Some(DownloadDrop {
            after_bytes: 10,
            times: None,
        }),
        ..Default::default()
    })
    .unwrap();
    let r = get_follow(
        sb.port(),
        &format!("/{REPO}/releases/download/Update/Nexy.dmg"),
    );
    assert_eq!(r.header("content-length"), Some("200000"));
    assert_eq!(r.body.len(), 10);
}

#[test]
fn fault_public_download_serves_stale_bytes_for_a_while() {
    let sb = start();
    let v1 = bytes(5_000, 13);
    let v2 = bytes(6_000, 14);
    sb.seed_asset("Update", "Nexy.dmg", &v1).unwrap();
    sb.set_faults(Faults {
        download_stale_secs: 2,
        ..Default::default()
    })
    .unwrap();
    let f = write_file(&scratch(&sb, "s"), "Nexy.dmg", &v2);
    let o = gh_upload(&sb, "Update", f.to_str().unwrap(), &["--clobber"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let changed = Instant::now();
    let url = format!("http://github.localhost/{REPO}/releases/download/Update/Nexy.dmg");
    let body = get_follow(sb.port(), &url).body;
    if changed.elapsed() < Duration::from_millis(1500) {
        assert_eq!(body, v1, "stale bytes right after the change");
    }
    // The API itself is not stale.
    assert_eq!(sb.asset_bytes("Update", "Nexy.dmg").unwrap(), v2);
    let mut got = Vec::new();
    while changed.elapsed() < Duration::from_secs(6) {
        got = get_follow(sb.port(), &url).body;
        if got == v2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(got, v2);
    assert!(changed.elapsed() >= Duration::from_millis(1900));
}
