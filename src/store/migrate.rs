//! Schema 1 → 2: per-peer samples become slots and per-minute rows, the latest results one raw
//! row.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::codec::encode;
use super::keys::{chunk_of, frontier_key, row_key, KEY_NEXT_SLOT, KEY_SCHEMA};
use super::peers::SlotEntry;
use super::{Store, StoreError, SCHEMA_VERSION};
use crate::domain::{Bucket, ErrorKind, Level, ProbeResult, SweepSummary};

/// One history sample of a peer, as schema 1 stored it (read only by the migration).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub up: bool,
    pub rtt_us: Option<u64>,
    pub error_kind: Option<ErrorKind>,
}

impl Store {
    /// Version 1 kept each peer's samples under its id (`history`) and its latest result
    /// (`latest`). They become slots, per-minute rows and one raw row; then the old trees go.
    /// Safe to repeat: a crash part way leaves version 1 on disk, and the next open starts over.
    pub(super) fn migrate_from_v1(&self) -> Result<(), StoreError> {
        let db = &self.inner.db;
        let history = db.open_tree("history").map_err(|e| self.err(e))?;
        let latest = db.open_tree("latest").map_err(|e| self.err(e))?;
        let slots = self.slots_for_v1(&history)?;
        let newest = self
            .samples_to_minutes(&history, &slots)?
            .max(self.latest_to_raw(&latest)?);
        if newest > i64::MIN {
            // Checks of the rest of that minute stay raw only (at most a minute of them).
            let frontier = Level::Minute.floor(newest) + Level::Minute.span_ms();
            self.inner
                .meta
                .insert(frontier_key(Level::Minute), &frontier.to_be_bytes())
                .map_err(|e| self.err(e))?;
        }
        self.inner
            .meta
            .insert(KEY_SCHEMA, &SCHEMA_VERSION.to_be_bytes())
            .map_err(|e| self.err(e))?;
        db.flush().map_err(|e| self.err(e))?;
        for old in ["history", "latest"] {
            db.drop_tree(old).map_err(|e| self.err(e))?;
        }
        tracing::info!(
            peers = slots.len(),
            "store migrated from schema 1 to {SCHEMA_VERSION}: history is now kept in per-minute buckets"
        );
        Ok(())
    }

    /// A slot for every peer of the list and every peer with samples; peers with history that
    /// are no longer listed keep it, as peers that left.
    fn slots_for_v1(&self, history: &sled::Tree) -> Result<BTreeMap<u32, String>, StoreError> {
        if let Some(list) = self.peer_list()? {
            self.replace_peer_list(&list)?;
        }
        let mut slots: BTreeMap<u32, String> = self
            .roster()?
            .into_iter()
            .map(|(id, slot)| (slot, id))
            .collect();
        let mut next = self.next_slot()?;
        let mut key = Vec::new();
        loop {
            let item = match history.range(key.clone()..).next() {
                Some(item) => item.map_err(|e| self.err(e))?,
                None => break,
            };
            let k = item.0;
            let Some(id) = k
                .get(..2)
                .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
                .and_then(|len| k.get(2..2 + len))
                .and_then(|id| std::str::from_utf8(id).ok())
            else {
                break;
            };
            if let Some(slot) = self.slot(id)? {
                // Given on an earlier attempt that did not finish.
                slots.insert(slot, id.to_string());
            } else {
                let entry = SlotEntry {
                    slot: next,
                    removed_ms: Some(Utc::now().timestamp_millis()),
                };
                self.inner
                    .slots
                    .insert(id.as_bytes(), encode(&entry, "slot")?)
                    .map_err(|e| self.err(e))?;
                slots.insert(next, id.to_string());
                next += 1;
            }
            // On to the next peer's samples.
            key = history_key(id, DateTime::<Utc>::MAX_UTC);
        }
        self.inner
            .meta
            .insert(KEY_NEXT_SLOT, &next.to_be_bytes())
            .map_err(|e| self.err(e))?;
        Ok(slots)
    }

    /// Samples → per-minute buckets, a chunk of peers at a time. Returns the newest sample's
    /// time (ms), `i64::MIN` without samples.
    fn samples_to_minutes(
        &self,
        history: &sled::Tree,
        slots: &BTreeMap<u32, String>,
    ) -> Result<i64, StoreError> {
        let mut newest = i64::MIN;
        let mut by_chunk: BTreeMap<u32, Vec<(u8, &String)>> = BTreeMap::new();
        for (slot, id) in slots {
            let (chunk, offset) = chunk_of(Level::Minute, *slot);
            by_chunk.entry(chunk).or_default().push((offset, id));
        }
        for (chunk, peers) in by_chunk {
            let mut rows: BTreeMap<i64, Vec<(u8, Bucket)>> = BTreeMap::new();
            for (offset, id) in peers {
                let from = history_key(id, DateTime::<Utc>::MIN_UTC);
                let to = history_key(id, DateTime::<Utc>::MAX_UTC);
                for item in history.range(from..to) {
                    let (_, v) = item.map_err(|e| self.err(e))?;
                    let Ok(sample) = serde_json::from_slice::<Sample>(&v) else {
                        continue;
                    };
                    let at = sample.at.timestamp_millis();
                    newest = newest.max(at);
                    let row = rows.entry(Level::Minute.floor(at)).or_default();
                    if row.last().is_none_or(|(o, _)| *o != offset) {
                        row.push((offset, Bucket::default()));
                    }
                    if let Some((_, b)) = row.last_mut() {
                        b.add(sample.up, sample.rtt_us);
                    }
                }
            }
            let mut batch = sled::Batch::default();
            for (minute, entries) in rows {
                batch.insert(
                    &row_key(minute, chunk)[..],
                    encode(&entries, "history row")?,
                );
            }
            self.inner
                .minute
                .apply_batch(batch)
                .map_err(|e| self.err(e))?;
        }
        Ok(newest)
    }

    /// Latest results → one raw row, already counted in the minutes. Returns the newest
    /// result's time (ms), `i64::MIN` without results.
    fn latest_to_raw(&self, latest: &sled::Tree) -> Result<i64, StoreError> {
        let mut results = Vec::new();
        for item in latest.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if let (Ok(id), Ok(r)) = (
                std::str::from_utf8(&k),
                serde_json::from_slice::<ProbeResult>(&v),
            ) {
                results.push((id.to_string(), r));
            }
        }
        let Some(at) = results.iter().map(|(_, r)| r.checked_at).max() else {
            return Ok(i64::MIN);
        };
        let summary = self
            .last_sweep()?
            .unwrap_or_else(|| SweepSummary::from_results(at, results.iter().map(|(_, r)| r)));
        self.record_sweep(&results, &SweepSummary { at, ..summary })?;
        Ok(at.timestamp_millis())
    }
}

/// `len(id) as u16 BE ++ id ++ millis as i64 BE (sign-flipped)`, so one peer's samples are
/// contiguous and ordered by time.
pub(super) fn history_key(id: &str, at: DateTime<Utc>) -> Vec<u8> {
    let id = id.as_bytes();
    let mut k = Vec::with_capacity(2 + id.len() + 8);
    k.extend_from_slice(&(id.len() as u16).to_be_bytes());
    k.extend_from_slice(id);
    let ms = at.timestamp_millis();
    k.extend_from_slice(&((ms as u64) ^ (1 << 63)).to_be_bytes());
    k
}
