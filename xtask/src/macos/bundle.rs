//! An app bundle's truth: its `Contents/Info.plist` (XML or binary, read by
//! `plist`) and its main executable's Mach-O headers (read by `object`
//! through a cache, so that only the headers and the code signature of
//! each slice are read, however large the executable).
//!
//! `object` does not parse code signatures; the SuperBlob and
//! CodeDirectory fields we need (identifier, Team ID, ad-hoc flag) are a
//! few fixed offsets, read here.

use std::io::{Read, Seek};

use anyhow::{bail, Context, Result};
use object::{
    macho,
    read::macho::{FatArch, LoadCommandVariant, MachHeader, MachOFatFile32, MachOFatFile64},
    Endianness, ReadCache, ReadRef,
};

use super::{App, Executable};

/// The keys of an Info.plist that we report.
#[derive(Debug, Clone, Default)]
pub struct Info {
    pub bundle_id: Option<String>,
    pub short_version: Option<String>,
    pub version: Option<String>,
    pub min_os: Option<String>,
    pub executable: Option<String>,
}

/// Parses an Info.plist, XML or binary.
pub fn parse_info(bytes: &[u8]) -> Result<Info> {
    let value = plist::Value::from_reader(std::io::Cursor::new(bytes))
        .context("Info.plist is not a property list")?;
    let dict = value
        .as_dictionary()
        .context("Info.plist is not a dictionary")?;
    let get = |k: &str| {
        dict.get(k).and_then(|v| match v {
            plist::Value::String(s) => Some(s.trim().to_string()),
            plist::Value::Integer(i) => Some(i.to_string()),
            plist::Value::Real(r) => Some(r.to_string()),
            _ => None,
        })
    };
    Ok(Info {
        bundle_id: get("CFBundleIdentifier"),
        short_version: get("CFBundleShortVersionString"),
        version: get("CFBundleVersion"),
        min_os: get("LSMinimumSystemVersion"),
        executable: get("CFBundleExecutable"),
    })
}

impl App {
    pub fn from_info(path: String, info: &Info) -> App {
        App {
            path,
            bundle_id: info.bundle_id.clone(),
            short_version: info.short_version.clone(),
            version: info.version.clone(),
            min_os: info.min_os.clone(),
            executable: None,
        }
    }
}

/// The architecture name of a Mach-O CPU type and subtype, with the
/// capability bits (LIB64 and the like) masked off the subtype.
pub fn arch_name(cputype: u32, cpusubtype: u32) -> String {
    let sub = cpusubtype & !macho::CPU_SUBTYPE_MASK;
    match cputype {
        macho::CPU_TYPE_X86_64 if sub == macho::CPU_SUBTYPE_X86_64_H => "x86_64h".into(),
        macho::CPU_TYPE_X86_64 => "x86_64".into(),
        macho::CPU_TYPE_ARM64 if sub == macho::CPU_SUBTYPE_ARM64E => "arm64e".into(),
        macho::CPU_TYPE_ARM64 => "arm64".into(),
        macho::CPU_TYPE_ARM64_32 => "arm64_32".into(),
        macho::CPU_TYPE_X86 => "i386".into(),
        macho::CPU_TYPE_ARM => "arm".into(),
        macho::CPU_TYPE_POWERPC => "ppc".into(),
        macho::CPU_TYPE_POWERPC64 => "ppc64".into(),
        other => format!("cpu{other:#x}"),
    }
}

/// What one slice's signature says.
#[derive(Debug, Default)]
struct Signature {
    identifier: Option<String>,
    team_id: Option<String>,
    adhoc: bool,
}

/// Reads the executable's architectures and signature. Never fails: what
/// cannot be read is put in `problem`, so that one odd binary does not
/// hide the rest of the report.
pub fn executable<R: Read + Seek>(name: &str, reader: R) -> Executable {
    let mut exe = Executable {
        name: name.to_string(),
        ..Executable::default()
    };
    if let Err(err) = read_macho(reader, &mut exe) {
        exe.problem = Some(format!("{err:#}"));
    }
    exe
}

fn read_macho<R: Read + Seek>(reader: R, exe: &mut Executable) -> Result<()> {
    let cache = ReadCache::new(reader);
    let data = &cache;
    let len = data
        .len()
        .map_err(|()| anyhow::anyhow!("cannot read the file length"))?;
    let magic = data
        .read_bytes_at(0, 4)
        .map_err(|()| anyhow::anyhow!("the file is shorter than 4 bytes"))?;
    let magic = u32::from_be_bytes(magic.try_into().expect("4 bytes"));
    let mut slices: Vec<(u64, u64)> = Vec::new();
    match magic {
        macho::FAT_MAGIC => {
            let fat = MachOFatFile32::parse(data).context("corrupt fat header")?;
            for a in fat.arches() {
                slices.push(a.file_range());
            }
        }
        macho::FAT_MAGIC_64 => {
            let fat = MachOFatFile64::parse(data).context("corrupt fat header")?;
            for a in fat.arches() {
                slices.push(a.file_range());
            }
        }
        macho::MH_MAGIC | macho::MH_CIGAM | macho::MH_MAGIC_64 | macho::MH_CIGAM_64 => {
            slices.push((0, len));
        }
        other => bail!("not a Mach-O executable (magic {other:#010x})"),
    }
    let mut all_signed = !slices.is_empty();
    let mut adhoc_only = true;
    for (offset, size) in slices {
        let (arch, sig) = slice(data, offset, size)?;
        exe.archs.push(arch);
        match sig {
            Some(sig) => {
                adhoc_only &= sig.adhoc;
                if exe.team_id.is_none() {
                    exe.team_id = sig.team_id;
                }
                if exe.identifier.is_none() {
                    exe.identifier = sig.identifier;
                }
            }
            None => all_signed = false,
        }
    }
    exe.signed = all_signed;
    exe.adhoc = all_signed && adhoc_only;
    Ok(())
}

/// One thin Mach-O at `offset`: its architecture and its signature.
fn slice<'a, R: ReadRef<'a>>(
    data: R,
    offset: u64,
    size: u64,
) -> Result<(String, Option<Signature>)> {
    let magic = data
        .read_bytes_at(offset, 4)
        .map_err(|()| anyhow::anyhow!("slice at {offset} is past the end of the file"))?;
    let magic = u32::from_be_bytes(magic.try_into().expect("4 bytes"));
    let (cputype, cpusubtype, sig) = if matches!(magic, macho::MH_MAGIC_64 | macho::MH_CIGAM_64) {
        header::<macho::MachHeader64<Endianness>, R>(data, offset)?
    } else if matches!(magic, macho::MH_MAGIC | macho::MH_CIGAM) {
        header::<macho::MachHeader32<Endianness>, R>(data, offset)?
    } else {
        bail!("slice at {offset} is not a Mach-O (magic {magic:#010x})");
    };
    let sig = match sig {
        Some((off, len)) if u64::from(off) + u64::from(len) <= size && len <= 16 << 20 => {
            let blob = data
                .read_bytes_at(offset + u64::from(off), u64::from(len))
                .map_err(|()| {
                    anyhow::anyhow!("the code signature lies past the end of the file")
                })?;
            Some(parse_superblob(blob))
        }
        Some(_) => bail!("LC_CODE_SIGNATURE points outside its slice"),
        None => None,
    };
    Ok((arch_name(cputype, cpusubtype), sig))
}

/// Where `LC_CODE_SIGNATURE` points: offset and size in the slice.
type SignatureAt = Option<(u32, u32)>;

/// CPU type, subtype and the code signature's place, of a 32- or 64-bit
/// header.
fn header<'a, H: MachHeader<Endian = Endianness>, R: ReadRef<'a>>(
    data: R,
    offset: u64,
) -> Result<(u32, u32, SignatureAt)> {
    let h = H::parse(data, offset).context("corrupt Mach-O header")?;
    let e = h.endian().context("corrupt Mach-O header")?;
    let cmds = h
        .load_commands(e, data, offset)
        .context("corrupt load commands")?;
    Ok((h.cputype(e), h.cpusubtype(e), code_signature(cmds, e)?))
}

fn code_signature(
    mut cmds: object::read::macho::LoadCommandIterator<'_, Endianness>,
    e: Endianness,
) -> Result<SignatureAt> {
    while let Some(cmd) = cmds.next().context("corrupt load command")? {
        if let Ok(LoadCommandVariant::LinkeditData(ld)) = cmd.variant() {
            if cmd.cmd() == macho::LC_CODE_SIGNATURE {
                return Ok(Some((ld.dataoff.get(e), ld.datasize.get(e))));
            }
        }
    }
    Ok(None)
}

const CSMAGIC_EMBEDDED_SIGNATURE: u32 = 0xfade_0cc0;
const CSMAGIC_CODEDIRECTORY: u32 = 0xfade_0c02;
const CS_ADHOC: u32 = 0x2;

/// The identifier, Team ID and ad-hoc flag of the first CodeDirectory.
fn parse_superblob(blob: &[u8]) -> Signature {
    let be = |at: usize| {
        blob.get(at..at + 4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
    };
    let mut sig = Signature::default();
    if be(0) != Some(CSMAGIC_EMBEDDED_SIGNATURE) {
        return sig;
    }
    let count = be(8).unwrap_or(0).min(64) as usize;
    for i in 0..count {
        let Some(off) = be(12 + i * 8 + 4).map(|o| o as usize) else {
            break;
        };
        if be(off) != Some(CSMAGIC_CODEDIRECTORY) {
            continue;
        }
        let cd = &blob[off..];
        let field = |at: usize| {
            cd.get(at..at + 4)
                .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
        };
        let cstr = |at: u32| {
            let s = cd.get(at as usize..)?;
            let end = s.iter().position(|&b| b == 0)?;
            Some(String::from_utf8_lossy(&s[..end]).into_owned())
        };
        let version = field(8).unwrap_or(0);
        sig.adhoc = field(12).unwrap_or(0) & CS_ADHOC != 0;
        sig.identifier = field(20).and_then(cstr);
        if version >= 0x20200 {
            sig.team_id = field(48).filter(|&t| t != 0).and_then(cstr);
        }
        break;
    }
    sig
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names_mask_capability_bits() {
        assert_eq!(arch_name(macho::CPU_TYPE_X86_64, 0x8000_0003), "x86_64");
        assert_eq!(arch_name(macho::CPU_TYPE_ARM64, 0), "arm64");
        assert_eq!(arch_name(macho::CPU_TYPE_ARM64, 0x8000_0002), "arm64e");
        let exe = Executable {
            archs: vec!["x86_64".into(), "arm64".into()],
            ..Executable::default()
        };
        assert_eq!(exe.arch_label(), "universal2");
    }

    #[test]
    fn team_id_from_a_code_directory() {
        // A SuperBlob with one CodeDirectory of version 0x20400 whose
        // identifier is `com.nexy.app` and Team ID `ABCDE12345`.
        let mut cd = vec![0u8; 88];
        cd[..4].copy_from_slice(&CSMAGIC_CODEDIRECTORY.to_be_bytes());
        cd[8..12].copy_from_slice(&0x20400u32.to_be_bytes());
        cd[20..24].copy_from_slice(&88u32.to_be_bytes());
        cd.extend_from_slice(b"com.nexy.app\0");
        let team_at = cd.len() as u32;
        cd[48..52].copy_from_slice(&team_at.to_be_bytes());
        cd.extend_from_slice(b"ABCDE12345\0");
        let mut blob = Vec::new();
        blob.extend_from_slice(&CSMAGIC_EMBEDDED_SIGNATURE.to_be_bytes());
        blob.extend_from_slice(&0u32.to_be_bytes());
        blob.extend_from_slice(&1u32.to_be_bytes());
        blob.extend_from_slice(&0u32.to_be_bytes());
        blob.extend_from_slice(&20u32.to_be_bytes());
        blob.extend_from_slice(&cd);
        let sig = parse_superblob(&blob);
        assert_eq!(sig.identifier.as_deref(), Some("com.nexy.app"));
        assert_eq!(sig.team_id.as_deref(), Some("ABCDE12345"));
        assert!(!sig.adhoc);
    }

    #[test]
    fn info_plist_binary_and_xml_agree() {
        let mut d = plist::Dictionary::new();
        d.insert("CFBundleIdentifier".into(), "com.nexy.assistant".into());
        d.insert("CFBundleShortVersionString".into(), "2.0.0".into());
        d.insert("CFBundleVersion".into(), "2.0.0.4".into());
        let v = plist::Value::Dictionary(d);
        let mut bin = Vec::new();
        v.to_writer_binary(&mut bin).unwrap();
        let mut xml = Vec::new();
        v.to_writer_xml(&mut xml).unwrap();
        for bytes in [bin, xml] {
            let info = parse_info(&bytes).unwrap();
            assert_eq!(info.bundle_id.as_deref(), Some("com.nexy.assistant"));
            assert_eq!(info.version.as_deref(), Some("2.0.0.4"));
            assert_eq!(info.min_os, None);
        }
    }
}
