//! Window reads: the history of a stretch of time folded into buckets per peer, each check
//! counted once across the levels.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::codec::{decode_chunk, Entry};
use super::keys::{chunk_of, parse_row_key, row_key};
use super::{Store, StoreError};
use crate::domain::{Bucket, Level, Window};

impl Store {
    /// Folds the history in `[from, to)` into buckets per slot and point in time: `level` rows
    /// from the start of the bucket holding `from`, then finer rows where `level` has none yet
    /// (the unfinished hour, minute), down to the raw rows of the last sweeps. A point is the
    /// start of a `step` (a multiple of the level's span), or with no step one point per slot
    /// at the window's start. With `only`, just that slot, read chunk by chunk.
    pub fn collect(
        &self,
        level: Level,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        step: Option<chrono::Duration>,
        only: Option<u32>,
    ) -> Result<HashMap<u32, BTreeMap<i64, Bucket>>, StoreError> {
        let start = level.floor(from.timestamp_millis());
        let to = to.timestamp_millis();
        let step = step.map(|s| s.num_milliseconds().max(1));
        let point = |at: i64| match step {
            Some(s) => start + (at - start).div_euclid(s) * s,
            None => start,
        };
        let mut out: HashMap<u32, BTreeMap<i64, Bucket>> = HashMap::new();
        let mut cursor = start;
        let mut next = Some(level);
        while let Some(l) = next {
            let end = match l {
                Level::Raw => to,
                _ => self.frontier(l)?.unwrap_or(i64::MIN).min(to),
            };
            if end > cursor {
                self.read_rows(l, cursor, end, only, |at, slot, entry| {
                    entry.fold_into(out.entry(slot).or_default().entry(point(at)).or_default());
                })?;
                cursor = end;
            }
            next = l.finer();
        }
        Ok(out)
    }

    /// Calls `f(row time, slot, entry)` for the `level` rows in `[from, to)`.
    pub(super) fn read_rows(
        &self,
        level: Level,
        from: i64,
        to: i64,
        only: Option<u32>,
        mut f: impl FnMut(i64, u32, Entry),
    ) -> Result<(), StoreError> {
        let mut visit = |at: i64, chunk: u32, value: &[u8]| -> Result<(), StoreError> {
            for (slot, entry) in decode_chunk(level, chunk, value)? {
                if only.is_none_or(|s| s == slot) {
                    f(at, slot, entry);
                }
            }
            Ok(())
        };
        let tree = self.tree(level);
        match only {
            // One peer of an aligned level: one small read per bucket.
            Some(slot) if level != Level::Raw => {
                let (chunk, _) = chunk_of(level, slot);
                let mut at = from;
                while at < to {
                    if let Some(v) = tree.get(row_key(at, chunk)).map_err(|e| self.err(e))? {
                        visit(at, chunk, &v)?;
                    }
                    at += level.span_ms();
                }
            }
            _ => {
                let wanted = only.map(|s| chunk_of(level, s).0);
                for item in tree.range(row_key(from, 0)..row_key(to, 0)) {
                    let (k, v) = item.map_err(|e| self.err(e))?;
                    let Some((at, chunk)) = parse_row_key(&k) else {
                        continue;
                    };
                    if wanted.is_none_or(|c| c == chunk) {
                        visit(at, chunk, &v)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Rows and bytes per level (the benchmark and the retention test report them).
    pub fn history_size(&self) -> Vec<(Level, usize, u64)> {
        [Level::Raw, Level::Minute, Level::Hour, Level::Day]
            .into_iter()
            .map(|l| {
                let mut rows = std::collections::HashSet::new();
                let mut bytes = 0;
                for (k, v) in self.tree(l).iter().flatten() {
                    if let Some((at, _)) = parse_row_key(&k) {
                        rows.insert(at);
                    }
                    bytes += (k.len() + v.len()) as u64;
                }
                (l, rows.len(), bytes)
            })
            .collect()
    }
}

impl Store {
    /// Everything of window `w` at `now` per slot: one bucket each, or one per step of the
    /// window with `series`. With `only`, just that slot.
    pub fn window(
        &self,
        w: &Window,
        now: DateTime<Utc>,
        only: Option<u32>,
        series: bool,
    ) -> Result<HashMap<u32, BTreeMap<i64, Bucket>>, StoreError> {
        // Up to a second ahead: a sweep that just finished is in.
        let to = now + chrono::Duration::seconds(1);
        self.collect(w.level, now - w.length, to, series.then_some(w.step), only)
    }
}
