//! Beyond the runbook, end to end against the stand-in: the beta channel
//! and `promote`, Ed25519 signatures checked by an independent
//! implementation (OpenSSL), the promote-only policy, and the JSON
//! documents checked against their documented shape.

mod common;

use std::{fs, process::Command};

use common::stage::Stage;
use serde_json::Value;

const BETA_MANIFEST: &str = "server/updates/manifests/manifest_beta.json";

fn asset_digest(st: &Stage, tag: &str, name: &str) -> String {
    let bytes = st
        .sb
        .asset_bytes(tag, name)
        .unwrap_or_else(|| panic!("{tag}/{name} is missing"));
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn publish_to_beta_then_promote_the_same_bytes_to_stable() {
    let st = Stage::new();
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples_in("release_inbox/beta", 7, 2 << 20);
    let run = st.run(&["publish", "--channel", "beta"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let run = st.run(&["verify", "--channel", "beta"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("/updates/appcast-beta.xml: 2.0.0.5"),
        "{}",
        run.stdout
    );
    // Beta does not move the server's own version.
    let health = fs::read_to_string(st.sb.vm_app_dir().join("config.env")).unwrap();
    assert!(health.contains("SERVER_VERSION=2.0.0.4"), "{health}");
    assert!(
        st.sb.asset_bytes("Update", "Nexy.dmg").is_none(),
        "stable untouched"
    );

    // The dry run prints the plan the real promote applies, and changes
    // nothing.
    let from = st.log_len();
    let workspace = st.fx.snapshot();
    let run = st.run(&["promote", "--from", "beta", "--to", "stable", "--dry-run"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let beta_dmg = asset_digest(&st, "UpdateBeta", "Nexy.dmg");
    for want in [
        "$ gh release download UpdateBeta -R github.localhost/Seregawpn/Nexy_production --pattern Nexy.dmg --dir",
        "plan for channel stable:",
        &format!("$ gh release upload Update '<staging>/Nexy.dmg.next-{}'", &beta_dmg[..12]),
        "--input - <<< '{\"name\":\"Nexy.dmg\"}'",
        &format!("+    \"sha256\": \"{beta_dmg}\","),
        "$ az vm run-command invoke -g NexyNewRG -n NexyNew --command-id RunShellScript --scripts 'set -eu",
        "dry run: nothing was uploaded, renamed, deleted or written",
    ] {
        assert!(run.stdout.contains(want), "promote --dry-run lacks `{want}`:\n{}", run.stdout);
    }
    assert!(
        st.mutating_since(from).is_empty(),
        "{:?}",
        st.mutating_since(from)
    );
    assert!(
        st.fx.snapshot() == workspace,
        "promote --dry-run changed the workspace"
    );
    assert!(
        st.sb.asset_bytes("Update", "Nexy.dmg").is_none(),
        "stable untouched"
    );

    let run = st.run(&["promote", "--from", "beta", "--to", "stable"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("verify (DoD): all checks passed"),
        "{}",
        run.stdout
    );
    assert_eq!(
        asset_digest(&st, "Update", "Nexy.dmg"),
        asset_digest(&st, "UpdateBeta", "Nexy.dmg")
    );
    assert_eq!(
        asset_digest(&st, "App", "Nexy.pkg"),
        asset_digest(&st, "AppBeta", "Nexy.pkg")
    );
    let stable: Value = serde_json::from_str(&st.fx.read(common::stage::MANIFEST)).unwrap();
    let beta: Value = serde_json::from_str(&st.fx.read(BETA_MANIFEST)).unwrap();
    assert_eq!(stable["artifact"]["sha256"], beta["artifact"]["sha256"]);
    assert_eq!(stable["version"], "2.0.0.5");
    assert!(stable["artifact"]["url"]
        .as_str()
        .unwrap()
        .ends_with("/Update/Nexy.dmg"));
    assert!(st.creations().is_empty(), "{:?}", st.creations());
    let run = st.run(&["verify"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    // Promoting what is live is a no-op that says so.
    let from = st.log_len();
    let run = st.run(&["promote", "--from", "beta", "--to", "stable"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("nothing to promote"), "{}", run.stdout);
    assert!(
        st.mutating_since(from).is_empty(),
        "{:?}",
        st.mutating_since(from)
    );
}

#[test]
fn stable_requires_promote_refuses_a_direct_publish() {
    let st = Stage::new();
    let config = fs::read_to_string(&st.config).unwrap();
    assert!(config.contains("stable_requires_promote = false"));
    fs::write(
        &st.config,
        config.replace(
            "stable_requires_promote = false",
            "stable_requires_promote = true",
        ),
    )
    .unwrap();
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(3, 1 << 20);
    let from = st.log_len();
    let run = st.run(&["publish"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("cargo xtask promote --from beta --to stable"),
        "{run:?}"
    );
    assert!(st.mutating_since(from).is_empty());
}

/// The public key as the PEM OpenSSL reads: SubjectPublicKeyInfo of
/// id-Ed25519 (RFC 8410) around the 32 raw bytes.
fn public_pem(raw_b64: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg("import base64,sys;k=base64.b64decode(sys.argv[1]);print(base64.b64encode(bytes.fromhex('302a300506032b6570032100')+k).decode())")
        .arg(raw_b64)
        .output()
        .unwrap();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}-----END PUBLIC KEY-----\n",
        String::from_utf8(out.stdout).unwrap()
    )
}

#[test]
fn signatures_verify_with_openssl_and_a_tampered_dmg_fails_verify() {
    let st = Stage::new();
    let keydir = tempfile::tempdir().unwrap();
    let key = keydir.path().join("sparkle.key");
    let run = st.run(&["keygen", "--out", key.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        !run.all().contains(fs::read_to_string(&key).unwrap().trim()),
        "the private key is never printed"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let config = fs::read_to_string(&st.config).unwrap();
    let public = config
        .lines()
        .find_map(|l| l.strip_prefix("public_key = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("keygen wrote the public key into the config")
        .to_string();

    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(5, 1 << 20);
    let key_text = fs::read_to_string(&key).unwrap();
    let run = st.run_env(&["release"], &[("NEXY_ED25519_KEY", key_text.trim())]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("signature       ok"), "{}", run.stdout);

    // OpenSSL, an independent Ed25519 implementation, accepts the
    // signature over the live bytes.
    let manifest: Value = serde_json::from_str(&st.fx.read(common::stage::MANIFEST)).unwrap();
    let sig_b64 = manifest["artifact"]["ed25519"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(sig_b64.len(), 88, "base64 of 64 bytes");
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("pub.pem"), public_pem(&public)).unwrap();
    fs::write(
        dir.path().join("Nexy.dmg"),
        st.sb.asset_bytes("Update", "Nexy.dmg").unwrap(),
    )
    .unwrap();
    let sig = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = {
        use std::io::Write;
        let mut sig = sig;
        sig.stdin
            .take()
            .unwrap()
            .write_all(sig_b64.as_bytes())
            .unwrap();
        sig.wait_with_output().unwrap()
    };
    fs::write(dir.path().join("sig.bin"), &out.stdout).unwrap();
    let verify = |file: &str| {
        Command::new("openssl")
            .args([
                "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", file,
                "-sigfile", "sig.bin",
            ])
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let ok = verify("Nexy.dmg");
    assert!(
        ok.status.success(),
        "openssl: {}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    let mut tampered = st.sb.asset_bytes("Update", "Nexy.dmg").unwrap();
    tampered[1000] ^= 1;
    fs::write(dir.path().join("bad.dmg"), &tampered).unwrap();
    assert!(
        !verify("bad.dmg").status.success(),
        "openssl must refuse tampered bytes"
    );

    // The appcast carries it as sparkle:edSignature.
    let appcast = ureq_get(&format!("{}/updates/appcast.xml", st.sb.base_url()));
    assert!(
        appcast.contains(&format!("sparkle:edSignature=\"{sig_b64}\"")),
        "{appcast}"
    );

    // A tampered live DMG fails verify --deep, on its signature too.
    st.sb.seed_asset("Update", "Nexy.dmg", &tampered).unwrap();
    let run = st.run(&["verify", "--deep", "--timeout", "1"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let line = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("signature"))
        .unwrap_or_default()
        .to_string();
    assert!(line.contains("FAIL"), "{}", run.stdout);
}

fn ureq_get(url: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg("import sys,urllib.request;print(urllib.request.urlopen(sys.argv[1]).read().decode())")
        .arg(url)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// Checks a JSON document against the documented shape (README, "Output
/// for machines"): schema, command, ok, and checks or stages.
fn assert_documented_shape(doc: &Value, command: &str) {
    assert_eq!(doc["schema"], "nexy-xtask/v1", "{doc}");
    assert_eq!(doc["command"], command, "{doc}");
    assert!(doc["ok"].is_boolean(), "{doc}");
    let check_ok = |c: &Value| {
        assert!(c["id"].as_str().is_some_and(|s| !s.is_empty()), "{c}");
        assert!(
            matches!(c["status"].as_str(), Some("pass" | "fail" | "skip")),
            "{c}"
        );
        assert!(
            c["message"].is_string() && c["fix"].is_string() && c["figures"].is_object(),
            "{c}"
        );
    };
    if let Some(checks) = doc.get("checks") {
        assert!(!checks.as_array().unwrap().is_empty(), "{doc}");
        checks.as_array().unwrap().iter().for_each(check_ok);
        let failed = checks
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["status"] == "fail");
        assert_eq!(doc["ok"], !failed, "ok agrees with the checks: {doc}");
    } else {
        for stage in doc["stages"].as_array().expect("checks or stages") {
            assert!(
                stage["name"].is_string()
                    && stage["ok"].is_boolean()
                    && stage["seconds"].is_number(),
                "{stage}"
            );
            if let Some(checks) = stage.get("checks") {
                checks.as_array().unwrap().iter().for_each(check_ok);
            }
        }
    }
}

#[test]
fn json_documents_follow_the_documented_shape() {
    let st = Stage::new();
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(9, 1 << 20);
    for (args, command, code) in [
        (&["check", "--json"][..], "check", 0),
        (&["preflight", "--json"][..], "preflight", 0),
        (&["release", "--json"][..], "release", 0),
        (&["verify", "--json"][..], "verify", 0),
    ] {
        let run = st.run(args);
        assert_eq!(run.code, code, "{args:?}: {}\n{}", run.stdout, run.stderr);
        let doc: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not one JSON document ({e}):\n{}",
                run.stdout
            )
        });
        assert_documented_shape(&doc, command);
        assert!(!run.stderr.is_empty(), "human lines go to stderr");
    }
    // A failing check is a failing document.
    fs::write(
        st.sb.vm_app_dir().join("config.env"),
        "SERVER_VERSION=2.0.0.5\n",
    )
    .unwrap();
    let run = st.run(&["preflight", "--json"]);
    assert_eq!(run.code, 1);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_documented_shape(&doc, "preflight");
    assert_eq!(doc["ok"], false);
    assert!(
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "gemini-key" && c["status"] == "fail"),
        "{doc}"
    );
    let run = st.run(&["bump", "2.0.0.6", "--json"]);
    assert_eq!(
        run.code, 2,
        "--json is refused where it is not supported: {run:?}"
    );
}
