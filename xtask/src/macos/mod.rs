//! What is inside a macOS release artifact: the app bundles a DMG or a PKG
//! holds, with the versions, bundle id, minimum macOS, architectures and
//! code signature of each, read without a Mac.
//!
//! The one entry point is [`inspect`]. It streams: a DMG is read through a
//! seekable index of its UDIF chunks that decodes only the chunks the
//! filesystem reader asks for, and a PKG's payload is read once, front to
//! back, keeping only the files that describe an app. Memory stays bounded
//! by the largest chunk, never by the size of the image.
//!
//! The UDIF, partition-table, xar, pbzx and odc cpio readers are our own
//! because the crates for them cannot seek into a compressed image or are
//! wrong on real files (see the reference `macos-artifacts.md`); HFS+ and
//! APFS volumes are read by the `hfsplus` and `apfs` crates, Info.plist by
//! `plist` and Mach-O headers by `object`.

pub mod bundle;
pub mod cpio;
pub mod dmg;
pub mod partition;
pub mod pkg;
pub mod udif;
pub mod udif_write;
pub mod write;
pub mod xar;

use std::{
    fs,
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// Everything the reader found in one file.
#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    pub path: PathBuf,
    /// `dmg` or `pkg`.
    pub format: &'static str,
    /// How the image is laid out, for people: codecs, partition table,
    /// filesystem; or the kind of PKG.
    pub layout: String,
    /// The UDIF code signature or the xar signature is present.
    pub signed: bool,
    pub apps: Vec<App>,
    /// A PKG's components (PackageInfo), empty for a DMG.
    pub packages: Vec<Package>,
    /// A product archive's `<product>` (Distribution), when it has one.
    pub product: Option<Product>,
}

/// One app bundle, as its own Info.plist and executable say.
#[derive(Debug, Clone, Default, Serialize)]
pub struct App {
    /// Where the bundle sits in the artifact (`Nexy.app`, or
    /// `Nexy.pkg/Payload/Nexy.app` in a PKG).
    pub path: String,
    pub bundle_id: Option<String>,
    pub short_version: Option<String>,
    pub version: Option<String>,
    pub min_os: Option<String>,
    pub executable: Option<Executable>,
}

/// The main executable of a bundle (`CFBundleExecutable`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Executable {
    pub name: String,
    /// Architecture names (`x86_64`, `arm64`, `arm64e`, ...), in file order.
    pub archs: Vec<String>,
    /// Every slice carries an `LC_CODE_SIGNATURE`.
    pub signed: bool,
    /// Signed, but only ad hoc (no certificate, so no Team ID): what a
    /// linker writes for arm64, and what Gatekeeper does not accept.
    pub adhoc: bool,
    /// The Team ID of the signature's CodeDirectory, when signed with one.
    pub team_id: Option<String>,
    /// The signing identifier of the CodeDirectory.
    pub identifier: Option<String>,
    /// Why the executable could not be read, when it could not.
    pub problem: Option<String>,
}

impl Executable {
    /// `universal2` for x86_64 + arm64, else the names joined with `+`.
    pub fn arch_label(&self) -> String {
        let mut names: Vec<&str> = self.archs.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        if names == ["arm64", "x86_64"] {
            "universal2".to_string()
        } else {
            names.join("+")
        }
    }
}

/// A component package of a PKG (its PackageInfo).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Package {
    /// Where the component sits in the xar (`Nexy.pkg`, or `` for a
    /// component archive).
    pub path: String,
    pub identifier: Option<String>,
    pub version: Option<String>,
    pub install_location: Option<String>,
    /// The `<bundle>` entries PackageInfo declares (id, short version,
    /// version): declarations only, the payload's Info.plist is the truth.
    pub bundles: Vec<DeclaredBundle>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DeclaredBundle {
    pub id: Option<String>,
    pub short_version: Option<String>,
    pub version: Option<String>,
}

/// A product archive's Distribution.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Product {
    pub id: Option<String>,
    pub version: Option<String>,
    pub title: Option<String>,
}

/// Reads `path` and says what it is and which apps it holds. The format is
/// judged by the bytes, not by the file name; anything that is neither a
/// readable DMG nor a PKG is refused with what the file looks like.
pub fn inspect(path: &Path) -> Result<Artifact> {
    let shown = path.display();
    let mut file = fs::File::open(path).with_context(|| format!("cannot open {shown}"))?;
    let len = file
        .metadata()
        .with_context(|| format!("cannot read {shown}"))?
        .len();
    let mut head = [0u8; 8];
    let n = read_up_to(&mut file, &mut head)?;
    let head = &head[..n];
    if head.starts_with(b"xar!") {
        return pkg::inspect(path, file).with_context(|| format!("{shown} is a xar archive (PKG)"));
    }
    if head.starts_with(b"encrcdsa") {
        bail!("{shown} is an encrypted disk image (encrcdsa); publish an unencrypted DMG: `hdiutil convert -format UDZO` without -encryption");
    }
    let mut tail = [0u8; 512];
    if len >= 512 {
        file.seek(SeekFrom::End(-512))?;
        file.read_exact(&mut tail)
            .with_context(|| format!("cannot read {shown}"))?;
    }
    if &tail[..4] == b"koly" {
        return dmg::inspect(path, file, len)
            .with_context(|| format!("{shown} is a UDIF disk image (DMG)"));
    }
    if tail.ends_with(b"cdsaencr") {
        bail!("{shown} is an encrypted disk image (cdsaencr, version 1); publish an unencrypted DMG made with `hdiutil convert -format UDZO`");
    }
    let what = if head.starts_with(b"sprs") {
        "a sparse disk image (UDSP, no koly trailer)".to_string()
    } else if len == 0 {
        "empty".to_string()
    } else if head.starts_with(&[0x1f, 0x8b]) {
        "gzip data, not a disk image".to_string()
    } else if head.starts_with(b"PK") {
        "a zip archive".to_string()
    } else {
        format!(
            "neither a UDIF image (no koly trailer: a read-write or sparse image, or truncated) nor a xar PKG (starts with {})",
            hex(head)
        )
    };
    bail!("{shown} is {what}; build the release with `hdiutil create -format UDZO` (DMG) or productbuild (PKG)")
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A window `[start, start + len)` of a seekable stream, seekable itself:
/// a partition of a disk, or an entry of a file.
pub struct Slice<R> {
    inner: R,
    start: u64,
    len: u64,
    pos: u64,
}

impl<R: Read + Seek> Slice<R> {
    pub fn new(inner: R, start: u64, len: u64) -> Slice<R> {
        Slice {
            inner,
            start,
            len,
            pos: 0,
        }
    }
}

impl<R: Read + Seek> Read for Slice<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.len {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.len - self.pos) as usize;
        self.inner.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.inner.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for Slice<R> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = seek_in(self.pos, self.len, to)?;
        Ok(self.pos)
    }
}

/// The position a seek from `pos` in a stream of `len` bytes lands on.
pub fn seek_in(pos: u64, len: u64, to: SeekFrom) -> std::io::Result<u64> {
    let next = match to {
        SeekFrom::Start(n) => Some(n),
        SeekFrom::End(d) => len.checked_add_signed(d),
        SeekFrom::Current(d) => pos.checked_add_signed(d),
    };
    next.ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
    })
}
