//! The uptime of every peer over a window, as `/api/nodes` shows it, without reading the
//! window's history on every request. A minute, hour or day row below its level's frontier
//! never changes again (roll-ups only write above it), so the checks and up checks of each of
//! its slots are read once and kept in memory; only the raw rows since the last rolled-up
//! minute are read fresh. Pruning drops the kept sums of the rows it deletes, so the answer is
//! always the one [`Store::window`] would give.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::codec::{decode_chunk, Entry};
use super::keys::{parse_row_key, row_key};
use super::{Store, StoreError};
use crate::domain::{Level, Window};

/// Checks and up checks of one row, by slot (a day row at one sweep a second is 86 400).
type RowCounts = Vec<[u32; 2]>;

/// The kept per-slot counts of rows below their level's frontier.
#[derive(Default)]
pub(super) struct RowSums {
    rows: Mutex<HashMap<(Level, i64), RowCounts>>,
}

impl RowSums {
    /// Drops the kept counts of `level` rows before `cutoff` (they are being deleted).
    pub(super) fn forget_before(&self, level: Level, cutoff: i64) {
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        rows.retain(|(l, at), _| *l != level || *at >= cutoff);
    }

    /// How many rows' counts are kept (tests, and the benchmark's memory figure).
    pub(super) fn len(&self) -> usize {
        self.rows.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Checks and up checks of every slot over one window.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Uptimes {
    by_slot: Vec<[u64; 2]>,
}

impl Uptimes {
    /// `(checks, up)` of `slot`; `None` when it has no check in the window.
    pub fn of(&self, slot: u32) -> Option<(u64, u64)> {
        self.by_slot
            .get(slot as usize)
            .filter(|[checks, _]| *checks > 0)
            .map(|[checks, up]| (*checks, *up))
    }

    fn add(&mut self, slot: u32, checks: u64, up: u64) {
        let i = slot as usize;
        if self.by_slot.len() <= i {
            self.by_slot.resize(i + 1, [0, 0]);
        }
        self.by_slot[i][0] += checks;
        self.by_slot[i][1] += up;
    }

    fn add_all(&mut self, other: &Uptimes) {
        if self.by_slot.len() < other.by_slot.len() {
            self.by_slot.resize(other.by_slot.len(), [0, 0]);
        }
        for (sum, [checks, up]) in self.by_slot.iter_mut().zip(&other.by_slot) {
            sum[0] += checks;
            sum[1] += up;
        }
    }

    fn add_row(&mut self, row: &RowCounts) {
        if self.by_slot.len() < row.len() {
            self.by_slot.resize(row.len(), [0, 0]);
        }
        for (sum, [checks, up]) in self.by_slot.iter_mut().zip(row) {
            sum[0] += u64::from(*checks);
            sum[1] += u64::from(*up);
        }
    }
}

/// `(checks, up)` of an entry of any level.
fn counts(entry: &Entry) -> (u64, u64) {
    match entry {
        Entry::Check(c) => (1, u64::from(c.up)),
        Entry::Bucket(b) => (b.checks, b.up),
    }
}

impl Store {
    /// The checks and up checks of every slot over each of `windows` at `now`: the figures
    /// of [`Store::window`] (the same rows, levels and bounds), from kept row counts.
    pub fn uptimes(
        &self,
        windows: &[Window],
        now: DateTime<Utc>,
    ) -> Result<Vec<Uptimes>, StoreError> {
        let sums = &self.inner.sums;
        let mut kept = sums.rows.lock().unwrap_or_else(|e| e.into_inner());
        let to = (now + chrono::Duration::seconds(1)).timestamp_millis();
        // No slot at or past the next one to be given exists: a damaged key cannot size the
        // per-slot vectors past the roster.
        let slots = self.next_slot()?;
        let mut raw_tails: HashMap<i64, Uptimes> = HashMap::new();
        let mut oldest: HashMap<Level, i64> = HashMap::new();
        let mut out = Vec::with_capacity(windows.len());
        for w in windows {
            let mut figures = Uptimes::default();
            let mut cursor = w.level.floor((now - w.length).timestamp_millis());
            let mut next = Some(w.level);
            while let Some(l) = next {
                next = l.finer();
                if l == Level::Raw {
                    if to > cursor {
                        let tail = match raw_tails.get(&cursor) {
                            Some(t) => t,
                            None => {
                                let t = self.raw_counts(cursor, to, slots)?;
                                raw_tails.entry(cursor).or_insert(t)
                            }
                        };
                        figures.add_all(tail);
                    }
                    continue;
                }
                let end = self.frontier(l)?.unwrap_or(i64::MIN).min(to);
                if end <= cursor {
                    continue;
                }
                let first = oldest.entry(l).or_insert(cursor);
                *first = (*first).min(cursor);
                let mut at = cursor;
                while at < end {
                    match kept.get(&(l, at)) {
                        Some(row) => figures.add_row(row),
                        None => {
                            let row = self.row_counts(l, at, slots)?;
                            figures.add_row(&row);
                            // A row with no checks (no sweep then, or pruned) is not kept.
                            if !row.is_empty() {
                                kept.insert((l, at), row);
                            }
                        }
                    }
                    at += l.span_ms();
                }
                cursor = end;
            }
            out.push(figures);
        }
        // Rows older than every window asked for are not kept.
        kept.retain(|(l, at), _| oldest.get(l).is_some_and(|first| at >= first));
        Ok(out)
    }

    /// Per-slot counts of the `level` row at `at`, all its chunks.
    fn row_counts(&self, level: Level, at: i64, slots: u32) -> Result<RowCounts, StoreError> {
        let mut row = RowCounts::new();
        for item in self.tree(level).range(row_key(at, 0)..row_key(at + 1, 0)) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let Some((_, chunk)) = parse_row_key(&k) else {
                continue;
            };
            for (slot, entry) in decode_chunk(level, chunk, &v)? {
                if slot >= slots {
                    continue;
                }
                let (checks, up) = counts(&entry);
                let i = slot as usize;
                if row.len() <= i {
                    row.resize(i + 1, [0, 0]);
                }
                let sat = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
                row[i] = [sat(checks), sat(up)];
            }
        }
        Ok(row)
    }

    /// Per-slot counts of the raw rows in `[from, to)`, read now.
    fn raw_counts(&self, from: i64, to: i64, slots: u32) -> Result<Uptimes, StoreError> {
        let mut figures = Uptimes::default();
        for item in self
            .tree(Level::Raw)
            .range(row_key(from, 0)..row_key(to, 0))
        {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let Some((_, chunk)) = parse_row_key(&k) else {
                continue;
            };
            for (slot, entry) in decode_chunk(Level::Raw, chunk, &v)? {
                if slot >= slots {
                    continue;
                }
                let (checks, up) = counts(&entry);
                figures.add(slot, checks, up);
            }
        }
        Ok(figures)
    }

    /// How many rows' counts [`Store::uptimes`] keeps in memory now.
    pub fn kept_row_counts(&self) -> usize {
        self.inner.sums.len()
    }
}
