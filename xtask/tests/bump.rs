//! `version` and `bump` run as a user would: the built binary on a
//! temporary copy of the workspace.

mod common;

use std::{fs, os::unix::fs::PermissionsExt, process::Command};

use common::Fixture;

const MANIFEST: &str = "server/updates/manifests/manifest.json";
const LINKED: &[&str] = &[
    "VERSION",
    MANIFEST,
    "server/config/unified_config.yaml",
    "server/config/unified_config.py",
    "server/config.env.example",
    "server/Docs/RELEASE_AND_UPDATE_GUIDE.md",
    "server/Docs/SERVER_DEPLOYMENT_GUIDE.md",
    "client/config/unified_config.yaml",
];

/// What Python's `json.dumps(json.load(f), indent=2, ensure_ascii=False)`
/// writes for the file, so our output is compared with the real thing.
fn python_dump(path: &std::path::Path) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import json,sys\n\
             d=json.load(open(sys.argv[1],encoding='utf-8'))\n\
             sys.stdout.buffer.write((json.dumps(d,indent=2,ensure_ascii=False)+'\\n').encode())",
        )
        .arg(path)
        .output()
        .expect("python3 is needed to compare the manifest format (.ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn version_prints_the_version_file() {
    let fx = Fixture::new();
    let run = fx.run(&["version"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "2.0.0.4\n"), "{run:?}");
}

#[test]
fn happy_path_updates_every_linked_file_and_check_passes() {
    let fx = Fixture::new();
    let before = fx.snapshot();
    let run = fx.run(&["bump", "2.0.0.5"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("bumped 2.0.0.4 -> 2.0.0.5 (upgrade)"),
        "{run:?}"
    );
    let after = fx.snapshot();
    for rel in LINKED {
        assert!(
            run.stdout.contains(&format!("changed {rel}\n")),
            "{rel} not listed: {run:?}"
        );
        assert_ne!(
            before[std::path::Path::new(rel)],
            after[std::path::Path::new(rel)],
            "{rel}"
        );
        assert!(
            !fx.read(rel).contains("2.0.0.4"),
            "{rel} still holds the old version"
        );
    }
    let changed = before
        .iter()
        .filter(|(p, v)| after.get(*p) != Some(v))
        .count();
    assert_eq!(changed, LINKED.len(), "only the linked files change");
    assert_eq!(fx.read("VERSION"), "2.0.0.5\n");
    let manifest = fx.read(MANIFEST);
    assert!(manifest.contains("\"version\": \"2.0.0.5\""));
    assert!(manifest.contains("\"build\": \"2.0.0.5\""));
    assert!(
        manifest.contains("\"release_date\": \"2026-03-06T02:58:57+00:00\""),
        "{manifest}"
    );
    assert_eq!(manifest, python_dump(&fx.path(MANIFEST)));
    let yaml = fx.read("server/config/unified_config.yaml");
    assert!(
        yaml.contains("version: \"2.0.0.5\"  # server release, mirrors VERSION"),
        "comments survive"
    );
    assert!(
        yaml.contains("version: \"v1\""),
        "only the first version: line is the server's"
    );
    assert_eq!(fx.run(&["version"]).stdout, "2.0.0.5\n");
    let check = fx.run(&["check"]);
    assert_eq!(check.code, 0, "{check:?}");
}

#[test]
fn same_version_is_idempotent_and_resyncs_drift() {
    let fx = Fixture::new();
    let before = fx.snapshot();
    let run = fx.run(&["bump", "2.0.0.4"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("nothing to change"), "{run:?}");
    assert_eq!(before, fx.snapshot());

    fx.edit(
        "server/config.env.example",
        "SERVER_BUILD=2.0.0.4",
        "SERVER_BUILD=2.0.0.1",
    );
    let run = fx.run(&["bump", "2.0.0.4"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("changed server/config.env.example"),
        "{run:?}"
    );
    assert!(!run.stdout.contains("changed VERSION"), "{run:?}");
    assert_eq!(before, fx.snapshot(), "re-sync restores the original bytes");
    assert!(fx
        .run(&["bump", "2.0.0.4"])
        .stdout
        .contains("nothing to change"));
}

#[test]
fn downgrade_is_refused_unless_allowed() {
    let fx = Fixture::new();
    let before = fx.snapshot();
    let run = fx.run(&["bump", "2.0.0.3"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("2.0.0.3 is lower than the current version 2.0.0.4"),
        "{run:?}"
    );
    assert!(run.stderr.contains("--allow-downgrade"), "{run:?}");
    assert_eq!(before, fx.snapshot());
    // Numeric, not lexical: 2.0.0.10 is newer than 2.0.0.4.
    assert_eq!(fx.run(&["bump", "2.0.0.10"]).code, 0);
    let run = fx.run(&["bump", "2.0.0.9", "--allow-downgrade"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("(downgrade)"), "{run:?}");
    assert_eq!(fx.read("VERSION"), "2.0.0.9\n");
}

#[test]
fn bad_version_arguments_are_usage_errors_and_change_nothing() {
    let fx = Fixture::new();
    let before = fx.snapshot();
    for (arg, says) in [
        ("2.0.0", "3 dot-separated parts"),
        ("2.0.0.4.5", "5 dot-separated parts"),
        ("v2.0.0.4", "drop the leading v"),
        ("2.0.0.-1", "not a plain decimal number"),
        ("2.0.0.04", "leading zero"),
        ("99999999999.0.0.0", "larger than 4294967295"),
        ("2.0.0 .4", "whitespace"),
        ("", "empty"),
    ] {
        let run = fx.run(&["bump", arg]);
        assert_eq!(run.code, 2, "{arg}: {run:?}");
        assert!(run.stderr.contains(says), "{arg}: {run:?}");
        assert!(run.stderr.lines().count() <= 3, "one short error: {run:?}");
        assert_eq!(before, fx.snapshot(), "{arg}");
    }
}

#[test]
fn broken_version_file_is_reported_by_version_and_check_and_repaired_by_bump() {
    for (content, why) in [
        ("", "empty"),
        ("2.0.0.4\r\n", "CRLF"),
        ("\u{feff}2.0.0.4\n", "byte order mark"),
        ("2.0.0\n", "3 dot-separated parts"),
    ] {
        let fx = Fixture::new();
        fx.write("VERSION", content);
        let before = fx.snapshot();
        for cmd in ["version", "check"] {
            let run = fx.run(&[cmd]);
            assert_eq!(run.code, 1, "{cmd} {content:?}: {run:?}");
            assert!(run.all().contains(why), "{cmd} {content:?}: {run:?}");
            assert!(run.all().contains("cargo xtask bump X.Y.Z.W"), "{run:?}");
            assert_eq!(before, fx.snapshot(), "{cmd} {content:?}");
        }
        let dry = fx.run(&["bump", "2.0.0.4", "--dry-run"]);
        assert_eq!(dry.code, 0, "{dry:?}");
        assert!(dry.stdout.contains("VERSION is unreadable"), "{dry:?}");
        assert!(dry.stdout.contains("+2.0.0.4\n"), "{dry:?}");
        assert_eq!(before, fx.snapshot());
        // The manifest's version stands in for the downgrade check.
        let down = fx.run(&["bump", "2.0.0.3"]);
        assert_eq!(down.code, 1, "{down:?}");
        let run = fx.run(&["bump", "2.0.0.4"]);
        assert_eq!(run.code, 0, "{run:?}");
        assert!(
            run.stdout.contains(why),
            "the repair names the problem: {run:?}"
        );
        assert_eq!(fx.read("VERSION"), "2.0.0.4\n");
        assert_eq!(fx.run(&["check"]).code, 0);
    }
}

#[test]
fn bad_manifests_stop_the_bump_with_nothing_written() {
    for (content, says) in [
        ("{\"version\": ", "is not valid JSON"),
        ("[1, 2]", "found an array"),
        ("{\"build\": \"2.0.0.4\"}\n", "no \"version\" key"),
        (
            "{\"version\": 2, \"build\": \"2.0.0.4\"}\n",
            "\"version\" must be a string",
        ),
    ] {
        let fx = Fixture::new();
        fx.write(MANIFEST, content);
        let before = fx.snapshot();
        let run = fx.run(&["bump", "2.0.0.5"]);
        assert_eq!(run.code, 1, "{content}: {run:?}");
        assert!(run.stderr.contains(MANIFEST), "{run:?}");
        assert!(run.stderr.contains(says), "{content}: {run:?}");
        assert!(
            run.stderr.contains("stopped before writing anything"),
            "{run:?}"
        );
        assert_eq!(before, fx.snapshot(), "{content}");
    }
}

#[test]
fn manifest_keeps_unknown_keys_order_and_non_ascii_like_python() {
    let fx = Fixture::new();
    let text = fx.read(MANIFEST).replace(
        "  \"critical\": false,\n",
        "  \"critical\": false,\n  \"zz_custom\": {\"заметки\": \"Новая версия ✓\", \"list\": [1, 2.50, 1e16, null], \"empty\": {}},\n  \"a_tab\": \"x\\ty\\u0001\",\n",
    );
    fx.write(MANIFEST, &text);
    let run = fx.run(&["bump", "2.0.0.5"]);
    assert_eq!(run.code, 0, "{run:?}");
    let out = fx.read(MANIFEST);
    assert_eq!(out, python_dump(&fx.path(MANIFEST)));
    assert!(out.contains("\"заметки\": \"Новая версия ✓\""), "{out}");
    assert!(
        out.find("zz_custom").unwrap() < out.find("a_tab").unwrap(),
        "order kept"
    );
    assert!(out.contains("1e+16") && out.contains("2.5,"), "{out}");
}

#[test]
fn missing_file_or_pattern_aborts_and_names_it() {
    let fx = Fixture::new();
    fs::remove_file(fx.path("server/config/unified_config.py")).unwrap();
    fx.edit(
        "server/config.env.example",
        "SERVER_BUILD=2.0.0.4",
        "BUILD=2.0.0.4",
    );
    let before = fx.snapshot();
    let run = fx.run(&["bump", "2.0.0.5"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("server/config/unified_config.py is missing"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("server/config.env.example: expected 1 match(es) of `SERVER_BUILD={version}` but found 0"),
        "both problems are reported together: {run:?}"
    );
    assert_eq!(before, fx.snapshot());
}

#[test]
fn read_only_linked_file_aborts_before_writing() {
    let fx = Fixture::new();
    let rel = "client/config/unified_config.yaml";
    fs::set_permissions(fx.path(rel), fs::Permissions::from_mode(0o444)).unwrap();
    let before = fx.snapshot();
    let run = fx.run(&["bump", "2.0.0.5"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(&format!("{rel} is read-only")),
        "{run:?}"
    );
    assert!(run.stderr.contains("chmod u+w"), "{run:?}");
    assert_eq!(before, fx.snapshot());
}

#[test]
fn line_endings_permissions_and_final_newline_are_kept() {
    let fx = Fixture::new();
    let rel = "server/config.env.example";
    let crlf = fx.read(rel).replace('\n', "\r\n");
    fx.write(rel, crlf.trim_end());
    fs::set_permissions(fx.path(rel), fs::Permissions::from_mode(0o640)).unwrap();
    let run = fx.run(&["bump", "2.0.0.5"]);
    assert_eq!(run.code, 0, "{run:?}");
    let out = fx.read(rel);
    assert_eq!(out, crlf.trim_end().replace("=2.0.0.4", "=2.0.0.5"));
    assert!(!out.ends_with('\n'));
    assert_eq!(
        fs::metadata(fx.path(rel)).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let leftovers: Vec<_> = fs::read_dir(fx.path("server"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn dry_run_prints_the_golden_diff_and_writes_nothing() {
    let fx = Fixture::new();
    let before = fx.snapshot();
    let run = fx.run(&["bump", "2.0.0.5", "--dry-run"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(before, fx.snapshot());
    let golden = common::repo_root().join("xtask/tests/golden/bump_dry_run.diff");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&golden, &run.stdout).unwrap();
    }
    let want = fs::read_to_string(&golden).expect("golden file; create it with UPDATE_GOLDEN=1");
    assert_eq!(
        run.stdout, want,
        "rerun with UPDATE_GOLDEN=1 after an intended change"
    );
}

#[test]
fn config_errors_are_usage_errors() {
    let fx = Fixture::new();
    fx.edit(
        "release.toml",
        "resource_group = \"NexyNewRG\"",
        "resource_group = \"NetworkWatcherRG\"",
    );
    let run = fx.run(&["version"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("`NetworkWatcherRG` is a legacy target"),
        "{run:?}"
    );
    assert!(run.stderr.contains("NexyNewRG"), "{run:?}");

    let fx = Fixture::new();
    fx.edit(
        "release.toml",
        "vm_name = \"NexyNew\"",
        "vm_name = \"Nexy\"\nvm_size = \"B2s\"",
    );
    let run = fx.run(&["check"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("vm_size"), "unknown key named: {run:?}");

    let fx = Fixture::new();
    let other = fx.path("elsewhere.toml");
    fs::write(
        &other,
        fx.read("release.toml")
            .replace("vm_name = \"NexyNew\"", "vm_name = \"nexy-regular\""),
    )
    .unwrap();
    let run = fx.run(&["check", "--config", other.to_str().unwrap()]);
    assert_eq!(run.code, 2, "--config is honoured: {run:?}");
    assert!(
        run.stderr.contains("nexy-regular") && run.stderr.contains("`NexyNew`"),
        "{run:?}"
    );
}

#[test]
fn a_file_added_in_config_is_bumped_without_code_changes() {
    let fx = Fixture::new();
    fx.write("server/deploy/version.txt", "release 2.0.0.4 # keep\n");
    let mut config = fx.read("release.toml");
    config = config.replace(
        "[check]",
        "[[version_files]]\npath = \"server/deploy/version.txt\"\nedits = [{ find = \"release {version}\", count = 1 }]\n\n[check]",
    );
    fx.write("release.toml", config);
    assert_eq!(fx.run(&["bump", "2.0.0.6"]).code, 0);
    assert_eq!(
        fx.read("server/deploy/version.txt"),
        "release 2.0.0.6 # keep\n"
    );
}

#[test]
fn the_fixture_copies_only_tracked_files() {
    // An artifact an operator left in the real inbox (untracked, ignored)
    // must not reach a test's workspace.
    let root = common::repo_root();
    let probe = root.join(format!(
        "release_inbox/.fixture-probe-{}.dmg",
        std::process::id()
    ));
    fs::write(&probe, b"left behind").unwrap();
    let fx = Fixture::new();
    fs::remove_file(&probe).unwrap();
    let copied: Vec<_> = fx.snapshot().into_keys().collect();
    assert!(
        !copied
            .iter()
            .any(|p| p.starts_with("release_inbox/.fixture-probe")),
        "{copied:?}"
    );
    // Every tracked release file is there, with its bytes.
    let mut tracked = common::tracked(&root, &common::RELEASE_FILES);
    tracked.sort();
    assert_eq!(copied, tracked);
    for rel in &tracked {
        assert_eq!(
            fs::read(fx.root().join(rel)).unwrap(),
            fs::read(root.join(rel)).unwrap()
        );
    }
}
