//! The typed values of the options: clap value parsers with their bounds, each error naming the
//! variable and the flag, whichever of flag, environment or config file gave the value.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::domain::duration::{format_duration, parse_duration};

const DAY: u64 = 86_400;
const YEAR: u64 = 365 * DAY;

/// `(variable, flag)` of an option, for its messages.
type Names = (&'static str, &'static str);

/// A duration within `secs` (whole seconds when `whole`).
fn duration_in(
    (var, flag): Names,
    range: RangeInclusive<Duration>,
    whole: bool,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |raw| {
        parse_duration(raw)
            .ok()
            .filter(|d| range.contains(d) && (!whole || d.subsec_nanos() == 0))
            .ok_or_else(|| {
                format!(
                    "{var} ({flag}) must be a duration from {} to {}{}, like 90s, 5m or 7d (a bare number is seconds)",
                    format_duration(*range.start()),
                    format_duration(*range.end()),
                    if whole { " in whole seconds" } else { "" },
                )
            })
    }
}

/// A whole number within `range`.
fn number_in<T>(
    (var, flag): Names,
    range: RangeInclusive<T>,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy + Send + Sync + 'static,
{
    move |raw| {
        raw.trim()
            .parse::<T>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                format!(
                    "{var} ({flag}) must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                )
            })
    }
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A job's interval: 1 s to 7 days, whole seconds.
pub(super) fn interval(
    names: Names,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    duration_in(names, secs(1)..=secs(7 * DAY), true)
}

pub(super) fn probe_timeout(raw: &str) -> Result<Duration, String> {
    duration_in(
        ("PROBE_TIMEOUT", "--probe-timeout"),
        crate::domain::TIMEOUT_RANGE,
        false,
    )(raw)
}

pub(super) fn probe_concurrency(raw: &str) -> Result<usize, String> {
    number_in(("PROBE_CONCURRENCY", "--probe-concurrency"), 1..=65_536)(raw)
}

pub(super) fn threshold(
    names: Names,
) -> impl Fn(&str) -> Result<u32, String> + Clone + Send + Sync + 'static {
    number_in(names, 1..=1000)
}

pub(super) fn runs_keep(raw: &str) -> Result<usize, String> {
    number_in(("RUNS_KEEP", "--runs-keep"), 1..=1_000_000)(raw)
}

pub(super) fn history_retention(raw: &str) -> Result<Duration, String> {
    let names = ("HISTORY_RETENTION", "--history-retention");
    duration_in(names, secs(600)..=secs(30 * DAY), true)(raw)
}

pub(super) fn minute_retention(raw: &str) -> Result<Duration, String> {
    let names = ("HISTORY_MINUTE_RETENTION", "--history-minute-retention");
    duration_in(names, secs(2 * 3600)..=secs(90 * DAY), true)(raw)
}

pub(super) fn hour_retention(raw: &str) -> Result<Duration, String> {
    let names = ("HISTORY_HOUR_RETENTION", "--history-hour-retention");
    duration_in(names, secs(170 * 3600)..=secs(3 * YEAR), true)(raw)
}

pub(super) fn day_retention(raw: &str) -> Result<Duration, String> {
    let names = ("HISTORY_DAY_RETENTION", "--history-day-retention");
    duration_in(names, secs(31 * DAY)..=secs(20 * YEAR), true)(raw)
}

pub(super) fn runs_retention(raw: &str) -> Result<Duration, String> {
    let names = ("RUNS_RETENTION", "--runs-retention");
    duration_in(names, secs(3600)..=secs(20 * YEAR), true)(raw)
}

pub(super) fn listen(raw: &str) -> Result<SocketAddr, String> {
    raw.trim().parse().map_err(|_| {
        format!("LISTEN_ADDR (--listen) must be an address like 127.0.0.1:8080, got {raw:?}")
    })
}

pub(super) fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(format!("expected true or false, got {other:?}")),
    }
}
