//! gh as our users run it: from shells that force colour, a tty or a
//! pager, and in versions after the Debian 2.23 this machine has. A `gh`
//! wrapper script first on PATH records what each gh child saw and then
//! runs the real gh, or behaves as a newer gh does where that matters.

mod common;
#[path = "common/more.rs"]
mod more;

use std::{fs, os::unix::fs::PermissionsExt, path::Path};

use common::stage::Stage;
use more::run_with_env;

/// Writes an executable `gh` into `dir` with `body` (a POSIX sh script).
fn wrapper(dir: &Path, body: &str) {
    fs::create_dir_all(dir).unwrap();
    let gh = dir.join("gh");
    fs::write(&gh, format!("#!/bin/sh\n{body}")).unwrap();
    fs::set_permissions(&gh, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The stand-in's PATH with `dir` in front of it.
fn path_with(st: &Stage, dir: &Path) -> String {
    let path = st
        .env()
        .into_iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v)
        .unwrap();
    format!("{}:{path}", dir.display())
}

/// A stand-in with 2.0.0.5's artifacts in the inbox.
fn staged() -> Stage {
    let st = Stage::new();
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(1, 1 << 20);
    st
}

/// [`staged`], released.
fn released() -> Stage {
    let st = staged();
    let run = st.run(&["release"]);
    assert_eq!(run.code, 0, "{}", run.all());
    st
}

/// The shell of a user who forces colour, a tty and a pager (NO_COLOR
/// empty counts as unset, so it no longer turns colour off).
const FORCING: &[(&str, &str)] = &[
    ("CLICOLOR_FORCE", "1"),
    ("GH_FORCE_TTY", "1"),
    ("PAGER", "sh -c 'echo PAGED; cat >/dev/null'"),
    ("GH_PAGER", "sh -c 'echo PAGED; cat >/dev/null'"),
    ("NO_COLOR", ""),
];

#[test]
fn every_gh_child_runs_in_our_environment_whatever_the_shell_forces() {
    let st = staged();
    let bin = st.fx.path("wrapper");
    let seen = st.fx.path("seen");
    fs::create_dir_all(&seen).unwrap();
    wrapper(
        &bin,
        &format!(
            "env > {}/gh-$$.env\nexec /usr/bin/gh \"$@\"\n",
            seen.display()
        ),
    );
    let path = path_with(&st, &bin);
    let mut env = FORCING.to_vec();
    env.push(("PATH", &path));
    let run = run_with_env(&st, &["release"], &env);
    assert_eq!(run.code, 0, "{}", run.all());

    let records: Vec<String> = fs::read_dir(&seen)
        .unwrap()
        .map(|e| fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    // preflight, the release reads, the uploads, the renames, the deletes
    // and verify: every one of them went through the wrapper.
    assert!(records.len() >= 8, "only {} gh children", records.len());
    for env in &records {
        let lines: Vec<&str> = env.lines().collect();
        for want in [
            "GH_TELEMETRY=false",
            "DO_NOT_TRACK=1",
            "GH_PROMPT_DISABLED=1",
            "GH_NO_UPDATE_NOTIFIER=1",
            "GH_PAGER=cat",
            "NO_COLOR=1",
        ] {
            assert!(lines.contains(&want), "{want} missing:\n{env}");
        }
        for gone in ["CLICOLOR_FORCE=", "GH_FORCE_TTY=", "PAGER="] {
            assert!(
                !lines.iter().any(|l| l.starts_with(gone)),
                "{gone} reached gh:\n{env}"
            );
        }
        // The token still reaches gh, through the environment.
        assert!(lines.iter().any(|l| l.starts_with("GH_TOKEN=")), "{env}");
    }
}

/// The content type GitHub stored for `name` in `tag`.
fn content_type(st: &Stage, tag: &str, name: &str) -> String {
    more::release_json(st, tag)["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .and_then(|a| a["content_type"].as_str())
        .unwrap_or_else(|| panic!("{tag} has no {name}"))
        .to_string()
}

/// gh sets an upload's content type from the file name's extension, so
/// the live assets, uploaded under temporary names and renamed, must keep
/// the type gh gives their real names: `.dmg` is a fixed type in gh, and
/// `.pkg` whatever the uploading machine's MIME table says (measured here
/// with a probe upload of a `.pkg` file).
#[test]
fn live_assets_have_the_content_type_of_their_real_names() {
    let st = released();
    let dmg = content_type(&st, "Update", "Nexy.dmg");
    let pkg = content_type(&st, "App", "Nexy.pkg");
    eprintln!("measured: live Nexy.dmg {dmg}, live Nexy.pkg {pkg}");

    let probe = st.fx.path("probe/probe.pkg");
    st.fx.write("probe/probe.pkg", b"xar!");
    let out = st.gh(&[
        "release",
        "upload",
        "App",
        probe.to_str().unwrap(),
        "-R",
        more::GH_REPO,
    ]);
    assert!(out.status.success(), "{out:?}");
    let gh_pkg = content_type(&st, "App", "probe.pkg");
    eprintln!("measured: gh sends {gh_pkg} for a .pkg file on this machine");

    assert_eq!(dmg, "application/x-apple-diskimage");
    assert_eq!(pkg, gh_pkg);
    // verify says what it found.
    let verify = st.run(&["verify"]);
    assert!(
        verify
            .all()
            .contains("content type application/x-apple-diskimage"),
        "{}",
        verify.all()
    );
    assert!(
        verify.all().contains(&format!("content type {gh_pkg}")),
        "{}",
        verify.all()
    );
}

/// A live DMG stored as `application/octet-stream` (what runs before the
/// temporary names kept the extension left) fails verify, which names the
/// content type, and a publish of the same bytes uploads it again.
#[test]
fn a_live_dmg_without_its_content_type_fails_verify_and_publish_repairs_it() {
    let st = released();

    // What the old scheme did: upload under a name without .dmg, then
    // rename it over the live asset.
    let dmg = st.inbox_bytes("Nexy.dmg");
    let old = st.fx.path("old/Nexy.dmg.next-0123456789ab");
    st.fx.write("old/Nexy.dmg.next-0123456789ab", &dmg);
    let out = st.gh(&[
        "release",
        "upload",
        "Update",
        old.to_str().unwrap(),
        "-R",
        more::GH_REPO,
    ]);
    assert!(out.status.success(), "{out:?}");
    let live = more::asset_id(&st, "Update", "Nexy.dmg");
    let temp = more::asset_id(&st, "Update", "Nexy.dmg.next-0123456789ab");
    let api = |args: &[&str]| {
        let mut all = vec!["api", "--hostname", "github.localhost"];
        all.extend(args);
        let out = st.gh(&all);
        assert!(out.status.success(), "{out:?}");
    };
    api(&[
        "-X",
        "DELETE",
        &format!("repos/{}/releases/assets/{live}", more::PROD),
    ]);
    api(&[
        "-X",
        "PATCH",
        &format!("repos/{}/releases/assets/{temp}", more::PROD),
        "-f",
        "name=Nexy.dmg",
    ]);
    assert_eq!(
        content_type(&st, "Update", "Nexy.dmg"),
        "application/octet-stream"
    );

    let verify = st.run(&["verify", "--timeout", "1"]);
    assert_eq!(verify.code, 1, "{}", verify.all());
    assert!(
        verify
            .all()
            .contains("stored with content type application/octet-stream"),
        "{}",
        verify.all()
    );
    let run = st.run(&["publish"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("upload Nexy.dmg"), "{}", run.stdout);
    assert_eq!(
        content_type(&st, "Update", "Nexy.dmg"),
        "application/x-apple-diskimage"
    );
    assert_eq!(st.sb.asset_bytes("Update", "Nexy.dmg"), Some(dmg));
    let verify = st.run(&["verify"]);
    assert_eq!(verify.code, 0, "{}", verify.all());
}

/// A gh that behaves like 2.40 to 2.53: `gh auth status` prints to stdout
/// and exits 0 whatever it found (cli/cli#8845); everything else is the
/// real gh.
const GH_2_40: &str = "if [ \"$1\" = auth ] && [ \"$2\" = status ]; then\n  /usr/bin/gh \"$@\" 2>&1\n  exit 0\nfi\nexec /usr/bin/gh \"$@\"\n";

#[test]
fn a_token_that_cannot_write_fails_preflight_even_when_gh_auth_status_exits_0() {
    let st = staged();
    st.sb
        .set_faults(nexy_sandbox::Faults {
            read_only_token: Some("fine-grained-read-only".into()),
            ..Default::default()
        })
        .unwrap();
    let bin = st.fx.path("gh-2.40");
    wrapper(&bin, GH_2_40);
    let path = path_with(&st, &bin);

    let from = st.log_len();
    let run = run_with_env(
        &st,
        &["release"],
        &[("PATH", &path), ("GH_TOKEN", "fine-grained-read-only")],
    );
    let all = run.all();
    assert_ne!(run.code, 0, "{all}");
    let row = all
        .lines()
        .find(|l| l.contains("gh-token"))
        .unwrap_or_else(|| panic!("no gh-token row:\n{all}"));
    assert!(row.contains("FAIL"), "{all}");
    assert!(
        row.contains(
            "the token of nexy-reader can read Seregawpn/Nexy_production but not write to it"
        ),
        "{all}"
    );
    assert!(all.contains("Contents: Read and write"), "{all}");
    // gh auth status was shown, and said all was well with exit 0.
    let status = all.lines().find(|l| l.contains("gh-auth-status")).unwrap();
    assert!(status.contains("exit 0"), "{status}");
    assert!(all.contains("release stopped at preflight"), "{all}");
    // `release` tries to take the lease before its checks; GitHub refuses
    // the read-only token's upload, so nothing is written.
    let written: Vec<String> = st
        .mutating_since(from)
        .into_iter()
        .filter(|m| !m.ends_with(" 403"))
        .collect();
    assert!(written.is_empty(), "something was written: {written:?}");

    // An invalid token, which the same gh also calls fine.
    let run = run_with_env(
        &st,
        &["preflight"],
        &[("PATH", &path), ("GH_TOKEN", "not-a-token")],
    );
    let all = run.all();
    assert_ne!(run.code, 0, "{all}");
    assert!(
        all.contains("gh has no valid token for github.localhost"),
        "{all}"
    );
    let status = all.lines().find(|l| l.contains("gh-auth-status")).unwrap();
    assert!(status.contains("exit 0"), "{status}");

    // The stand-in's own token passes, and the gh version is in the table
    // and, after a release, in the journal.
    let run = run_with_env(&st, &["release"], &[("PATH", &path)]);
    let all = run.all();
    assert_eq!(run.code, 0, "{all}");
    assert!(
        all.contains("the token of Seregawpn can write to Seregawpn/Nexy_production"),
        "{all}"
    );
    let version = all
        .lines()
        .find(|l| l.contains("gh-version"))
        .unwrap_or_else(|| panic!("no gh-version row:\n{all}"));
    assert!(version.contains("gh 2.23.0"), "{version}");
    assert!(more::journal_has(&st, "run", "gh 2.23.0"));
}
