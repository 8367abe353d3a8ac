//! Reading files out of git's object store instead of the working tree.
//!
//! The pre-push and staged checks judge what a commit (or the index)
//! holds, which may differ from the files on disk. One `git cat-file
//! --batch` process answers any number of `REV:PATH` questions, so reading
//! the dozen files the tree checks need costs one process, not one each.

use std::{fs, path::Path};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

/// The bytes of each object named by `specs` (`SHA:path`, `:path` for the
/// index, or a bare object id), in order; `None` where git has no such
/// object. Specs holding a newline cannot be asked and count as missing.
pub fn read_many(sh: &Shell, root: &Path, specs: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
    let Some((out, asked)) = cat_file(sh, root, "--batch", specs)? else {
        return Ok(vec![None; specs.len()]);
    };
    Ok(spread(specs, parse_batch(&out, asked)?.into_iter()))
}

/// The size in bytes of each object named by `specs`, `None` where git
/// has no such object (`git cat-file --batch-check`).
pub fn sizes(sh: &Shell, root: &Path, specs: &[String]) -> Result<Vec<Option<u64>>> {
    let Some((out, _)) = cat_file(sh, root, "--batch-check", specs)? else {
        return Ok(vec![None; specs.len()]);
    };
    let text = String::from_utf8_lossy(&out);
    let answers = text.lines().map(|l| {
        let mut fields = l.rsplitn(3, ' ');
        let size = fields.next().and_then(|s| s.parse().ok());
        let kind = fields.next();
        size.filter(|_| kind.is_some_and(|k| k != "missing" && k != "ambiguous"))
    });
    Ok(spread(specs, answers))
}

/// One `git cat-file MODE` over the specs that can be asked (a newline
/// would end the question early); its stdout and how many were asked, or
/// `None` when none can be.
fn cat_file(
    sh: &Shell,
    root: &Path,
    mode: &str,
    specs: &[String],
) -> Result<Option<(Vec<u8>, usize)>> {
    let asked: Vec<&String> = specs.iter().filter(|s| !s.contains('\n')).collect();
    if asked.is_empty() {
        return Ok(None);
    }
    let input: String = asked.iter().map(|s| format!("{s}\n")).collect();
    let out = cmd!(sh, "git -C {root} cat-file {mode}")
        .stdin(input)
        .quiet()
        .ignore_stderr()
        .output()
        .with_context(|| {
            format!("`git cat-file {mode}` failed; is git installed and is this a git checkout?")
        })?;
    Ok(Some((out.stdout, asked.len())))
}

/// The answers to the asked specs, spread back over all of them.
fn spread<T>(specs: &[String], mut answers: impl Iterator<Item = Option<T>>) -> Vec<Option<T>> {
    specs
        .iter()
        .map(|s| {
            if s.contains('\n') {
                None
            } else {
                answers.next().flatten()
            }
        })
        .collect()
}

/// Writes `rev:path` of each of `paths` under `dest` (missing files are
/// left out, so that the checks report them missing as they would on disk).
pub fn write_files(
    sh: &Shell,
    root: &Path,
    rev: &str,
    paths: &[String],
    dest: &Path,
) -> Result<()> {
    let specs: Vec<String> = paths.iter().map(|p| format!("{rev}:{p}")).collect();
    for (rel, bytes) in paths.iter().zip(read_many(sh, root, &specs)?) {
        let Some(bytes) = bytes else { continue };
        // Only relative paths inside the tree: a config naming `../x`
        // must not make us write outside the scratch directory.
        if Path::new(rel)
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            continue;
        }
        let path = dest.join(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Splits `git cat-file --batch` output into `count` answers: a header
/// `<oid> <type> <size>` then the content and a newline, or `<spec>
/// missing` (also `ambiguous`) with no content.
fn parse_batch(mut out: &[u8], count: usize) -> Result<Vec<Option<Vec<u8>>>> {
    let mut answers = Vec::with_capacity(count);
    for _ in 0..count {
        let Some(end) = out.iter().position(|b| *b == b'\n') else {
            bail!(
                "`git cat-file --batch` answered {} of {count} objects",
                answers.len()
            );
        };
        let header = String::from_utf8_lossy(&out[..end]).into_owned();
        out = &out[end + 1..];
        if header.ends_with(" missing") || header.ends_with(" ambiguous") {
            answers.push(None);
            continue;
        }
        let size: usize = header
            .rsplit(' ')
            .next()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("unexpected `git cat-file --batch` header `{header}`"))?;
        if out.len() < size + 1 {
            bail!("`git cat-file --batch` ended inside an object ({header})");
        }
        let is_blob = header.split(' ').nth(1) == Some("blob");
        answers.push(is_blob.then(|| out[..size].to_vec()));
        out = &out[size + 1..];
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_answers_blobs_and_missing_objects() {
        let out = b"aaaa blob 5\nhello\nx:y missing\nbbbb tree 3\n\x01\x02\x03\ncccc blob 0\n\n";
        let got = parse_batch(out, 4).unwrap();
        assert_eq!(got, [Some(b"hello".to_vec()), None, None, Some(Vec::new())]);
        assert!(parse_batch(b"aaaa blob 9\nshort\n", 1).is_err());
        assert!(parse_batch(b"", 1).is_err());
    }
}
