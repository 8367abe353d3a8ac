//! `cargo xtask inspect FILE...`: what the macOS artifact reader finds in
//! each file, as a table for people or (with `--json`) one JSON document.

use anyhow::Result;
use serde_json::json;

use crate::{
    cli::Inspect,
    macos::{self, Artifact},
};

impl Inspect {
    /// Exit status: true when every file could be read.
    pub fn run(self) -> Result<bool> {
        let mut docs = Vec::new();
        let mut ok = true;
        for path in &self.files {
            match macos::inspect(path) {
                Ok(a) => {
                    crate::output::say_raw(&render(&a));
                    docs.push(json!({ "path": path, "ok": true, "artifact": a }));
                }
                Err(err) => {
                    ok = false;
                    crate::say!("{}: error: {err:#}\n", path.display());
                    docs.push(json!({ "path": path, "ok": false, "error": format!("{err:#}") }));
                }
            }
        }
        crate::output::emit(&json!({
            "schema": crate::output::SCHEMA,
            "command": "inspect",
            "ok": ok,
            "files": docs,
        }));
        Ok(ok)
    }
}

fn or_dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

/// The table of one artifact.
pub fn render(a: &Artifact) -> String {
    let mut out = format!("{} ({})\n", a.path.display(), a.layout);
    let sig = if a.signed { "present" } else { "none" };
    out.push_str(&format!(
        "  {:<10} {sig}\n",
        if a.format == "dmg" {
            "UDIF sig"
        } else {
            "xar sig"
        }
    ));
    if let Some(p) = &a.product {
        out.push_str(&format!(
            "  {:<10} id {}, version {}\n",
            "product",
            or_dash(&p.id),
            or_dash(&p.version)
        ));
    }
    for p in &a.packages {
        let at = if p.path.is_empty() { "(root)" } else { &p.path };
        out.push_str(&format!(
            "  {:<10} {at}: id {}, version {}\n",
            "package",
            or_dash(&p.identifier),
            or_dash(&p.version)
        ));
    }
    if a.apps.is_empty() {
        out.push_str("  no app bundle found\n");
    }
    for app in &a.apps {
        out.push_str(&format!("  app        {}\n", app.path));
        let rows = [
            ("bundle id", or_dash(&app.bundle_id).to_string()),
            ("short ver", or_dash(&app.short_version).to_string()),
            ("version", or_dash(&app.version).to_string()),
            ("min macOS", or_dash(&app.min_os).to_string()),
        ];
        for (k, v) in rows {
            out.push_str(&format!("    {k:<10} {v}\n"));
        }
        match &app.executable {
            None => out.push_str("    executable -\n"),
            Some(e) => {
                out.push_str(&format!(
                    "    executable {} [{}] ({})\n",
                    e.name,
                    e.archs.join(", "),
                    e.arch_label()
                ));
                let signed = match (e.signed, e.adhoc, &e.team_id) {
                    (false, ..) => "unsigned".to_string(),
                    (true, true, _) => "ad-hoc signed (no Team ID)".to_string(),
                    (true, false, Some(t)) => format!("signed, Team ID {t}"),
                    (true, false, None) => "signed, no Team ID".to_string(),
                };
                out.push_str(&format!("    signature  {signed}\n"));
                if let Some(p) = &e.problem {
                    out.push_str(&format!("    problem    {p}\n"));
                }
            }
        }
    }
    out
}
