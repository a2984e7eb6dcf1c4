//! Alerts in the store (tree `alerts`): the alert book and the sweep it has seen, the recent
//! changes, the outbox of messages still to deliver, silences, and per-destination delivery
//! figures. Only the notify job writes the book, the changes and the outbox; the API writes
//! silences.
//!
//! An evaluation (book, cursor, changes, new messages, outbox trimming) is one atomic batch, so
//! a kill -9 either keeps all of it or none, and the next run evaluates the same sweeps again.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::codec::corrupt;
use super::keys::{parse_row_key, row_key};
use super::{Store, StoreError};
use crate::domain::{AlertBook, Change, Message, Notice, Silence};

/// Messages kept for delivery at most; beyond it the oldest are dropped (counted, logged).
pub const OUTBOX_MAX: usize = 1000;
/// Changes kept for `/api/alerts`.
pub const CHANGES_KEEP: usize = 200;

const KEY_BOOK: &[u8] = b"book";
const KEY_CURSOR: &[u8] = b"cursor";
const KEY_SEQ: &[u8] = b"seq";
const KEY_DROPPED: &[u8] = b"outbox_dropped";
const CHANGE: &[u8] = b"change/";
const OUTBOX: &[u8] = b"outbox/";
const SILENCE: &[u8] = b"silence/";
const DESTINATION: &[u8] = b"dest/";

/// A change as recorded, with what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRecord {
    pub change: Change,
    pub notice: Notice,
    /// `queued`, `silenced`, `left the list`, or `no destination`.
    pub fate: String,
    /// The silence that kept it from being sent.
    pub silence: Option<String>,
}

/// One destination's try at a message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Attempt {
    pub count: u32,
    pub next_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// A message waiting in the outbox, and who has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub seq: u64,
    pub message: Message,
    /// Ids of the destinations that have it.
    pub delivered: BTreeSet<String>,
    /// Tries so far, by destination id.
    pub attempts: BTreeMap<String, Attempt>,
}

/// Delivery figures of one destination (by its label, `<kind>#<n>`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DestinationStats {
    pub sent: u64,
    pub failed: u64,
    /// Messages given up on (too old) or pushed out of a full outbox.
    pub dropped: u64,
    pub last_ok_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
}

/// What an evaluation stores.
pub struct Evaluation {
    pub book: AlertBook,
    /// The newest raw row evaluated.
    pub cursor: i64,
    pub changes: Vec<ChangeRecord>,
    pub messages: Vec<Message>,
}

impl Store {
    fn json<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
        what: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.inner.alerts.get(key).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| corrupt(what, e)),
        }
    }

    /// The alert book and the time of the newest raw row it has seen.
    pub fn alert_book(&self) -> Result<(AlertBook, Option<i64>), StoreError> {
        let book = self.json(KEY_BOOK, "alert book")?.unwrap_or_default();
        let cursor = self.read_ms(&self.inner.alerts, KEY_CURSOR)?;
        Ok((book, cursor))
    }

    /// Times of the raw rows (sweeps) after `after`, oldest first; with no `after` (or one
    /// ahead of the newest row, a clock that came back) only the newest row.
    pub fn sweeps_after(&self, after: Option<i64>) -> Result<Vec<i64>, StoreError> {
        let Some(newest) = self.newest_raw_ms()? else {
            return Ok(Vec::new());
        };
        let after = match after {
            Some(a) if a <= newest => a,
            _ => return Ok(vec![newest]),
        };
        let mut times = Vec::new();
        for item in self.inner.raw.range(row_key(after.saturating_add(1), 0)..) {
            let (k, _) = item.map_err(|e| self.err(e))?;
            if let Some((at, _)) = parse_row_key(&k) {
                if times.last() != Some(&at) {
                    times.push(at);
                }
            }
        }
        Ok(times)
    }

    /// Stores an evaluation in one batch; returns the messages dropped from a full outbox.
    pub fn commit_alerts(&self, eval: Evaluation) -> Result<Vec<OutboxEntry>, StoreError> {
        let tree = &self.inner.alerts;
        let mut batch = sled::Batch::default();
        batch.insert(KEY_BOOK, to_json(&eval.book, "alert book")?);
        batch.insert(KEY_CURSOR, &eval.cursor.to_be_bytes());
        let mut seq = self.read_u64(KEY_SEQ)?;
        for record in &eval.changes {
            batch.insert(keyed(CHANGE, seq), to_json(record, "alert change")?);
            seq += 1;
        }
        let mut new = Vec::new();
        for message in eval.messages {
            let entry = OutboxEntry {
                seq,
                message,
                delivered: BTreeSet::new(),
                attempts: BTreeMap::new(),
            };
            batch.insert(keyed(OUTBOX, seq), to_json(&entry, "outbox entry")?);
            new.push(seq);
            seq += 1;
        }
        batch.insert(KEY_SEQ, &seq.to_be_bytes());
        // Trim: the oldest changes beyond the keep, the oldest messages beyond the bound.
        let changes = self.keys(CHANGE)?;
        let excess = (changes.len() + eval.changes.len()).saturating_sub(CHANGES_KEEP);
        for k in changes.iter().take(excess) {
            batch.remove(k.as_slice());
        }
        let outbox = self.outbox()?;
        let excess = (outbox.len() + new.len()).saturating_sub(OUTBOX_MAX);
        let dropped: Vec<OutboxEntry> = outbox.into_iter().take(excess).collect();
        for e in &dropped {
            batch.remove(keyed(OUTBOX, e.seq));
        }
        if !dropped.is_empty() {
            let total = self.read_u64(KEY_DROPPED)? + dropped.len() as u64;
            batch.insert(KEY_DROPPED, &total.to_be_bytes());
        }
        tree.apply_batch(batch).map_err(|e| self.err(e))?;
        Ok(dropped)
    }

    /// The messages waiting, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.scan_json(OUTBOX, "outbox entry")
    }

    /// Messages dropped from a full outbox since the store began.
    pub fn outbox_dropped(&self) -> Result<u64, StoreError> {
        self.read_u64(KEY_DROPPED)
    }

    /// Writes back a message after a delivery attempt, or removes it when `done`.
    pub fn update_outbox(&self, entry: &OutboxEntry, done: bool) -> Result<(), StoreError> {
        let key = keyed(OUTBOX, entry.seq);
        let tree = &self.inner.alerts;
        if done {
            tree.remove(key).map_err(|e| self.err(e))?;
        } else {
            let v = to_json(entry, "outbox entry")?;
            tree.insert(key, v).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// The recent changes, newest first, at most `limit`.
    pub fn alert_changes(&self, limit: usize) -> Result<Vec<ChangeRecord>, StoreError> {
        let mut all: Vec<ChangeRecord> = self.scan_json(CHANGE, "alert change")?;
        all.reverse();
        all.truncate(limit);
        Ok(all)
    }

    pub fn destination_stats(&self) -> Result<BTreeMap<String, DestinationStats>, StoreError> {
        let mut out = BTreeMap::new();
        for item in self.inner.alerts.scan_prefix(DESTINATION) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let label = String::from_utf8_lossy(&k[DESTINATION.len()..]).into_owned();
            let stats = serde_json::from_slice(&v).map_err(|e| corrupt("destination", e))?;
            out.insert(label, stats);
        }
        Ok(out)
    }

    /// Updates one destination's figures with `update`.
    pub fn update_destination(
        &self,
        label: &str,
        update: impl FnOnce(&mut DestinationStats),
    ) -> Result<(), StoreError> {
        let key = [DESTINATION, label.as_bytes()].concat();
        let mut stats: DestinationStats = self.json(&key, "destination")?.unwrap_or_default();
        update(&mut stats);
        let v = to_json(&stats, "destination")?;
        self.inner.alerts.insert(key, v).map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        self.scan_json(SILENCE, "silence")
    }

    pub fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        let key = [SILENCE, silence.id.as_bytes()].concat();
        let v = to_json(silence, "silence")?;
        self.inner.alerts.insert(key, v).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Deletes a silence; false when there is none by that id.
    pub fn delete_silence(&self, id: &str) -> Result<bool, StoreError> {
        let key = [SILENCE, id.as_bytes()].concat();
        let old = self.inner.alerts.remove(key).map_err(|e| self.err(e))?;
        Ok(old.is_some())
    }

    /// Deletes the silences that ended before `before`.
    pub fn prune_silences(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let ended: Vec<Silence> = self
            .silences()?
            .into_iter()
            .filter(|s| s.ends_at < before)
            .collect();
        for s in &ended {
            self.delete_silence(&s.id)?;
        }
        Ok(ended.len())
    }

    fn read_u64(&self, key: &[u8]) -> Result<u64, StoreError> {
        Ok(self
            .read_ms(&self.inner.alerts, key)?
            .map_or(0, |v| v as u64))
    }

    fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.inner
            .alerts
            .scan_prefix(prefix)
            .keys()
            .map(|k| k.map(|k| k.to_vec()).map_err(|e| self.err(e)))
            .collect()
    }

    fn scan_json<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &[u8],
        what: &str,
    ) -> Result<Vec<T>, StoreError> {
        self.inner
            .alerts
            .scan_prefix(prefix)
            .values()
            .map(|v| {
                let v = v.map_err(|e| self.err(e))?;
                serde_json::from_slice(&v).map_err(|e| corrupt(what, e))
            })
            .collect()
    }
}

fn keyed(prefix: &[u8], seq: u64) -> Vec<u8> {
    [prefix, &seq.to_be_bytes()].concat()
}

fn to_json<T: Serialize>(value: &T, what: &str) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| corrupt(what, e))
}
