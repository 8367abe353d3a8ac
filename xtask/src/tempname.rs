//! The names of a publish's temporary assets, and how to recognise them.
//!
//! An artifact is uploaded under a temporary name and renamed over the live
//! one; the live one steps aside under another temporary name during the
//! swap. gh sets an upload's content type from the file name's extension
//! and GitHub keeps it through renames, so a temporary name must end with
//! the artifact's own extension: `Nexy.next-<sha12>.dmg` is stored as
//! `application/x-apple-diskimage`, the old `Nexy.dmg.next-<sha12>` as
//! `application/octet-stream`. Assets an older run left under the old
//! scheme are still recognised, so that they are finished or cleaned up.

/// The two kinds of temporary asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temp {
    /// A new artifact uploaded ahead of its swap.
    Next,
    /// The replaced live artifact, until it is deleted.
    Prev,
}

impl Temp {
    fn word(self) -> &'static str {
        match self {
            Temp::Next => "next",
            Temp::Prev => "prev",
        }
    }
}

/// The temporary name of `live` (`Nexy.dmg`): `Nexy.next-<tail>.dmg`.
pub fn name(live: &str, temp: Temp, tail: &str) -> String {
    let (stem, ext) = split(live);
    format!("{stem}.{}-{tail}{ext}", temp.word())
}

/// The release lease's reserved asset name (`lease::NAME`).
pub const LEASE: &str = "nexy-release.lease";

/// Which temporary asset of `live` `asset` is, in the current scheme
/// (`Nexy.next-<tail>.dmg`) or the old one (`Nexy.dmg.next-<tail>`).
/// The release lease (`lease/`) lives on the same release and is never a
/// temporary asset, whatever the live name is.
pub fn parse(asset: &str, live: &str) -> Option<Temp> {
    if asset == LEASE {
        return None;
    }
    let (stem, ext) = split(live);
    [Temp::Next, Temp::Prev].into_iter().find(|temp| {
        let word = temp.word();
        let current = asset
            .strip_prefix(&format!("{stem}.{word}-"))
            .and_then(|rest| rest.strip_suffix(ext))
            .is_some_and(|tail| !tail.is_empty() && !tail.contains('.'));
        let old = asset.starts_with(&format!("{live}.{word}-"));
        current || old
    })
}

/// `Nexy.dmg` as `("Nexy", ".dmg")`; a name without an extension has an
/// empty one.
fn split(live: &str) -> (&str, &str) {
    match live.rfind('.') {
        Some(dot) if dot > 0 => live.split_at(dot),
        _ => (live, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_keep_the_extension() {
        assert_eq!(
            name("Nexy.dmg", Temp::Next, "0123456789ab"),
            "Nexy.next-0123456789ab.dmg"
        );
        assert_eq!(
            name("Nexy.pkg", Temp::Prev, "<sha12>"),
            "Nexy.prev-<sha12>.pkg"
        );
        assert_eq!(name("notes", Temp::Next, "ab"), "notes.next-ab");
    }

    #[test]
    fn recognises_both_schemes_and_nothing_else() {
        for (asset, want) in [
            ("Nexy.next-0123456789ab.dmg", Some(Temp::Next)),
            ("Nexy.prev-unknown.dmg", Some(Temp::Prev)),
            // Left by runs before the extension was kept.
            ("Nexy.dmg.next-0123456789ab", Some(Temp::Next)),
            ("Nexy.dmg.prev-0123456789ab", Some(Temp::Prev)),
            ("Nexy.dmg", None),
            ("Nexy.pkg", None),
            ("Nexy.next-0123456789ab.pkg", None),
            ("Nexy.next-.dmg", None),
            ("Nexy.dmg.sig", None),
            ("Other.next-0123456789ab.dmg", None),
            (LEASE, None),
        ] {
            assert_eq!(parse(asset, "Nexy.dmg"), want, "{asset}");
        }
        for temp in [Temp::Next, Temp::Prev] {
            let made = name("Nexy.pkg", temp, "0123456789ab");
            assert_eq!(parse(&made, "Nexy.pkg"), Some(temp), "{made}");
        }
    }
}
