//! The GitHub side's persistent state: repositories, releases, tags and
//! assets, kept as `DIR/github/state.json` plus one blob file per asset in
//! `DIR/github/blobs/`, so a restarted stand-in still has what was uploaded.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A delete followed by an upload within this window counts as one change.
pub const CLOBBER_WINDOW_MS: u64 = 120_000;

pub const OWNER: &str = "Seregawpn";
pub const PROD_REPO: &str = "Nexy_production";
pub const CODE_REPO: &str = "Nexy";
/// `owner/name` of the production repository.
pub const PROD: &str = "Seregawpn/Nexy_production";
/// The fixed release tags of the production repository and their ids.
pub const FIXED_RELEASES: [(&str, u64); 4] = [
    ("Update", 1001),
    ("App", 1002),
    ("UpdateBeta", 1003),
    ("AppBeta", 1004),
];

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Asset {
    pub id: u64,
    pub name: String,
    pub label: String,
    pub content_type: String,
    pub size: u64,
    /// `uploaded`, or `starter` for an upload that never completed.
    pub state: String,
    pub sha256: String,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub download_count: u64,
    /// File name under `github/blobs/`.
    pub blob: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Release {
    pub id: u64,
    pub tag_name: String,
    pub name: String,
    pub body: String,
    pub draft: bool,
    pub prerelease: bool,
    pub immutable: bool,
    pub target_commitish: String,
    pub created_ms: u64,
    pub published_ms: Option<u64>,
    pub assets: Vec<Asset>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Tag {
    pub name: String,
    pub sha: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Repo {
    pub id: u64,
    pub releases: Vec<Release>,
    pub tags: Vec<Tag>,
}

/// What the public download URL served before the last change of a name,
/// for the "stale CDN" fault. `blob: None` means it answered 404.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct PrevBytes {
    pub blob: Option<String>,
    pub changed_ms: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Store {
    pub next_id: u64,
    /// Keyed by `owner/name`.
    pub repos: BTreeMap<String, Repo>,
    /// Keyed by `owner/repo/tag/name`.
    pub prev: BTreeMap<String, PrevBytes>,
    #[serde(skip)]
    pub dir: PathBuf,
}

fn fake_sha(seed: &str) -> String {
    crate::util::sha256_hex(seed.as_bytes())[..40].to_string()
}

pub fn prev_key(repo: &str, tag: &str, name: &str) -> String {
    format!("{repo}/{tag}/{name}")
}

impl Store {
    /// A fresh store: the production repository with its four fixed,
    /// published releases (no assets) and the code repository.
    pub fn seeded(dir: &Path) -> Store {
        let t = crate::util::now_ms();
        let mut repos = BTreeMap::new();
        let releases = FIXED_RELEASES
            .iter()
            .map(|(tag, id)| Release {
                id: *id,
                tag_name: tag.to_string(),
                name: tag.to_string(),
                body: String::new(),
                draft: false,
                prerelease: false,
                immutable: false,
                target_commitish: "main".into(),
                created_ms: t,
                published_ms: Some(t),
                assets: Vec::new(),
            })
            .collect();
        let tags = FIXED_RELEASES
            .iter()
            .map(|(tag, _)| Tag {
                name: tag.to_string(),
                sha: fake_sha(tag),
            })
            .collect();
        repos.insert(
            format!("{OWNER}/{PROD_REPO}"),
            Repo {
                id: 900_001,
                releases,
                tags,
            },
        );
        repos.insert(
            format!("{OWNER}/{CODE_REPO}"),
            Repo {
                id: 900_002,
                ..Default::default()
            },
        );
        Store {
            next_id: 100_001,
            repos,
            prev: BTreeMap::new(),
            dir: dir.to_path_buf(),
        }
    }

    fn state_path(dir: &Path) -> PathBuf {
        dir.join("github").join("state.json")
    }

    pub fn blob_path(&self, blob: &str) -> PathBuf {
        self.dir.join("github").join("blobs").join(blob)
    }

    /// Load `DIR/github/state.json`, or seed a fresh store when there is none.
    pub fn open(dir: &Path) -> Result<Store> {
        let p = Store::state_path(dir);
        std::fs::create_dir_all(dir.join("github").join("blobs"))
            .with_context(|| format!("mkdir {}", dir.display()))?;
        if p.exists() {
            let text =
                std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?;
            let mut s: Store =
                serde_json::from_str(&text).with_context(|| format!("parse {}", p.display()))?;
            s.dir = dir.to_path_buf();
            Ok(s)
        } else {
            let s = Store::seeded(dir);
            s.save()?;
            Ok(s)
        }
    }

    pub fn save(&self) -> Result<()> {
        let text = serde_json::to_string_pretty(self).context("serialise store")?;
        crate::util::write_atomic(&Store::state_path(&self.dir), text.as_bytes())
    }

    pub fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn repo(&self, full: &str) -> Option<&Repo> {
        self.repos
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(full))
            .map(|(_, r)| r)
    }

    pub fn repo_mut(&mut self, full: &str) -> Option<&mut Repo> {
        self.repos
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(full))
            .map(|(_, r)| r)
    }

    /// The canonical spelling of a repository name (GitHub is case-insensitive).
    pub fn canonical(&self, full: &str) -> Option<String> {
        self.repos
            .keys()
            .find(|k| k.eq_ignore_ascii_case(full))
            .cloned()
    }

    /// Find the release holding asset `id`: (repo key, release index, asset index).
    pub fn find_asset(&self, repo: &str, id: u64) -> Option<(usize, usize)> {
        let r = self.repo(repo)?;
        for (ri, rel) in r.releases.iter().enumerate() {
            if let Some(ai) = rel.assets.iter().position(|a| a.id == id) {
                return Some((ri, ai));
            }
        }
        None
    }

    /// A name stopped being served (deleted, renamed away): until the next
    /// change the stale-CDN fault serves these bytes.
    pub fn note_removed(&mut self, key: String, blob: String) {
        let changed_ms = crate::util::now_ms();
        self.prev.insert(
            key,
            PrevBytes {
                blob: Some(blob),
                changed_ms,
            },
        );
    }

    /// A name started being served (uploaded, renamed to). Right after a
    /// removal (a `--clobber` delete+upload) the CDN still holds the bytes from
    /// before the removal; otherwise it remembers a 404.
    pub fn note_added(&mut self, key: String) {
        let now = crate::util::now_ms();
        match self.prev.get_mut(&key) {
            Some(p) if now.saturating_sub(p.changed_ms) < CLOBBER_WINDOW_MS => p.changed_ms = now,
            _ => {
                self.prev.insert(
                    key,
                    PrevBytes {
                        blob: None,
                        changed_ms: now,
                    },
                );
            }
        }
    }

    /// Delete blob files that neither a live asset nor a stale entry uses.
    pub fn gc_blobs(&self) -> Result<()> {
        let mut used = BTreeSet::new();
        for r in self.repos.values() {
            for rel in &r.releases {
                for a in &rel.assets {
                    used.insert(a.blob.clone());
                }
            }
        }
        for p in self.prev.values() {
            if let Some(b) = &p.blob {
                used.insert(b.clone());
            }
        }
        let dir = self.dir.join("github").join("blobs");
        let rd = std::fs::read_dir(&dir).with_context(|| format!("list {}", dir.display()))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !used.contains(&name) && !name.starts_with('.') {
                // A missing file is fine: nothing else to clean.
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(())
    }
}
