//! The one duration grammar: a whole number and a unit (`250ms`, `30s`, `5m`, `1h`, and where
//! days make sense `7d`), or a bare number of seconds.

use std::time::Duration;

/// Parses "30s", "5m", "1h", "250ms" or a bare number of seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    parse(value, false)
}

/// [`parse_duration`], and days ("7d"), for retentions.
pub fn parse_span(value: &str) -> Result<Duration, String> {
    parse(value, true)
}

fn parse(value: &str, days: bool) -> Result<Duration, String> {
    let v = value.trim();
    let (number, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 30s, 5m or 1h, got {value:?}"))?;
    let seconds = |per: u64| Duration::from_secs(n.saturating_mul(per));
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(seconds(1)),
        "m" => Ok(seconds(60)),
        "h" => Ok(seconds(3600)),
        "d" if days => Ok(seconds(86_400)),
        _ => Err(format!(
            "unknown unit in duration {value:?}; use ms, s, m{}",
            if days { ", h or d" } else { " or h" }
        )),
    }
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
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
        assert_eq!(parse_span("3d").unwrap(), Duration::from_secs(3 * 86_400));
        assert_eq!(parse_span("36h").unwrap(), Duration::from_secs(36 * 3600));
        assert!(parse_span("d").is_err());
    }
}
