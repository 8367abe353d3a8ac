//! Stale bytes behind a fixed URL: caches in front of the download URL keep
//! serving the old DMG for a while after a swap. `verify --deep` hashes
//! what a client receives, waits within its bound, and names the source
//! that disagrees when the wait is not enough.

mod common;

use std::time::Instant;

use common::stage::Stage;
use nexy_sandbox::Faults;

/// Releases 2.0.0.5, then publishes 2.0.0.6 over it. The public URL keeps
/// serving the old DMG for `Stale::Secs(n)` seconds after the swap, counted
/// from the moment the asset changed, as a CDN's cache does. `Stale::AfterPublish`
/// stretches the window to outlast the rest of the publish (the VM sync
/// through the real az, which alone takes several seconds) by `tail`
/// seconds, so that the cache is still stale when verify starts.
fn released_then_replaced(stale: Stale) -> Stage {
    let st = Stage::new();
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(1, 1 << 20);
    assert_eq!(st.run(&["release"]).code, 0);
    let set_stale = |secs: u64| {
        st.sb
            .set_faults(Faults {
                download_stale_secs: secs,
                ..Faults::default()
            })
            .unwrap()
    };
    if let Stale::Secs(secs) = stale {
        set_stale(secs);
    }
    assert_eq!(st.run(&["bump", "2.0.0.6"]).code, 0);
    st.samples(2, (1 << 20) + 4096);
    let started = Instant::now();
    let run = st.run(&["publish"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // The stand-in records when each name changed whatever the knobs say,
    // so a window set now still counts from the swap inside the publish:
    // at least `tail` seconds of it are left when the publish returns.
    if let Stale::AfterPublish { tail } = stale {
        set_stale(started.elapsed().as_secs() + 1 + tail);
    }
    st
}

#[derive(Clone, Copy)]
enum Stale {
    Secs(u64),
    AfterPublish { tail: u64 },
}

#[test]
fn verify_deep_waits_out_a_briefly_stale_cache() {
    let st = released_then_replaced(Stale::AfterPublish { tail: 3 });
    let started = Instant::now();
    let run = st.run(&["verify", "--deep", "--timeout", "60"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("downloaded 1052672 bytes, sha256 matches"),
        "{}",
        run.stdout
    );
    // It had to wait: the public URL served the old bytes at first.
    assert!(
        started.elapsed().as_secs_f64() > 2.5,
        "verify did not wait: {:?}",
        started.elapsed()
    );
}

#[test]
fn verify_deep_names_the_stale_public_url() {
    let st = released_then_replaced(Stale::Secs(60));
    let run = st.run(&["verify", "--deep", "--timeout", "2"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let failing: Vec<&str> = run.stdout.lines().filter(|l| l.contains("FAIL")).collect();
    // Exactly the two public URLs disagree (both sit behind the cache),
    // and the app inside the DMG the public URL serves is the old one.
    assert_eq!(
        failing.len(),
        3,
        "only the public URLs disagree:\n{}",
        run.stdout
    );
    assert!(
        failing[2].trim_start().starts_with("dmg-app")
            && failing[2].contains("CFBundleVersion is 2.0.0.5, VERSION 2.0.0.6"),
        "{}",
        run.stdout
    );
    assert!(
        failing[0].trim_start().starts_with("dmg-url"),
        "{}",
        run.stdout
    );
    assert!(
        failing[0].contains("the public URL disagrees"),
        "{}",
        run.stdout
    );
    assert!(
        failing[1].trim_start().starts_with("pkg-asset"),
        "{}",
        run.stdout
    );
    // The API digest and the manifest agree: the stale source is the cache.
    assert!(
        run.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("dmg-asset") && l.contains(" ok ")),
        "{}",
        run.stdout
    );
}
