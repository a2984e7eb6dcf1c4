//! The static keys of secure-mode nodes, per peer id ([`NodeKey`]): the key first met or
//! accepted, and the key presented last. Kept apart from the sweep rows (which hold verdicts
//! only); changed by a sweep and by an operator accepting a key, each a compare-and-swap, so
//! neither undoes the other.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};

use super::codec::corrupt;
use super::keys::KEY_NODE_KEYS;
use super::{Store, StoreError};
use crate::domain::{NodeKey, ProbeResult};

type Keys = BTreeMap<String, NodeKey>;

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

    /// Takes the keys the nodes of a sweep at `at` presented; keys of peers no longer listed
    /// (`listed`) are dropped. Written only when something changed.
    pub(super) fn record_node_keys(
        &self,
        results: &[(String, ProbeResult)],
        listed: impl Fn(&str) -> bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let presented: Vec<(&String, &String)> = results
            .iter()
            .filter_map(|(id, r)| r.node_key.as_ref().map(|k| (id, k)))
            .collect();
        self.update_node_keys(|keys| {
            let before = keys.len();
            keys.retain(|id, _| listed(id));
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

    /// Accepts the key peer `id` presents now (an operator's decision after a change); `None`
    /// when no key is known for it.
    pub fn accept_node_key(
        &self,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<NodeKey>, StoreError> {
        let mut accepted = None;
        self.update_node_keys(|keys| {
            accepted = keys.get(id).map(|k| k.accept(at));
            match &accepted {
                Some(k) => keys.insert(id.to_string(), k.clone()).as_ref() != Some(k),
                None => false,
            }
        })?;
        Ok(accepted)
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

/// The listed ids, for [`Store::record_node_keys`].
pub(super) fn listed_ids(roster: &[(String, u32)]) -> HashSet<&str> {
    roster.iter().map(|(id, _)| id.as_str()).collect()
}
