//! The real az (azure-cli 2.91 from PyPI) against the Azure stand-in:
//! login, output format, exit codes and the VM path mapping.

mod common;
use common::*;

#[test]
fn az_failing_script_still_exits_0_with_output_in_message() {
    let sb = start_az();
    let o = az_script(&sb, "echo OK; echo oops >&2; exit 7");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stderr, "");
    // az 2.91 prints sorted keys, 2-space indent, and no `time`.
    let expected = "{\n  \"value\": [\n    {\n      \"code\": \"ProvisioningState/succeeded\",\n      \"displayStatus\": \"Provisioning succeeded\",\n      \"level\": \"Info\",\n      \"message\": \"Enable succeeded: \\n[stdout]\\nOK\\n\\n[stderr]\\noops\\n\"\n    }\n  ]\n}\n";
    assert_eq!(o.stdout, expected);
    let log = sb.requests();
    let post = log
        .iter()
        .find(|r| r.kind == "arm" && r.method == "POST" && r.url.contains("/runCommand?"))
        .expect("the run-command POST");
    assert_eq!(post.status, 202);
    assert_eq!(
        post.body.as_deref(),
        Some(
            r#"{"commandId": "RunShellScript", "parameters": [], "script": ["echo OK; echo oops >&2; exit 7"]}"#
        )
    );
    assert_eq!(
        post.command.as_ref().unwrap()[..],
        ["az", "vm", "run-command", "invoke"]
    );
    // Every ARM call is az's own, MSAL's token calls are python-requests.
    for r in log.iter().filter(|r| r.kind == "arm") {
        let ua = r.user_agent.as_deref().unwrap_or("");
        if r.url.contains("/subscriptions") {
            assert!(ua.starts_with("AZURECLI/2.91.0 (PIP)"), "{r:?}");
        } else {
            assert!(ua.starts_with("python-requests/"), "{r:?}");
        }
        // The secret is never logged.
        assert!(!format!("{r:?}").contains(sb.sp_secret()), "{r:?}");
    }
}

#[test]
fn az_long_output_is_cut_to_last_4096_bytes() {
    let sb = start_az();
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
fn az_several_scripts_are_joined_with_newlines_and_query_works() {
    let sb = start_az();
    let o = az_invoke(
        &sb,
        "NexyNewRG",
        "NexyNew",
        &["A=1", "echo a=$A", "echo two"],
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
}

#[test]
fn az_unknown_resource_group_or_vm_exits_3() {
    let sb = start_az();
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
fn az_not_logged_in_exits_1_and_a_wrong_secret_is_refused() {
    let sb = start_az();
    let o = az(&sb, &["account", "show"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["user"]["type"], "servicePrincipal");
    assert_eq!(v["environmentName"], "NexyLocal");
    sb.set_az_logged_in(false).unwrap();
    let o = az(&sb, &["account", "show"]);
    assert_eq!(o.code, 1);
    assert_eq!(o.stdout, "");
    assert!(
        o.stderr.contains("Please run 'az login' to setup account."),
        "{}",
        o.stderr
    );
    let o = az_script(&sb, "echo x");
    assert_eq!(o.code, 1);
    // Entra ID refuses a wrong secret (AADSTS7000215).
    let o = az(&sb, &nexy_sandbox::azcli::login_args("not-the-secret"));
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(o.stderr.contains("AADSTS7000215"), "{}", o.stderr);
    sb.set_az_logged_in(true).unwrap();
    assert_eq!(az(&sb, &["account", "show"]).code, 0);
}

#[test]
fn az_script_writes_land_in_state_dir_via_absolute_path() {
    let sb = start_az();
    // The mapping is private to the script: the host's /home is untouched.
    let host_had_it = std::path::Path::new("/home/azureuser").exists();
    let o = az_script(
        &sb,
        "cd /home/azureuser/voice-assistant && sed -i 's/^SERVER_VERSION=.*/SERVER_VERSION=2.0.0.40/' config.env && pwd && echo NEW=1 >> /home/azureuser/voice-assistant/config.env && flock -w 5 /tmp/nexy_sandboxtest.lock echo locked && echo done",
    );
    assert_eq!(o.code, 0);
    let m = az_message(&o);
    assert!(
        m.contains("/home/azureuser/voice-assistant\nlocked\ndone\n"),
        "{m}"
    );
    let cfg = std::fs::read_to_string(sb.vm_app_dir().join("config.env")).unwrap();
    assert!(cfg.contains("SERVER_VERSION=2.0.0.40\n"), "{cfg}");
    assert!(cfg.ends_with("NEW=1\n"), "{cfg}");
    assert_eq!(
        std::path::Path::new("/home/azureuser").exists(),
        host_had_it
    );
}

#[test]
fn az_polls_the_long_running_operation() {
    let sb = start_az();
    let polls = |from: usize| -> Vec<_> {
        sb.requests()
            .into_iter()
            .skip(from)
            .filter(|r| r.kind == "arm" && r.url.contains("/operations/"))
            .collect()
    };
    // The fast profile answers the POST once a quick script is done, so
    // az's first poll (sent at once) finds it: the status, then the result.
    let o = az_script(&sb, "sleep 0.3; echo quick");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(az_message(&o).contains("quick\n"));
    let quick = polls(0);
    assert_eq!(quick.len(), 2, "{quick:?}");
    // A script that outlasts the POST's wait (2 s) is polled while
    // InProgress (Retry-After 1), then the result comes from Location.
    let from = sb.requests().len();
    let o = az_script(&sb, "sleep 2.5; echo slow");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(az_message(&o).contains("slow\n"));
    let slow = polls(from);
    assert!(slow.len() >= 3, "{slow:?}");
    assert!(slow.last().unwrap().url.contains("monitor=true"));
}
