//! The one duration grammar, for every option, job spec, peer entry and silence: humantime's
//! (`250ms`, `90s`, `5m`, `1h 30m`, `7d`, `2w`), or a bare whole number of seconds (`60`, so
//! the spec's `PEER_FETCH_INTERVAL=60` keeps working).

use std::time::Duration;

/// Parses "90s", "5m", "1h 30m", "7d", "250ms" or a bare number of seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("{value:?} is too many seconds"));
    }
    humantime::parse_duration(v).map_err(|e| {
        format!("expected a duration like 90s, 5m, 1h 30m or 7d (a bare number is seconds), got {value:?}: {e}")
    })
}

/// Shows a duration in the same grammar, in its largest whole unit ("90s", "5m", "7d").
pub fn format_duration(d: Duration) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    if d.subsec_nanos() != 0 || d.is_zero() {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    let (per, unit) = UNITS
        .into_iter()
        .find(|(per, _)| secs % per == 0)
        .unwrap_or((1, "s"));
    format!("{}{unit}", secs / per)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert_eq!(parse_duration(" 60 ").unwrap(), Duration::from_secs(60));
        assert_eq!(
            parse_duration("3d").unwrap(),
            Duration::from_secs(3 * 86_400)
        );
        assert_eq!(
            parse_duration("36h").unwrap(),
            Duration::from_secs(36 * 3600)
        );
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("2w").unwrap(),
            Duration::from_secs(14 * 86_400)
        );
        for bad in ["soon", "d", "", "-5s", "5 parsecs", "99999999999999999999"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_show_in_their_largest_unit_and_read_back() {
        for (d, text) in [
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(7 * 86_400), "7d"),
            (Duration::from_secs(170 * 3600), "170h"),
            (Duration::from_millis(1500), "1500ms"),
        ] {
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text).unwrap(), d);
        }
    }
}
