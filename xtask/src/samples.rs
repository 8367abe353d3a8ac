//! `cargo xtask samples`, and the sample artifacts of `rehearse`, `bench`
//! and the tests: a real DMG (GPT, a journaled HFS+ volume holding
//! `Nexy.app` with a universal2 Mach-O) and a real PKG (a xar product
//! archive whose gzip odc payload holds the same app), both carrying the
//! requested version and bundle id, of the requested sizes.
//!
//! The DMG comes from a template made once by fstool
//! (`fixtures/macos/make.sh`) and built into the binary: its Info.plist
//! holds fixed-length markers, overwritten in place so the volume keeps
//! its shape; the disk is then grown with incompressible filler in the
//! free space after the HFS+ partition (the backup GPT moves to the new
//! end) and written as UDIF by our writer. The PKG is written from the
//! same app files.

use std::{
    fs,
    io::{BufWriter, Cursor, Read},
    path::Path,
};

use anyhow::{bail, ensure, Context, Result};

use crate::macos::{
    partition,
    udif::{Disk, SECTOR},
    udif_write::{self, Region, Source},
    write::{self as w, XarData, XarFile},
    Slice,
};

const TEMPLATE: &[u8] = include_bytes!("../fixtures/macos/template.dmg");

/// What the samples' app says.
#[derive(Debug, Clone)]
pub struct Spec {
    pub bundle_id: String,
    pub short_version: String,
    pub version: String,
    /// LSMinimumSystemVersion.
    pub min_os: String,
    pub seed: u64,
}

impl crate::cli::Samples {
    pub fn run(self, ws: Option<&crate::config::Workspace>) -> Result<()> {
        let mut spec = spec_for(
            ws,
            self.version.as_deref(),
            self.bundle_id.as_deref(),
            self.seed,
        )?;
        spec.min_os = self.min_os;
        fs::create_dir_all(&self.out)
            .with_context(|| format!("cannot create {}", self.out.display()))?;
        let (dmg, pkg) = write_both(&self.out, self.dmg_size, self.pkg_size, &spec)?;
        println!(
            "wrote {} and {} (Nexy.app {}, CFBundleShortVersionString {}, CFBundleVersion {})",
            dmg.display(),
            pkg.display(),
            spec.bundle_id,
            spec.short_version,
            spec.version
        );
        Ok(())
    }
}

/// The spec from the flags, else from the workspace (VERSION mapped as
/// release.toml's `[app]` says).
pub fn spec_for(
    ws: Option<&crate::config::Workspace>,
    version: Option<&str>,
    bundle_id: Option<&str>,
    seed: u64,
) -> Result<Spec> {
    let app = ws.map(|ws| ws.config.app.clone()).unwrap_or_default();
    let version = match (version, ws) {
        (Some(v), _) => v.to_string(),
        (None, Some(ws)) => {
            let text = crate::changes::read_text(&ws.root, &ws.config.version_file)?;
            crate::version::parse_version_file(&text)
                .map_err(|why| anyhow::anyhow!("{} is unreadable ({why})", ws.config.version_file))?
                .to_string()
        }
        (None, None) => bail!("outside a workspace, give the app's version with --version X.Y.Z.W"),
    };
    let parsed: crate::version::Version = version
        .parse()
        .map_err(|e| anyhow::anyhow!("--version {version}: {e}"))?;
    Ok(Spec {
        bundle_id: bundle_id.map_or(app.bundle_id.clone(), str::to_string),
        short_version: app.short_version_for(&parsed),
        version: app.build_version_for(&parsed),
        min_os: "11.0".to_string(),
        seed,
    })
}

/// Writes `Nexy.dmg` and `Nexy.pkg` into `dir`.
pub fn write_both(
    dir: &Path,
    dmg_size: u64,
    pkg_size: u64,
    spec: &Spec,
) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let t = Template::patched(spec)?;
    let dmg = dir.join(crate::artifact::Kind::Dmg.file_name());
    let pkg = dir.join(crate::artifact::Kind::Pkg.file_name());
    t.write_dmg(&dmg, dmg_size, spec.seed)?;
    t.write_pkg(&pkg, pkg_size, spec)?;
    Ok((dmg, pkg))
}

/// The template's decoded disk with the spec written into its Info.plist.
struct Template {
    disk: Vec<u8>,
    names: Vec<String>,
    plst: Vec<u8>,
    part: partition::Part,
    info_plist: Vec<u8>,
    exe: Vec<u8>,
}

/// Overwrites `<string>MARKER___</string>` (exactly one) with the value
/// and spaces, keeping the length.
fn patch(disk: &mut [u8], marker: &str, width: usize, value: &str) -> Result<()> {
    let field = format!(
        "<string>{marker}{}</string>",
        "_".repeat(width - marker.len())
    );
    let at: Vec<usize> = disk
        .windows(field.len())
        .enumerate()
        .filter(|(_, w)| *w == field.as_bytes())
        .map(|(i, _)| i)
        .collect();
    ensure!(at.len() == 1, "the samples template holds {} copies of {field}, expected 1: rebuild it with fixtures/macos/make.sh", at.len());
    ensure!(
        value.len() <= width
            && value
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"<>&".contains(&b)),
        "`{value}` does not fit the template's {width}-character field (plain ASCII without <>&)"
    );
    let mut new = format!("<string>{value}</string>");
    new.push_str(&" ".repeat(field.len() - new.len()));
    disk[at[0]..at[0] + field.len()].copy_from_slice(new.as_bytes());
    Ok(())
}

impl Template {
    fn patched(spec: &Spec) -> Result<Template> {
        let mut disk = Disk::from_reader(Cursor::new(TEMPLATE), TEMPLATE.len() as u64)
            .context("the built-in samples template is not a DMG")?;
        let names: Vec<String> = disk.tables.iter().map(|t| t.name.clone()).collect();
        let plst = plst_of(&disk.resources)?;
        let mut bytes = Vec::with_capacity(disk.size as usize);
        disk.read_to_end(&mut bytes)?;
        patch(&mut bytes, "NEXY_BUNDLE_ID", 64, &spec.bundle_id)?;
        patch(&mut bytes, "NEXY_SHORT_VERSION", 32, &spec.short_version)?;
        patch(&mut bytes, "NEXY_VERSION", 32, &spec.version)?;
        patch(&mut bytes, "NEXY_MIN_OS", 16, &spec.min_os)?;
        let size = bytes.len() as u64;
        let (table, parts) = partition::find(&mut Cursor::new(&bytes), size)?;
        ensure!(
            table == "GPT" && parts.len() == 1 && names.len() == 8,
            "the samples template is not one HFS+ partition in a GPT disk of 8 regions"
        );
        let part = parts[0].clone();
        let mut vol =
            hfsplus::HfsVolume::open(Slice::new(Cursor::new(&bytes), part.start, part.len))
                .map_err(|e| anyhow::anyhow!("the samples template's volume: {e}"))?;
        let read = |vol: &mut hfsplus::HfsVolume<_>, p: &str| {
            vol.read_file(p)
                .map_err(|e| anyhow::anyhow!("the samples template has no {p}: {e}"))
        };
        let info_plist = read(&mut vol, "/Nexy.app/Contents/Info.plist")?;
        let exe = read(&mut vol, "/Nexy.app/Contents/MacOS/Nexy")?;
        Ok(Template {
            disk: bytes,
            names,
            plst,
            part,
            info_plist,
            exe,
        })
    }

    /// The regions of the grown disk: the template up to the end of the
    /// HFS+ partition, `free` sectors of filler, a new backup GPT.
    fn regions<'a>(&'a self, gpt: &'a Gpt, free: u64, seed: u64) -> Vec<Region<'a>> {
        let s = SECTOR as usize;
        let part_start = (self.part.start / SECTOR) as usize;
        let part_end = ((self.part.start + self.part.len) / SECTOR) as usize;
        let sources = [
            Source::Bytes(&gpt.mbr),
            Source::Bytes(&gpt.primary),
            Source::Bytes(&self.disk[2 * s..34 * s]),
            Source::Bytes(&self.disk[34 * s..part_start * s]),
            Source::Bytes(&self.disk[part_start * s..part_end * s]),
            Source::Random {
                sectors: free,
                seed,
            },
            Source::Bytes(&self.disk[2 * s..34 * s]),
            Source::Bytes(&gpt.backup),
        ];
        self.names
            .iter()
            .zip(sources)
            .map(|(n, source)| Region {
                name: n.clone(),
                source,
            })
            .collect()
    }

    fn write_dmg(&self, path: &Path, size: u64, seed: u64) -> Result<()> {
        let part_end = (self.part.start + self.part.len) / SECTOR;
        // The file's size for `free` sectors of filler; aim, then pad the
        // plist with the remainder (under one sector).
        let total = |free: u64| -> Result<(u64, Gpt)> {
            let gpt = Gpt::grown(&self.disk, part_end + free + 33)?;
            let regions = self.regions(&gpt, free, seed);
            let len = udif_write::fork_len(&regions)?
                + udif_write::plist_len(&regions, &self.plst)? as u64
                + 512;
            Ok((len, gpt))
        };
        let (base, _) = total(0)?;
        ensure!(
            size >= base,
            "a sample DMG cannot be smaller than {base} bytes (asked for {size})"
        );
        let mut free = (size - base) / SECTOR;
        let (mut len, mut gpt) = total(free)?;
        for _ in 0..8 {
            if len <= size && size - len < SECTOR {
                break;
            }
            free = if len > size {
                free - (len - size).div_ceil(SECTOR)
            } else {
                free + (size - len) / SECTOR
            };
            (len, gpt) = total(free)?;
        }
        ensure!(
            len <= size && size - len < SECTOR,
            "cannot reach a DMG of exactly {size} bytes"
        );
        let file =
            fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let opts = udif_write::Options {
            plist_padding: (size - len) as usize,
            ..Default::default()
        };
        let written =
            udif_write::write(&mut out, &self.regions(&gpt, free, seed), &self.plst, opts)
                .with_context(|| format!("cannot write {}", path.display()))?;
        ensure!(written == size, "wrote {written} bytes, not {size}");
        Ok(())
    }

    fn write_pkg(&self, path: &Path, size: u64, spec: &Spec) -> Result<()> {
        let mut cpio = Vec::new();
        for (name, mode, data) in [
            (".", 0o040755, &b""[..]),
            ("./Nexy.app", 0o040755, b""),
            ("./Nexy.app/Contents", 0o040755, b""),
            ("./Nexy.app/Contents/Info.plist", 0o100644, &self.info_plist),
            ("./Nexy.app/Contents/MacOS", 0o040755, b""),
            ("./Nexy.app/Contents/MacOS/Nexy", 0o100755, &self.exe),
            ("./Nexy.app/Contents/PkgInfo", 0o100644, b"APPL????"),
        ] {
            w::odc_entry(&mut cpio, name, mode, data)?;
        }
        w::odc_trailer(&mut cpio)?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &cpio)?;
        let payload = gz.finish()?;
        let kb = cpio.len().div_ceil(1024);
        let (id, short, v) = (&spec.bundle_id, &spec.short_version, &spec.version);
        let package_info = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<pkg-info overwrite-permissions=\"true\" relocatable=\"false\" identifier=\"{id}.pkg\" postinstall-action=\"none\" version=\"{v}\" format-version=\"2\" install-location=\"/Applications\" auth=\"root\">\n    <payload numberOfFiles=\"7\" installKBytes=\"{kb}\"/>\n    <bundle path=\"./Nexy.app\" id=\"{id}\" CFBundleShortVersionString=\"{short}\" CFBundleVersion=\"{v}\"/>\n</pkg-info>\n"
        );
        let distribution = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<installer-gui-script minSpecVersion=\"2\">\n    <title>Nexy</title>\n    <product id=\"{id}\" version=\"{v}\"/>\n    <options customize=\"never\" require-scripts=\"false\" hostArchitectures=\"x86_64,arm64\"/>\n    <choices-outline><line choice=\"default\"><line choice=\"{id}.pkg\"/></line></choices-outline>\n    <choice id=\"default\"/>\n    <choice id=\"{id}.pkg\" visible=\"false\"><pkg-ref id=\"{id}.pkg\"/></choice>\n    <pkg-ref id=\"{id}.pkg\" version=\"{v}\" onConclusion=\"none\" installKBytes=\"{kb}\">#Nexy.pkg</pkg-ref>\n</installer-gui-script>\n"
        );
        let files = |filler: u64| {
            vec![
                XarFile {
                    path: "Distribution",
                    mode: 0o644,
                    data: XarData::Zlib(distribution.as_bytes()),
                },
                XarFile {
                    path: "Nexy.pkg/PackageInfo",
                    mode: 0o644,
                    data: XarData::Zlib(package_info.as_bytes()),
                },
                XarFile {
                    path: "Nexy.pkg/Payload",
                    mode: 0o644,
                    data: XarData::Raw(&payload),
                },
                // Brings the sample to the requested size; not part of the app.
                XarFile {
                    path: "Resources/sample-filler.bin",
                    mode: 0o644,
                    data: XarData::Random {
                        len: filler,
                        seed: spec.seed.wrapping_add(1),
                    },
                },
            ]
        };
        let base = w::xar_len(&files(0), 0)?;
        ensure!(
            size >= base,
            "a sample PKG cannot be smaller than {base} bytes (asked for {size})"
        );
        // The compressed TOC's length moves by a byte or two with the
        // filler's length digits, and skips some lengths: search around
        // the first guess, with a little whitespace in the TOC as a
        // second knob.
        let guess = size - base;
        let mut found = None;
        'search: for delta in 0..64u64 {
            for f in [guess.checked_sub(delta), guess.checked_add(delta)]
                .into_iter()
                .flatten()
            {
                for pad in 0..16 {
                    if w::xar_len(&files(f), pad)? == size {
                        found = Some((f, pad));
                        break 'search;
                    }
                }
            }
        }
        let (filler, pad) =
            found.with_context(|| format!("cannot reach a PKG of exactly {size} bytes"))?;
        let file =
            fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let written = w::write_xar(&mut out, &files(filler), pad)
            .with_context(|| format!("cannot write {}", path.display()))?;
        ensure!(
            written == size,
            "cannot reach a PKG of exactly {size} bytes (wrote {written})"
        );
        Ok(())
    }
}

/// The template's `plst` resource, carried over as hdiutil does.
fn plst_of(xml: &[u8]) -> Result<Vec<u8>> {
    let v = plist::Value::from_reader_xml(xml)?;
    Ok(v.as_dictionary()
        .and_then(|d| d.get("resource-fork"))
        .and_then(|v| v.as_dictionary())
        .and_then(|d| d.get("plst"))
        .and_then(|v| v.as_array())
        .and_then(|a| a.first())
        .and_then(|v| v.as_dictionary())
        .and_then(|d| d.get("Data"))
        .and_then(|v| v.as_data())
        .map(<[u8]>::to_vec)
        .unwrap_or_default())
}

/// The GPT sectors that change when the disk grows to `sectors`.
struct Gpt {
    mbr: Vec<u8>,
    primary: Vec<u8>,
    backup: Vec<u8>,
}

impl Gpt {
    fn grown(disk: &[u8], sectors: u64) -> Result<Gpt> {
        let s = SECTOR as usize;
        let mut mbr = disk[..s].to_vec();
        mbr[446 + 12..446 + 16]
            .copy_from_slice(&u32::try_from(sectors - 1).unwrap_or(u32::MAX).to_le_bytes());
        let mut primary = disk[s..2 * s].to_vec();
        ensure!(
            &primary[..8] == b"EFI PART",
            "the samples template has no GPT header"
        );
        primary[32..40].copy_from_slice(&(sectors - 1).to_le_bytes());
        primary[48..56].copy_from_slice(&(sectors - 34).to_le_bytes());
        let mut backup = primary.clone();
        backup[24..32].copy_from_slice(&(sectors - 1).to_le_bytes());
        backup[32..40].copy_from_slice(&1u64.to_le_bytes());
        backup[72..80].copy_from_slice(&(sectors - 33).to_le_bytes());
        for h in [&mut primary, &mut backup] {
            let size = u32::from_le_bytes(h[12..16].try_into().expect("4")) as usize;
            h[16..20].fill(0);
            let mut crc = flate2::Crc::new();
            crc.update(&h[..size]);
            h[16..20].copy_from_slice(&crc.sum().to_le_bytes());
        }
        Ok(Gpt {
            mbr,
            primary,
            backup,
        })
    }
}
