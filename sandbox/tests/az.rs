//! The `az` stand-in: output format, exit codes and the VM path mapping.

mod common;
use common::*;

#[test]
fn az_failing_script_still_exits_0_with_output_in_message() {
    let sb = start();
    let o = az_script(&sb, "echo OK; echo oops >&2; exit 7");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stderr, "");
    let expected = "{\n  \"value\": [\n    {\n      \"code\": \"ProvisioningState/succeeded\",\n      \"displayStatus\": \"Provisioning succeeded\",\n      \"level\": \"Info\",\n      \"message\": \"Enable succeeded: \\n[stdout]\\nOK\\n\\n[stderr]\\noops\\n\",\n      \"time\": null\n    }\n  ]\n}\n";
    assert_eq!(o.stdout, expected);
    let log = sb.requests();
    let e = log.iter().find(|r| r.kind == "az").unwrap();
    assert_eq!(e.status, 0);
    assert_eq!(e.body.as_deref(), Some("echo OK; echo oops >&2; exit 7"));
    assert_eq!(
        e.command.as_ref().unwrap()[0..4],
        ["az", "vm", "run-command", "invoke"]
    );
}

#[test]
fn az_long_output_is_cut_to_last_4096_bytes() {
    let sb = start();
    let o = az_script(&sb, "for i in $(seq 1 3000); do echo line$i; done; for i in $(seq 1 2000); do echo err$i >&2; done");
    assert_eq!(o.code, 0);
    let m = az_message(&o);
    let (so, se) = m
        .strip_prefix("Enable succeeded: \n[stdout]\n")
        .unwrap()
        .split_once("\n[stderr]\n")
        .unwrap();
    let full_out: String = (1..=3000).map(|i| format!("line{i}\n")).collect();
    let full_err: String = (1..=2000).map(|i| format!("err{i}\n")).collect();
    assert_eq!(so.len(), 4096);
    assert_eq!(so, &full_out[full_out.len() - 4096..]);
    assert_eq!(se.len(), 4096);
    assert_eq!(se, &full_err[full_err.len() - 4096..]);
}

#[test]
fn az_several_scripts_are_joined_with_newlines_and_long_flags_work() {
    let sb = start();
    let o = az(
        &sb,
        &[
            "vm",
            "run-command",
            "invoke",
            "--resource-group",
            "NexyNewRG",
            "--name",
            "NexyNew",
            "--command-id",
            "RunShellScript",
            "--scripts",
            "A=1",
            "echo a=$A",
            "echo two",
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        az_message(&o),
        "Enable succeeded: \n[stdout]\na=1\ntwo\n\n[stderr]\n"
    );
    let o = az_invoke(
        &sb,
        "NexyNewRG",
        "NexyNew",
        &["echo hi", "--query", "value[0].message", "-o", "tsv"],
    );
    assert_eq!(o.stdout, "Enable succeeded: \n[stdout]\nhi\n\n[stderr]\n\n");
    // `-o` right after the scripts ends them, as argparse does.
    let o = az_invoke(
        &sb,
        "NexyNewRG",
        "NexyNew",
        &["echo hi", "-o", "tsv", "--query", "value[0].message"],
    );
    assert_eq!(o.stdout, "Enable succeeded: \n[stdout]\nhi\n\n[stderr]\n\n");
}

#[test]
fn az_unknown_resource_group_or_vm_exits_3() {
    let sb = start();
    let o = az_invoke(&sb, "NetworkWatcherRG", "NexyNew", &["echo x"]);
    assert_eq!(o.code, 3);
    assert_eq!(o.stdout, "");
    assert!(o.stderr.starts_with("ERROR: (ResourceGroupNotFound) Resource group 'NetworkWatcherRG' could not be found.\nCode: ResourceGroupNotFound\n"), "{}", o.stderr);
    let o = az_invoke(&sb, "NexyNewRG", "nexy-regular", &["echo x"]);
    assert_eq!(o.code, 3);
    assert!(o.stderr.contains("The Resource 'Microsoft.Compute/virtualMachines/nexy-regular' under resource group 'NexyNewRG' was not found."), "{}", o.stderr);
    // Nothing ran.
    assert!(!sb.state_dir().join("vm/run-command").exists());
}

#[test]
fn az_not_logged_in_exits_1() {
    let sb = start();
    let o = az(&sb, &["account", "show"]);
    assert_eq!(o.code, 0);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    for k in [
        "environmentName",
        "homeTenantId",
        "id",
        "isDefault",
        "managedByTenants",
        "name",
        "state",
        "tenantId",
        "user",
    ] {
        assert!(v.get(k).is_some(), "{k}");
    }
    sb.set_az_logged_in(false).unwrap();
    let o = az(&sb, &["account", "show"]);
    assert_eq!(o.code, 1);
    assert_eq!(o.stdout, "");
    assert_eq!(o.stderr, "ERROR: Please run 'az login' to setup account.\n");
    let o = az_script(&sb, "echo x");
    assert_eq!(o.code, 1);
}

#[test]
fn az_script_writes_land_in_state_dir_via_absolute_path() {
    let sb = start();
    // The mapping is private to the script: the host's /home is untouched.
    let host_had_it = std::path::Path::new("/home/azureuser").exists();
    let o = az_script(
        &sb,
        "cd /home/azureuser/voice-assistant && sed -i 's/^SERVER_VERSION=.*/SERVER_VERSION=2.0.0.40/' config.env && pwd && echo NEW=1 >> /home/azureuser/voice-assistant/config.env && echo done",
    );
    assert_eq!(o.code, 0);
    let m = az_message(&o);
    assert!(m.contains("/home/azureuser/voice-assistant\ndone\n"), "{m}");
    let cfg = std::fs::read_to_string(sb.vm_app_dir().join("config.env")).unwrap();
    assert!(cfg.contains("SERVER_VERSION=2.0.0.40\n"), "{cfg}");
    assert!(cfg.ends_with("NEW=1\n"), "{cfg}");
    assert_eq!(
        std::path::Path::new("/home/azureuser").exists(),
        host_had_it
    );
}

#[test]
fn az_flock_works_in_scripts() {
    let sb = start();
    let o = az_script(
        &sb,
        "exec 9>/tmp/nexy_manifest.lock.sandboxtest; flock -w 5 9 && echo locked; ( flock -n 9 && echo second ) ; echo end; rm -f /tmp/nexy_manifest.lock.sandboxtest",
    );
    let m = az_message(&o);
    assert!(m.contains("locked\n"), "{m}");
    assert!(m.contains("end\n"), "{m}");
}

#[test]
fn az_unknown_command_and_missing_args() {
    let sb = start();
    let o = az(
        &sb,
        &[
            "vm",
            "run-command",
            "invoke",
            "-g",
            "NexyNewRG",
            "-n",
            "NexyNew",
        ],
    );
    assert_eq!(o.code, 2);
    assert!(
        o.stderr
            .contains("the following arguments are required: --command-id"),
        "{}",
        o.stderr
    );
}

#[test]
fn az_logout_and_login_flip_the_profile() {
    let sb = start();
    assert_eq!(az(&sb, &["logout"]).code, 0);
    let o = az(&sb, &["account", "show"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "ERROR: Please run 'az login' to setup account.\n")
    );
    assert_eq!(az(&sb, &["login"]).code, 0);
    assert_eq!(az(&sb, &["account", "show"]).code, 0);
}

#[test]
fn az_script_runtime_is_bounded() {
    let sb = start();
    let o = az_script_with_env(
        &sb,
        "echo before; sleep 30; echo after",
        ("NEXY_SANDBOX_AZ_TIMEOUT_SECS", "1"),
        std::time::Duration::from_secs(20),
    );
    assert_eq!(o.code, 0);
    assert!(o.elapsed < std::time::Duration::from_secs(10));
    let m = az_message(&o);
    assert!(m.contains("before\n") && !m.contains("\nafter\n"), "{m}");
    assert!(
        m.contains("script killed after 1s"),
        "{m} {:?} {}",
        o.elapsed,
        o.stderr
    );
}
