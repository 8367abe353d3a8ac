//! A flat PKG: a product archive (`Distribution` and one directory per
//! component) or a component archive (`PackageInfo` and `Payload` at the
//! root). Each payload is streamed once; only the Info.plist and the main
//! executables of the app bundles in it are kept.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use quick_xml::events::Event;

use super::{bundle, cpio, xar::Xar, App, Artifact, DeclaredBundle, Executable, Package, Product};

const MAX_META: u64 = 4 << 20;
/// Executables up to this size are read into memory; larger ones are
/// spooled to a temporary file, so memory stays bounded.
const IN_MEMORY_EXE: u64 = 8 << 20;

pub fn inspect(path: &Path, file: File) -> Result<Artifact> {
    let mut xar = Xar::open(file)?;
    let product = match xar.read_entry("Distribution", MAX_META)? {
        Some(xml) => Some(parse_distribution(&xml)?),
        None => None,
    };
    let components: Vec<String> = xar
        .entries
        .iter()
        .filter_map(|e| match e.path.rsplit_once('/') {
            Some((dir, "PackageInfo")) => Some(dir.to_string()),
            None if e.path == "PackageInfo" => Some(String::new()),
            _ => None,
        })
        .collect();
    if components.is_empty() {
        bail!("the archive has no PackageInfo: it is a xar file but not an installer package");
    }
    let mut packages = Vec::new();
    let mut apps = Vec::new();
    for comp in &components {
        let join = |name: &str| {
            if comp.is_empty() {
                name.to_string()
            } else {
                format!("{comp}/{name}")
            }
        };
        let info = xar
            .read_entry(&join("PackageInfo"), MAX_META)?
            .context("PackageInfo vanished")?;
        let mut package = parse_package_info(&info).with_context(|| join("PackageInfo"))?;
        package.path = comp.clone();
        packages.push(package);
        let Some(entry) = xar.find(&join("Payload")).cloned() else {
            continue;
        };
        let reader = xar.open_entry(&entry)?;
        let found =
            payload_apps(reader).with_context(|| format!("cannot read {}", join("Payload")))?;
        for mut app in found {
            app.path = format!("{}/{}", join("Payload"), app.path);
            apps.push(app);
        }
    }
    let kind = if product.is_some() {
        "product archive"
    } else {
        "component package"
    };
    Ok(Artifact {
        path: path.to_path_buf(),
        format: "pkg",
        layout: format!("xar {kind}, {} component(s)", packages.len()),
        signed: xar.signed,
        apps,
        packages,
        product,
    })
}

/// The apps of one payload, judged by the compression's magic bytes.
pub fn payload_apps(reader: impl Read) -> Result<Vec<App>> {
    let mut reader = BufReader::with_capacity(64 << 10, reader);
    let head = reader.fill_buf()?.to_vec();
    if head.starts_with(&[0x1f, 0x8b]) {
        read_cpio(flate2::read::MultiGzDecoder::new(reader))
    } else if head.starts_with(b"pbzx") {
        read_cpio(cpio::Pbzx::new(reader)?)
    } else if head.starts_with(b"BZh") {
        read_cpio(bzip2::read::MultiBzDecoder::new(reader))
    } else if head.starts_with(b"0707") {
        read_cpio(reader)
    } else {
        bail!("the payload is neither gzip, pbzx, bzip2 nor plain cpio")
    }
}

/// Where an entry sits relative to the outermost `.app` on its path.
fn app_split(name: &str) -> Option<(String, Vec<&str>)> {
    let name = name.trim_start_matches("./").trim_start_matches('.');
    let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
    let k = parts.iter().position(|p| p.ends_with(".app"))?;
    Some((parts[..=k].join("/"), parts[k + 1..].to_vec()))
}

fn read_cpio(mut r: impl Read) -> Result<Vec<App>> {
    let mut infos: BTreeMap<String, bundle::Info> = BTreeMap::new();
    let mut exes: BTreeMap<(String, String), Executable> = BTreeMap::new();
    while let Some(h) = cpio::next_header(&mut r)? {
        let split = h.is_file().then(|| app_split(&h.name)).flatten();
        match split {
            Some((root, rest)) if rest == ["Contents", "Info.plist"] => {
                if h.size > MAX_META {
                    bail!(
                        "{} is {} bytes, too large for an Info.plist",
                        h.name,
                        h.size
                    );
                }
                let mut bytes = vec![0u8; h.size as usize];
                r.read_exact(&mut bytes)
                    .context("the payload is cut short")?;
                infos.insert(
                    root,
                    bundle::parse_info(&bytes).with_context(|| h.name.clone())?,
                );
            }
            Some((root, rest)) if rest.len() == 3 && rest[..2] == ["Contents", "MacOS"] => {
                let name = rest[2].to_string();
                let exe = if h.size <= IN_MEMORY_EXE {
                    let mut bytes = vec![0u8; h.size as usize];
                    r.read_exact(&mut bytes)
                        .context("the payload is cut short")?;
                    bundle::executable(&name, std::io::Cursor::new(bytes))
                } else {
                    let spool = Spool::new()?;
                    let mut f = File::create(&spool.0)
                        .with_context(|| format!("cannot create {}", spool.0.display()))?;
                    let n = std::io::copy(&mut (&mut r).take(h.size), &mut f)?;
                    if n != h.size {
                        bail!("the payload is cut short");
                    }
                    f.flush()?;
                    bundle::executable(&name, File::open(&spool.0)?)
                };
                exes.insert((root, name), exe);
            }
            _ => cpio::skip(&mut r, h.size)?,
        }
    }
    let mut apps = Vec::new();
    for (root, info) in infos {
        let mut app = App::from_info(root.clone(), &info);
        if let Some(name) = &info.executable {
            app.executable =
                Some(
                    exes.remove(&(root, name.clone()))
                        .unwrap_or_else(|| Executable {
                            name: name.clone(),
                            problem: Some("not in the payload".to_string()),
                            ..Executable::default()
                        }),
                );
        }
        apps.push(app);
    }
    Ok(apps)
}

/// A temporary file removed when dropped.
struct Spool(PathBuf);

impl Spool {
    fn new() -> Result<Spool> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Ok(Spool(
            std::env::temp_dir().join(format!("nexy-inspect-{}-{n}", std::process::id())),
        ))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn attrs(e: &quick_xml::events::BytesStart<'_>) -> BTreeMap<String, String> {
    e.attributes()
        .flatten()
        .map(|a| {
            let v = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map(|v| v.into_owned())
                .unwrap_or_else(|_| a.value.clone().into_owned());
            (a.key.as_ref().to_string(), v)
        })
        .collect()
}

/// `<pkg-info identifier version install-location>` and its `<bundle>`s.
pub fn parse_package_info(xml: &[u8]) -> Result<Package> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut package = Package::default();
    let mut root_seen = false;
    // Only <bundle> children of <pkg-info> declare bundles; the ones in
    // <bundle-version> and friends only refer to them.
    let mut depth = 0usize;
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .context("PackageInfo is not well-formed XML")?;
        let at = depth;
        match &event {
            Event::Start(_) => depth += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            _ => {}
        }
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let a = attrs(&e);
                match e.name().as_ref() {
                    "pkg-info" => {
                        root_seen = true;
                        package.identifier = a.get("identifier").cloned();
                        package.version = a.get("version").cloned();
                        package.install_location = a.get("install-location").cloned();
                    }
                    "bundle" if at == 1 => package.bundles.push(DeclaredBundle {
                        id: a.get("id").cloned(),
                        short_version: a.get("CFBundleShortVersionString").cloned(),
                        version: a.get("CFBundleVersion").cloned(),
                    }),
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !root_seen {
        bail!("PackageInfo has no <pkg-info> element");
    }
    Ok(package)
}

/// The `<product id version>` and `<title>` of a Distribution.
pub fn parse_distribution(xml: &[u8]) -> Result<Product> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut product = Product::default();
    let mut root: Option<String> = None;
    let mut in_title = false;
    loop {
        match reader
            .read_event_into(&mut buf)
            .context("Distribution is not well-formed XML")?
        {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.name().as_ref().to_string();
                if root.is_none() {
                    root = Some(name.clone());
                }
                in_title = name == "title";
                if name == "product" {
                    let a = attrs(&e);
                    product.id = a.get("id").cloned();
                    product.version = a.get("version").cloned();
                }
            }
            Event::Text(t) if in_title => {
                product.title = Some(t.xml10_content().trim().to_string());
                in_title = false;
            }
            Event::End(_) => in_title = false,
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    match root.as_deref() {
        Some("installer-gui-script" | "installer-script") => Ok(product),
        other => bail!("Distribution's root element is {other:?}, not installer-gui-script"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_info_and_distribution() {
        let p = parse_package_info(br#"<?xml version="1.0"?>
<pkg-info format-version="2" identifier="com.nexy.pkg" version="2.0.0.4" install-location="/Applications">
  <payload numberOfFiles="3" installKBytes="40"/>
  <bundle id="com.nexy.assistant" CFBundleShortVersionString="2.0.0.4" CFBundleVersion="2.0.0.4" path="./Nexy.app"/>
  <bundle-version><bundle id="com.nexy.assistant"/></bundle-version>
</pkg-info>"#).unwrap();
        assert_eq!(p.bundles.len(), 1);
        assert_eq!(p.identifier.as_deref(), Some("com.nexy.pkg"));
        assert_eq!(p.version.as_deref(), Some("2.0.0.4"));
        assert_eq!(p.bundles[0].id.as_deref(), Some("com.nexy.assistant"));
        let d = parse_distribution(br#"<installer-gui-script minSpecVersion="2"><title>Nexy</title><product id="com.nexy" version="2.0.0.4"/></installer-gui-script>"#).unwrap();
        assert_eq!(
            (d.id.as_deref(), d.version.as_deref(), d.title.as_deref()),
            (Some("com.nexy"), Some("2.0.0.4"), Some("Nexy"))
        );
        assert!(parse_distribution(b"<html/>").is_err());
    }

    #[test]
    fn only_the_outermost_app_counts() {
        assert_eq!(
            app_split("./Nexy.app/Contents/Info.plist").unwrap(),
            ("Nexy.app".to_string(), vec!["Contents", "Info.plist"])
        );
        let (root, rest) =
            app_split("./Nexy.app/Contents/Helpers/H.app/Contents/Info.plist").unwrap();
        assert_eq!(root, "Nexy.app");
        assert_ne!(rest, ["Contents", "Info.plist"]);
        assert!(app_split("./usr/bin/x").is_none());
    }
}
