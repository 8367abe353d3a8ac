//! The GitHub Actions workflows keep the rules a release depends on that
//! the Actions schema cannot express (`.ci/run` validates the schema with
//! action-validator): secrets reach steps only through `env:`, releases
//! never overlap or cancel each other, Azure is reached by OIDC with no
//! client secret, and the release waits for the environment's reviewers.

mod common;

use std::fs;

fn workflow(name: &str) -> String {
    fs::read_to_string(common::repo_root().join(".github/workflows").join(name)).unwrap()
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Each line that names a secret, with the key of the mapping that holds
/// it (the nearest line above it with less indentation).
fn secret_uses(text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.contains("secrets.") || line.trim_start().starts_with('#') {
            continue;
        }
        let parent = lines[..i]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty() && indent(l) < indent(line))
            .map_or("", |l| l.trim());
        out.push((line.trim().to_string(), parent.to_string()));
    }
    out
}

/// Whether a secret is passed as one `NAME: ${{ secrets.X }}` entry of an
/// `env:` mapping, and never inside a command line.
fn only_through_env(text: &str) -> Result<usize, String> {
    let uses = secret_uses(text);
    for (line, parent) in &uses {
        let (key, value) = line.split_once(':').unwrap_or(("", ""));
        let plain = value.trim().starts_with("${{ secrets.") && value.trim().ends_with("}}");
        if parent != "env:" || !plain || key.contains(' ') {
            return Err(format!("`{line}` (under `{parent}`)"));
        }
    }
    Ok(uses.len())
}

#[test]
fn release_workflow_passes_secrets_only_through_env() {
    let text = workflow("release.yml");
    assert_eq!(only_through_env(&text), Ok(1), "{text}");
    assert!(text.contains("GH_TOKEN: ${{ secrets.NEXY_PRODUCTION_TOKEN }}"));
    // The rule itself catches a secret on a command line.
    let leaked = "jobs:\n  a:\n    steps:\n      - run: |\n          gh auth login --with-token ${{ secrets.T }}\n";
    assert!(only_through_env(leaked).is_err());
    let inline = "      - run: echo ${{ secrets.T }}\n";
    assert!(only_through_env(inline).is_err());
    let with = "      - uses: x\n        with:\n          token: ${{ secrets.T }}\n";
    assert!(only_through_env(with).is_err());
}

#[test]
fn release_workflow_is_reviewed_serialised_and_uses_oidc() {
    let text = workflow("release.yml");
    for want in [
        "  workflow_dispatch:",
        "    runs-on: macos-latest",
        "    environment: production",
        "  cancel-in-progress: false",
        "  id-token: write",
        "uses: azure/login@v2",
        "client-id: ${{ vars.AZURE_CLIENT_ID }}",
        "cargo xtask \"${args[@]}\" > release-report.json",
        "args=(release --channel \"$CHANNEL\" --json)",
        "gh run download \"$RUN_ID\"",
        "path: release-report.json",
        "if: always()",
    ] {
        assert!(text.contains(want), "release.yml lacks `{want}`");
    }
    // No client secret and no credentials blob: OIDC only.
    for banned in ["client-secret", "creds:", "AZURE_CREDENTIALS", "--clobber"] {
        assert!(!text.contains(banned), "release.yml holds `{banned}`");
    }
    // The inbox gets the build's artifact before the release runs.
    let download = text.find("gh run download").unwrap();
    let release = text.find("cargo xtask \"${args[@]}\"").unwrap();
    assert!(download < release);
}

#[test]
fn check_workflow_runs_on_linux_and_macos() {
    let text = workflow("check.yml");
    assert!(text.contains("os: [ubuntu-latest, macos-latest]"), "{text}");
    assert!(text.contains("runs-on: ${{ matrix.os }}"), "{text}");
    assert_eq!(only_through_env(&text), Ok(0));
}
