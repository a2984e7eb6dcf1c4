//! What the probe learnt per address and keeps across sweeps (and, through the store, across
//! processes): which QUIC flavour a node speaks, which handshake it takes. One map per kind, in
//! memory for the process, dumped to and taken back from the store as text pairs.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, OnceLock};

/// A learnt value with a stable name in the store.
pub(super) trait Named: Copy + Sized + 'static {
    /// Every value, so a name read back finds its value.
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
}

/// A process-wide map `K` → `V`; a poisoned lock reads as empty and ignores writes.
pub(super) struct Learnt<K, V>(OnceLock<Mutex<HashMap<K, V>>>);

impl<K: Eq + Hash + Clone, V: Named> Learnt<K, V> {
    pub(super) const fn new() -> Self {
        Learnt(OnceLock::new())
    }

    fn map(&self) -> Option<std::sync::MutexGuard<'_, HashMap<K, V>>> {
        self.0.get_or_init(Mutex::default).lock().ok()
    }

    pub(super) fn get(&self, key: &K) -> Option<V> {
        self.map()?.get(key).copied()
    }

    pub(super) fn set(&self, key: K, value: Option<V>) {
        if let Some(mut m) = self.map() {
            match value {
                Some(v) => m.insert(key, v),
                None => m.remove(&key),
            };
        }
    }

    /// Every entry as `(key text, value name)`, sorted, for the store.
    pub(super) fn dump(&self, text: impl Fn(&K) -> String) -> Vec<(String, &'static str)> {
        let Some(m) = self.map() else {
            return Vec::new();
        };
        let mut all: Vec<_> = m.iter().map(|(k, v)| (text(k), v.name())).collect();
        all.sort();
        all
    }

    /// Takes entries kept earlier, without overriding what this process learnt since; unknown
    /// names and keys `parse` refuses are skipped.
    pub(super) fn load<'a>(
        &self,
        kept: impl IntoIterator<Item = (&'a str, &'a str)>,
        parse: impl Fn(&str) -> Option<K>,
    ) {
        let Some(mut m) = self.map() else {
            return;
        };
        for (key, name) in kept {
            let value = V::ALL.iter().find(|v| v.name() == name);
            if let (Some(key), Some(value)) = (parse(key), value) {
                m.entry(key).or_insert(*value);
            }
        }
    }
}
