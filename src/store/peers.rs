//! The peer list and its roster (peer → slot), the slots of peers that left, and the QUIC
//! flavours the sweep learnt.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::codec::{corrupt, decode, encode, get_json};
use super::keys::{KEY_HANDSHAKES, KEY_NEXT_SLOT, KEY_PEERS, KEY_QUIC_FLAVOURS, KEY_ROSTER};
use super::{Store, StoreError};
use crate::domain::{PeerList, Retention};

/// A peer gone this long is forgotten (the longest window, 30 days, and a day).
pub(super) const FORGET_LEFT_PEERS_AFTER: chrono::Duration = chrono::Duration::days(31);

/// A peer's place in the history rows, kept while it has history.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SlotEntry {
    pub(super) slot: u32,
    /// When the peer left the list; its slot is forgotten once its history has aged out.
    pub(super) removed_ms: Option<i64>,
}

/// Gives slots to peers new to the list, within one replacement of the list.
struct SlotGiver {
    /// The counter: the next slot never given.
    next: u32,
    /// Slots given up long enough ago to be given again; read only if a new peer needs one.
    reusable: Option<Vec<u32>>,
    /// Of those, the ones given now.
    reused: Vec<u32>,
}

impl SlotGiver {
    /// The slot of `id`: its old one when it has history, else a free one, else a new one.
    fn give(&mut self, store: &Store, id: &str, now_ms: i64) -> Result<u32, StoreError> {
        if let Some(slot) = store.slot(id)? {
            return Ok(slot);
        }
        let free = match &mut self.reusable {
            Some(free) => free,
            None => self.reusable.insert(store.reusable_slots(now_ms)?),
        };
        if let Some(slot) = free.pop() {
            self.reused.push(slot);
            return Ok(slot);
        }
        let slot = self.next;
        self.next = slot.checked_add(1).ok_or_else(|| StoreError::Corrupt {
            what: "slot counter".into(),
            detail: "every one of the 2^32 history slots is in use".into(),
        })?;
        Ok(slot)
    }
}

impl Store {
    /// The QUIC flavour that worked per address (`"tls"` / `"plaintext"`), kept by the sweep.
    pub fn quic_flavours(&self) -> Result<BTreeMap<String, String>, StoreError> {
        self.learnt(KEY_QUIC_FLAVOURS, "QUIC flavours")
    }

    /// Keeps `flavours`; not written when unchanged.
    pub fn set_quic_flavours(&self, flavours: &BTreeMap<String, String>) -> Result<(), StoreError> {
        self.set_learnt(KEY_QUIC_FLAVOURS, "QUIC flavours", flavours)
    }

    /// The handshake that worked per `"address network"` (`"noise"` for secure mode), kept by
    /// the sweep.
    pub fn handshakes(&self) -> Result<BTreeMap<String, String>, StoreError> {
        self.learnt(KEY_HANDSHAKES, "handshakes")
    }

    /// Keeps `handshakes`; not written when unchanged.
    pub fn set_handshakes(&self, handshakes: &BTreeMap<String, String>) -> Result<(), StoreError> {
        self.set_learnt(KEY_HANDSHAKES, "handshakes", handshakes)
    }

    /// What the probe learnt of the peers' addresses, kept under `key`.
    fn learnt(&self, key: &[u8], what: &str) -> Result<BTreeMap<String, String>, StoreError> {
        Ok(get_json(&self.inner.meta, key, what)
            .map_err(|e| self.map(e))?
            .unwrap_or_default())
    }

    fn set_learnt(
        &self,
        key: &[u8],
        what: &str,
        learnt: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        if &self.learnt(key, what)? == learnt {
            return Ok(());
        }
        let bytes = serde_json::to_vec(learnt).map_err(|e| corrupt(what, e))?;
        self.inner
            .meta
            .insert(key, bytes)
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn peer_list(&self) -> Result<Option<PeerList>, StoreError> {
        get_json(&self.inner.peers, KEY_PEERS, "peer list").map_err(|e| self.map(e))
    }

    /// Replaces the peer list and its roster in one transaction. New peers get a slot (a peer
    /// that comes back gets its old one); peers that left keep theirs while their history
    /// lasts. Returns (added, removed).
    /// A list equal to the stored one is not written again (a fetch every minute of the same
    /// list costs a read, not a rewrite).
    pub fn replace_peer_list(&self, list: &PeerList) -> Result<(usize, usize), StoreError> {
        let old = self.roster()?;
        if let Some(stored) = self.peer_list()? {
            // (A list stored without its roster, as schema 1 left it, still gets one.)
            let rostered = old.len() == list.peers.len();
            if rostered && stored.source == list.source && stored.peers == list.peers {
                return Ok((0, 0));
            }
        }
        let now = list.fetched_at.timestamp_millis();
        let mut slots = SlotGiver {
            next: self.next_slot()?,
            reusable: None,
            reused: Vec::new(),
        };
        let mut roster = Vec::with_capacity(list.peers.len());
        let mut changed: Vec<(String, SlotEntry)> = Vec::new();
        let mut listed = HashSet::new();
        for peer in &list.peers {
            if !listed.insert(peer.id.as_str()) {
                continue;
            }
            if let Some(slot) = old.get(&peer.id) {
                roster.push((peer.id.clone(), *slot));
                continue;
            }
            let slot = slots.give(self, &peer.id, now)?;
            roster.push((peer.id.clone(), slot));
            let entry = SlotEntry {
                slot,
                removed_ms: None,
            };
            changed.push((peer.id.clone(), entry));
        }
        let added = changed.len();
        for (id, slot) in &old {
            if !listed.contains(id.as_str()) {
                let entry = SlotEntry {
                    slot: *slot,
                    removed_ms: Some(now),
                };
                changed.push((id.clone(), entry));
            }
        }
        let removed = changed.len() - added;
        self.write_list(list, &roster, changed, &slots)?;
        Ok((added, removed))
    }

    /// Writes the list, its roster, the slots that changed and the slot counter in one
    /// transaction.
    fn write_list(
        &self,
        list: &PeerList,
        roster: &[(String, u32)],
        changed: Vec<(String, SlotEntry)>,
        slots: &SlotGiver,
    ) -> Result<(), StoreError> {
        let changed: Vec<(String, Vec<u8>)> = changed
            .into_iter()
            .map(|(id, entry)| Ok((id, encode(&entry, "slot")?)))
            .collect::<Result<_, StoreError>>()?;
        let bytes = serde_json::to_vec(list).map_err(|e| corrupt("peer list", e))?;
        let roster = encode(roster, "roster")?;
        (
            &self.inner.peers,
            &self.inner.slots,
            &self.inner.meta,
            &self.inner.free_slots,
        )
            .transaction(|(peers, slot_tree, meta, free)| {
                peers.insert(KEY_PEERS, bytes.as_slice())?;
                peers.insert(KEY_ROSTER, roster.as_slice())?;
                for (id, entry) in &changed {
                    slot_tree.insert(id.as_bytes(), entry.as_slice())?;
                }
                for slot in &slots.reused {
                    free.remove(&slot.to_be_bytes())?;
                }
                meta.insert(KEY_NEXT_SLOT, &slots.next.to_be_bytes())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e| self.tx_err(e))?;
        Ok(())
    }

    pub(super) fn next_slot(&self) -> Result<u32, StoreError> {
        let v = self
            .inner
            .meta
            .get(KEY_NEXT_SLOT)
            .map_err(|e| self.err(e))?;
        Ok(v.and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
            .map_or(0, u32::from_be_bytes))
    }

    /// Forgets the slots of peers that left more than the longest window ago: a peer that comes
    /// back later starts a new history. The slot number is given to another peer only once
    /// every history row that holds it has aged out (`keep.longest()`, and a day to spare).
    pub(super) fn forget_slots(&self, now_ms: i64, keep: &Retention) -> Result<usize, StoreError> {
        let cutoff = now_ms.saturating_sub(FORGET_LEFT_PEERS_AFTER.num_milliseconds());
        let rows_last = keep.longest() + chrono::Duration::days(1);
        let mut forget = sled::Batch::default();
        let mut free = sled::Batch::default();
        let mut gone = Vec::new();
        for item in self.inner.slots.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let entry = decode::<SlotEntry>(&v, "slot")?;
            if let Some(left) = entry.removed_ms.filter(|at| *at < cutoff) {
                forget.remove(k);
                let reusable = left.saturating_add(rows_last.num_milliseconds());
                free.insert(&entry.slot.to_be_bytes(), &reusable.to_be_bytes());
                gone.push(entry.slot);
            }
        }
        // Their check totals first, then freed: a crash between leaves a slot both known and
        // free, which `reusable_slots` skips, never a slot lost or given with another's totals.
        self.clear_totals(&gone)?;
        self.inner
            .free_slots
            .apply_batch(free)
            .map_err(|e| self.err(e))?;
        self.inner
            .slots
            .apply_batch(forget)
            .map_err(|e| self.err(e))?;
        Ok(gone.len())
    }

    /// Free slots whose history rows are all gone by `now_ms`, highest first (popped lowest
    /// first).
    fn reusable_slots(&self, now_ms: i64) -> Result<Vec<u32>, StoreError> {
        let known: std::collections::HashSet<u32> = self
            .inner
            .slots
            .iter()
            .values()
            .map(|v| {
                let v = v.map_err(|e| self.err(e))?;
                Ok(decode::<SlotEntry>(&v, "slot")?.slot)
            })
            .collect::<Result<_, StoreError>>()?;
        let mut out = Vec::new();
        for item in self.inner.free_slots.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let (Ok(slot), Ok(at)) = (
                <[u8; 4]>::try_from(k.as_ref()),
                <[u8; 8]>::try_from(v.as_ref()),
            ) else {
                continue;
            };
            let slot = u32::from_be_bytes(slot);
            if i64::from_be_bytes(at) <= now_ms && !known.contains(&slot) {
                out.push(slot);
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The current list's peers and their slots (their place in history rows).
    pub fn roster(&self) -> Result<HashMap<String, u32>, StoreError> {
        Ok(self.roster_in_list_order()?.into_iter().collect())
    }

    pub(super) fn roster_in_list_order(&self) -> Result<Vec<(String, u32)>, StoreError> {
        match self.inner.peers.get(KEY_ROSTER).map_err(|e| self.err(e))? {
            None => Ok(Vec::new()),
            Some(v) => decode(&v, "roster"),
        }
    }

    /// The slot of `id`, also for a peer that has left the list but still has history.
    pub fn slot(&self, id: &str) -> Result<Option<u32>, StoreError> {
        match self
            .inner
            .slots
            .get(id.as_bytes())
            .map_err(|e| self.err(e))?
        {
            None => Ok(None),
            Some(v) => Ok(Some(decode::<SlotEntry>(&v, "slot")?.slot)),
        }
    }
}
