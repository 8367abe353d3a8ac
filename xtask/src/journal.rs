//! The release journal (`release_inbox/.journal.jsonl`): an append-only
//! record of the steps of every run, one JSON object a line, so that a
//! person can see what an interrupted run had done, and the bench can time
//! each step. Written (through the effect seam's `append`; only a real
//! run writes it) and read here only.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When the line was written, RFC 3339 in UTC.
    pub time: String,
    /// `start` or `done`; `run` for the line that names the gh of a run;
    /// `note` for what a step found out (whether the VM sync restarted the
    /// service, and how that went).
    pub phase: String,
    /// What the step does, as `upload Nexy.next-<sha12>.dmg`.
    pub step: String,
}

/// The journal of one workspace.
pub struct Journal(PathBuf);

impl Journal {
    pub fn open(path: &Path) -> Journal {
        Journal(path.to_path_buf())
    }

    /// Appends one line for `step` in `phase`, stamped now.
    pub fn record(&self, phase: &str, step: &str) -> Result<()> {
        let entry = Entry {
            time: crate::clock::now_isoformat(),
            phase: phase.to_string(),
            step: step.to_string(),
        };
        let line = serde_json::to_string(&entry).context("cannot encode a journal line")?;
        crate::effect::append(&self.0, &line).context("cannot write the release journal")
    }
}

/// The entries written after byte `offset` of the journal at `path`; lines
/// that are not entries (a line cut short by a kill) are passed over.
pub fn read_from(path: &Path, offset: u64) -> Result<Vec<Entry>> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read the journal {}", path.display()))?;
    let text = text
        .get(usize::try_from(offset).unwrap_or(usize::MAX)..)
        .unwrap_or("");
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn what_is_written_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        fs::write(
            &path,
            "{\"time\":\"x\",\"phase\":\"start\",\"step\":\"old\"}\n",
        )
        .unwrap();
        let offset = fs::metadata(&path).unwrap().len();
        let j = Journal::open(&path);
        j.record("start", "upload Nexy.next-abc.dmg").unwrap();
        j.record("done", "upload Nexy.next-abc.dmg").unwrap();
        // A line cut short by a kill is passed over.
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"time\":\"2026").unwrap();
        let entries = read_from(&path, offset).unwrap();
        assert_eq!(
            entries
                .iter()
                .map(|e| (e.phase.as_str(), e.step.as_str()))
                .collect::<Vec<_>>(),
            [
                ("start", "upload Nexy.next-abc.dmg"),
                ("done", "upload Nexy.next-abc.dmg")
            ]
        );
        assert!(crate::clock::is_rfc3339(&entries[0].time));
    }
}
