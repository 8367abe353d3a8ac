//! preflight's look inside the inbox artifacts: the bytes must be the
//! release. One check per artifact, all run and reported together:
//!
//! - `app-dmg`, `app-pkg`: the app's bundle id is `[app] bundle_id` and
//!   its CFBundleShortVersionString and CFBundleVersion are what VERSION
//!   maps to (`[app] short_version`, `build_version`);
//! - `app-pair`: the app in the PKG has the version of the app in the DMG;
//! - `pkg-versions` (warning): the PKG's product and component versions
//!   disagree with VERSION (the app's own Info.plist is the truth);
//! - `signing-dmg`, `signing-pkg`: an unsigned or ad-hoc executable, a DMG
//!   without UDIF signature, a PKG without xar signature are warnings
//!   (Gatekeeper blocks them); a Team ID other than `[app] team_id` is an
//!   error.

use std::path::Path;

use crate::{
    artifact::{self, Kind},
    config::{AppConfig, Workspace},
    macos::{self, App, Artifact},
    report::CheckResult,
    version::Version,
};

/// What VERSION says the app must say.
struct Want<'a> {
    version: Version,
    short: String,
    build: String,
    app: &'a AppConfig,
}

/// The checks of the artifacts in `inbox` that passed the format check.
pub fn checks(ws: &Workspace, inbox: &Path) -> Vec<CheckResult> {
    let version = crate::changes::read_text(&ws.root, &ws.config.version_file)
        .ok()
        .and_then(|t| crate::version::parse_version_file(&t).ok());
    let Some(version) = version else {
        // The `version` check already reports an unreadable VERSION.
        return vec![CheckResult::skip("app-dmg", "VERSION is unreadable")];
    };
    let app = &ws.config.app;
    let want = Want {
        short: app.short_version_for(&version),
        build: app.build_version_for(&version),
        version,
        app,
    };
    let mut out = Vec::new();
    let mut apps: Vec<(Kind, String, App)> = Vec::new();
    for (kind, path) in artifact::present(inbox) {
        let (id, sign_id) = match kind {
            Kind::Dmg => ("app-dmg", "signing-dmg"),
            Kind::Pkg => ("app-pkg", "signing-pkg"),
        };
        let shown = path.display().to_string();
        if artifact::validate(&path, kind).is_err() {
            out.push(CheckResult::skip(
                id,
                format!("{shown}: not a {}, see above", kind.file_name()),
            ));
            continue;
        }
        let found = match macos::inspect(&path) {
            Ok(found) => found,
            Err(err) => {
                out.push(CheckResult::fail(
                    id,
                    format!("cannot read the app inside: {err:#}"),
                    format!(
                        "rebuild {} and copy the real file into the inbox",
                        kind.file_name()
                    ),
                ));
                continue;
            }
        };
        let Some(main) = pick(&found, &want) else {
            out.push(CheckResult::fail(
                id,
                format!("{shown} ({}) holds no app bundle", found.layout),
                format!(
                    "rebuild {} with Nexy.app at the top of the volume or payload",
                    kind.file_name()
                ),
            ));
            continue;
        };
        out.push(app_check(id, &shown, &main, &want));
        out.push(signing_check(sign_id, &shown, &found, &main, want.app));
        if kind == Kind::Pkg {
            if let Some(w) = pkg_versions(&shown, &found, &want) {
                out.push(w);
            }
        }
        apps.push((kind, shown, main));
    }
    if let [(Kind::Dmg, dmg, a), (Kind::Pkg, pkg, b)] = apps.as_slice() {
        out.push(pair_check(dmg, a, pkg, b));
    }
    out
}

/// The app of the release: the one with the configured bundle id, else
/// the only (or first) one.
fn pick(found: &Artifact, want: &Want<'_>) -> Option<App> {
    found
        .apps
        .iter()
        .find(|a| a.bundle_id.as_deref() == Some(want.app.bundle_id.as_str()))
        .or(found.apps.first())
        .cloned()
}

fn shown(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("(missing)")
}

/// One line of what the app is: `Nexy.app com.x 2.0.0.5 (2.0.0.5), universal2, macOS 11.0+`.
fn describe(app: &App) -> String {
    let arch = app
        .executable
        .as_ref()
        .map_or("no executable".to_string(), |e| e.arch_label());
    format!(
        "{} {} CFBundleShortVersionString {}, CFBundleVersion {}, {arch}, macOS {}+",
        app.path,
        shown(&app.bundle_id),
        shown(&app.short_version),
        shown(&app.version),
        shown(&app.min_os)
    )
}

fn app_check(id: &'static str, file: &str, app: &App, want: &Want<'_>) -> CheckResult {
    let mut wrong = Vec::new();
    if app.bundle_id.as_deref() != Some(want.app.bundle_id.as_str()) {
        wrong.push(format!(
            "its bundle id is {}, release.toml [app] bundle_id is {}",
            shown(&app.bundle_id),
            want.app.bundle_id
        ));
    }
    if app.short_version.as_deref() != Some(want.short.as_str()) {
        wrong.push(format!(
            "CFBundleShortVersionString is {}, VERSION {} means {}",
            shown(&app.short_version),
            want.version,
            want.short
        ));
    }
    if app.version.as_deref() != Some(want.build.as_str()) {
        wrong.push(format!(
            "CFBundleVersion is {}, VERSION {} means {}",
            shown(&app.version),
            want.version,
            want.build
        ));
    }
    if wrong.is_empty() {
        return CheckResult::pass(id, format!("{file}: {}", describe(app)));
    }
    CheckResult::fail(
        id,
        format!("{file} is not the release: {}; {}", describe(app), wrong.join("; ")),
        format!(
            "copy the {} build of Nexy into the inbox (a stale file from an earlier build?), or `cargo xtask bump` to the version the app carries; [app] in release.toml says how VERSION maps to the Info.plist keys",
            want.version
        ),
    )
}

fn pair_check(dmg: &str, a: &App, pkg: &str, b: &App) -> CheckResult {
    let same =
        a.short_version == b.short_version && a.version == b.version && a.bundle_id == b.bundle_id;
    if same {
        CheckResult::pass(
            "app-pair",
            format!(
                "the DMG and the PKG hold the same app version {}",
                shown(&a.version)
            ),
        )
    } else {
        CheckResult::fail(
            "app-pair",
            format!(
                "{dmg} holds {} {} ({}) but {pkg} holds {} {} ({})",
                shown(&a.bundle_id),
                shown(&a.version),
                shown(&a.short_version),
                shown(&b.bundle_id),
                shown(&b.version),
                shown(&b.short_version)
            ),
            "build the DMG and the PKG from the same build and copy both into the inbox",
        )
    }
}

/// A warning when the PKG's own version fields disagree with VERSION.
fn pkg_versions(file: &str, found: &Artifact, want: &Want<'_>) -> Option<CheckResult> {
    let expected = want.version.to_string();
    let mut wrong = Vec::new();
    if let Some(p) = &found.product {
        if let Some(v) = p
            .version
            .as_deref()
            .filter(|v| *v != expected && *v != want.build)
        {
            wrong.push(format!("the Distribution's product version is {v}"));
        }
    }
    for p in &found.packages {
        if let Some(v) = p
            .version
            .as_deref()
            .filter(|v| *v != expected && *v != want.build)
        {
            wrong.push(format!(
                "component {} says version {v}",
                shown(&p.identifier)
            ));
        }
    }
    Some(if wrong.is_empty() {
        CheckResult::pass(
            "pkg-versions",
            format!("{file}: product and component versions agree with VERSION {expected}"),
        )
    } else {
        CheckResult::warn(
            "pkg-versions",
            format!("{file}: {} (VERSION is {expected}; the app's Info.plist, checked above, is what counts)", wrong.join(", ")),
            format!("pass --version {expected} to pkgbuild and productbuild"),
        )
    })
}

fn signing_check(
    id: &'static str,
    file: &str,
    found: &Artifact,
    app: &App,
    config: &AppConfig,
) -> CheckResult {
    let exe = app.executable.clone().unwrap_or_default();
    if let Some(team) = &config.team_id {
        if exe.team_id.as_deref() != Some(team.as_str()) {
            return CheckResult::fail(
                id,
                format!(
                    "{file}: {}'s executable is signed by Team ID {}, release.toml [app] team_id is {team}",
                    app.path,
                    exe.team_id.as_deref().unwrap_or("(none: unsigned or ad hoc)")
                ),
                format!("sign Nexy.app with the Developer ID of team {team} (`codesign --sign \"Developer ID Application: ... ({team})\" --options runtime --timestamp`), or correct [app] team_id"),
            );
        }
    }
    let mut missing = Vec::new();
    if !exe.signed {
        missing.push(format!("{}'s executable is not code-signed", app.path));
    } else if exe.adhoc {
        missing.push(format!(
            "{}'s executable is only ad-hoc signed (no Developer ID)",
            app.path
        ));
    }
    let (container, fix) = if found.format == "dmg" {
        (
            "the DMG carries no UDIF code signature",
            "`codesign --sign \"Developer ID Application: ...\" Nexy.dmg`",
        )
    } else {
        (
            "the PKG carries no xar signature",
            "`productsign --sign \"Developer ID Installer: ...\"`",
        )
    };
    if !found.signed {
        missing.push(container.to_string());
    }
    if missing.is_empty() {
        let team = exe.team_id.as_deref().unwrap_or("no Team ID");
        return CheckResult::pass(id, format!("{file}: signed ({team})"));
    }
    CheckResult::warn(
        id,
        format!("{file}: {} (Gatekeeper blocks unsigned apps)", missing.join("; ")),
        format!("sign the app with a Developer ID (`codesign --options runtime --timestamp`), then the container with {fix}, and notarize"),
    )
}

/// Why the artifacts in `dir` are not the bytes of `version`, if they are
/// not: the app in each must carry what `version` maps to. `rollback`
/// refuses an archive that fails this, since pairing other bytes with the
/// manifest of `version` makes every updated client loop.
pub fn version_mismatch(ws: &Workspace, dir: &Path, version: &Version) -> Option<String> {
    let app = &ws.config.app;
    let want = Want {
        short: app.short_version_for(version),
        build: app.build_version_for(version),
        version: *version,
        app,
    };
    let mut wrong = Vec::new();
    for (kind, path) in artifact::present(dir) {
        match macos::inspect(&path) {
            Err(err) => wrong.push(format!(
                "cannot read the app in {}: {err:#}",
                kind.file_name()
            )),
            Ok(found) => match pick(&found, &want) {
                None => wrong.push(format!("{} holds no app bundle", kind.file_name())),
                Some(a)
                    if a.short_version.as_deref() != Some(want.short.as_str())
                        || a.version.as_deref() != Some(want.build.as_str()) =>
                {
                    wrong.push(format!(
                        "{} holds {} {} (CFBundleShortVersionString {}), not {version}",
                        kind.file_name(),
                        a.path,
                        shown(&a.version),
                        shown(&a.short_version)
                    ));
                }
                Some(_) => {}
            },
        }
    }
    (!wrong.is_empty()).then(|| wrong.join("; "))
}

/// `artifact.arch` and `artifact.min_os` of the manifest, as the DMG's app
/// says: `universal2` for an x86_64 + arm64 executable, and its
/// LSMinimumSystemVersion.
pub fn manifest_fields(ws: &Workspace, dmg: &Path) -> anyhow::Result<(String, String)> {
    use anyhow::Context;
    let found = macos::inspect(dmg)?;
    let want = Want {
        short: String::new(),
        build: String::new(),
        version: Version([0; 4]),
        app: &ws.config.app,
    };
    let app = pick(&found, &want).with_context(|| {
        format!(
            "{} holds no app bundle, so the manifest's arch and min_os cannot be read from it",
            dmg.display()
        )
    })?;
    let arch = app
        .executable
        .as_ref()
        .filter(|e| !e.archs.is_empty())
        .map(|e| e.arch_label())
        .with_context(|| {
            format!(
                "{}: {} has no readable executable, so the manifest's arch cannot be read from it",
                dmg.display(),
                app.path
            )
        })?;
    let min_os = app.min_os.clone().with_context(|| {
        format!(
            "{}: {}'s Info.plist has no LSMinimumSystemVersion; add it to the app",
            dmg.display(),
            app.path
        )
    })?;
    Ok((arch, min_os))
}

/// `verify --deep`: the app inside the DMG a client downloads from the
/// fixed URL carries the manifest's version, arch and min_os. The
/// download is spooled to a temporary file (the reader seeks), removed
/// after.
pub fn deep_app_check(
    ws: &Workspace,
    agent: &ureq::Agent,
    url: &str,
    manifest: (&str, &str, &str),
) -> CheckResult {
    let (version, arch, min_os) = manifest;
    let fix = "publish the tested artifacts again with `cargo xtask publish`; if the bytes are right, the manifest is not";
    let spool = std::env::temp_dir().join(format!("nexy-verify-{}.dmg", std::process::id()));
    let result = crate::http::download_to(agent, url, &spool).and_then(|()| macos::inspect(&spool));
    let _ = std::fs::remove_file(&spool);
    let found = match result {
        Ok(found) => found,
        Err(err) => return CheckResult::fail("dmg-app", format!("the DMG at {url}: {err:#}"), fix),
    };
    let Ok(v) = version.parse::<Version>() else {
        return CheckResult::fail(
            "dmg-app",
            format!("the manifest's version `{version}` is not a version"),
            fix,
        );
    };
    let app = &ws.config.app;
    let want = Want {
        short: app.short_version_for(&v),
        build: app.build_version_for(&v),
        version: v,
        app,
    };
    let Some(main) = pick(&found, &want) else {
        return CheckResult::fail(
            "dmg-app",
            format!("the DMG at {url} holds no app bundle"),
            fix,
        );
    };
    let mut wrong = Vec::new();
    if let CheckResult {
        status: crate::report::Status::Fail,
        message,
        ..
    } = app_check("dmg-app", url, &main, &want)
    {
        wrong.push(message);
    }
    let got_arch = main
        .executable
        .as_ref()
        .map(|e| e.arch_label())
        .unwrap_or_default();
    if got_arch != arch {
        wrong.push(format!(
            "its executable is {got_arch}, the manifest's artifact.arch says `{arch}`"
        ));
    }
    if main.min_os.as_deref() != Some(min_os) {
        wrong.push(format!(
            "its LSMinimumSystemVersion is {}, the manifest's artifact.min_os says `{min_os}`",
            shown(&main.min_os)
        ));
    }
    if wrong.is_empty() {
        CheckResult::pass("dmg-app", format!("{url}: {}", describe(&main)))
    } else {
        CheckResult::fail("dmg-app", wrong.join("; "), fix)
    }
}
