//! Where things are in the store: the keys of `meta` and `peers`, and the layout of history
//! rows. A row is one point in time (a sweep for raw rows, a bucket's start for the others) and
//! holds every peer's entry, split into chunks of peers ([`slots_per_chunk`]) so one peer's entry
//! is one small read and no value grows large.

use crate::domain::Level;

pub(super) const KEY_SCHEMA: &[u8] = b"schema_version";
/// `<data-dir>/schema`: written once the store is set up, outside the database.
pub(super) const SCHEMA_MARKER: &str = "schema";
pub(super) const KEY_SWEEP: &[u8] = b"last_sweep";
pub(super) const KEY_PEERS: &[u8] = b"current";
pub(super) const KEY_ROSTER: &[u8] = b"roster";
pub(super) const KEY_QUIC_FLAVOURS: &[u8] = b"quic_flavours";
/// The handshake that worked per address and network (secure mode's Noise one).
pub(super) const KEY_HANDSHAKES: &[u8] = b"handshakes";
/// The candidates indirect peers resolved to in the latest sweep (JSON).
pub(super) const KEY_CANDIDATES: &[u8] = b"candidates";
/// What each node said of itself when last read (version, host name), by peer id.
pub(super) const KEY_NODE_INFO: &[u8] = b"node_info";
/// The static keys of the nodes met in secure mode, by peer id (JSON, `node_keys.rs`).
pub(super) const KEY_NODE_KEYS: &[u8] = b"node_keys";
pub(super) const KEY_HISTORY_TIME: &[u8] = b"history_time";
pub(super) const KEY_JUMP_PENDING: &[u8] = b"jump_pending";
pub(super) const KEY_NEXT_SLOT: &[u8] = b"next_slot";
pub(super) const KEY_LATEST_ROW: &[u8] = b"latest_row";
/// A counter `serve` writes for systemd's watchdog, to see that writes still return.
pub(super) const KEY_ALIVE: &[u8] = b"alive";
/// Prefix of the chunks of every slot's checks over the store's life (`totals.rs`).
pub(super) const KEY_CHECK_TOTALS: &[u8] = b"check_totals/";

/// The meta key of a job's run durations.
pub(super) fn durations_key(job: &str) -> Vec<u8> {
    [b"durations/", job.as_bytes()].concat()
}

pub(super) fn frontier_key(level: Level) -> Vec<u8> {
    format!("rolled_up_to/{}", level.as_str()).into_bytes()
}

/// Peers (slots) per stored chunk of a row, by level: a chunk stays a few KB (a raw check is
/// about 10 bytes, a bucket 30–150), small enough for sled to keep inline and few enough per
/// row that a sweep writes only a handful of keys.
pub fn slots_per_chunk(level: Level) -> u32 {
    match level {
        Level::Raw => 256,
        _ => 32,
    }
}

/// Key of one chunk of a row: the row's time (ms, sign-flipped big endian so keys sort by
/// time) and the chunk number.
pub fn row_key(at_ms: i64, chunk: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&((at_ms as u64) ^ (1 << 63)).to_be_bytes());
    k[8..].copy_from_slice(&chunk.to_be_bytes());
    k
}

/// The time and chunk of a row key; `None` for a key of another shape.
pub fn parse_row_key(key: &[u8]) -> Option<(i64, u32)> {
    let at = u64::from_be_bytes(key.get(..8)?.try_into().ok()?) ^ (1 << 63);
    let chunk = u32::from_be_bytes(key.get(8..12)?.try_into().ok()?);
    Some((at as i64, chunk))
}

/// The chunk holding `slot`, and the slot's place in it.
pub fn chunk_of(level: Level, slot: u32) -> (u32, u8) {
    let per = slots_per_chunk(level);
    (slot / per, (slot % per) as u8)
}

pub fn slot_of(level: Level, chunk: u32, offset: u8) -> u32 {
    chunk * slots_per_chunk(level) + u32::from(offset)
}

pub(super) fn run_prefix(job: &str) -> Vec<u8> {
    let mut k = job.as_bytes().to_vec();
    k.push(0);
    k
}

pub(super) fn run_key(job: &str, id: u64) -> Vec<u8> {
    let mut k = run_prefix(job);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_time_then_chunk() {
        let keys = [
            row_key(-5, 0),
            row_key(0, 0),
            row_key(0, 1),
            row_key(60_000, 0),
        ];
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(parse_row_key(&row_key(-5, 7)), Some((-5, 7)));
        assert_eq!(parse_row_key(b"short"), None);
        assert_eq!(chunk_of(Level::Hour, 70), (2, 6));
        assert_eq!(slot_of(Level::Hour, 2, 6), 70);
        assert_eq!(chunk_of(Level::Raw, 600), (2, 88));
        assert_eq!(slot_of(Level::Raw, 2, 88), 600);
    }
}
