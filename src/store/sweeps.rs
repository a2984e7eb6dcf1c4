//! Sweeps: each one raw row of every peer's check, which is also every peer's latest result,
//! then a pointer to it and the sweep's summary.

use std::collections::{BTreeMap, HashMap};

use super::codec::{corrupt, decode, decode_chunk, encode, get_json, Check, Entry};
use super::keys::{
    chunk_of, parse_row_key, row_key, KEY_CANDIDATES, KEY_LATEST_ROW, KEY_NODE_INFO, KEY_SWEEP,
};
use super::{Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::domain::{Candidate, Level, NodeInfo, ProbeResult, SweepSummary};

/// The candidates of the indirect peers of the sweep whose raw row is at `at`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SweepCandidates {
    at: i64,
    peers: BTreeMap<String, Vec<Candidate>>,
}

impl Store {
    /// Stores one sweep as a raw row (every peer's check, which is also its latest result),
    /// then the summary. Results of ids not in the stored list are not kept.
    pub fn record_sweep(
        &self,
        results: &[(String, ProbeResult)],
        summary: &SweepSummary,
    ) -> Result<(), StoreError> {
        let roster = self.roster_in_list_order()?;
        let swept_at = summary.at;
        // Results come in list order, as the roster is: look ids up only when they differ.
        let mut by_id: Option<HashMap<&str, u32>> = None;
        let at = self.row_time(summary.at.timestamp_millis())?;
        let mut chunks: BTreeMap<u32, Vec<(u8, Check)>> = BTreeMap::new();
        for (i, (id, r)) in results.iter().enumerate() {
            let slot = match roster.get(i) {
                Some((listed, slot)) if listed == id => Some(*slot),
                _ => by_id
                    .get_or_insert_with(|| roster.iter().map(|(id, s)| (id.as_str(), *s)).collect())
                    .get(id.as_str())
                    .copied(),
            };
            let Some(slot) = slot else {
                continue;
            };
            let (chunk, offset) = chunk_of(Level::Raw, slot);
            chunks
                .entry(chunk)
                .or_default()
                .push((offset, Check::from_result(r, at)));
        }
        let mut row = sled::Batch::default();
        for (chunk, checks) in &chunks {
            row.insert(&row_key(at, *chunk)[..], encode(checks, "raw row")?);
        }
        // The row is one atomic batch; the pointer to it and the summary follow.
        self.inner.raw.apply_batch(row).map_err(|e| self.err(e))?;
        let summary = serde_json::to_vec(summary).map_err(|e| corrupt("sweep", e))?;
        // The URLs indirect peers resolved to, with their verdicts, beside the row they go with.
        let candidates = SweepCandidates {
            at,
            peers: results
                .iter()
                .filter(|(_, r)| !r.candidates.is_empty())
                .map(|(id, r)| (id.clone(), r.candidates.clone()))
                .collect(),
        };
        let mut meta = sled::Batch::default();
        meta.insert(KEY_LATEST_ROW, &at.to_be_bytes());
        meta.insert(KEY_SWEEP, summary);
        let candidates = serde_json::to_vec(&candidates).map_err(|e| corrupt("candidates", e))?;
        meta.insert(KEY_CANDIDATES, candidates);
        if let Some(infos) = self.merged_node_info(results, &roster) {
            let infos = serde_json::to_vec(&infos).map_err(|e| corrupt("node info", e))?;
            meta.insert(KEY_NODE_INFO, infos);
        }
        self.inner.meta.apply_batch(meta).map_err(|e| self.err(e))?;
        let known = |id: &str| self.inner.slots.contains_key(id).unwrap_or(true);
        self.record_node_keys(results, known, swept_at)
    }

    /// The kept node info with what this sweep read, for the listed peers only; `None` when
    /// nothing changed (then it is not written again).
    fn merged_node_info(
        &self,
        results: &[(String, ProbeResult)],
        roster: &[(String, u32)],
    ) -> Option<BTreeMap<String, NodeInfo>> {
        let kept = self.node_info();
        let mut merged = kept.clone();
        for (id, r) in results {
            if let Some(node) = &r.node {
                merged.insert(id.clone(), node.clone());
            }
        }
        if merged.is_empty() {
            return None; // nothing kept, nothing read
        }
        let listed: std::collections::HashSet<&str> =
            roster.iter().map(|(id, _)| id.as_str()).collect();
        merged.retain(|id, _| listed.contains(id.as_str()));
        (merged != kept).then_some(merged)
    }

    /// What each node said of itself when last read, by peer id. Only shown, never judged on:
    /// a damaged value is left out.
    pub fn node_info(&self) -> BTreeMap<String, NodeInfo> {
        get_json(&self.inner.meta, KEY_NODE_INFO, "node info")
            .unwrap_or_else(|e| {
                tracing::warn!("reading the nodes' info: {}", self.map(e));
                None
            })
            .unwrap_or_default()
    }

    /// The time a sweep's raw row is stored at: its own, unless the clock is behind what has
    /// already been rolled up (set back, or not yet synchronised after a boot). Then the row
    /// goes just after the minute frontier, so it is rolled up later rather than never.
    fn row_time(&self, at: i64) -> Result<i64, StoreError> {
        let frontier = self.frontier(Level::Minute)?.unwrap_or(i64::MIN);
        if at >= frontier {
            return Ok(at);
        }
        let latest = self.newest_raw_ms()?.unwrap_or(i64::MIN);
        tracing::warn!(
            behind_s = (frontier - at) / 1000,
            "the clock is behind the stored history; this sweep is filed at the history's end"
        );
        Ok(frontier.max(latest.saturating_add(1)))
    }

    /// Time of the raw row of the latest sweep recorded (not the newest key: a clock that was
    /// once ahead must not leave its row "latest" for ever).
    pub(super) fn newest_raw_ms(&self) -> Result<Option<i64>, StoreError> {
        self.read_ms(&self.inner.meta, KEY_LATEST_ROW)
    }

    /// A time (ms, big endian) kept under `key` in `tree`.
    pub(super) fn read_ms(&self, tree: &sled::Tree, key: &[u8]) -> Result<Option<i64>, StoreError> {
        let v = tree.get(key).map_err(|e| self.err(e))?;
        Ok(v.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(i64::from_be_bytes))
    }

    /// The latest result of every peer of the current list that has one.
    pub fn latest_results(&self) -> Result<HashMap<String, ProbeResult>, StoreError> {
        let Some(at) = self.newest_raw_ms()? else {
            return Ok(HashMap::new());
        };
        let mut latest: HashMap<String, ProbeResult> = self.sweep_at(at)?.into_iter().collect();
        for (id, candidates) in self.kept_candidates(at) {
            if let Some(r) = latest.get_mut(&id) {
                r.candidates = candidates;
            }
        }
        for (id, node) in self.node_info() {
            if let Some(r) = latest.get_mut(&id) {
                r.node = Some(node);
            }
        }
        Ok(latest)
    }

    /// The checks of the raw row at `at`, by peer id (peers of the current list only).
    pub fn sweep_at(&self, at: i64) -> Result<Vec<(String, ProbeResult)>, StoreError> {
        let by_slot: HashMap<u32, String> =
            self.roster()?.into_iter().map(|(id, s)| (s, id)).collect();
        let mut out = Vec::new();
        for item in self.inner.raw.scan_prefix(&row_key(at, 0)[..8]) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let Some((_, chunk)) = parse_row_key(&k) else {
                continue;
            };
            for (slot, entry) in decode_chunk(Level::Raw, chunk, &v)? {
                if let (Some(id), Entry::Check(check)) = (by_slot.get(&slot), entry) {
                    out.push((id.clone(), check.to_result(at)));
                }
            }
        }
        Ok(out)
    }

    /// The latest result of one peer of the current list.
    pub fn latest_result(&self, id: &str) -> Result<Option<ProbeResult>, StoreError> {
        let (Some(slot), Some(at)) = (self.roster()?.get(id).copied(), self.newest_raw_ms()?)
        else {
            return Ok(None);
        };
        let (chunk, offset) = chunk_of(Level::Raw, slot);
        let Some(v) = self
            .inner
            .raw
            .get(row_key(at, chunk))
            .map_err(|e| self.err(e))?
        else {
            return Ok(None);
        };
        Ok(decode::<Vec<(u8, Check)>>(&v, "raw row")?
            .into_iter()
            .find(|(o, _)| *o == offset)
            .map(|(_, c)| ProbeResult {
                candidates: self.kept_candidates(at).remove(id).unwrap_or_default(),
                node: self.node_info().remove(id),
                ..c.to_result(at)
            }))
    }

    /// The newest down checks of the peer in `slot`, newest first, at most `limit`: read from
    /// the raw rows (the last hour by default, `Retention::raw`), newest row first, one chunk
    /// decoded per row.
    pub fn recent_down(&self, slot: u32, limit: usize) -> Result<Vec<ProbeResult>, StoreError> {
        let (chunk, offset) = chunk_of(Level::Raw, slot);
        let mut out = Vec::new();
        for item in self.inner.raw.iter().rev() {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(|e| self.err(e))?;
            let Some((at, c)) = parse_row_key(&k) else {
                continue;
            };
            if c != chunk {
                continue;
            }
            let down = decode::<Vec<(u8, Check)>>(&v, "raw row")?
                .into_iter()
                .find(|(o, check)| *o == offset && !check.up);
            if let Some((_, check)) = down {
                out.push(check.to_result(at));
            }
        }
        Ok(out)
    }

    /// The candidates of the indirect peers of the sweep at `at` (none when those kept are
    /// of another sweep). Only shown, never judged on: a damaged value is left out.
    fn kept_candidates(&self, at: i64) -> BTreeMap<String, Vec<Candidate>> {
        let kept: Option<SweepCandidates> =
            get_json(&self.inner.meta, KEY_CANDIDATES, "candidates").unwrap_or_else(|e| {
                tracing::warn!("reading the indirect peers' candidates: {}", self.map(e));
                None
            });
        kept.filter(|k| k.at == at)
            .map(|k| k.peers)
            .unwrap_or_default()
    }

    pub fn last_sweep(&self) -> Result<Option<SweepSummary>, StoreError> {
        get_json(&self.inner.meta, KEY_SWEEP, "last sweep").map_err(|e| self.map(e))
    }
}
