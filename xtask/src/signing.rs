//! Ed25519 signatures of the DMG, in Sparkle's format, and `keygen`.
//!
//! Sparkle (`generate_keys`, `sign_update`) stores a private key as the
//! base64 of its 32-byte seed (older versions: the 64-byte expanded secret
//! key of orlp/ed25519) and a public key as the base64 of its 32 bytes; a
//! signature is the base64 of the 64-byte Ed25519 signature over the
//! file's bytes. The manifest carries it as `artifact.ed25519` and the
//! appcast as `sparkle:edSignature`, so a Sparkle client or the Nexy client
//! verifies what we sign. Ed25519 hashes the message twice, so signing and
//! checking read the file into memory (as Sparkle's own tools do).

use std::{
    fs,
    io::{Read, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use ed25519_dalek::{hazmat::ExpandedSecretKey, Signature, SigningKey, Verifier, VerifyingKey};

use crate::{
    changes::{self, FileChange},
    cli::Keygen,
    config::Workspace,
    say,
    util::BASE64,
};

fn base64_encode(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Decodes base64 text, surrounding whitespace (a pasted key's newline)
/// ignored.
fn base64_decode(text: &str) -> std::result::Result<Vec<u8>, base64::DecodeError> {
    BASE64.decode(text.trim())
}

/// The environment variable that may carry the private key (base64).
pub const KEY_ENV: &str = "NEXY_ED25519_KEY";

/// A private key as Sparkle stores it: a seed, or a legacy expanded key.
pub enum PrivateKey {
    Seed(Box<SigningKey>),
    Expanded(Box<ExpandedSecretKey>),
}

impl PrivateKey {
    /// Parses the base64 text of a Sparkle private key.
    pub fn parse(text: &str) -> Result<PrivateKey> {
        let bytes = base64_decode(text.trim())
            .map_err(|_| anyhow::anyhow!("the Ed25519 private key is not base64"))?;
        match bytes.len() {
            32 => {
                let seed: [u8; 32] = bytes.as_slice().try_into().context("32 bytes")?;
                Ok(PrivateKey::Seed(Box::new(SigningKey::from_bytes(&seed))))
            }
            64 => {
                let raw: [u8; 64] = bytes.as_slice().try_into().context("64 bytes")?;
                Ok(PrivateKey::Expanded(Box::new(ExpandedSecretKey::from_bytes(&raw))))
            }
            n => bail!("the Ed25519 private key holds {n} bytes; Sparkle keys hold 32 (seed) or 64 (legacy)"),
        }
    }

    pub fn public(&self) -> VerifyingKey {
        match self {
            PrivateKey::Seed(k) => k.verifying_key(),
            PrivateKey::Expanded(esk) => VerifyingKey::from(esk.as_ref()),
        }
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        match self {
            PrivateKey::Seed(k) => ed25519_dalek::Signer::sign(k.as_ref(), message),
            PrivateKey::Expanded(esk) => {
                ed25519_dalek::hazmat::raw_sign::<sha2::Sha512>(esk, message, &self.public())
            }
        }
    }
}

/// Loads the private key from `NEXY_ED25519_KEY` or the configured file.
pub fn load_private_key(key_file: Option<&Path>) -> Result<PrivateKey> {
    if let Ok(text) = std::env::var(KEY_ENV) {
        return PrivateKey::parse(&text).with_context(|| format!("in ${KEY_ENV}"));
    }
    let Some(path) = key_file else {
        bail!("signing is configured but no private key was given; export {KEY_ENV} (base64) or set [signing] private_key_file");
    };
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read the private key {}", path.display()))?;
    PrivateKey::parse(&text).with_context(|| format!("in {}", path.display()))
}

pub fn public_key_base64(key: &VerifyingKey) -> String {
    base64_encode(key.as_bytes())
}

pub fn parse_public_key(text: &str) -> Result<VerifyingKey> {
    let bytes = base64_decode(text.trim())
        .map_err(|_| anyhow::anyhow!("[signing] public_key is not base64"))?;
    let raw: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        anyhow::anyhow!(
            "[signing] public_key must be 32 bytes, found {}",
            bytes.len()
        )
    })?;
    VerifyingKey::from_bytes(&raw).context("[signing] public_key is not a valid Ed25519 point")
}

/// Signs a file's bytes; returns the base64 signature (Sparkle's form).
pub fn sign_file(key: &PrivateKey, path: &Path) -> Result<String> {
    let bytes = read_all(path)?;
    Ok(base64_encode(&key.sign(&bytes).to_bytes()))
}

/// Checks a base64 signature over `bytes`.
pub fn verify_bytes(public: &VerifyingKey, bytes: &[u8], signature_b64: &str) -> Result<()> {
    let sig =
        base64_decode(signature_b64).map_err(|_| anyhow::anyhow!("the signature is not base64"))?;
    let sig: [u8; 64] = sig
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("the signature holds {} bytes, not 64", sig.len()))?;
    public
        .verify(bytes, &Signature::from_bytes(&sig))
        .map_err(|_| {
            anyhow::anyhow!(
                "the Ed25519 signature does not match these bytes and the configured public key"
            )
        })
}

fn read_all(path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(bytes)
}

/// 32 random bytes from the kernel, for a new seed.
fn random_seed() -> Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .context("cannot read /dev/urandom")?;
    Ok(seed)
}

impl Keygen {
    pub fn run(self, ws: &Workspace, config_path: &Path) -> Result<()> {
        let key = SigningKey::from_bytes(&random_seed()?);
        let private = base64_encode(&key.to_bytes());
        let public = public_key_base64(&key.verifying_key());
        let config_text = fs::read_to_string(config_path)
            .with_context(|| format!("cannot read {}", config_path.display()))?;
        let new_config = set_public_key(&config_text, &public)?;
        if self.print {
            // Shown once, for a secret store; never written anywhere.
            say!("private key (store it in your secret store as {KEY_ENV}; it is shown only now):\n{private}");
        } else {
            let out = match &self.out {
                Some(p) => p.clone(),
                None => default_key_file()?,
            };
            let abs_out = absolute(&out);
            let root = fs::canonicalize(&ws.root).unwrap_or_else(|_| ws.root.clone());
            if abs_out.starts_with(&root) {
                bail!("{} is inside the repository; keep private keys outside it (pass --out FILE elsewhere, or --print)", out.display());
            }
            if out.exists() && !self.force {
                bail!("{} already exists; pass --force to replace it (the old key's signatures will stop verifying)", out.display());
            }
            if let Some(dir) = out.parent() {
                fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let _ = fs::remove_file(&out);
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            f.write_all(format!("{private}\n").as_bytes())
                .with_context(|| format!("cannot write {}", out.display()))?;
            say!("private key written to {} (mode 0600); set [signing] private_key_file or export {KEY_ENV}", out.display());
        }
        changes::apply(&[FileChange {
            rel: config_path.display().to_string(),
            abs: config_path.to_path_buf(),
            old: config_text,
            new: new_config,
        }])?;
        say!(
            "public key {public} written to {} as [signing] public_key",
            config_path.display()
        );
        Ok(())
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

fn default_key_file() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set; pass --out FILE")?;
    Ok(PathBuf::from(home).join(".config/nexy/sparkle_ed25519.key"))
}

/// The config text with `[signing] public_key` set: the one existing line
/// replaced, or a `[signing]` table appended.
fn set_public_key(text: &str, public: &str) -> Result<String> {
    let line = format!("public_key = \"{public}\"");
    let existing: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("public_key"))
        .map(|(i, _)| i)
        .collect();
    match existing.len() {
        0 if text.contains("[signing]") => {
            bail!("the config has a [signing] table without public_key; add `{line}` to it by hand")
        }
        0 => Ok(format!(
            "{}\n\n[signing]\n{line}\n",
            text.trim_end_matches('\n')
        )),
        1 => Ok(text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i == existing[0] {
                    line.clone()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + if text.ends_with('\n') { "\n" } else { "" }),
        n => bail!("the config has {n} `public_key` lines; expected at most 1; fix it by hand"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8032_test_vector_1() {
        // RFC 8032, section 7.1, TEST 1 (empty message).
        let seed = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let key = PrivateKey::parse(&base64_encode(&seed)).unwrap();
        assert_eq!(
            key.public().as_bytes().to_vec(),
            hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
        let sig = key.sign(b"").to_bytes().to_vec();
        assert_eq!(sig, hex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"));
        verify_bytes(&key.public(), b"", &base64_encode(&sig)).unwrap();
        assert!(verify_bytes(&key.public(), b"x", &base64_encode(&sig)).is_err());
    }

    #[test]
    fn legacy_expanded_keys_sign_the_same() {
        let seed = [7u8; 32];
        let modern = PrivateKey::parse(&base64_encode(&seed)).unwrap();
        // orlp/ed25519's private key: SHA-512 of the seed, clamped.
        let mut expanded: [u8; 64] = <sha2::Sha512 as sha2::Digest>::digest(seed).into();
        expanded[0] &= 248;
        expanded[31] &= 63;
        expanded[31] |= 64;
        let legacy = PrivateKey::parse(&base64_encode(&expanded)).unwrap();
        assert_eq!(legacy.public(), modern.public());
        assert_eq!(
            legacy.sign(b"dmg").to_bytes(),
            modern.sign(b"dmg").to_bytes()
        );
    }

    #[test]
    fn public_key_is_set_once() {
        let t = set_public_key("a = 1\n", "PK").unwrap();
        assert_eq!(t, "a = 1\n\n[signing]\npublic_key = \"PK\"\n");
        assert_eq!(
            set_public_key(&t, "NEW").unwrap(),
            "a = 1\n\n[signing]\npublic_key = \"NEW\"\n"
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
