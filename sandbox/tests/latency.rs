//! The latency profile is applied: `production-like` keeps a run-command
//! InProgress 25 s and sends no Retry-After (so the real az waits its own
//! 30 s between polls), and adds a GitHub round trip; `fast` does neither.

mod common;
use common::*;
use nexy_sandbox::arm::Latency;
use nexy_sandbox::Options;
use std::time::{Duration, Instant};

fn api_time(sb: &nexy_sandbox::Sandbox) -> Duration {
    let t = Instant::now();
    let r = get(
        sb.port(),
        "http://api.github.localhost/repos/Seregawpn/Nexy_production/releases",
    );
    assert_ne!(r.status, 0);
    t.elapsed()
}

#[test]
fn production_like_is_slow_as_azure_and_fast_is_not() {
    let fast = start_az();
    let o = az_script(&fast, "echo quick");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.elapsed < Duration::from_secs(8), "{:?}", o.elapsed);
    assert!(api_time(&fast) < Duration::from_millis(100));

    let slow = start_with(Options {
        az: Some(real_az()),
        latency: Latency::production_like(),
        ..Options::default()
    });
    let info: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(slow.state_dir().join("sandbox.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(info["latency"]["name"], "production-like");
    assert!(api_time(&slow) >= Duration::from_millis(100));
    let o = az_script(&slow, "echo slow");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(az_message(&o).contains("slow\n"));
    // InProgress for 25 s; az, told no Retry-After, polls at once and then
    // after 30 s.
    assert!(o.elapsed >= Duration::from_secs(29), "{:?}", o.elapsed);
    assert!(o.elapsed < Duration::from_secs(50), "{:?}", o.elapsed);
    let polls = slow
        .requests()
        .into_iter()
        .filter(|r| r.kind == "arm" && r.url.contains("/operations/"))
        .count();
    assert!((2..=4).contains(&polls), "{polls} polls");
}

#[test]
fn uploads_side_by_side_share_the_uplink() {
    // 4 MB/s: one 4 MB upload alone takes about 1 s on the link; two side
    // by side take about 2 s each, their sum, not 1 s as with a link each.
    let mut latency = Latency::fast();
    latency.set("upload_bytes_per_sec=4000000").unwrap();
    let sb = start_with(Options {
        latency,
        ..Options::default()
    });
    let dir = scratch(&sb, "uplink");
    let files: Vec<String> = (0..3)
        .map(|i| {
            write_file(&dir, &format!("part{i}.bin"), &bytes(4_000_000, i))
                .display()
                .to_string()
        })
        .collect();
    let t = Instant::now();
    let o = gh_upload(&sb, "Update", &files[0], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let alone = t.elapsed();
    assert!(alone >= Duration::from_millis(950), "{alone:?}");
    let t = Instant::now();
    let (a, b) = (files[1].clone(), files[2].clone());
    std::thread::scope(|s| {
        let one = s.spawn(|| gh_upload(&sb, "Update", &a, &[]));
        let two = s.spawn(|| gh_upload(&sb, "Update", &b, &[]));
        for o in [one.join().unwrap(), two.join().unwrap()] {
            assert_eq!(o.code, 0, "{}", o.stderr);
        }
    });
    let both = t.elapsed();
    assert!(both >= Duration::from_millis(1900), "{both:?}");
    assert!(
        both < alone * 2 + Duration::from_secs(2),
        "{both:?} vs {alone:?}"
    );
}
