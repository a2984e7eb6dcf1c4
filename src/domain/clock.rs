//! The one clock everything reads: wall time for records and history, monotonic time for
//! intervals. Injectable, so tests can jump either one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Wall and monotonic time.
pub trait Clock: Send + Sync + 'static {
    /// Wall-clock time: what records, history and schedules written as cron are stamped with.
    fn now(&self) -> DateTime<Utc>;
    /// Monotonic time: what intervals are measured on (it never jumps).
    fn instant(&self) -> Instant;
}

/// A clock shared by everything in a process; cheap to clone.
#[derive(Clone)]
pub struct SharedClock(Arc<dyn Clock>);

impl SharedClock {
    pub fn new(clock: impl Clock) -> Self {
        Self(Arc::new(clock))
    }

    /// The operating system's clocks.
    pub fn system() -> Self {
        Self::new(SystemClock)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.0.now()
    }

    pub fn instant(&self) -> Instant {
        self.0.instant()
    }
}

impl Default for SharedClock {
    fn default() -> Self {
        Self::system()
    }
}

impl std::fmt::Debug for SharedClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedClock")
    }
}

/// The operating system's clocks.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to: `advance` moves both times, `jump_wall` only the wall
/// clock (an NTP step, a clock set by hand).
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<(DateTime<Utc>, Instant)>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new((start, Instant::now()))))
    }

    fn with<T>(&self, f: impl FnOnce(&mut (DateTime<Utc>, Instant)) -> T) -> T {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Time passes: both clocks move by `d`.
    pub fn advance(&self, d: Duration) {
        self.with(|(wall, mono)| {
            *wall += chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero());
            *mono += d;
        })
    }

    /// The wall clock alone is set forward (positive) or back (negative).
    pub fn jump_wall(&self, by: chrono::Duration) {
        self.with(|(wall, _)| *wall += by)
    }

    pub fn shared(&self) -> SharedClock {
        SharedClock::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.with(|(wall, _)| *wall)
    }

    fn instant(&self) -> Instant {
        self.with(|(_, mono)| *mono)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let c = ManualClock::new(start);
        let (w0, m0) = (c.now(), c.instant());
        c.advance(Duration::from_secs(5));
        assert_eq!(c.now() - w0, chrono::Duration::seconds(5));
        assert_eq!(c.instant() - m0, Duration::from_secs(5));
        c.jump_wall(chrono::Duration::hours(-1));
        assert_eq!(c.now() - w0, chrono::Duration::seconds(5 - 3600));
        assert_eq!(c.instant() - m0, Duration::from_secs(5));
    }
}
