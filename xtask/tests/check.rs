//! `check` and `install-hook` run as a developer would, on temporary copies
//! of the workspace.

mod common;

use std::{fs, os::unix::fs::PermissionsExt};

use common::Fixture;

const MANIFEST: &str = "server/updates/manifests/manifest.json";

#[test]
fn clean_workspace_passes() {
    let fx = Fixture::new();
    fx.git_init();
    let run = fx.run(&["check"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("check: ok"), "{run:?}");
}

#[test]
fn each_kind_of_drift_is_a_table_row() {
    let cases = [
        (
            "server/config/unified_config.yaml",
            "default_version: 2.0.0.4",
            "default_version: 2.0.0.1",
        ),
        (
            "server/config/unified_config.yaml",
            "default_build: 2.0.0.4",
            "default_build: 2.0.0.1",
        ),
        (
            "server/config/unified_config.yaml",
            "  version: 2.0.0.4",
            "  version: 2.0.0.1",
        ),
        (
            "server/config/unified_config.yaml",
            "  build: 2.0.0.4",
            "  build: 2.0.0.1",
        ),
        (
            "server/config/unified_config.py",
            "'SERVER_VERSION', '2.0.0.4'",
            "'SERVER_VERSION', '2.0.0.1'",
        ),
        // An optional edit: a live line appears, with another version.
        (
            "server/config.env.example",
            "# SERVER_BUILD=1.6.0.35",
            "SERVER_BUILD=2.0.0.1",
        ),
        (
            "server/Docs/RELEASE_AND_UPDATE_GUIDE.md",
            "`v2.0.0.4`",
            "`v2.0.0.1`",
        ),
        (
            "server/Docs/RELEASE_AND_UPDATE_GUIDE.md",
            "  version: \"2.0.0.4\"",
            "  version: \"2.0.0.1\"",
        ),
        (
            "server/Docs/SERVER_DEPLOYMENT_GUIDE.md",
            "`v2.0.0.4`",
            "`v2.0.0.1`",
        ),
        (
            "client/config/unified_config.yaml",
            "version: 2.0.0.4",
            "version: 2.0.0.1",
        ),
        (
            MANIFEST,
            "\"version\": \"2.0.0.4\"",
            "\"version\": \"2.0.0.1\"",
        ),
        (MANIFEST, "\"build\": \"2.0.0.4\"", "\"build\": \"2.0.0.1\""),
    ];
    for (rel, from, to) in cases {
        let fx = Fixture::new();
        fx.edit(rel, from, to);
        let before = fx.snapshot();
        let run = fx.run(&["check"]);
        assert_eq!(run.code, 1, "{rel} {to}: {run:?}");
        assert!(run.stdout.contains("version drift"), "{run:?}");
        let row = run
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(rel))
            .unwrap_or_else(|| panic!("no row for {rel}: {run:?}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[cols.len() - 2..], ["2.0.0.4", "2.0.0.1"], "{row}");
        assert!(run.stdout.contains("check: 1 problem(s)"), "{run:?}");
        assert_eq!(before, fx.snapshot(), "check never writes");
        // And bump of the same version repairs exactly that.
        assert_eq!(fx.run(&["bump", "2.0.0.4"]).code, 0);
        assert_eq!(fx.run(&["check"]).code, 0, "{rel}");
    }
}

#[test]
fn manifest_fields_are_validated() {
    let cases = [
        ("\"type\": \"dmg\"", "\"type\": \"zip\"", "artifact.type must be \"dmg\""),
        (
            "\"url\": \"https://github.com/Seregawpn/Nexy_production/releases/download/Update/Nexy.dmg\"",
            "\"url\": \"https://nexy-prod-sergiy.canadacentral.cloudapp.azure.com/updates/appcast.xml\"",
            "artifact.url `https://nexy-prod-sergiy.canadacentral.cloudapp.azure.com/updates/appcast.xml` points at the update feed",
        ),
        (
            "\"url\": \"https://github.com/Seregawpn/Nexy_production/releases/download/Update/Nexy.dmg\"",
            "\"url\": \"http://github.com/Seregawpn/Nexy_production/releases/download/Update/Nexy.dmg\"",
            "is not https",
        ),
        (
            "\"notes_url\": \"https://github.com/Seregawpn/Nexy_production/releases/download/Update/Nexy.dmg\"",
            "\"notes_url\": \"https://github.com/Seregawpn/Nexy_production/releases/download/v2.0.0.4/Nexy.dmg\"",
            "notes_url is `https://github.com/Seregawpn/Nexy_production/releases/download/v2.0.0.4/Nexy.dmg`; set it to the fixed URL",
        ),
        ("\"sha256\": \"f5e5", "\"sha256\": \"F5E5", "artifact.sha256 must be 64 lowercase hex"),
        ("\"size\": 275899820", "\"size\": 0", "artifact.size must be a positive integer"),
        ("\"size\": 275899820", "\"size\": 2.5", "artifact.size must be a positive integer"),
        ("\"size\": 275899820", "\"size\": \"275899820\"", "artifact.size must be a positive integer"),
        (
            "\"release_date\": \"2026-02-21T10:15:42.118532+00:00\"",
            "\"release_date\": \"21 Feb 2026\"",
            "release_date must be an RFC 3339",
        ),
    ];
    for (from, to, says) in cases {
        let fx = Fixture::new();
        fx.edit(MANIFEST, from, to);
        let run = fx.run(&["check"]);
        assert_eq!(run.code, 1, "{to}: {run:?}");
        assert!(run.stdout.contains(says), "{to}: {run:?}");
    }
}

#[test]
fn guide_release_target_must_agree_with_config() {
    let guide = "server/Docs/RELEASE_AND_UPDATE_GUIDE.md";
    let fx = Fixture::new();
    fx.edit(guide, "vm_name: \"NexyNew\"", "vm_name: \"nexy-regular\"");
    let run = fx.run(&["check"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains(
            "release_target azure.vm_name is `nexy-regular` but the config says `NexyNew`"
        ),
        "{run:?}"
    );

    let fx = Fixture::new();
    fx.edit(
        guide,
        "**Текущий релиз документации:** `v2.0.0.4`",
        "Release 2.0.0.4",
    );
    let run = fx.run(&["check"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("marker line"), "{run:?}");
}

/// Secrets are assembled here at run time so that the repository itself
/// stays clean for its own `check`.
fn secret_cases() -> Vec<(&'static str, String, &'static str, String)> {
    let gh = format!("gh{}_{}", "p", "Zx9".repeat(12));
    let pat = format!("github_{}_{}", "pat", "Q7".repeat(41));
    let google = format!("AI{}{}", "za", "Kq-_".repeat(9));
    let gemini = "realgeminikey123".to_string();
    vec![
        (
            "server/config.env",
            format!("GEMINI_API_KEY={gemini}\n"),
            "gemini-api-key",
            gemini,
        ),
        (
            "scripts/ci.sh",
            format!("export TOKEN={gh}\n"),
            "github-token",
            gh,
        ),
        (
            "docs/note.md",
            format!("token: {pat}\n"),
            "github-token",
            pat,
        ),
        (
            "client/keys.js",
            format!("const k = \"{google}\";\n"),
            "google-api-key",
            google,
        ),
        (
            "deploy/id_ed25519",
            format!(
                "-----BEGIN {} PRIVATE KEY-----\nAAAAC3NzaC1lZDI1NTE5\n-----END KEY-----\n",
                "OPENSSH"
            ),
            "pem-private-key",
            "AAAAC3NzaC1lZDI1NTE5".to_string(),
        ),
        (
            "signing/sparkle_private_key",
            format!("{}=\n", "s3Kr".repeat(10) + "abc"),
            "ed25519-private-key",
            "s3Kr".repeat(10),
        ),
    ]
}

#[test]
fn each_kind_of_secret_is_found_masked_and_allowlistable() {
    for (rel, content, rule, secret) in secret_cases() {
        let fx = Fixture::new();
        fx.write(rel, &content);
        fx.git_init();
        let run = fx.run(&["check"]);
        assert_eq!(run.code, 1, "{rel}: {run:?}");
        let line = run
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(rel))
            .unwrap_or_else(|| panic!("{rel} not reported: {run:?}"));
        assert!(line.contains(rule), "{line}");
        assert!(
            !run.all().contains(&secret),
            "the secret itself is never printed: {run:?}"
        );

        fx.edit(
            "release.toml",
            "secret_allowlist = []",
            &format!("secret_allowlist = [{{ path = \"{rel}\", rule = \"{rule}\" }}]"),
        );
        let run = fx.run(&["check"]);
        assert_eq!(run.code, 0, "allowlisted {rel}: {run:?}");
    }
}

#[test]
fn untracked_files_are_not_scanned_in_a_git_checkout() {
    let fx = Fixture::new();
    fx.git_init();
    fx.write("server/config.env", "GEMINI_API_KEY=notcommitted42\n");
    let run = fx.run(&["check"]);
    assert_eq!(run.code, 0, "only what a push carries is scanned: {run:?}");
}

#[test]
fn placeholders_and_empty_keys_are_fine() {
    let fx = Fixture::new();
    fx.write(
        "server/config.env",
        "GEMINI_API_KEY=\nGEMINI_API_KEY=YOUR_GEMINI_API_KEY_HERE\n",
    );
    fx.git_init();
    let run = fx.run(&["check"]);
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn install_hook_is_idempotent_and_respects_foreign_hooks() {
    let fx = Fixture::new();
    fx.git_init();
    let hook = fx.path(".git/hooks/pre-push");
    let _ = fs::remove_file(&hook);

    let run = fx.run(&["install-hook"]);
    assert_eq!(run.code, 0, "{run:?}");
    let text = fs::read_to_string(&hook).unwrap();
    assert!(text.contains("exec cargo xtask check"), "{text}");
    assert_eq!(
        fs::metadata(&hook).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let run = fx.run(&["install-hook"]);
    assert!(run.stdout.contains("already installed"), "{run:?}");
    assert_eq!(fs::read_to_string(&hook).unwrap(), text);

    fs::write(&hook, "#!/bin/sh\necho mine\n").unwrap();
    let run = fx.run(&["install-hook"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("--force"), "{run:?}");
    assert_eq!(fs::read_to_string(&hook).unwrap(), "#!/bin/sh\necho mine\n");
    let run = fx.run(&["install-hook", "--force"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(fs::read_to_string(&hook).unwrap(), text);
}

#[test]
fn drift_report_matches_golden() {
    let fx = Fixture::new();
    fx.edit(
        "server/config/unified_config.yaml",
        "default_build: 2.0.0.4",
        "default_build: 2.0.0.3",
    );
    fx.edit(
        "client/config/unified_config.yaml",
        "version: 2.0.0.4",
        "version: 2.0.0.2",
    );
    fx.edit(MANIFEST, "\"build\": \"2.0.0.4\"", "\"build\": \"2.0.0.1\"");
    let run = fx.run(&["check"]);
    assert_eq!(run.code, 1, "{run:?}");
    let golden = common::repo_root().join("xtask/tests/golden/check_drift.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&golden, &run.stdout).unwrap();
    }
    let want = fs::read_to_string(&golden).expect("golden file; create it with UPDATE_GOLDEN=1");
    assert_eq!(
        run.stdout, want,
        "rerun with UPDATE_GOLDEN=1 after an intended change"
    );
}

/// The documented placeholder forms pass, in documentation and in env
/// files alike.
#[test]
fn each_placeholder_form_passes_also_in_documentation() {
    let forms = [
        "your_gemini_api_key_here",
        "your_api_key_here",
        "YOUR_GEMINI_API_KEY_HERE",
        "Your-Key-Here",
        "<your-gemini-key>",
        "xxxxxxxxxxxx",
        "XXX_REPLACE_ME",
        "changeme",
        "CHANGEME",
        "example",
        "example_key",
        "dummy",
        "DUMMY-KEY",
        "",
        "\"\"",
        "aaaaaaaa",
        "********",
        "$GEMINI_API_KEY",
        "\"${GEMINI_API_KEY}\"",
    ];
    for form in forms {
        for rel in [
            "docs/SETUP.md",
            "server/Docs/GEMINI.md",
            "server/config.env",
        ] {
            let fx = Fixture::new();
            fx.write(
                rel,
                format!("# Setup\n\n```sh\nGEMINI_API_KEY={form}\n```\n"),
            );
            fx.git_init();
            let run = fx.run(&["check"]);
            assert_eq!(run.code, 0, "{rel}: `{form}` is a placeholder: {run:?}");
        }
    }
    // The check of this very guard: a real value in the same place fails.
    for value in ["realgeminikey123", "\"s3cr3t-prod-value\""] {
        let fx = Fixture::new();
        fx.write("docs/SETUP.md", format!("GEMINI_API_KEY={value}\n"));
        fx.git_init();
        assert_eq!(fx.run(&["check"]).code, 1, "`{value}` is a key");
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn signing_key(seed: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
}

/// Real key shapes fail wherever they stand, whatever their surroundings
/// say (`example`, documentation, placeholder words next to them).
#[test]
fn each_real_key_shape_fails_also_in_documentation() {
    let google = format!("AI{}{}", "za", "Sy".repeat(17) + "Q");
    let gh = format!("gh{}_{}", "p", "Zx9".repeat(12));
    let pem = format!("-----BEGIN {} PRIVATE KEY-----", "RSA");
    let key = signing_key(9);
    // orlp/ed25519's private key, Sparkle's legacy format: SHA-512 of the
    // seed with its first half clamped.
    let mut legacy_bytes = {
        use sha2::Digest as _;
        sha2::Sha512::digest(key.to_bytes()).to_vec()
    };
    legacy_bytes[0] &= 248;
    legacy_bytes[31] &= 127;
    legacy_bytes[31] |= 64;
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "docs/API.md",
            format!("Example (not a real key): `GEMINI_API_KEY={google}`\n"),
            "google-api-key",
        ),
        (
            "docs/API.md",
            format!("your_token_here, e.g. dummy {google}\n"),
            "google-api-key",
        ),
        (
            "README.md",
            format!("export GITHUB_TOKEN={gh}  # example only\n"),
            "github-token",
        ),
        (
            "docs/keys.md",
            format!("Example key:\n\n```\n{pem}\nMIIEexample\n```\n"),
            "pem-private-key",
        ),
        // Sparkle's `generate_keys -x`: the base64 seed, alone in a file.
        (
            "docs/example_sparkle_key",
            format!("{}\n", b64(&key.to_bytes())),
            "ed25519-private-key",
        ),
        // Seed and public key (64 bytes), and the legacy expanded key.
        (
            "signing/ed25519_keypair.txt",
            b64(&key.to_keypair_bytes()),
            "ed25519-private-key",
        ),
        (
            "signing/legacy.key",
            b64(&legacy_bytes),
            "ed25519-private-key",
        ),
    ];
    for (rel, content, rule) in cases {
        let fx = Fixture::new();
        fx.write(rel, &content);
        fx.git_init();
        let run = fx.run(&["check"]);
        assert_eq!(run.code, 1, "{rel}: {content}: {run:?}");
        assert!(
            run.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(rel) && l.contains(rule)),
            "{rel} {rule}: {run:?}"
        );
    }
}

/// Public keys and signatures have the base64 shape of a key and are
/// never flagged: `SUPublicEDKey`, `[signing] public_key`,
/// `artifact.ed25519`, and a public key or a signature alone in a file.
#[test]
fn public_keys_and_signatures_are_never_flagged() {
    use ed25519_dalek::Signer as _;
    let key = signing_key(5);
    let public = b64(key.verifying_key().as_bytes());
    let signature = b64(&key.sign(b"Nexy.dmg bytes").to_bytes());
    let fx = Fixture::new();
    fx.write(
        "client/Info.plist",
        format!("<dict>\n  <key>SUPublicEDKey</key>\n  <string>{public}</string>\n</dict>\n"),
    );
    fx.write("client/sparkle_public_key.pub", format!("{public}\n"));
    fx.write("release_inbox/Nexy.dmg.sig", &signature);
    let config = fx.read("release.toml");
    fx.write(
        "release.toml",
        format!("{config}\n[signing]\npublic_key = \"{public}\"\n"),
    );
    fx.edit(
        MANIFEST,
        "\"ed25519\": \"\"",
        &format!("\"ed25519\": \"{signature}\""),
    );
    fx.git_init();
    let run = fx.run(&["check"]);
    assert!(!run.stdout.contains("secrets in tracked files"), "{run:?}");

    // The guard itself: the same file with the private seed is flagged.
    fx.write(
        "client/sparkle_private_key",
        format!("{}\n", b64(&key.to_bytes())),
    );
    fx.git_init();
    let run = fx.run(&["check"]);
    assert!(
        run.stdout
            .contains("client/sparkle_private_key:1  ed25519-private-key"),
        "{run:?}"
    );
}
