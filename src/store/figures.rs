//! The uptime of every peer over a window, as `/api/nodes` shows it, without reading the
//! window's history on every request. A minute, hour or day row below its level's frontier
//! never changes again (roll-ups only write above it), so the checks and up checks of each of
//! its slots are read once and kept in memory; only the raw rows since the last rolled-up
//! minute are read fresh. Pruning drops the kept sums of the rows it deletes, so the answer is
//! always the one [`Store::window`] would give.

use std::collections::hash_map::Entry as Slot;
use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::codec::Entry;
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
pub(super) fn counts(entry: &Entry) -> (u64, u64) {
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
        let mut raw_tails: HashMap<i64, RowCounts> = HashMap::new();
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
                        let tail = match raw_tails.entry(cursor) {
                            Slot::Occupied(e) => e.into_mut(),
                            Slot::Vacant(e) => {
                                e.insert(self.counts_in(Level::Raw, cursor, to, slots)?)
                            }
                        };
                        figures.add_row(tail);
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
                            let row = self.counts_in(l, at, at + 1, slots)?;
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

    /// Per-slot counts of the `level` rows in `[from, to)` (one row: `[at, at + 1)`).
    pub(super) fn counts_in(
        &self,
        level: Level,
        from: i64,
        to: i64,
        slots: u32,
    ) -> Result<RowCounts, StoreError> {
        let mut row = RowCounts::new();
        self.read_rows(level, from, to, None, |_, slot, entry| {
            if slot >= slots {
                return;
            }
            let (checks, up) = counts(&entry);
            let i = slot as usize;
            if row.len() <= i {
                row.resize(i + 1, [0, 0]);
            }
            let sat = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
            row[i][0] = row[i][0].saturating_add(sat(checks));
            row[i][1] = row[i][1].saturating_add(sat(up));
        })?;
        Ok(row)
    }

    /// How many rows' counts [`Store::uptimes`] keeps in memory now.
    pub fn kept_row_counts(&self) -> usize {
        self.inner.sums.len()
    }
}
