//! How values are written: postcard for history rows and slots, JSON for records read by
//! people and other versions (the peer list, sweeps, runs).

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::keys::slot_of;
use super::StoreError;
use crate::domain::time::from_millis;
use crate::domain::{Bucket, ErrorKind, Level, ProbeResult};

/// One check of one peer in a raw row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// When the check finished, in ms relative to the row's time.
    pub offset_ms: i64,
    pub up: bool,
    pub rtt_us: Option<u64>,
    /// Index into [`ErrorKind::ALL`].
    pub error_kind: Option<u8>,
    pub error: Option<String>,
}

impl Check {
    pub fn from_result(r: &ProbeResult, row_ms: i64) -> Check {
        Check {
            offset_ms: r.checked_at.timestamp_millis() - row_ms,
            up: r.up,
            rtt_us: r.rtt_us,
            error_kind: r
                .error_kind
                .and_then(|k| ErrorKind::ALL.iter().position(|x| *x == k))
                .map(|i| i as u8),
            error: r.error.clone(),
        }
    }

    pub fn to_result(&self, row_ms: i64) -> ProbeResult {
        ProbeResult {
            up: self.up,
            rtt_us: self.rtt_us,
            error_kind: self
                .error_kind
                .and_then(|i| ErrorKind::ALL.get(usize::from(i)).copied()),
            error: self.error.clone(),
            checked_at: from_millis(row_ms.saturating_add(self.offset_ms)),
            candidates: Vec::new(),
            node: None,
            node_key: None,
        }
    }
}

/// One entry of a history row.
pub(super) enum Entry {
    Check(Check),
    Bucket(Bucket),
}

impl Entry {
    pub(super) fn fold_into(self, bucket: &mut Bucket) {
        match self {
            Entry::Check(c) => bucket.add(c.up, c.rtt_us),
            Entry::Bucket(b) => bucket.merge(&b),
        }
    }
}

/// The entries of one stored chunk of a `level` row, with their slots.
pub(super) fn decode_chunk(
    level: Level,
    chunk: u32,
    value: &[u8],
) -> Result<Vec<(u32, Entry)>, StoreError> {
    let slot = |offset| slot_of(level, chunk, offset);
    Ok(if level == Level::Raw {
        decode::<Vec<(u8, Check)>>(value, "raw row")?
            .into_iter()
            .map(|(offset, c)| (slot(offset), Entry::Check(c)))
            .collect()
    } else {
        decode::<Vec<(u8, Bucket)>>(value, "history row")?
            .into_iter()
            .map(|(offset, b)| (slot(offset), Entry::Bucket(b)))
            .collect()
    })
}

pub(super) enum GetError {
    Db(sled::Error),
    Corrupt(StoreError),
}

pub(super) fn get_json<T: DeserializeOwned>(
    tree: &sled::Tree,
    key: &[u8],
    what: &str,
) -> Result<Option<T>, GetError> {
    match tree.get(key).map_err(GetError::Db)? {
        None => Ok(None),
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| GetError::Corrupt(corrupt(what, e))),
    }
}

pub(super) fn encode<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(value).map_err(|e| StoreError::Corrupt {
        what: what.into(),
        detail: e.to_string(),
    })
}

pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt {
        what: what.into(),
        detail: e.to_string(),
    })
}

pub(super) fn corrupt(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        detail: e.to_string(),
    }
}
