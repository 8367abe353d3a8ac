//! Dates and times, all through the `time` crate: the manifest's
//! `release_date` and the journal's stamps (written as Python's
//! `datetime.now(timezone.utc).isoformat()` prints them), and RFC 3339
//! parsing for the checks and the bench.

use time::{format_description::well_known::Rfc3339, OffsetDateTime, UtcOffset};

/// The current time as Python's `datetime.now(timezone.utc).isoformat()`
/// prints it. `SOURCE_DATE_EPOCH` fixes the time for reproducible output.
pub fn now_isoformat() -> String {
    let now = match std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
    {
        Some(fixed) => fixed,
        None => OffsetDateTime::now_utc(),
    };
    isoformat(now)
}

/// `2026-03-06T02:58:57.245806+00:00`, or without the fraction when it is
/// zero, as Python writes it (microseconds, `+00:00`, never `Z`).
pub fn isoformat(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    let micros = at.microsecond();
    let frac = if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}")
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}+00:00",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// The instant `text` names, if it is an RFC 3339 date-time.
pub fn parse_rfc3339(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// True when `s` is an RFC 3339 date-time (`2026-03-06T02:58:57.245806+00:00`).
pub fn is_rfc3339(s: &str) -> bool {
    parse_rfc3339(s).is_some()
}

/// Seconds since the epoch of an RFC 3339 date-time, with its fraction.
pub fn epoch_secs(text: &str) -> Option<f64> {
    let at = parse_rfc3339(text)?;
    Some(at.unix_timestamp() as f64 + f64::from(at.nanosecond()) / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_python_writes() {
        let at = OffsetDateTime::from_unix_timestamp(1_772_765_937).unwrap();
        assert_eq!(isoformat(at), "2026-03-06T02:58:57+00:00");
        let at = at + time::Duration::microseconds(245_806);
        assert_eq!(isoformat(at), "2026-03-06T02:58:57.245806+00:00");
        let one = OffsetDateTime::from_unix_timestamp(951_782_400).unwrap()
            + time::Duration::microseconds(1);
        assert_eq!(isoformat(one), "2000-02-29T00:00:00.000001+00:00");
        // Days around leap years and the epoch itself.
        for (secs, want) in [
            (0, "1970-01-01T00:00:00+00:00"),
            (951_782_400, "2000-02-29T00:00:00+00:00"),
            (4_107_542_399, "2100-02-28T23:59:59+00:00"),
        ] {
            assert_eq!(
                isoformat(OffsetDateTime::from_unix_timestamp(secs).unwrap()),
                want
            );
        }
    }

    #[test]
    fn reads_rfc3339() {
        assert!(is_rfc3339("2026-03-06T02:58:57.245806+00:00"));
        assert!(is_rfc3339("2026-03-06T02:58:57Z"));
        assert!(!is_rfc3339("2026-03-06"));
        assert!(!is_rfc3339("2026-13-06T02:58:57Z"));
        assert!(!is_rfc3339("2026-02-30T02:58:57Z"));
        assert!(!is_rfc3339("2026-03-06T02:58:57+0000"));
        assert!(!is_rfc3339("yesterday"));
        let a = epoch_secs("2026-03-06T23:59:59.500000+00:00").unwrap();
        let b = epoch_secs("2026-03-07T00:00:00+00:00").unwrap();
        assert!((b - a - 0.5).abs() < 1e-6, "{a} {b}");
        assert_eq!(epoch_secs("1970-01-01T01:00:00+01:00"), Some(0.0));
        // What we write, we read back to the microsecond.
        let now = now_isoformat();
        assert!(is_rfc3339(&now), "{now}");
    }
}
