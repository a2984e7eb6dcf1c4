//! The static keys of secure-mode nodes, per peer id ([`NodeKey`]): the key first met or
//! accepted, and the key presented last. Kept apart from the sweep rows (which hold verdicts
//! only); changed by a sweep and by an operator accepting a key, each a compare-and-swap, so
//! neither undoes the other.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::codec::corrupt;
use super::keys::KEY_NODE_KEYS;
use super::{Store, StoreError};
use crate::domain::{NodeKey, ProbeResult};

type Keys = BTreeMap<String, NodeKey>;

/// What [`Store::accept_node_key`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAccept {
    /// No key is known for the peer.
    Unknown,
    /// The node presents another key than the one named: nothing changed.
    NotPresented(NodeKey),
    /// The key the node presents is the trusted one now.
    Trusted(NodeKey),
}

impl Store {
    /// The known key of every peer met in secure mode, by peer id. Shown and flagged, never
    /// judged on: a damaged value reads as none (and is replaced by the next sweep's).
    pub fn node_keys(&self) -> BTreeMap<String, NodeKey> {
        match self.inner.meta.get(KEY_NODE_KEYS) {
            Ok(Some(v)) => serde_json::from_slice(&v).unwrap_or_else(|e| {
                tracing::warn!("reading the nodes' keys: {}", corrupt("node keys", e));
                Keys::new()
            }),
            Ok(None) => Keys::new(),
            Err(e) => {
                tracing::warn!("reading the nodes' keys: {}", self.err(e));
                Keys::new()
            }
        }
    }

    /// Takes the keys the nodes of a sweep at `at` presented. A peer's key is kept while the
    /// store knows the peer (it has a slot: up to 31 days after it left the list), so a peer
    /// missing from one list keeps its flag and its trusted key; `known` says which those are.
    pub(super) fn record_node_keys(
        &self,
        results: &[(String, ProbeResult)],
        known: impl Fn(&str) -> bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let presented: Vec<(&String, &String)> = results
            .iter()
            .filter_map(|(id, r)| r.node_key.as_ref().map(|k| (id, k)))
            .collect();
        self.update_node_keys(|keys| {
            let before = keys.len();
            keys.retain(|id, _| known(id));
            let mut changed = keys.len() != before;
            for (id, key) in &presented {
                let next = match keys.get(*id) {
                    None => Some(NodeKey::first(key, at)),
                    Some(known) => known.presented(key, at),
                };
                if let Some(next) = next {
                    if next.changed() && keys.get(*id).is_none_or(|k| !k.changed()) {
                        tracing::warn!(
                            peer = %id,
                            "the node presents another static key than the one it had \
                             (a reinstalled node, or someone else at its address)"
                        );
                    }
                    keys.insert((*id).clone(), next);
                    changed = true;
                }
            }
            changed
        })
    }

    /// Accepts the key peer `id` presents now (an operator's decision after a change), when it
    /// is `expected` (the key the operator saw), if given: a key that changed again since is
    /// not trusted unseen. Accepting the trusted key changes nothing.
    pub fn accept_node_key(
        &self,
        id: &str,
        expected: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<KeyAccept, StoreError> {
        let mut outcome = KeyAccept::Unknown;
        self.update_node_keys(|keys| {
            let Some(known) = keys.get(id) else {
                outcome = KeyAccept::Unknown;
                return false;
            };
            if expected.is_some_and(|k| k != known.current) {
                outcome = KeyAccept::NotPresented(known.clone());
                return false;
            }
            if !known.changed() {
                outcome = KeyAccept::Trusted(known.clone());
                return false;
            }
            let accepted = known.accept(at);
            outcome = KeyAccept::Trusted(accepted.clone());
            keys.insert(id.to_string(), accepted);
            true
        })?;
        Ok(outcome)
    }

    /// Applies `change` to the kept keys (it says whether it changed them) until no other
    /// writer came between the read and the write.
    fn update_node_keys(
        &self,
        mut change: impl FnMut(&mut Keys) -> bool,
    ) -> Result<(), StoreError> {
        loop {
            let old = self
                .inner
                .meta
                .get(KEY_NODE_KEYS)
                .map_err(|e| self.err(e))?;
            let mut keys: Keys = old
                .as_ref()
                .and_then(|v| serde_json::from_slice(v).ok())
                .unwrap_or_default();
            if !change(&mut keys) {
                return Ok(());
            }
            let new = serde_json::to_vec(&keys).map_err(|e| corrupt("node keys", e))?;
            match self
                .inner
                .meta
                .compare_and_swap(KEY_NODE_KEYS, old, Some(new))
                .map_err(|e| self.err(e))?
            {
                Ok(()) => return Ok(()),
                Err(_) => continue,
            }
        }
    }
}
