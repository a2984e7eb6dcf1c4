//! How times and round trips are written: the one RFC 3339 formatter, the one millisecond
//! conversion of stored times, and the one microseconds-to-milliseconds conversion of RTTs.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// RFC 3339 with milliseconds and `Z`: how every time is written in JSON answers.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// RFC 3339 to the second, for people (`jobs`, "in use by" messages).
pub fn rfc3339_seconds(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A millisecond timestamp as a time (out of range: the earliest time).
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Milliseconds (with the microseconds as decimals), from microseconds: how RTTs are shown.
pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Whole milliseconds (rounded down), from microseconds: how the backend protocol takes RTTs.
pub fn whole_ms(us: u64) -> u64 {
    us / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ms_rounds_to_microseconds() {
        assert_eq!(ms(123), 0.123);
        assert_eq!(ms(45_678), 45.678);
        assert_eq!(whole_ms(45_678), 45);
    }

    #[test]
    fn times_are_written_with_z() {
        let t = from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_seconds(t), "2023-11-14T22:13:20Z");
        assert_eq!(from_millis(i64::MAX), DateTime::<Utc>::MIN_UTC);
    }
}
