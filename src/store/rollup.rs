//! History maintenance: finished minutes, hours and days rolled up into buckets, every level
//! pruned past its retention, and the guard against a wall clock that jumped.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::codec::{decode_chunk, encode};
use super::keys::{
    chunk_of, frontier_key, parse_row_key, row_key, KEY_HISTORY_TIME, KEY_JUMP_PENDING,
};
use super::{Store, StoreError};
use crate::domain::{Bucket, Level, Retention};

/// What one [`Store::maintain`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Maintenance {
    /// Buckets (rows) made, all levels.
    pub rolled_up: usize,
    /// Rows deleted past their retention, all levels.
    pub pruned: usize,
    /// Damaged chunks left out of a roll-up.
    pub skipped: usize,
    /// Nothing was done: the clock is ahead of the history by more than the bound, and is
    /// trusted only once the next sweep confirms it.
    pub held: bool,
    /// Raw rows dropped that a clock once ahead had filed in the future.
    pub dropped_future: usize,
}

/// How `maintain` takes the time it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeVerdict {
    Trusted,
    Held,
}

impl Store {
    pub(super) fn tree(&self, level: Level) -> &sled::Tree {
        match level {
            Level::Raw => &self.inner.raw,
            Level::Minute => &self.inner.minute,
            Level::Hour => &self.inner.hour,
            Level::Day => &self.inner.day,
        }
    }

    /// Rows of `level` exist up to (not including) this time: everything finer before it has
    /// been rolled up. `None` before the first roll-up.
    pub(super) fn frontier(&self, level: Level) -> Result<Option<i64>, StoreError> {
        self.read_ms(self.frontier_tree(level), &frontier_key(level))
    }

    /// A level's frontier is kept in the database that holds its rows, so the two are written
    /// in one log, in order.
    pub(super) fn frontier_tree(&self, level: Level) -> &sled::Tree {
        match level {
            Level::Hour | Level::Day => &self.inner.archive_meta,
            Level::Raw | Level::Minute => &self.inner.meta,
        }
    }

    /// Rolls finished minutes, hours and days up into their buckets and prunes every level
    /// past its retention, as of `now`. The sweep calls it after recording; its cost is the rows
    /// it rolls up or deletes (normally one raw row, and one row per level when a minute,
    /// hour or day ends), never a scan of what stays.
    ///
    /// `jump_bound` guards against a wall clock that jumped ahead: a `now` more than that ahead
    /// of the history's own time acts on nothing; the next call confirms it (the clock stayed
    /// there: a real step, or a long stop) or the clock came back, and either way maintenance
    /// resumes then, one sweep later.
    pub fn maintain(
        &self,
        now: DateTime<Utc>,
        keep: &Retention,
        jump_bound: chrono::Duration,
    ) -> Result<Maintenance, StoreError> {
        let now_ms = now.timestamp_millis();
        let mut done = Maintenance::default();
        // A reader of the check totals sees them before or after, never in between.
        let _held = self.totals_guard();
        // A clock behind the stored history rolls up and prunes nothing until it catches up.
        if now_ms < self.frontier(Level::Minute)?.unwrap_or(i64::MIN) {
            return Ok(done);
        }
        let bound_ms = jump_bound.num_milliseconds().max(0);
        if self.judge_time(now_ms, bound_ms)? == TimeVerdict::Held {
            done.held = true;
            return Ok(done);
        }
        done.dropped_future = self.drop_future_raw(now_ms.saturating_add(bound_ms))?;
        for level in Level::ROLLUPS {
            let made = self.roll_up(level, now_ms, &mut done.skipped)?;
            // Once a day: slots of peers whose history has all aged out.
            if level == Level::Day && made > 0 {
                self.forget_slots(now_ms, keep)?;
            }
            done.rolled_up += made;
        }
        let newest_raw = self.newest_raw_ms()?;
        // Raw rows go one a sweep; the other levels can only have a row to prune once a
        // minute has been rolled up.
        let levels: &[Level] = if done.rolled_up > 0 {
            &[Level::Raw, Level::Minute, Level::Hour, Level::Day]
        } else {
            &[Level::Raw]
        };
        for &level in levels {
            let mut cutoff = now_ms.saturating_sub(keep.of(level).num_milliseconds());
            // Nothing goes before the next level has taken it in.
            if let Some(coarser) = level.coarser() {
                cutoff = cutoff.min(self.frontier(coarser)?.unwrap_or(i64::MIN));
            }
            // The newest raw row holds the latest results: it stays.
            if level == Level::Raw {
                cutoff = cutoff.min(newest_raw.unwrap_or(i64::MIN));
            }
            done.pruned += self.prune_level(level, cutoff)?;
        }
        Ok(done)
    }

    /// Takes `now` as the history's time, or holds it: see [`Store::maintain`]. The history's
    /// time (`meta/history_time`) is the newest time maintenance acted on.
    fn judge_time(&self, now_ms: i64, bound_ms: i64) -> Result<TimeVerdict, StoreError> {
        let history = self.read_ms(&self.inner.meta, KEY_HISTORY_TIME)?;
        let pending = self.read_ms(&self.inner.meta, KEY_JUMP_PENDING)?;
        let trusted = match history {
            None => true,
            Some(h) if now_ms <= h.saturating_add(bound_ms) => true,
            // The jump seen last time, still in force: the clock really is there now.
            Some(h) => match pending {
                Some(p) if now_ms >= p && now_ms - p <= bound_ms => {
                    tracing::warn!(
                        ahead_s = (now_ms - h) / 1000,
                        "the clock stayed ahead of the stored history; history maintenance follows it"
                    );
                    true
                }
                _ => false,
            },
        };
        let mut batch = sled::Batch::default();
        if trusted {
            batch.insert(
                KEY_HISTORY_TIME,
                &history.unwrap_or(now_ms).max(now_ms).to_be_bytes(),
            );
            batch.remove(KEY_JUMP_PENDING);
        } else {
            tracing::warn!(
                ahead_s = (now_ms - history.unwrap_or(now_ms)) / 1000,
                "the clock jumped ahead of the stored history; no roll-up or pruning until the next sweep confirms it"
            );
            batch.insert(KEY_JUMP_PENDING, &now_ms.to_be_bytes());
        }
        self.inner
            .meta
            .apply_batch(batch)
            .map_err(|e| self.err(e))?;
        Ok(if trusted {
            TimeVerdict::Trusted
        } else {
            TimeVerdict::Held
        })
    }

    /// Deletes raw rows filed after `after` (by a clock that was ahead and came back); they
    /// would otherwise be rolled into a minute far in the future. Returns how many rows went.
    fn drop_future_raw(&self, after: i64) -> Result<usize, StoreError> {
        // The latest results stay, wherever they are.
        let newest = self.newest_raw_ms()?;
        // Their checks were counted (`check_totals`): they stay counted.
        self.fold_in_raw(after, i64::MAX, newest)?;
        let dropped = self.remove_rows(Level::Raw, row_key(after, 0).., newest)?;
        if dropped > 0 {
            tracing::warn!(
                rows = dropped,
                "dropped raw history rows filed in the future by a clock that was ahead"
            );
        }
        Ok(dropped)
    }

    /// Makes the `level` rows for every finished bucket since the level's frontier.
    fn roll_up(&self, level: Level, now_ms: i64, skipped: &mut usize) -> Result<usize, StoreError> {
        let Some(finer) = level.finer() else {
            return Ok(0);
        };
        let target = level.floor(now_ms);
        let from = match self.frontier(level)? {
            Some(f) => f,
            None => match self.tree(finer).first().map_err(|e| self.err(e))? {
                Some((k, _)) => match parse_row_key(&k) {
                    Some((at, _)) => level.floor(at),
                    None => target,
                },
                None => target,
            },
        };
        if from >= target {
            return Ok(0);
        }
        let mut rows: BTreeMap<i64, BTreeMap<u32, Bucket>> = BTreeMap::new();
        for item in self.tree(finer).range(row_key(from, 0)..row_key(target, 0)) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let Some((at, chunk)) = parse_row_key(&k) else {
                *skipped += 1;
                continue;
            };
            let row = rows.entry(level.floor(at)).or_default();
            // A damaged chunk is already lost; the rest of the history still rolls up.
            match decode_chunk(finer, chunk, &v) {
                Ok(entries) => {
                    for (slot, entry) in entries {
                        entry.fold_into(row.entry(slot).or_default());
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        "history: skipping a damaged {} row chunk: {e}",
                        finer.as_str()
                    );
                    *skipped += 1;
                }
            }
        }
        // The raw checks rolled into minutes join the check totals in the batch that moves the
        // minute frontier: counted once, whatever a crash interrupts.
        let mut frontier = sled::Batch::default();
        if level == Level::Minute {
            self.add_rolled_up(&rows, &mut frontier)?;
        }
        frontier.insert(frontier_key(level), &target.to_be_bytes());
        let mut batch = sled::Batch::default();
        let made = rows.len();
        for (start, buckets) in rows {
            let mut chunks: BTreeMap<u32, Vec<(u8, Bucket)>> = BTreeMap::new();
            for (slot, bucket) in buckets {
                let (chunk, offset) = chunk_of(level, slot);
                chunks.entry(chunk).or_default().push((offset, bucket));
            }
            for (chunk, entries) in chunks {
                batch.insert(&row_key(start, chunk)[..], encode(&entries, "history row")?);
            }
        }
        // Rows first, then the frontier: after a crash between the two the same rows are
        // simply made again.
        self.tree(level)
            .apply_batch(batch)
            .map_err(|e| self.err(e))?;
        self.frontier_tree(level)
            .apply_batch(frontier)
            .map_err(|e| self.err(e))?;
        Ok(made)
    }

    /// Deletes the `level` rows older than `cutoff`; returns how many rows went.
    fn prune_level(&self, level: Level, cutoff: i64) -> Result<usize, StoreError> {
        let removed = self.remove_rows(level, ..row_key(cutoff, 0), None)?;
        // After the rows went: a read in between loads them no more.
        self.inner.sums.forget_before(level, cutoff);
        Ok(removed)
    }

    /// Deletes the `level` rows whose keys are in `range`, but the row at `except`; returns how
    /// many rows went.
    fn remove_rows(
        &self,
        level: Level,
        range: impl std::ops::RangeBounds<[u8; 12]>,
        except: Option<i64>,
    ) -> Result<usize, StoreError> {
        let mut batch = sled::Batch::default();
        let mut rows = std::collections::HashSet::new();
        for key in self.tree(level).range(range).keys() {
            let key = key.map_err(|e| self.err(e))?;
            if let Some((at, _)) = parse_row_key(&key) {
                if Some(at) == except {
                    continue;
                }
                rows.insert(at);
            }
            batch.remove(key);
        }
        if rows.is_empty() {
            return Ok(0);
        }
        self.tree(level)
            .apply_batch(batch)
            .map_err(|e| self.err(e))?;
        Ok(rows.len())
    }
}
