//! Every peer's checks and up checks over the store's whole life, for `/metrics`' counters
//! (`easytier_probe_peer_checks_total`): they count the sweeps of every process on the data
//! dir and never go down, across restarts and pruning.
//!
//! The sweep's write path stays as it was: the totals of the raw rows below the minute frontier
//! are kept per slot (in chunks of slots, under `check_totals/<chunk>` in `meta`) and grow when
//! raw rows are rolled up into minutes, in the same batch as the minute frontier. A read adds
//! the raw rows after the frontier. Raw rows dropped before they were rolled up (filed in the
//! future by a clock that was ahead) are folded in first; a forgotten slot's totals go with it.

use std::collections::BTreeMap;

use super::codec::{decode, encode};
use super::keys::{chunk_of, slot_of, KEY_CHECK_TOTALS};
use super::{Store, StoreError};
use crate::domain::{Bucket, Level};

/// Checks and up checks.
type Counts = (u64, u64);

/// Checks and up checks of one chunk of slots, by offset in the chunk.
type ChunkTotals = Vec<Counts>;

/// Checks and up checks of every slot over the store's life.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckTotals {
    by_slot: Vec<(u64, u64)>,
}

impl CheckTotals {
    /// `(checks, up)` of `slot`, `(0, 0)` when it was never checked.
    pub fn of(&self, slot: u32) -> (u64, u64) {
        self.by_slot.get(slot as usize).copied().unwrap_or((0, 0))
    }

    fn add(&mut self, slot: u32, checks: u64, up: u64) {
        let i = slot as usize;
        if self.by_slot.len() <= i {
            self.by_slot.resize(i + 1, (0, 0));
        }
        let t = &mut self.by_slot[i];
        *t = (t.0.saturating_add(checks), t.1.saturating_add(up));
    }
}

/// The meta key of one chunk of the totals.
fn totals_key(chunk: u32) -> Vec<u8> {
    [KEY_CHECK_TOTALS, &chunk.to_be_bytes()[..]].concat()
}

impl Store {
    /// Every slot's checks and up checks over the store's life: the kept totals and the raw
    /// rows after the minute frontier.
    pub fn check_totals(&self) -> Result<CheckTotals, StoreError> {
        // Not between a roll-up and the pruning after it (`maintain` holds it): the frontier,
        // the totals and the raw rows after the frontier are read as of one moment.
        let _held = self.totals_guard();
        let mut totals = CheckTotals::default();
        for item in self.inner.meta.scan_prefix(KEY_CHECK_TOTALS) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let Some(chunk) = k
                .get(KEY_CHECK_TOTALS.len()..)
                .and_then(|c| <[u8; 4]>::try_from(c).ok())
                .map(u32::from_be_bytes)
            else {
                continue;
            };
            for (offset, (checks, up)) in self.decoded(&v).into_iter().enumerate() {
                totals.add(slot_of(Level::Raw, chunk, offset as u8), checks, up);
            }
        }
        let from = self.frontier(Level::Minute)?.unwrap_or(i64::MIN);
        let slots = self.next_slot()?;
        for (slot, [checks, up]) in self
            .counts_in(Level::Raw, from, i64::MAX, slots)?
            .into_iter()
            .enumerate()
        {
            totals.add(slot as u32, u64::from(checks), u64::from(up));
        }
        Ok(totals)
    }

    /// Held by [`Store::maintain`] and [`Store::check_totals`].
    pub(super) fn totals_guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner.totals.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds the checks of the `buckets` (minute rows being made, by slot) to the kept totals,
    /// into `meta`: the batch that also moves the minute frontier.
    pub(super) fn add_rolled_up(
        &self,
        buckets: &BTreeMap<i64, BTreeMap<u32, Bucket>>,
        meta: &mut sled::Batch,
    ) -> Result<(), StoreError> {
        let mut by_slot: BTreeMap<u32, Counts> = BTreeMap::new();
        for (slot, b) in buckets.values().flatten() {
            let t = by_slot.entry(*slot).or_default();
            *t = (t.0 + b.checks, t.1 + b.up);
        }
        self.add_totals(by_slot, meta)
    }

    /// Adds the checks of the raw rows in `[from, to)` but the one at `except` to the kept
    /// totals (they are about to be deleted before being rolled up), in a batch of its own.
    pub(super) fn fold_in_raw(
        &self,
        from: i64,
        to: i64,
        except: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut by_slot: BTreeMap<u32, Counts> = BTreeMap::new();
        self.read_rows(Level::Raw, from, to, None, |at, slot, entry| {
            if Some(at) != except {
                let t = by_slot.entry(slot).or_default();
                let (checks, up) = super::figures::counts(&entry);
                *t = (t.0 + checks, t.1 + up);
            }
        })?;
        let mut meta = sled::Batch::default();
        self.add_totals(by_slot, &mut meta)?;
        self.inner.meta.apply_batch(meta).map_err(|e| self.err(e))
    }

    /// Sets the totals of `slots` (forgotten: their peer left long ago) back to nothing, so a
    /// peer given the number later starts from zero.
    pub(super) fn clear_totals(&self, slots: &[u32]) -> Result<(), StoreError> {
        let mut chunks: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        for slot in slots {
            let (chunk, offset) = chunk_of(Level::Raw, *slot);
            chunks.entry(chunk).or_default().push(offset);
        }
        let mut meta = sled::Batch::default();
        for (chunk, offsets) in chunks {
            let mut kept = self.chunk_totals(chunk)?;
            for o in offsets {
                if let Some(t) = kept.get_mut(usize::from(o)) {
                    *t = (0, 0);
                }
            }
            meta.insert(totals_key(chunk), encode(&kept, "check totals")?);
        }
        self.inner.meta.apply_batch(meta).map_err(|e| self.err(e))
    }

    /// Adds `by_slot` to the kept totals, each chunk read and written again into `meta`.
    fn add_totals(
        &self,
        by_slot: BTreeMap<u32, Counts>,
        meta: &mut sled::Batch,
    ) -> Result<(), StoreError> {
        let mut chunks: BTreeMap<u32, Vec<(u8, Counts)>> = BTreeMap::new();
        for (slot, t) in by_slot {
            let (chunk, offset) = chunk_of(Level::Raw, slot);
            chunks.entry(chunk).or_default().push((offset, t));
        }
        for (chunk, adds) in chunks {
            let mut kept = self.chunk_totals(chunk)?;
            for (offset, (checks, up)) in adds {
                let i = usize::from(offset);
                if kept.len() <= i {
                    kept.resize(i + 1, (0, 0));
                }
                let t = &mut kept[i];
                *t = (t.0.saturating_add(checks), t.1.saturating_add(up));
            }
            meta.insert(totals_key(chunk), encode(&kept, "check totals")?);
        }
        Ok(())
    }

    fn chunk_totals(&self, chunk: u32) -> Result<ChunkTotals, StoreError> {
        match self
            .inner
            .meta
            .get(totals_key(chunk))
            .map_err(|e| self.err(e))?
        {
            Some(v) => Ok(self.decoded(&v)),
            None => Ok(ChunkTotals::new()),
        }
    }

    /// A damaged chunk counts again from nothing (with a warning) rather than stopping every
    /// later roll-up.
    fn decoded(&self, v: &[u8]) -> ChunkTotals {
        decode(v, "check totals").unwrap_or_else(|e| {
            tracing::warn!("{e}; counting those peers' checks again from now");
            ChunkTotals::new()
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};

    use crate::domain::time::from_millis;
    use crate::domain::{Level, ListSource, Peer, PeerList, ProbeResult, Retention, SweepSummary};
    use crate::store::Store;

    fn list(ids: &[&str], at: DateTime<Utc>) -> PeerList {
        PeerList {
            fetched_at: at,
            source: ListSource::File,
            peers: ids.iter().map(|i| Peer::for_tests(i)).collect(),
        }
    }

    /// One sweep at `at` of `ids`, every one up but those in `down`, then maintenance.
    fn sweep(s: &Store, ids: &[&str], down: &[&str], at: DateTime<Utc>, bound: Duration) -> bool {
        let results: Vec<(String, ProbeResult)> = ids
            .iter()
            .map(|id| {
                let up = !down.contains(id);
                let r = ProbeResult {
                    up,
                    rtt_us: up.then_some(1500),
                    error_kind: None,
                    error: None,
                    checked_at: at,
                    candidates: Vec::new(),
                    node: None,
                    node_key: None,
                };
                (id.to_string(), r)
            })
            .collect();
        let summary = SweepSummary::from_results(at, results.iter().map(|(_, r)| r));
        s.record_sweep(&results, &summary).unwrap();
        let keep = Retention {
            raw: Duration::minutes(10),
            ..Retention::default()
        };
        s.maintain(at, &keep, bound).unwrap().held
    }

    fn of(s: &Store, id: &str) -> (u64, u64) {
        let slot = s.slot(id).unwrap().unwrap();
        s.check_totals().unwrap().of(slot)
    }

    /// Three hours of sweeps every 20 s, read after every one, the store closed and opened
    /// again half way, then a year on (every row pruned): the totals are every check, and
    /// never go down.
    #[test]
    fn check_totals_count_every_sweep_across_roll_ups_restarts_and_pruning() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = from_millis(Level::Hour.floor(Utc::now().timestamp_millis())) - Duration::hours(4)
            + Duration::seconds(10);
        let mut s = Store::open(dir.path(), "t").unwrap();
        s.replace_peer_list(&list(&["a", "b"], t0)).unwrap();
        let (mut seen_a, mut seen_b) = ((0, 0), (0, 0));
        let mut last = t0;
        for i in 0..600u64 {
            if i == 300 {
                drop(s);
                s = Store::open(dir.path(), "t").unwrap();
            }
            last = t0 + Duration::seconds(20 * i as i64);
            let down: &[&str] = if i % 4 == 0 { &["b"] } else { &[] };
            sweep(&s, &["a", "b"], down, last, Duration::days(100_000));
            let (a, b) = (of(&s, "a"), of(&s, "b"));
            assert_eq!(a, (i + 1, i + 1), "sweep {i}");
            assert_eq!(b, (i + 1, i + 1 - (i / 4 + 1)), "sweep {i}");
            assert!(a >= seen_a && b >= seen_b, "sweep {i}: went down");
            (seen_a, seen_b) = (a, b);
        }
        assert!(s.frontier(Level::Hour).unwrap().is_some());
        // A year on: the history has aged out (but the newest raw row), the totals stay.
        let later = last + Duration::days(400);
        sweep(&s, &["a", "b"], &[], later, Duration::days(100_000));
        assert_eq!(s.history_size()[1].1, 0, "{:?}", s.history_size());
        assert_eq!(of(&s, "a"), (601, 601));
        assert_eq!(of(&s, "b"), (601, 601 - 150));
    }

    /// A check filed in the future by a clock that was ahead is dropped from the history when
    /// the clock comes back, but stays counted.
    #[test]
    fn a_check_dropped_from_the_future_stays_counted() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), "t").unwrap();
        let t0 = from_millis(Level::Hour.floor(Utc::now().timestamp_millis())) - Duration::hours(3);
        s.replace_peer_list(&list(&["a"], t0)).unwrap();
        let bound = Duration::hours(1);
        for i in 0..5 {
            sweep(&s, &["a"], &[], t0 + Duration::minutes(i), bound);
        }
        assert!(sweep(&s, &["a"], &[], t0 + Duration::days(30), bound));
        assert_eq!(of(&s, "a"), (6, 6));
        assert!(!sweep(&s, &["a"], &["a"], t0 + Duration::minutes(6), bound));
        assert_eq!(of(&s, "a"), (7, 6));
    }

    /// A peer gone a month is forgotten with its totals: another peer given its slot later
    /// starts from zero.
    #[test]
    fn a_forgotten_slot_takes_no_totals_to_the_next_peer() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), "t").unwrap();
        let t0 = from_millis(Level::Day.floor(Utc::now().timestamp_millis())) - Duration::days(500);
        let unbounded = Duration::days(100_000);
        s.replace_peer_list(&list(&["a"], t0)).unwrap();
        sweep(&s, &["a"], &[], t0, unbounded);
        sweep(&s, &["a"], &[], t0 + Duration::minutes(2), unbounded);
        assert_eq!(of(&s, "a"), (2, 2));
        let slot = s.slot("a").unwrap().unwrap();
        s.replace_peer_list(&list(&["b"], t0 + Duration::hours(1)))
            .unwrap();
        sweep(&s, &["b"], &[], t0 + Duration::days(32), unbounded);
        assert!(s.slot("a").unwrap().is_none());
        assert_eq!(s.check_totals().unwrap().of(slot), (0, 0));
    }
}
