//! The macOS artifact reader on images made by other tools (fstool's UDIF
//! writer over an HFS+ or APFS disk, bsdtar's xar, GNU cpio, gzip,
//! Python's xz), each cross-checked against 7-Zip: what `inspect` reports
//! must be what 7-Zip lists and extracts. The fixtures and the script that
//! made them are in `xtask/fixtures/macos/`.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/macos")
        .join(name)
}

/// 7-Zip's `7zz`, or a failure that says how to get it.
fn sevenzip() -> &'static str {
    let found = Command::new("7zz")
        .arg("i")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "7zz is missing: these tests cross-check the reader against 7-Zip; install it with `apt-get install 7zip` (Debian 12+) and run them again"
    );
    "7zz"
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `xtask inspect --json FILE`: the document of the one file.
fn inspect(path: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["inspect", "--json"])
        .arg(path)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    doc["files"][0].clone()
}

fn inspect_err(path: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("inspect")
        .arg(path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The paths 7-Zip lists in an archive (`7zz l -slt`).
fn seven_list(path: &Path) -> Vec<String> {
    let out = run(Command::new(sevenzip()).args(["l", "-slt"]).arg(path));
    String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| l.strip_prefix("Path = "))
        .map(str::to_string)
        .collect()
}

fn seven_extract(path: &Path, member: &str) -> Vec<u8> {
    run(Command::new(sevenzip())
        .args(["x", "-so"])
        .arg(path)
        .arg(member))
}

fn plist_string(bytes: &[u8], key: &str) -> String {
    let v = plist::Value::from_reader(std::io::Cursor::new(bytes)).unwrap();
    v.as_dictionary().unwrap()[key]
        .as_string()
        .unwrap()
        .to_string()
}

/// The app `inspect` found agrees with the Info.plist 7-Zip extracted.
fn agree(app: &Value, info_plist: &[u8]) {
    for (ours, key) in [
        ("bundle_id", "CFBundleIdentifier"),
        ("short_version", "CFBundleShortVersionString"),
        ("version", "CFBundleVersion"),
        ("min_os", "LSMinimumSystemVersion"),
    ] {
        assert_eq!(
            app[ours].as_str().unwrap(),
            plist_string(info_plist, key),
            "{ours}"
        );
    }
}

const DMGS: [(&str, &str); 6] = [
    ("hfs-gpt-udzo.dmg", "zlib"),
    ("hfs-gpt-ulfo.dmg", "LZFSE"),
    ("hfs-gpt-udbz.dmg", "bzip2"),
    ("hfs-gpt-ulmo.dmg", "LZMA"),
    ("hfs-gpt-udco.dmg", "ADC"),
    ("hfs-whole-udzo.dmg", "zlib"),
];

#[test]
fn dmgs_of_every_codec_and_layout_agree_with_7zip() {
    for (name, codec) in DMGS {
        let path = fixture(name);
        let doc = inspect(&path);
        assert_eq!(doc["ok"], true, "{name}: {doc}");
        let a = &doc["artifact"];
        let layout = a["layout"].as_str().unwrap();
        assert!(layout.contains(codec), "{name}: {layout}");
        let want_table = if name.contains("whole") {
            "whole disk"
        } else {
            "GPT"
        };
        assert!(
            layout.contains(&format!("{want_table}: HFS+")),
            "{name}: {layout}"
        );
        let apps = a["apps"].as_array().unwrap();
        assert_eq!(apps.len(), 1, "{name}: {a}");
        let app = &apps[0];
        assert_eq!(app["path"], "Nexy.app");
        assert_eq!(app["version"], "1.2.3.45");
        assert_eq!(
            app["executable"]["archs"],
            serde_json::json!(["x86_64", "arm64"])
        );
        // The stub's arm64 slice carries the linker's ad-hoc signature and
        // the x86_64 slice none: the executable as a whole is unsigned.
        assert_eq!(app["executable"]["signed"], false);
        assert_eq!(a["signed"], false);

        let listed = seven_list(&path);
        let member = listed
            .iter()
            .find(|p| p.ends_with("Nexy.app/Contents/Info.plist"))
            .unwrap_or_else(|| panic!("{name}: 7-Zip lists no Info.plist: {listed:?}"));
        assert!(
            listed
                .iter()
                .any(|p| p.ends_with("Nexy.app/Contents/MacOS/Nexy")),
            "{name}: {listed:?}"
        );
        agree(app, &seven_extract(&path, member));
    }
}

#[test]
fn apfs_volume_is_found() {
    // fstool's APFS container holds Nexy.app (7-Zip lists it) under plain
    // directory keys; the apfs crate reads only the hashed keys macOS
    // writes, so it finds the volume and lists no app: what this image
    // can test is that the container and volume are found and read.
    let path = fixture("apfs-whole-ulfo.dmg");
    let doc = inspect(&path);
    assert_eq!(doc["ok"], true, "{doc}");
    let layout = doc["artifact"]["layout"].as_str().unwrap();
    assert!(
        layout.contains("whole disk: APFS in whole disk (no app in it)"),
        "{layout}"
    );
    let listed = seven_list(&path);
    assert!(
        listed
            .iter()
            .any(|p| p.ends_with("Nexy.app/Contents/Info.plist")),
        "{listed:?}"
    );
}

/// The payload's Info.plist, unpacked by other tools: 7-Zip for gzip,
/// Python's lzma and GNU cpio for pbzx (7-Zip has no pbzx).
fn payload_info_plist(pkg: &Path, dir: &Path) -> Vec<u8> {
    let payload = seven_extract(pkg, "Nexy.pkg/Payload");
    let cpio = if payload.starts_with(&[0x1f, 0x8b]) {
        std::fs::write(dir.join("Payload.gz"), &payload).unwrap();
        run(Command::new(sevenzip())
            .args(["x", "-so"])
            .arg(dir.join("Payload.gz")))
    } else {
        assert!(payload.starts_with(b"pbzx"));
        std::fs::write(dir.join("Payload.pbzx"), &payload).unwrap();
        let py = "import lzma,struct,sys\nd=open(sys.argv[1],'rb').read();i=12;o=b''\nwhile i<len(d):\n n=struct.unpack('>Q',d[i+8:i+16])[0];c=d[i+16:i+16+n];i+=16+n\n o+=lzma.decompress(c) if c[:6]==b'\\xfd7zXZ\\x00' else c\nsys.stdout.buffer.write(o)";
        run(Command::new("python3")
            .args(["-c", py])
            .arg(dir.join("Payload.pbzx")))
    };
    std::fs::write(dir.join("payload.cpio"), &cpio).unwrap();
    // Apple's payloads name members `./Nexy.app/...`, GNU cpio's
    // `Nexy.app/...`: take the name 7-Zip lists.
    let listed = seven_list(&dir.join("payload.cpio"));
    assert!(
        listed
            .iter()
            .any(|p| p.ends_with("Nexy.app/Contents/MacOS/Nexy")),
        "{listed:?}"
    );
    let member = listed
        .iter()
        .find(|p| p.ends_with("Nexy.app/Contents/Info.plist"))
        .unwrap_or_else(|| panic!("7-Zip lists no Info.plist in the payload: {listed:?}"));
    seven_extract(&dir.join("payload.cpio"), member)
}

#[test]
fn pkgs_with_gzip_and_pbzx_payloads_agree_with_7zip() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["product-gzip.pkg", "product-pbzx.pkg"] {
        let path = fixture(name);
        let doc = inspect(&path);
        assert_eq!(doc["ok"], true, "{name}: {doc}");
        let a = &doc["artifact"];
        assert_eq!(a["format"], "pkg");
        let listed = seven_list(&path);
        for member in ["Distribution", "Nexy.pkg/PackageInfo", "Nexy.pkg/Payload"] {
            assert!(listed.iter().any(|p| p == member), "{name}: {listed:?}");
        }
        let info = String::from_utf8(seven_extract(&path, "Nexy.pkg/PackageInfo")).unwrap();
        let pkg = &a["packages"][0];
        assert!(
            info.contains(&format!(
                "identifier=\"{}\"",
                pkg["identifier"].as_str().unwrap()
            )),
            "{info}"
        );
        assert!(
            info.contains(&format!("version=\"{}\"", pkg["version"].as_str().unwrap())),
            "{info}"
        );
        let dist = String::from_utf8(seven_extract(&path, "Distribution")).unwrap();
        assert!(dist.contains(&format!(
            "version=\"{}\"",
            a["product"]["version"].as_str().unwrap()
        )));
        let apps = a["apps"].as_array().unwrap();
        assert_eq!(apps.len(), 1, "{name}: {a}");
        assert_eq!(apps[0]["path"], "Nexy.pkg/Payload/Nexy.app");
        assert_eq!(
            apps[0]["executable"]["archs"],
            serde_json::json!(["x86_64", "arm64"])
        );
        agree(&apps[0], &payload_info_plist(&path, dir.path()));
    }
}

#[test]
fn encrypted_sparse_truncated_and_corrupt_images_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("hfs-gpt-udzo.dmg")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "enc.dmg",
            [b"encrcdsa".as_slice(), &[0u8; 4096]].concat(),
            "encrypted disk image (encrcdsa)",
        ),
        (
            "old-enc.dmg",
            [&[0u8; 4096][..], b"cdsaencr"].concat(),
            "encrypted disk image (cdsaencr",
        ),
        (
            "sparse.dmg",
            [b"sprs".as_slice(), &[0u8; 4096]].concat(),
            "sparse disk image",
        ),
        (
            "cut.dmg",
            good[..good.len() / 2].to_vec(),
            "no koly trailer",
        ),
        ("empty.pkg", Vec::new(), "is empty"),
    ];
    for (name, bytes, want) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let err = inspect_err(&p);
        assert!(err.contains(want), "{name}: {err}");
        assert!(
            err.contains(name),
            "{name}: the error names the file: {err}"
        );
    }
    // A corrupt zlib chunk: every chunk is stored compressed, so flipping
    // bytes in the middle of the data fork breaks one the reader needs.
    let mut bad = good.clone();
    for b in &mut bad[2000..2400] {
        *b ^= 0x5a;
    }
    let p = dir.path().join("flipped.dmg");
    std::fs::write(&p, &bad).unwrap();
    let err = inspect_err(&p);
    assert!(
        err.contains("UDIF disk image (DMG)") && err.contains("zlib chunk at sector"),
        "{err}"
    );
    // A PKG cut short.
    let pkg = std::fs::read(fixture("product-gzip.pkg")).unwrap();
    let p = dir.path().join("cut.pkg");
    std::fs::write(&p, &pkg[..pkg.len() - 700]).unwrap();
    let err = inspect_err(&p);
    assert!(
        err.contains("xar archive (PKG)") && err.contains("truncated"),
        "{err}"
    );
}

/// A GPT header's CRC32 (over its own size, the CRC field zeroed).
fn gpt_header_ok(h: &[u8]) -> bool {
    let size = u32::from_le_bytes(h[12..16].try_into().unwrap()) as usize;
    let mut copy = h[..size].to_vec();
    copy[16..20].fill(0);
    let mut crc = flate2::Crc::new();
    crc.update(&copy);
    &h[..8] == b"EFI PART" && crc.sum().to_le_bytes() == h[16..20]
}

#[test]
fn samples_are_real_images_that_7zip_and_dmg2img_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "samples",
            "--version",
            "2.0.0.7",
            "--bundle-id",
            "com.nexy.assistant",
        ])
        .args(["--dmg-size", "3000001", "--pkg-size", "1500003", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let dmg = dir.path().join("Nexy.dmg");
    let pkg = dir.path().join("Nexy.pkg");
    assert_eq!(std::fs::metadata(&dmg).unwrap().len(), 3_000_001);
    assert_eq!(std::fs::metadata(&pkg).unwrap().len(), 1_500_003);
    for path in [&dmg, &pkg] {
        let test = run(Command::new(sevenzip()).arg("t").arg(path));
        assert!(
            String::from_utf8_lossy(&test).contains("Everything is Ok"),
            "{path:?}"
        );
    }
    let d = inspect(&dmg);
    let app = &d["artifact"]["apps"][0];
    assert_eq!(
        (app["version"].as_str(), app["short_version"].as_str()),
        (Some("2.0.0.7"), Some("2.0.0.7"))
    );
    assert_eq!(app["bundle_id"], "com.nexy.assistant");
    let member = seven_list(&dmg)
        .into_iter()
        .find(|p| p.ends_with("Nexy.app/Contents/Info.plist"))
        .unwrap();
    agree(app, &seven_extract(&dmg, &member));
    let p = inspect(&pkg);
    let papp = &p["artifact"]["apps"][0];
    assert_eq!(papp["version"], "2.0.0.7");
    agree(papp, &payload_info_plist(&pkg, dir.path()));
    assert_eq!(p["artifact"]["packages"][0]["version"], "2.0.0.7");

    // dmg2img decodes the same disk: a GPT whose primary and backup
    // headers check, the backup at the new last sector.
    let raw = dir.path().join("raw.img");
    let conv = Command::new("dmg2img")
        .arg("-i")
        .arg(&dmg)
        .arg("-o")
        .arg(&raw)
        .output();
    let conv = conv.unwrap_or_else(|e| {
        panic!("dmg2img is missing ({e}): install it with `apt-get install dmg2img`")
    });
    assert!(conv.status.success(), "{conv:?}");
    let disk = std::fs::read(&raw).unwrap();
    assert!(gpt_header_ok(&disk[512..1024]), "primary GPT header");
    let last = disk.len() - 512;
    assert!(gpt_header_ok(&disk[last..]), "backup GPT header");
    assert_eq!(
        u64::from_le_bytes(disk[512 + 32..512 + 40].try_into().unwrap()),
        (disk.len() / 512 - 1) as u64
    );
    assert_eq!(&disk[2048 * 512 + 1024..2048 * 512 + 1026], b"H+");
}
