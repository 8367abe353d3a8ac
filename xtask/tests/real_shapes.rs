//! `bump`, `check` and `init` on the version-linked files as the real Nexy
//! monorepo (release v2.0.0.32) has them, written here from the facts in
//! `shared/reference/nexy-layout.md`: unquoted YAML values with two spaces
//! and a comment, other `version:` keys that are not the release, the
//! `.py` fallback as one `os.getenv('SERVER_VERSION', ...)`, a
//! `config.env.example` without live version lines, the guides' marker and
//! quoted `release_target` version. Where the reference does not say (the
//! parent of `default_version:`), the tree uses a name our own files do
//! not, so nothing here leans on our guesses.

mod common;

use std::fs;

use common::{repo_root, Fixture};

const MANIFEST: &str = "server/updates/manifests/manifest.json";
const YAML: &str = "server/config/unified_config.yaml";
const PY: &str = "server/config/unified_config.py";
const ENV: &str = "server/config.env.example";
const GUIDE: &str = "server/Docs/RELEASE_AND_UPDATE_GUIDE.md";
const DEPLOY: &str = "server/Docs/SERVER_DEPLOYMENT_GUIDE.md";
const CLIENT: &str = "client/config/unified_config.yaml";
const CHANGELOG: &str = "CHANGELOG.md";

/// The linked files besides VERSION and the manifest.
const LINKED: &[&str] = &[YAML, PY, GUIDE, DEPLOY, CLIENT];

fn manifest(channel_tag: &str, v: &str) -> String {
    let url = format!(
        "https://github.com/Seregawpn/Nexy_production/releases/download/{channel_tag}/Nexy.dmg"
    );
    format!(
        "{{\n  \"version\": \"{v}\",\n  \"build\": \"{v}\",\n  \"artifact\": {{\n    \"type\": \"dmg\",\n    \"url\": \"{url}\",\n    \"size\": 275899820,\n    \"sha256\": \"{}\",\n    \"arch\": \"universal2\",\n    \"min_os\": \"11.0\",\n    \"ed25519\": \"\"\n  }},\n  \"critical\": false,\n  \"auto_install\": true,\n  \"notes_url\": \"{url}\",\n  \"release_date\": \"2026-03-06T02:58:57.245806+00:00\"\n}}\n",
        "3c".repeat(32)
    )
}

fn guide(title: &str, marker: &str, target: Option<&str>) -> String {
    let mut text = format!(
        "# {title}\n\n**Статус:** Active Rulebook  \n**Обновлено:** 6 March 2026  \n**Текущий релиз документации:** `v{marker}`\n\nОбновляются:\n- `VERSION`\n- server/client version-linked files\n"
    );
    if let Some(v) = target {
        text.push_str(&format!(
            "\n## Canonical Release Target (обязательно)\n\n```yaml\nrelease_target:\n  version: \"{v}\"\n  azure:\n    resource_group: \"NexyNewRG\"\n    vm_name: \"NexyNew\"\n  server:\n    host: \"nexy-prod-sergiy.canadacentral.cloudapp.azure.com\"\n  grpc:\n    endpoint: \"nexy-prod-sergiy.canadacentral.cloudapp.azure.com:443\"\n    tls: true\n  update:\n    dmg_url: \"https://github.com/Seregawpn/Nexy_production/releases/download/Update/Nexy.dmg\"\n    pkg_url: \"https://github.com/Seregawpn/Nexy_production/releases/download/App/Nexy.pkg\"\n```\n\n```bash\npython3 scripts/update_version.py X.Y.Z.W\n```\n"
        ));
    }
    text
}

/// A tree of the real shapes: VERSION says `version`, the manifest and the
/// configs `rest`, the guide's release_target `target`. The release
/// target is this repository's release.toml, unchanged.
fn real_tree(version: &str, rest: &str, target: &str) -> Fixture {
    let fx = Fixture {
        dir: tempfile::tempdir().unwrap(),
    };
    fs::copy(repo_root().join("release.toml"), fx.path("release.toml")).unwrap();
    fx.write("VERSION", format!("{version}\n"));
    fx.write(MANIFEST, manifest("Update", rest));
    fx.write(
        "server/updates/manifests/manifest_beta.json",
        manifest("UpdateBeta", rest),
    );
    fx.write(
        YAML,
        format!(
            "# Unified server configuration\nserver:\n  host: \"0.0.0.0\"\n  port: 50051\n  version: {rest}  # Server version (synced from VERSION)\n  build: {rest}  # Build number\napi:\n  version: \"v1\"  # gRPC API version\n  prefix: \"/api\"\nupdate_server:\n  enabled: true\n  default_version: {rest}  # Used when the manifest is missing\n  default_build: {rest}  # Used when the manifest is missing\nconfig:\n  version: \"3\"  # Config schema\n"
        ),
    );
    fx.write(
        PY,
        format!(
            "import os\n\n\ndef get_server_version() -> str:\n    \"\"\"The running release: config.env, then the literal fallback.\"\"\"\n    return os.getenv('SERVER_VERSION', '{rest}')\n\n\ndef get_server_build() -> str:\n    return os.getenv('SERVER_BUILD') or get_server_version()\n"
        ),
    );
    fx.write(
        ENV,
        "# Server environment (copy to config.env)\nGEMINI_API_KEY=YOUR_GEMINI_API_KEY_HERE\n\n# Version is taken from the VERSION file (single source of truth).\n# SERVER_VERSION=1.6.0.35\n# SERVER_BUILD=1.6.0.35\n",
    );
    fx.write(
        GUIDE,
        guide("Server Release & Update Guide", rest, Some(target)),
    );
    fx.write(DEPLOY, guide("Server Deployment Guide", rest, None));
    fx.write(
        CLIENT,
        format!(
            "app:\n  name: \"Nexy\"\n  version: {rest}\n  bundle_id: \"com.nexy.assistant\"\nai:\n  model:\n    version: \"gemini-2.0\"  # model family\nconfig_schema:\n  version: \"3\"\n"
        ),
    );
    fx.write(
        CHANGELOG,
        format!(
            "# Changes\n\n## {rest}\n- fixes\n\n## 2.0.0.15\n- the guide was last synced here\n"
        ),
    );
    fs::create_dir_all(fx.path("release_inbox")).unwrap();
    fx
}

/// release.toml without its `[[version_files]]`, as a monorepo that just
/// adopted the tool has it.
fn strip_version_files(fx: &Fixture) {
    let text = fx.read("release.toml");
    let start = text.find("[[version_files]]").unwrap();
    let end = text.find("[verify]").unwrap();
    fx.write(
        "release.toml",
        format!("{}{}", &text[..start], &text[end..]),
    );
}

/// The paths of the `[[version_files]]` that init printed, which must be
/// TOML as a whole.
fn proposed_paths(stdout: &str) -> Vec<String> {
    let proposed: toml::Table = stdout.parse().expect("init prints TOML");
    proposed["version_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

/// The drift table's rows, sorted: (file:line or manifest key, found).
fn drift_rows(stdout: &str) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("version drift"))
        .skip(2)
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            let cols: Vec<&str> = l.split("  ").filter(|c| !c.trim().is_empty()).collect();
            (
                cols[0].trim().to_string(),
                cols[cols.len() - 1].trim().to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// Every version-linked place of the drifted tree, as check names it,
/// sorted.
fn drifted_places() -> Vec<(String, String)> {
    let mut places: Vec<(String, String)> = [
        (format!("{YAML}:5"), "2.0.0.32"),
        (format!("{YAML}:6"), "2.0.0.32"),
        (format!("{YAML}:12"), "2.0.0.32"),
        (format!("{YAML}:13"), "2.0.0.32"),
        (format!("{PY}:6"), "2.0.0.32"),
        (format!("{GUIDE}:5"), "2.0.0.32"),
        (format!("{GUIDE}:15"), "2.0.0.15"),
        (format!("{DEPLOY}:5"), "2.0.0.32"),
        (format!("{CLIENT}:3"), "2.0.0.32"),
        (format!("{MANIFEST} \"version\""), "2.0.0.32"),
        (format!("{MANIFEST} \"build\""), "2.0.0.32"),
    ]
    .into_iter()
    .map(|(a, b)| (a, b.to_string()))
    .collect();
    places.sort();
    places
}

/// After `bump` from `from` to `to`, every linked file is its old text
/// with exactly the version characters changed, and nothing else moved.
fn assert_minimal_bump(before: &common::Snapshot, fx: &Fixture, from: &[&str], to: &str) {
    for rel in LINKED {
        let old = String::from_utf8(before[std::path::Path::new(rel)].0.clone()).unwrap();
        let mut want = old.clone();
        for v in from {
            want = want.replace(v, to);
        }
        assert_eq!(fx.read(rel), want, "{rel}");
    }
    for rel in [ENV, CHANGELOG] {
        assert_eq!(
            fx.read(rel).as_bytes(),
            &before[std::path::Path::new(rel)].0[..],
            "{rel} is left alone"
        );
    }
    assert_eq!(fx.read("VERSION"), format!("{to}\n"));
}

#[test]
fn bump_on_the_real_shapes_changes_only_the_version_characters() {
    let fx = real_tree("2.0.0.32", "2.0.0.32", "2.0.0.32");
    let check = fx.run(&["check"]);
    assert_eq!(check.code, 0, "{check:?}");
    let before = fx.snapshot();
    let run = fx.run(&["bump", "2.0.0.33"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_minimal_bump(&before, &fx, &["2.0.0.32"], "2.0.0.33");
    let yaml = fx.read(YAML);
    for kept in [
        "  version: 2.0.0.33  # Server version (synced from VERSION)\n",
        "  default_build: 2.0.0.33  # Used when the manifest is missing\n",
        "  version: \"v1\"  # gRPC API version\n",
        "  version: \"3\"  # Config schema\n",
    ] {
        assert!(yaml.contains(kept), "{kept:?} in {yaml}");
    }
    assert!(
        fx.read(GUIDE).contains("  version: \"2.0.0.33\"\n"),
        "quotes kept"
    );
    assert!(fx.read(CLIENT).contains("    version: \"gemini-2.0\""));
    assert_eq!(fx.run(&["check"]).code, 0);
}

#[test]
fn check_names_each_drifted_file_of_the_real_shapes() {
    let fx = real_tree("2.0.0.26", "2.0.0.32", "2.0.0.15");
    let run = fx.run(&["check"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(drift_rows(&run.stdout), drifted_places(), "{run:?}");
    assert!(
        !run.stdout.contains("linked files:"),
        "every edit fits the real files: {run:?}"
    );
    assert!(run.stdout.contains("check: 11 problem(s)"), "{run:?}");

    let before = fx.snapshot();
    let bump = fx.run(&["bump", "2.0.0.33"]);
    assert_eq!(bump.code, 0, "{bump:?}");
    assert_minimal_bump(&before, &fx, &["2.0.0.32", "2.0.0.15"], "2.0.0.33");
    assert_eq!(fx.run(&["check"]).code, 0);
}

#[test]
fn optional_env_edits_take_none_or_the_stated_count() {
    // The real file: no live line, nothing to do (the tests above).
    // One live line is bumped like any other value.
    let fx = real_tree("2.0.0.32", "2.0.0.32", "2.0.0.32");
    fx.edit(ENV, "# SERVER_VERSION=1.6.0.35", "SERVER_VERSION=2.0.0.32");
    assert_eq!(fx.run(&["check"]).code, 0);
    assert_eq!(fx.run(&["bump", "2.0.0.33"]).code, 0);
    assert!(fx
        .read(ENV)
        .contains("\nSERVER_VERSION=2.0.0.33\n# SERVER_BUILD=1.6.0.35\n"));

    // Two where one is expected: an error naming the file, the edit and
    // the count, from check and from bump, with nothing written.
    let fx = real_tree("2.0.0.32", "2.0.0.32", "2.0.0.32");
    fx.edit(
        ENV,
        "# SERVER_BUILD=1.6.0.35",
        "SERVER_BUILD=2.0.0.32\nSERVER_BUILD=2.0.0.32",
    );
    let want = "server/config.env.example: expected 0 or 1 match(es) of `SERVER_BUILD=` lines but found 2 (lines 6, 7)";
    let check = fx.run(&["check"]);
    assert_eq!(check.code, 1, "{check:?}");
    assert!(check.stdout.contains(want), "{check:?}");
    let before = fx.snapshot();
    let bump = fx.run(&["bump", "2.0.0.33"]);
    assert_eq!(bump.code, 1, "{bump:?}");
    assert!(bump.stderr.contains(want), "{bump:?}");
    assert_eq!(before, fx.snapshot());
}

#[test]
fn init_on_the_real_shapes_proposes_entries_bump_and_check_use_unchanged() {
    let fx = real_tree("2.0.0.26", "2.0.0.32", "2.0.0.15");
    strip_version_files(&fx);
    fx.git_init();
    let stripped = fx.read("release.toml");

    let run = fx.run(&["init"]);
    assert_eq!(run.code, 0, "{run:?}");
    let paths = proposed_paths(&run.stdout);
    assert_eq!(paths, [CLIENT, GUIDE, DEPLOY, PY, YAML], "{}", run.stdout);
    assert_eq!(
        fx.read("release.toml"),
        stripped,
        "init alone writes nothing"
    );
    for says in [
        "2.0.0.26 (VERSION) or 2.0.0.32 (the manifest's version, the manifest's build) or 2.0.0.15 (the guide's release_target)",
        "{ yaml = \"update_server.default_version\", count = 1 },  # line 12: 2.0.0.32",
        "{ find = \"return os.getenv('SERVER_VERSION', '{version}')\", count = 1 },",
        "{ yaml = \"release_target.version\", count = 1 },  # line 15: 2.0.0.15",
        "#   CHANGELOG.md:3,6  2.0.0.15, 2.0.0.32: a changelog: past versions stay as they were",
        "# These disagree with VERSION (2.0.0.26):",
        "#   server/config/unified_config.py:6",
        "2.0.0.15  (the guide's release_target)",
    ] {
        assert!(run.stdout.contains(says), "{says:?} in\n{}", run.stdout);
    }

    let write = fx.run(&["init", "--write"]);
    assert_eq!(write.code, 0, "{write:?}");
    assert!(
        write.stdout.contains("added 5 [[version_files]] entries"),
        "{write:?}"
    );
    let config = fx.read("release.toml");
    assert!(config.starts_with(&stripped), "appended; comments kept");
    // check now sees exactly the drift a hand-written config sees.
    let check = fx.run(&["check"]);
    assert_eq!(check.code, 1, "{check:?}");
    assert_eq!(drift_rows(&check.stdout), drifted_places(), "{check:?}");
    let before = fx.snapshot();
    assert_eq!(fx.run(&["bump", "2.0.0.33"]).code, 0);
    assert_minimal_bump(&before, &fx, &["2.0.0.32", "2.0.0.15"], "2.0.0.33");
    assert_eq!(fx.run(&["check"]).code, 0);

    // Without a release.toml there is nothing to append to.
    let missing = fx.path("none.toml");
    let run = fx.run(&["init", "--write", "--config", missing.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("none.toml does not exist; create it first"),
        "{run:?}"
    );

    // A second --write has nothing to add.
    let again = fx.run(&["init", "--write"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("nothing written"), "{again:?}");
    assert_eq!(fx.read("release.toml"), config);
}

#[test]
fn init_on_this_repository_proposes_every_entry_of_release_toml() {
    // Surveyed in place (print only, nothing written): the repository's
    // own tracked files.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["init", "--root"])
        .arg(repo_root())
        .output()
        .unwrap();
    let run = common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(run.code, 0, "{run:?}");
    let proposed_paths = proposed_paths(&run.stdout);

    // Each file release.toml lists whose edits hold the version is
    // proposed; the example env file's optional edits match nothing.
    let ours: toml::Table = fs::read_to_string(repo_root().join("release.toml"))
        .unwrap()
        .parse()
        .unwrap();
    for file in ours["version_files"].as_array().unwrap() {
        let path = file["path"].as_str().unwrap();
        if path == ENV {
            continue;
        }
        assert!(
            proposed_paths.iter().any(|p| p == path),
            "{path} not proposed:\n{}",
            run.stdout
        );
    }
    assert_eq!(
        proposed_paths.len(),
        ours["version_files"].as_array().unwrap().len() - 1
    );

    // And the proposed edits change the same characters: the dry-run diff
    // with init's entries equals the one with release.toml's.
    let ours = Fixture::new();
    let theirs = Fixture::new();
    strip_version_files(&theirs);
    let config = format!("{}\n{}", theirs.read("release.toml"), run.stdout);
    theirs.write("release.toml", config);
    let a = ours.run(&["bump", "2.0.0.5", "--dry-run"]);
    let b = theirs.run(&["bump", "2.0.0.5", "--dry-run"]);
    assert_eq!((a.code, b.code), (0, 0), "{a:?} {b:?}");
    // The files come in another order (git's); each file's diff is equal.
    let per_file = |diff: &str| {
        let files = diff.split("dry run:").next().unwrap_or_default();
        let mut parts: Vec<String> = files.split("--- a/").map(str::to_string).collect();
        parts.sort();
        parts
    };
    assert_eq!(per_file(&a.stdout), per_file(&b.stdout));
}
