//! Unit tests of the release config: the repository's own `release.toml`
//! and every malformed input the loader must refuse.

use super::*;

fn repo_config_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../release.toml");
    fs::read_to_string(path).unwrap()
}

fn parse(text: &str) -> Result<Config> {
    let config: Config = toml::from_str(text)?;
    config.validate()?;
    Ok(config)
}

#[test]
fn repository_config_is_valid() {
    let config = parse(&repo_config_text()).unwrap();
    assert_eq!(config.azure.resource_group, CANONICAL_RESOURCE_GROUP);
    assert_eq!(config.stable().unwrap().dmg_tag, "Update");
}

#[test]
fn unknown_keys_are_refused() {
    let text = repo_config_text().replace("[azure]\n", "[azure]\nresource_gruop = \"x\"\n");
    let err = format!("{:#}", parse(&text).unwrap_err());
    assert!(err.contains("resource_gruop"), "{err}");
}

#[test]
fn legacy_targets_are_refused_naming_the_canonical_ones() {
    let text = repo_config_text()
        .replace("\"NexyNewRG\"", "\"NetworkWatcherRG\"")
        .replace("vm_name = \"NexyNew\"", "vm_name = \"nexy-regular\"");
    let err = format!("{:#}", parse(&text).unwrap_err());
    assert!(
        err.contains("NetworkWatcherRG") && err.contains("NexyNewRG"),
        "{err}"
    );
    assert!(
        err.contains("nexy-regular") && err.contains("`NexyNew`"),
        "{err}"
    );
}

#[test]
fn the_vm_restart_settings_have_defaults_and_bounds() {
    let config = parse(&repo_config_text()).unwrap();
    assert_eq!(config.vm.restart_wait_secs, 30);
    assert_eq!(config.vm.backups_keep, 20);
    // Without a [vm] table, the same defaults.
    let at = repo_config_text().find("[vm]").unwrap();
    let rest = &repo_config_text()[at + 4..];
    let end = rest.find("\n[").map_or(rest.len(), |i| i + 1);
    let without = format!("{}{}", &repo_config_text()[..at], &rest[end..]);
    assert!(!without.contains("restart_wait_secs"));
    let defaults = parse(&without).unwrap().vm;
    assert_eq!(
        (defaults.restart_wait_secs, defaults.backups_keep),
        (30, 20)
    );
    let text = repo_config_text()
        .replace("restart_wait_secs = 30", "restart_wait_secs = 0")
        .replace("backups_keep = 20", "backups_keep = 0")
        .replace("\"http://127.0.0.1:8080/health\"", "\"localhost:8080\"");
    let err = format!("{:#}", parse(&text).unwrap_err());
    assert!(err.contains("vm.restart_wait_secs 0"), "{err}");
    assert!(err.contains("vm.backups_keep 0"), "{err}");
    assert!(err.contains("vm.health_url `localhost:8080`"), "{err}");
}

#[test]
fn fetch_url_rewrites_only_with_a_download_base() {
    let mut gh = parse(&repo_config_text()).unwrap().github;
    let url = "https://github.com/Seregawpn/Nexy_production/releases/download/Update/Nexy.dmg";
    assert_eq!(gh.fetch_url(url), url);
    gh.download_base = Some("http://127.0.0.1:9/".into());
    assert_eq!(
        gh.fetch_url(url),
        "http://127.0.0.1:9/Seregawpn/Nexy_production/releases/download/Update/Nexy.dmg"
    );
}

#[test]
fn fixed_urls_must_match_repo_and_tag() {
    let text = repo_config_text().replace("download/Update/Nexy.dmg", "download/Latest/Nexy.dmg");
    let err = format!("{:#}", parse(&text).unwrap_err());
    assert!(err.contains("channels.stable.dmg_url"), "{err}");
}

#[test]
fn malformed_edits_are_refused_together() {
    let text = repo_config_text().replace(
        "[verify]",
        "[[version_files]]\npath = \"x.yaml\"\nedits = [\n  { yaml = \"a.version\", find = \"v {version}\", count = 1 },\n  { env = \"SERVER-VERSION\", count = 1 },\n  { yaml = \"a..b\", count = 1 },\n  { yaml = \"a.b\", count = 1, anywhere = true },\n  { find = \"no slot\", count = 1 },\n  { env = \"V\", count = 0, optional = true },\n]\n\n[verify]",
    );
    let err = format!("{:#}", parse(&text).unwrap_err());
    for says in [
        "needs exactly one of `find` (a template), `yaml` (a key path) or `env`",
        "env key `SERVER-VERSION` is not a variable name",
        "YAML key path `a..b` has an empty part",
        "`anywhere` and `after` apply to `find` templates only",
        "template `no slot` must hold {version} exactly once",
        "an edit has count 0",
    ] {
        assert!(err.contains(says), "{says}: {err}");
    }
}
