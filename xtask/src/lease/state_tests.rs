//! Table tests of the pure lease decisions and of reading `gh api -i`.

use super::*;

fn holder(run: &str, ttl: u64) -> Holder {
    Holder {
        login: "octo".into(),
        run: run.into(),
        command: "publish".into(),
        version: "2.0.0.34".into(),
        ttl_secs: ttl,
        renewal: 0,
    }
}

fn seen(run: Option<&str>, age: i64) -> Seen {
    Seen {
        id: 77,
        holder: run.map(|r| holder(r, 60)),
        age_secs: age,
    }
}

#[test]
fn decisions() {
    let rows: Vec<(&str, Option<Seen>, Option<&str>, Decision)> = vec![
        ("free", None, None, Decision::Free),
        (
            "held live",
            Some(seen(Some("other"), 10)),
            None,
            Decision::Held { left_secs: 50 },
        ),
        (
            "held, one second left",
            Some(seen(Some("other"), 59)),
            None,
            Decision::Held { left_secs: 1 },
        ),
        (
            "expired at its ttl",
            Some(seen(Some("other"), 60)),
            None,
            Decision::Expired { id: 77 },
        ),
        (
            "expired long ago",
            Some(seen(Some("other"), 9999)),
            None,
            Decision::Expired { id: 77 },
        ),
        (
            "ours",
            Some(seen(Some("me"), 5)),
            None,
            Decision::Ours { id: 77 },
        ),
        (
            "a gone run of this clone",
            Some(seen(Some("dead"), 5)),
            Some("dead"),
            Decision::Ours { id: 77 },
        ),
        (
            "another clone's live run is not ours",
            Some(seen(Some("other"), 5)),
            Some("dead"),
            Decision::Held { left_secs: 55 },
        ),
        // A label we cannot read counts as held, for the default lifetime.
        (
            "unlabelled, young",
            Some(seen(None, 5)),
            Some("dead"),
            Decision::Held { left_secs: 595 },
        ),
        (
            "unlabelled, old",
            Some(seen(None, 600)),
            None,
            Decision::Expired { id: 77 },
        ),
        // A clock skew that makes the answer older than the renewal.
        (
            "renewed after the Date",
            Some(seen(Some("other"), -2)),
            None,
            Decision::Held { left_secs: 62 },
        ),
    ];
    for (what, s, gone, want) in rows {
        assert_eq!(decide(s.as_ref(), "me", gone, 600), want, "{what}");
    }
}

#[test]
fn labels_round_trip() {
    let h = holder("a1b2c3d4e5f6", 600);
    assert_eq!(Holder::parse_label(&h.label()), Some(h.clone()));
    assert_eq!(Holder::parse_label("Nexy for macOS"), None);
    assert_eq!(Holder::parse_label(""), None);
}

#[test]
fn version_gate_table() {
    let v = |s: &str| s.parse::<crate::version::Version>().unwrap();
    assert!(version_gate(v("2.0.0.34"), Some(v("2.0.0.33")), false).is_ok());
    assert!(version_gate(v("2.0.0.34"), None, false).is_ok());
    assert!(version_gate(v("2.0.0.34"), Some(v("2.0.0.34")), true).is_ok());
    let equal = version_gate(v("2.0.0.34"), Some(v("2.0.0.34")), false).unwrap_err();
    assert!(equal.contains("other bytes"), "{equal}");
    let lower = version_gate(v("2.0.0.33"), Some(v("2.0.0.34")), true).unwrap_err();
    assert!(lower.contains("lower than 2.0.0.34"), "{lower}");
}

#[test]
fn reads_the_lease_and_ages_it_by_the_date_header() {
    let body = r#"{"id":5,"assets":[{"id":9,"name":"Nexy.dmg","label":"","updated_at":"2026-12-01T17:00:00Z"},{"id":11,"name":"nexy-release.lease","label":"nexy-release lease login=o run=r command=publish version=2.0.0.34 ttl=30 renewal=2","updated_at":"2026-12-01T17:20:00Z"}]}"#;
    let out = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Tue, 01 Dec 2026 17:20:45 GMT\r\n\r\n{body}");
    let (rid, seen) = parse_read(&out).unwrap();
    assert_eq!(rid, 5);
    let seen = seen.unwrap();
    assert_eq!((seen.id, seen.age_secs), (11, 45));
    assert_eq!(seen.holder.unwrap().renewal, 2);
    let none = out.replace("nexy-release.lease", "Nexy.pkg");
    assert_eq!(parse_read(&none).unwrap().1, None);
    assert!(parse_read(&format!("HTTP/1.1 200 OK\r\n\r\n{body}")).is_err());
}
