//! The update feed follows the VM's files: `/health` only after a restart,
//! `/updates/*` from the manifest on disk; TLS negotiates h2; state survives
//! a restart of the stand-in; the `up` binary serves and stops on SIGTERM.

mod common;
use common::*;
use nexy_sandbox::Options;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn health(sb: &nexy_sandbox::Sandbox) -> serde_json::Value {
    let r = get(sb.port(), "/health");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("public, max-age=30"));
    r.json()
}

#[test]
fn feed_health_changes_only_after_systemctl_restart() {
    let sb = start_az();
    let h = health(&sb);
    assert_eq!(h["status"], "OK");
    assert_eq!(h["latest_version"], "2.0.0.32");
    assert_eq!(h["latest_build"], "2.0.0.32");
    let s = get(sb.port(), "/status").json();
    assert_eq!(s["status"], "running");
    assert_eq!(s["service"], "voice-assistant");
    assert_eq!(s["latest_version"], "2.0.0.32");

    let o = az_script(&sb, "cd /home/azureuser/voice-assistant && sed -i -e 's/^SERVER_VERSION=.*/SERVER_VERSION=2.0.0.33/' -e 's/^SERVER_BUILD=.*/SERVER_BUILD=2.0.0.33/' config.env && echo edited");
    assert!(az_message(&o).contains("edited"));
    assert_eq!(health(&sb)["latest_version"], "2.0.0.32", "no restart yet");

    let o = az_script(
        &sb,
        "systemctl restart voice-assistant && systemctl is-active voice-assistant",
    );
    assert_eq!(
        az_message(&o),
        "Enable succeeded: \n[stdout]\nactive\n\n[stderr]\n"
    );
    let h = health(&sb);
    assert_eq!(h["latest_version"], "2.0.0.33");
    assert_eq!(h["latest_build"], "2.0.0.33");
    assert_eq!(
        get(sb.port(), "/status").json()["latest_version"],
        "2.0.0.33"
    );
    assert!(sb.requests().iter().any(|r| r.kind == "systemctl"
        && r.url == "systemctl restart voice-assistant"
        && r.status == 0));

    let o = az_script(&sb, "systemctl restart nginx-foo; echo rc=$?");
    assert!(az_message(&o).contains("rc=5"), "{}", az_message(&o));
}

#[test]
fn feed_updates_follow_manifest_on_disk() {
    let sb = start_az();
    let r = get(sb.port(), "/updates/health");
    assert_eq!(r.header("cache-control"), Some("public, max-age=30"));
    let v = r.json();
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["version"], "2.0.0.32");
    assert_eq!(v["latest_build"], "2.0.0.32");

    let mpath = sb
        .vm_app_dir()
        .join("server/updates/manifests/manifest.json");
    let text = std::fs::read_to_string(&mpath).unwrap();
    let new = text
        .replace("\"version\": \"2.0.0.32\"", "\"version\": \"2.0.0.34\"")
        .replace("\"build\": \"2.0.0.32\"", "\"build\": \"2.0.0.35\"")
        .replace("\"size\": 275899820", "\"size\": 1234")
        .replace("\"ed25519\": \"\"", "\"ed25519\": \"c2lnbmF0dXJl\"");
    // Written from inside the VM, through az, as a tool would.
    let o = az_script(&sb, &format!("cat > /home/azureuser/voice-assistant/server/updates/manifests/manifest.json <<'EOF'\n{new}EOF\necho ok"));
    assert!(az_message(&o).contains("ok"));
    let v = get(sb.port(), "/updates/health").json();
    assert_eq!(v["version"], "2.0.0.34");
    assert_eq!(v["latest_version"], "2.0.0.34");
    assert_eq!(v["latest_build"], "2.0.0.35");
    let m = get(sb.port(), "/updates/manifest.json");
    assert_eq!(m.text(), new);
    let a = get(sb.port(), "/updates/appcast.xml");
    assert_eq!(a.status, 200);
    assert_eq!(a.header("cache-control"), Some("public, max-age=60"));
    let x = a.text();
    assert!(x.contains("<enclosure url=\"https://github.com/Seregawpn/Nexy_production/releases/download/Update/Nexy.dmg\" sparkle:version=\"2.0.0.35\" sparkle:shortVersionString=\"2.0.0.34\" length=\"1234\" type=\"application/octet-stream\" sparkle:edSignature=\"c2lnbmF0dXJl\"/>"), "{x}");
    // The feed is also reachable by host name through the proxy.
    let v = get(
        sb.port(),
        "http://nexy-prod-sergiy.canadacentral.cloudapp.azure.com/updates/health",
    )
    .json();
    assert_eq!(v["version"], "2.0.0.34");
}

#[test]
fn feed_appcast_without_signature_and_refusing_http_url() {
    let sb = start();
    let x = get(sb.port(), "/updates/appcast.xml").text();
    assert!(x.contains("sparkle:version=\"2.0.0.32\""));
    assert!(!x.contains("edSignature"));
    let mpath = sb
        .vm_app_dir()
        .join("server/updates/manifests/manifest.json");
    let text = std::fs::read_to_string(&mpath)
        .unwrap()
        .replace("https://github.com", "http://github.com");
    std::fs::write(&mpath, text).unwrap();
    assert_eq!(get(sb.port(), "/updates/appcast.xml").status, 500);
}

#[test]
fn tls_handshake_negotiates_h2() {
    let sb = start();
    let pem = std::fs::read_to_string(sb.ca_pem_path()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(nexy_sandbox::tls::pem_to_der(&pem).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    for name in ["localhost", "127.0.0.1"] {
        let server = rustls::pki_types::ServerName::try_from(name)
            .unwrap()
            .to_owned();
        let mut conn = rustls::ClientConnection::new(Arc::new(cfg.clone()), server).unwrap();
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", sb.tls_port())).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut rounds = 0;
        while conn.is_handshaking() && rounds < 16 {
            rounds += 1;
            conn.complete_io(&mut tcp).unwrap();
        }
        assert!(!conn.is_handshaking());
        assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]));
    }
}

#[test]
fn state_survives_restart_of_the_stand_in() {
    let dir = std::env::temp_dir().join(format!("nexy-sandbox-persist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let sb = start_with(Options {
            state_dir: Some(dir.clone()),
            az: Some(real_az()),
            ..Default::default()
        });
        sb.seed_asset("Update", "Nexy.dmg", b"persisted").unwrap();
        sb.set_immutable("App", true).unwrap();
        az_script(&sb, "echo SERVER_VERSION=2.0.0.50 >> /home/azureuser/voice-assistant/config.env; systemctl restart voice-assistant");
        sb.write_state_file("release.toml", "x = 1\n").unwrap();
    }
    {
        let sb = start_with(Options {
            state_dir: Some(dir.clone()),
            ..Default::default()
        });
        assert_eq!(sb.asset_bytes("Update", "Nexy.dmg").unwrap(), b"persisted");
        assert_eq!(health(&sb)["latest_version"], "2.0.0.50");
        let r = get(
            sb.port(),
            &format!("http://api.github.localhost/repos/{REPO}/releases/tags/App"),
        );
        assert_eq!(r.json()["immutable"], true);
        assert_eq!(
            std::fs::read_to_string(dir.join("release.toml")).unwrap(),
            "x = 1\n"
        );
        assert!(sb.write_state_file("../escape", "no").is_err());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn up_binary_writes_env_serves_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("nexy-sandbox-up-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nexy-sandbox"))
        .args(["up", "--state", dir.to_str().unwrap(), "--port", "0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let info = loop {
        if let Ok(t) = std::fs::read_to_string(dir.join("sandbox.json")) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) {
                if dir.join("env").exists() {
                    break v;
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "up did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let port = info["port"].as_u64().unwrap() as u16;
    let env = std::fs::read_to_string(dir.join("env")).unwrap();
    for k in [
        "GH_HOST='github.localhost'",
        "GH_TOKEN=",
        "http_proxy=",
        "https_proxy=",
        "HTTP_PROXY=",
        "HTTPS_PROXY=",
        "NO_PROXY='127.0.0.1'",
        "AZURE_CONFIG_DIR=",
        "REQUESTS_CA_BUNDLE=",
        "AZURE_CORE_INSTANCE_DISCOVERY='false'",
        "GH_CONFIG_DIR=",
        "GH_NO_UPDATE_NOTIFIER='1'",
        "GH_PROMPT_DISABLED='1'",
        "NO_COLOR='1'",
        "NEXY_SANDBOX_STATE=",
        "export PATH=",
    ] {
        assert!(env.contains(k), "env lacks {k}: {env}");
    }
    assert!(dir.join("ca.pem").exists());
    assert!(dir.join("bin/az").exists());
    assert_eq!(get(port, "/health").json()["status"], "OK");
    // Through the env file, with a shell, as a user would.
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            ". {}/env && az account show --query user.type -o tsv",
            dir.display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "servicePrincipal\n");
    // SAFETY: signalling the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("up did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
