//! Probe history in four levels: raw checks, then per-minute, per-hour and per-day buckets; how
//! long each is kept; and the windows the API shows.
//!
//! This module holds the arithmetic; the store keeps the rows (see `store/keys.rs` for how).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::time::from_millis;

/// Width of a histogram bin: each bin's upper edge is 4 % above its lower edge, so the
/// geometric middle of a bin is within 2 % of any value in it.
const BIN_GROWTH: f64 = 1.04;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Raw,
    Minute,
    Hour,
    Day,
}

impl Level {
    /// The levels made by rolling up the next finer one, finest first.
    pub const ROLLUPS: [Level; 3] = [Level::Minute, Level::Hour, Level::Day];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Raw => "raw",
            Level::Minute => "minute",
            Level::Hour => "hour",
            Level::Day => "day",
        }
    }

    /// Length of one bucket in milliseconds; a raw row has no length.
    pub fn span_ms(self) -> i64 {
        match self {
            Level::Raw => 0,
            Level::Minute => 60_000,
            Level::Hour => 3_600_000,
            Level::Day => 86_400_000,
        }
    }

    /// The level this one is rolled up from.
    pub fn finer(self) -> Option<Level> {
        match self {
            Level::Raw => None,
            Level::Minute => Some(Level::Raw),
            Level::Hour => Some(Level::Minute),
            Level::Day => Some(Level::Hour),
        }
    }

    /// The level rolled up from this one.
    pub fn coarser(self) -> Option<Level> {
        Level::ROLLUPS.into_iter().find(|l| l.finer() == Some(self))
    }

    /// Start of the bucket holding `ms` (UTC minutes, hours, days).
    pub fn floor(self, ms: i64) -> i64 {
        match self.span_ms() {
            0 => ms,
            span => ms.div_euclid(span) * span,
        }
    }
}

/// What is known of one peer over a stretch of time: checks, ups, and the RTT of the up checks
/// as min, max, sum and a log histogram (for percentiles).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub checks: u64,
    pub up: u64,
    /// Up checks with an RTT (the RTT figures are over these).
    pub rtt_n: u64,
    pub rtt_sum_us: u64,
    pub rtt_min_us: u64,
    pub rtt_max_us: u64,
    /// (bin, count), bins ascending; bin `i` holds RTTs in `[1.04^i, 1.04^(i+1))` µs.
    pub hist: Vec<(u16, u64)>,
}

impl Bucket {
    pub fn add(&mut self, up: bool, rtt_us: Option<u64>) {
        self.checks += 1;
        if !up {
            return;
        }
        self.up += 1;
        let Some(rtt) = rtt_us else {
            return;
        };
        self.rtt_min_us = if self.rtt_n == 0 {
            rtt
        } else {
            self.rtt_min_us.min(rtt)
        };
        self.rtt_max_us = self.rtt_max_us.max(rtt);
        self.rtt_n += 1;
        self.rtt_sum_us = self.rtt_sum_us.saturating_add(rtt);
        let bin = bin_of(rtt);
        match self.hist.binary_search_by_key(&bin, |(b, _)| *b) {
            Ok(i) => self.hist[i].1 += 1,
            Err(i) => self.hist.insert(i, (bin, 1)),
        }
    }

    pub fn merge(&mut self, other: &Bucket) {
        if other.rtt_n > 0 {
            self.rtt_min_us = if self.rtt_n == 0 {
                other.rtt_min_us
            } else {
                self.rtt_min_us.min(other.rtt_min_us)
            };
            self.rtt_max_us = self.rtt_max_us.max(other.rtt_max_us);
        }
        self.checks += other.checks;
        self.up += other.up;
        self.rtt_n += other.rtt_n;
        self.rtt_sum_us = self.rtt_sum_us.saturating_add(other.rtt_sum_us);
        if other.hist.is_empty() {
            return;
        }
        let mut merged = Vec::with_capacity(self.hist.len() + other.hist.len());
        let (mut i, mut j) = (0, 0);
        let (a, b) = (&self.hist, &other.hist);
        while i < a.len() || j < b.len() {
            if j == b.len() || (i < a.len() && a[i].0 < b[j].0) {
                merged.push(a[i]);
                i += 1;
            } else if i == a.len() || b[j].0 < a[i].0 {
                merged.push(b[j]);
                j += 1;
            } else {
                merged.push((a[i].0, a[i].1 + b[j].1));
                i += 1;
                j += 1;
            }
        }
        self.hist = merged;
    }

    pub fn avg_rtt_us(&self) -> Option<u64> {
        (self.rtt_n > 0).then(|| self.rtt_sum_us / self.rtt_n)
    }

    /// Nearest-rank quantile of the RTTs, from the histogram: within 2 % of the exact value,
    /// and never outside the exact min and max.
    pub fn rtt_quantile_us(&self, q: f64) -> Option<u64> {
        if self.rtt_n == 0 {
            return None;
        }
        let rank = ((self.rtt_n as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bin, count) in &self.hist {
            seen += count;
            if seen >= rank {
                let middle = BIN_GROWTH.powf(f64::from(*bin) + 0.5).round() as u64;
                return Some(middle.clamp(self.rtt_min_us, self.rtt_max_us));
            }
        }
        Some(self.rtt_max_us)
    }
}

fn bin_of(rtt_us: u64) -> u16 {
    if rtt_us <= 1 {
        return 0;
    }
    ((rtt_us as f64).ln() / BIN_GROWTH.ln()).floor() as u16
}

/// How long each level of history is kept, and how many job runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Retention {
    pub raw: chrono::Duration,
    pub minute: chrono::Duration,
    pub hour: chrono::Duration,
    pub day: chrono::Duration,
    /// Runs kept per job, newest first.
    pub runs_keep: usize,
    /// Runs older than this go, however few are left.
    pub runs_age: chrono::Duration,
}

impl Default for Retention {
    /// Sized for 1000 peers every 5 s (see BENCHMARKS.md): raw checks for the last hour,
    /// minutes for the 1h window, hours for the 24h and 7d windows (7 days and 2 hours, so a
    /// 7d window that starts at an hour boundary is whole), days for the 30d window and a year
    /// and a bit of daily history. Data kept long pins sled's log segments, so only
    /// the small levels (hours, days) are kept for days.
    fn default() -> Self {
        Retention {
            raw: chrono::Duration::hours(1),
            minute: chrono::Duration::hours(2),
            hour: chrono::Duration::hours(7 * 24 + 2),
            day: chrono::Duration::days(400),
            runs_keep: 1000,
            runs_age: chrono::Duration::days(30),
        }
    }
}

impl Retention {
    pub fn of(&self, level: Level) -> chrono::Duration {
        match level {
            Level::Raw => self.raw,
            Level::Minute => self.minute,
            Level::Hour => self.hour,
            Level::Day => self.day,
        }
    }

    /// The longest any history is kept.
    pub fn longest(&self) -> chrono::Duration {
        self.raw.max(self.minute).max(self.hour).max(self.day)
    }
}

/// A window of `/api/nodes/{id}/health`: its length, the history level it is read from (the
/// window starts at the start of that level's bucket holding `now - length`) and the step of
/// its series.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub name: &'static str,
    pub length: chrono::Duration,
    pub level: Level,
    pub step: chrono::Duration,
}

pub const WINDOWS: [Window; 4] = [
    Window {
        name: "1h",
        length: chrono::Duration::hours(1),
        level: Level::Minute,
        step: chrono::Duration::minutes(1),
    },
    Window {
        name: "24h",
        length: chrono::Duration::hours(24),
        level: Level::Hour,
        step: chrono::Duration::hours(1),
    },
    Window {
        name: "7d",
        length: chrono::Duration::days(7),
        level: Level::Hour,
        step: chrono::Duration::hours(6),
    },
    Window {
        name: "30d",
        length: chrono::Duration::days(30),
        level: Level::Day,
        step: chrono::Duration::days(1),
    },
];

impl Window {
    /// The window called `name` ("1h", "24h", "7d", "30d").
    pub fn named(name: &str) -> Option<Window> {
        WINDOWS.into_iter().find(|w| w.name == name)
    }

    /// Where the window starts at `now`.
    pub fn start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        from_millis(self.level.floor((now - self.length).timestamp_millis()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_add_and_merge_alike() {
        let rtts = [800u64, 1_000, 1_200, 5_000, 250_000, 3, 1];
        let mut one = Bucket::default();
        let mut halves = (Bucket::default(), Bucket::default());
        for (i, rtt) in rtts.iter().enumerate() {
            one.add(true, Some(*rtt));
            if i % 2 == 0 {
                halves.0.add(true, Some(*rtt));
            } else {
                halves.1.add(true, Some(*rtt));
            }
        }
        one.add(false, None);
        halves.1.add(false, None);
        halves.0.merge(&halves.1);
        assert_eq!(one, halves.0);
        assert_eq!((one.checks, one.up, one.rtt_n), (8, 7, 7));
        assert_eq!((one.rtt_min_us, one.rtt_max_us), (1, 250_000));
        assert!(one.hist.windows(2).all(|w| w[0].0 < w[1].0));
        let mut empty = Bucket::default();
        empty.merge(&one);
        assert_eq!(empty, one);
    }

    #[test]
    fn quantiles_stay_within_two_percent() {
        for n in [1u64, 2, 19, 100, 1001] {
            let mut b = Bucket::default();
            let values: Vec<u64> = (1..=n).map(|i| 90 + i * i * 37).collect();
            for v in &values {
                b.add(true, Some(*v));
            }
            for q in [0.5, 0.95, 0.99] {
                let rank = ((n as f64) * q).ceil() as usize;
                let exact = values[rank - 1] as f64;
                let got = b.rtt_quantile_us(q).unwrap() as f64;
                assert!(
                    (got - exact).abs() <= exact * 0.02 + 1.0,
                    "n={n} q={q}: {got} vs {exact}"
                );
            }
        }
        assert_eq!(Bucket::default().rtt_quantile_us(0.95), None);
    }

    #[test]
    fn levels_floor_to_utc_boundaries() {
        let t = 1_700_000_123_456;
        assert_eq!(Level::Minute.floor(t) % 60_000, 0);
        assert_eq!(Level::Day.floor(t), 1_699_920_000_000);
        assert_eq!(Level::Raw.floor(t), t);
        assert_eq!(Level::Minute.floor(-1), -60_000);
    }
}
