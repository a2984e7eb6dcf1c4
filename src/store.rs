//! The store: one sled database in the data directory. The only module that uses sled.
//!
//! Layout (trees): `meta` (schema version, latest sweep, roll-up frontiers),
//! `peers` (the peer list and its roster, each under one key so they are replaced atomically),
//! `slots` (peer id → its slot in history rows), `raw`, `minute` (history rows, see
//! src/history.rs), `runs` (job + run id → run record). A second database,
//! `<data-dir>/archive`, holds the long-lived history: `hour`, `day` and their frontiers (`meta`).
//! One process at a time holds the store: an exclusive `flock` on `<data-dir>/lock`, with the
//! holder described in `<data-dir>/owner`.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::history::{chunk_of, parse_row_key, row_key, slot_of, Bucket, Check, Level, Retention};
use crate::model::{JobRun, Outcome, PeerList, ProbeResult, Sample, SweepSummary};

/// The schema this build writes and reads. Version 1 (per-peer history) is migrated on open.
pub const SCHEMA_VERSION: u32 = 2;

/// The longest a flush may take before the store counts as stalled.
pub const FLUSH_BOUND: std::time::Duration = std::time::Duration::from_secs(15);

/// A stored run keeps at most this many per-peer results (the down ones); the full list is in
/// the history and in what the run returned.
pub const STORED_RESULTS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store in {path} is in use by {owner}")]
    Busy { path: PathBuf, owner: String },
    #[error(
        "the store in {path} has schema version {found}, but this build knows only version {SCHEMA_VERSION}; \
         use a newer easytier-probe or another --data-dir (nothing was changed)"
    )]
    NewerSchema { path: PathBuf, found: u32 },
    #[error(
        "{path} holds data but no schema version; it is not an easytier-probe store or it is damaged \
         (nothing was changed; point --data-dir elsewhere)"
    )]
    UnknownSchema { path: PathBuf },
    #[error(
        "the store in {path} opened empty although this data dir held a store: its files are damaged \
         (nothing was changed; move the data dir aside to start afresh, or restore it from a backup)"
    )]
    Damaged { path: PathBuf },
    #[error(
        "the store in {path} could not be written to disk within 15 s (disk full or failing?); \
         restart once the disk has room: what was last written to disk is kept"
    )]
    Stalled { path: PathBuf },
    #[error("cannot open the store in {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store error in {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("corrupt record in the store ({what}): {detail}")]
    Corrupt { what: String, detail: String },
}

/// Who holds the store, written to `<data-dir>/owner` for a clear "in use by" message.
#[derive(Debug, Serialize, Deserialize)]
struct Owner {
    pid: u32,
    command: String,
    since: DateTime<Utc>,
}

#[derive(Clone)]
pub struct Store {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: sled::Db,
    /// `<data-dir>/archive`: the long-lived history (hour and day rows, their frontiers).
    archive: sled::Db,
    archive_meta: sled::Tree,
    meta: sled::Tree,
    peers: sled::Tree,
    slots: sled::Tree,
    /// Slot numbers given up (big-endian slot → when their last history row is gone, ms).
    free_slots: sled::Tree,
    raw: sled::Tree,
    minute: sled::Tree,
    hour: sled::Tree,
    day: sled::Tree,
    runs: sled::Tree,
    /// A flush ran out of time: sled will never finish it, so no later flush is waited for.
    stalled: std::sync::atomic::AtomicBool,
    /// The last flush failed (a write error): the store cannot be written now.
    flush_failed: std::sync::atomic::AtomicBool,
    // Held for the lifetime of the store: the flock is released when this closes.
    _lock: File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

const KEY_SCHEMA: &[u8] = b"schema_version";
/// `<data-dir>/schema`: written once the store is set up, outside the database.
const SCHEMA_MARKER: &str = "schema";
const KEY_SWEEP: &[u8] = b"last_sweep";
const KEY_PEERS: &[u8] = b"current";
const KEY_ROSTER: &[u8] = b"roster";
/// A peer gone this long is forgotten (the longest window, 30 days, and a day).
const FORGET_LEFT_PEERS_AFTER: chrono::Duration = chrono::Duration::days(31);
const KEY_QUIC_FLAVOURS: &[u8] = b"quic_flavours";
const KEY_HISTORY_TIME: &[u8] = b"history_time";
const KEY_JUMP_PENDING: &[u8] = b"jump_pending";
const KEY_NEXT_SLOT: &[u8] = b"next_slot";
const KEY_LATEST_ROW: &[u8] = b"latest_row";

fn frontier_key(level: Level) -> Vec<u8> {
    format!("rolled_up_to/{}", level.as_str()).into_bytes()
}

/// A peer's place in the history rows, kept while it has history.
#[derive(Debug, Serialize, Deserialize)]
struct SlotEntry {
    slot: u32,
    /// When the peer left the list; its slot is forgotten once its history has aged out.
    removed_ms: Option<i64>,
}

/// What one [`Store::maintain`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Maintenance {
    /// Buckets (rows) made, all levels.
    pub rolled_up: usize,
    /// Rows deleted past their retention, all levels.
    pub pruned: usize,
    /// Damaged chunks left out of a roll-up.
    pub skipped: usize,
    /// Nothing was done: the clock is ahead of the history by more than the bound, and is
    /// trusted only once the next sweep confirms it.
    pub held: bool,
    /// Raw rows dropped that a clock once ahead had filed in the future.
    pub dropped_future: usize,
}

/// How `maintain` takes the time it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeVerdict {
    Trusted,
    Held,
}

/// One entry of a history row.
enum Entry {
    Check(Check),
    Bucket(Bucket),
}

impl Entry {
    fn fold_into(self, bucket: &mut Bucket) {
        match self {
            Entry::Check(c) => bucket.add(c.up, c.rtt_us),
            Entry::Bucket(b) => bucket.merge(&b),
        }
    }
}

/// The entries of one stored chunk of a `level` row, with their slots.
fn decode_chunk(level: Level, chunk: u32, value: &[u8]) -> Result<Vec<(u32, Entry)>, StoreError> {
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

impl Store {
    /// Opens (creating if needed) the store in `dir`, as `command` (shown to whoever finds it busy).
    /// Runs left `running` by a process that died are marked `interrupted`.
    pub fn open(dir: &Path, command: &str) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: dir.to_path_buf(),
            source,
        };
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(open_err)?;
            // The store holds network secrets: keep it to its owner.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(open_err)?;
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(dir.join("lock"))
            .map_err(open_err)?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(StoreError::Busy {
                    path: dir.to_path_buf(),
                    owner: describe_owner(dir),
                });
            }
            return Err(open_err(err));
        }
        let owner = Owner {
            pid: std::process::id(),
            command: command.to_string(),
            since: Utc::now(),
        };
        // Best effort: the owner file only improves the "in use" message.
        if let Ok(mut f) = File::create(dir.join("owner")) {
            let _ = f.write_all(serde_json::to_string(&owner).unwrap_or_default().as_bytes());
        }

        let db_path = dir.join("db");
        let db_err = |source| StoreError::Db {
            path: db_path.clone(),
            source,
        };
        let existed = db_path.exists();
        let db = sled::Config::new()
            .path(&db_path)
            .cache_capacity(16 * 1024 * 1024)
            .open()
            .map_err(db_err)?;
        let meta = db.open_tree("meta").map_err(db_err)?;
        let mut migrate_from = None;
        match meta.get(KEY_SCHEMA).map_err(db_err)? {
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::UnknownSchema {
                        path: db_path.clone(),
                    })?;
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema {
                        path: db_path,
                        found,
                    });
                }
                if found < SCHEMA_VERSION {
                    migrate_from = Some(found);
                }
            }
            None => {
                let has_data = existed
                    && db
                        .tree_names()
                        .iter()
                        .filter(|n| n.as_ref() != b"__sled__default")
                        .any(|n| db.open_tree(n).map(|t| !t.is_empty()).unwrap_or(true));
                if has_data || !db.is_empty() {
                    return Err(StoreError::UnknownSchema { path: db_path });
                }
                // sled recovers a damaged database as an empty one: the marker outside it
                // tells such an empty database from a new one, so it is not taken over.
                if dir.join(SCHEMA_MARKER).exists() {
                    return Err(StoreError::Damaged { path: db_path });
                }
                meta.insert(KEY_SCHEMA, &SCHEMA_VERSION.to_be_bytes())
                    .map_err(db_err)?;
                db.flush().map_err(db_err)?;
            }
        }
        if !dir.join(SCHEMA_MARKER).exists() {
            std::fs::write(dir.join(SCHEMA_MARKER), format!("{SCHEMA_VERSION}\n"))
                .map_err(open_err)?;
        }
        // Hour and day rows live for days: in the main database they would pin its log
        // segments, full of short-lived raw checks, for as long. Apart, both stay small.
        let archive_path = dir.join("archive");
        let archive = sled::Config::new()
            .path(&archive_path)
            .cache_capacity(4 * 1024 * 1024)
            .open()
            .map_err(|source| StoreError::Db {
                path: archive_path.clone(),
                source,
            })?;
        let archive_err = |source| StoreError::Db {
            path: archive_path.clone(),
            source,
        };
        let store = Store {
            inner: std::sync::Arc::new(Inner {
                archive_meta: archive.open_tree("meta").map_err(archive_err)?,
                hour: archive.open_tree("hour").map_err(archive_err)?,
                day: archive.open_tree("day").map_err(archive_err)?,
                archive,
                meta,
                peers: db.open_tree("peers").map_err(db_err)?,
                slots: db.open_tree("slots").map_err(db_err)?,
                free_slots: db.open_tree("free_slots").map_err(db_err)?,
                raw: db.open_tree("raw").map_err(db_err)?,
                minute: db.open_tree("minute").map_err(db_err)?,
                runs: db.open_tree("runs").map_err(db_err)?,
                db,
                path: dir.to_path_buf(),
                stalled: Default::default(),
                flush_failed: Default::default(),
                _lock: lock,
            }),
        };
        if migrate_from == Some(1) {
            store.migrate_from_v1()?;
        }
        store.mark_interrupted()?;
        Ok(store)
    }

    /// Version 1 kept each peer's samples under its id (`history`) and its latest result
    /// (`latest`). They become slots, per-minute rows and one raw row; then the old trees go.
    /// Safe to repeat: a crash part way leaves version 1 on disk, and the next open starts over.
    fn migrate_from_v1(&self) -> Result<(), StoreError> {
        let db = &self.inner.db;
        let history = db.open_tree("history").map_err(|e| self.err(e))?;
        let latest = db.open_tree("latest").map_err(|e| self.err(e))?;
        if let Some(list) = self.peer_list()? {
            self.replace_peer_list(&list)?;
        }
        let mut slots: BTreeMap<u32, String> = self
            .roster()?
            .into_iter()
            .map(|(id, slot)| (slot, id))
            .collect();
        // Peers with history that are no longer listed keep it, as peers that left.
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

        // Samples → per-minute buckets, a chunk of peers at a time.
        let mut newest = i64::MIN;
        let mut by_chunk: BTreeMap<u32, Vec<(u8, &String)>> = BTreeMap::new();
        for (slot, id) in &slots {
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

        // Latest results → one raw row, already counted in the minutes above.
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
        if let Some(at) = results.iter().map(|(_, r)| r.checked_at).max() {
            newest = newest.max(at.timestamp_millis());
            let summary = self
                .last_sweep()?
                .unwrap_or_else(|| SweepSummary::from_results(at, results.iter().map(|(_, r)| r)));
            self.record_sweep(&results, &SweepSummary { at, ..summary })?;
        }
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

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn err(&self, source: sled::Error) -> StoreError {
        StoreError::Db {
            path: self.inner.path.join("db"),
            source,
        }
    }

    /// Makes everything written so far durable.
    ///
    /// Bounded: after a write error (a full disk) sled's flush never completes, so waiting
    /// longer than [`FLUSH_BOUND`] is reported as a stalled store instead of hanging.
    pub async fn flush(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if self.inner.stalled.load(Ordering::SeqCst) {
            // Fail fast: the first stalled flush is still hanging and always will.
            return Err(StoreError::Stalled {
                path: self.inner.path.clone(),
            });
        }
        // The archive first: minute rows are pruned in the main database only once their hour
        // row is in the archive, so that order never loses a minute.
        let both = async {
            self.inner.archive.flush_async().await?;
            self.inner.db.flush_async().await
        };
        match tokio::time::timeout(FLUSH_BOUND, both).await {
            Ok(done) => {
                self.inner
                    .flush_failed
                    .store(done.is_err(), Ordering::SeqCst);
                done.map(|_| ()).map_err(|e| self.err(e))
            }
            Err(_) => {
                self.inner.stalled.store(true, Ordering::SeqCst);
                // sled flushes again when its last handle drops, and that would hang the same
                // way: one leaked handle keeps it from ever trying, so the process can report the
                // error and end.
                std::mem::forget(self.inner.db.clone());
                std::mem::forget(self.inner.archive.clone());
                Err(StoreError::Stalled {
                    path: self.inner.path.clone(),
                })
            }
        }
    }

    /// Whether writes reach the disk: false once a flush failed or stalled (a full disk), until
    /// a flush succeeds again (a stalled one never does: the process must restart).
    pub fn writable(&self) -> bool {
        use std::sync::atomic::Ordering;
        !self.inner.stalled.load(Ordering::SeqCst)
            && !self.inner.flush_failed.load(Ordering::SeqCst)
    }

    /// The QUIC flavour that worked per address (`"tls"` / `"plaintext"`), kept by the sweep.
    pub fn quic_flavours(&self) -> Result<BTreeMap<String, String>, StoreError> {
        Ok(
            get_json(&self.inner.meta, KEY_QUIC_FLAVOURS, "QUIC flavours")
                .map_err(|e| self.map(e))?
                .unwrap_or_default(),
        )
    }

    /// Keeps `flavours`; not written when unchanged.
    pub fn set_quic_flavours(&self, flavours: &BTreeMap<String, String>) -> Result<(), StoreError> {
        if &self.quic_flavours()? == flavours {
            return Ok(());
        }
        let bytes = serde_json::to_vec(flavours).map_err(|e| corrupt("QUIC flavours", e))?;
        self.inner
            .meta
            .insert(KEY_QUIC_FLAVOURS, bytes)
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    // ---- peer list ----

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
        let mut next = self.next_slot()?;
        let mut roster = Vec::with_capacity(list.peers.len());
        let mut changed: Vec<(String, SlotEntry)> = Vec::new();
        let mut added = 0;
        let mut listed = std::collections::HashSet::new();
        // Slots given up long enough ago to be given again; read only if a new peer needs one.
        let mut reusable: Option<Vec<u32>> = None;
        let mut reused = Vec::new();
        for peer in &list.peers {
            if !listed.insert(peer.id.as_str()) {
                continue;
            }
            if let Some(slot) = old.get(&peer.id) {
                roster.push((peer.id.clone(), *slot));
                continue;
            }
            added += 1;
            let slot = match self.slot(&peer.id)? {
                Some(slot) => slot,
                None => {
                    let free = match &mut reusable {
                        Some(free) => free,
                        None => reusable.insert(self.reusable_slots(now)?),
                    };
                    match free.pop() {
                        Some(slot) => {
                            reused.push(slot);
                            slot
                        }
                        None => {
                            let slot = next;
                            next = next.checked_add(1).ok_or_else(|| StoreError::Corrupt {
                                what: "slot counter".into(),
                                detail: "every one of the 2^32 history slots is in use".into(),
                            })?;
                            slot
                        }
                    }
                }
            };
            roster.push((peer.id.clone(), slot));
            changed.push((
                peer.id.clone(),
                SlotEntry {
                    slot,
                    removed_ms: None,
                },
            ));
        }
        for (id, slot) in &old {
            if !listed.contains(id.as_str()) {
                changed.push((
                    id.clone(),
                    SlotEntry {
                        slot: *slot,
                        removed_ms: Some(now),
                    },
                ));
            }
        }
        let removed = changed.len() - added;
        let changed: Vec<(String, Vec<u8>)> = changed
            .into_iter()
            .map(|(id, entry)| Ok((id, encode(&entry, "slot")?)))
            .collect::<Result<_, StoreError>>()?;
        let bytes = serde_json::to_vec(list).map_err(|e| corrupt("peer list", e))?;
        let roster = encode(&roster, "roster")?;
        (
            &self.inner.peers,
            &self.inner.slots,
            &self.inner.meta,
            &self.inner.free_slots,
        )
            .transaction(|(peers, slots, meta, free)| {
                peers.insert(KEY_PEERS, bytes.as_slice())?;
                peers.insert(KEY_ROSTER, roster.as_slice())?;
                for (id, entry) in &changed {
                    slots.insert(id.as_bytes(), entry.as_slice())?;
                }
                for slot in &reused {
                    free.remove(&slot.to_be_bytes())?;
                }
                meta.insert(KEY_NEXT_SLOT, &next.to_be_bytes())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e| self.tx_err(e))?;
        Ok((added, removed))
    }

    fn next_slot(&self) -> Result<u32, StoreError> {
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
    fn forget_slots(&self, now_ms: i64, keep: &Retention) -> Result<usize, StoreError> {
        let cutoff = now_ms.saturating_sub(FORGET_LEFT_PEERS_AFTER.num_milliseconds());
        let rows_last = keep.longest() + chrono::Duration::days(1);
        let mut forget = sled::Batch::default();
        let mut free = sled::Batch::default();
        let mut n = 0;
        for item in self.inner.slots.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let entry = decode::<SlotEntry>(&v, "slot")?;
            if let Some(left) = entry.removed_ms.filter(|at| *at < cutoff) {
                forget.remove(k);
                let reusable = left.saturating_add(rows_last.num_milliseconds());
                free.insert(&entry.slot.to_be_bytes(), &reusable.to_be_bytes());
                n += 1;
            }
        }
        // Freed first: a crash between the two leaves a slot both known and free, which
        // `reusable_slots` skips, never a slot lost.
        self.inner
            .free_slots
            .apply_batch(free)
            .map_err(|e| self.err(e))?;
        self.inner
            .slots
            .apply_batch(forget)
            .map_err(|e| self.err(e))?;
        Ok(n)
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

    // ---- probe results and history ----

    /// The current list's peers and their slots (their place in history rows).
    pub fn roster(&self) -> Result<HashMap<String, u32>, StoreError> {
        Ok(self.roster_in_list_order()?.into_iter().collect())
    }

    fn roster_in_list_order(&self) -> Result<Vec<(String, u32)>, StoreError> {
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

    /// Stores one sweep as a raw row (every peer's check, which is also its latest result),
    /// then the summary. Results of ids not in the stored list are not kept.
    pub fn record_sweep(
        &self,
        results: &[(String, ProbeResult)],
        summary: &SweepSummary,
    ) -> Result<(), StoreError> {
        let roster = self.roster_in_list_order()?;
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
        let mut meta = sled::Batch::default();
        meta.insert(KEY_LATEST_ROW, &at.to_be_bytes());
        meta.insert(KEY_SWEEP, summary);
        self.inner.meta.apply_batch(meta).map_err(|e| self.err(e))?;
        Ok(())
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
    fn newest_raw_ms(&self) -> Result<Option<i64>, StoreError> {
        self.read_ms(&self.inner.meta, KEY_LATEST_ROW)
    }

    /// A time (ms, big endian) kept under `key` in `tree`.
    fn read_ms(&self, tree: &sled::Tree, key: &[u8]) -> Result<Option<i64>, StoreError> {
        let v = tree.get(key).map_err(|e| self.err(e))?;
        Ok(v.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(i64::from_be_bytes))
    }

    /// The latest result of every peer of the current list that has one.
    pub fn latest_results(&self) -> Result<HashMap<String, ProbeResult>, StoreError> {
        let Some(at) = self.newest_raw_ms()? else {
            return Ok(HashMap::new());
        };
        let by_slot: HashMap<u32, String> =
            self.roster()?.into_iter().map(|(id, s)| (s, id)).collect();
        let mut out = HashMap::new();
        for item in self.inner.raw.scan_prefix(&row_key(at, 0)[..8]) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let Some((_, chunk)) = parse_row_key(&k) else {
                continue;
            };
            for (slot, entry) in decode_chunk(Level::Raw, chunk, &v)? {
                if let (Some(id), Entry::Check(check)) = (by_slot.get(&slot), entry) {
                    out.insert(id.clone(), check.to_result(at));
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
            .map(|(_, c)| c.to_result(at)))
    }

    pub fn last_sweep(&self) -> Result<Option<SweepSummary>, StoreError> {
        get_json(&self.inner.meta, KEY_SWEEP, "last sweep").map_err(|e| self.map(e))
    }

    fn tree(&self, level: Level) -> &sled::Tree {
        match level {
            Level::Raw => &self.inner.raw,
            Level::Minute => &self.inner.minute,
            Level::Hour => &self.inner.hour,
            Level::Day => &self.inner.day,
        }
    }

    /// Rows of `level` exist up to (not including) this time: everything finer before it has
    /// been rolled up. `None` before the first roll-up.
    fn frontier(&self, level: Level) -> Result<Option<i64>, StoreError> {
        self.read_ms(self.frontier_tree(level), &frontier_key(level))
    }

    /// A level's frontier is kept in the database that holds its rows, so the two are written
    /// in one log, in order.
    fn frontier_tree(&self, level: Level) -> &sled::Tree {
        match level {
            Level::Hour | Level::Day => &self.inner.archive_meta,
            Level::Raw | Level::Minute => &self.inner.meta,
        }
    }

    /// Rolls finished minutes, hours and days up into their buckets and prunes every level
    /// past its retention, as of `now`. The sweep calls it after recording; its cost is the rows
    /// it rolls up or deletes (normally one raw row, and one row per level when a minute,
    /// hour or day ends), never a scan of what stays.
    ///
    /// `jump_bound` guards against a wall clock that jumped ahead: a `now` more than that ahead
    /// of the history's own time acts on nothing; the next call confirms it (the clock stayed
    /// there: a real step, or a long stop) or the clock came back, and either way maintenance
    /// resumes then, one sweep later.
    pub fn maintain(
        &self,
        now: DateTime<Utc>,
        keep: &Retention,
        jump_bound: chrono::Duration,
    ) -> Result<Maintenance, StoreError> {
        let now_ms = now.timestamp_millis();
        let mut done = Maintenance::default();
        // A clock behind the stored history rolls up and prunes nothing until it catches up.
        if now_ms < self.frontier(Level::Minute)?.unwrap_or(i64::MIN) {
            return Ok(done);
        }
        let bound_ms = jump_bound.num_milliseconds().max(0);
        if self.judge_time(now_ms, bound_ms)? == TimeVerdict::Held {
            done.held = true;
            return Ok(done);
        }
        done.dropped_future = self.drop_future_raw(now_ms.saturating_add(bound_ms))?;
        for level in Level::ROLLUPS {
            let made = self.roll_up(level, now_ms, &mut done.skipped)?;
            // Once a day: slots of peers whose history has all aged out.
            if level == Level::Day && made > 0 {
                self.forget_slots(now_ms, keep)?;
            }
            done.rolled_up += made;
        }
        let newest_raw = self.newest_raw_ms()?;
        // Raw rows go one a sweep; the other levels can only have a row to prune once a
        // minute has been rolled up.
        let levels: &[Level] = if done.rolled_up > 0 {
            &[Level::Raw, Level::Minute, Level::Hour, Level::Day]
        } else {
            &[Level::Raw]
        };
        for &level in levels {
            let mut cutoff = now_ms.saturating_sub(keep.of(level).num_milliseconds());
            // Nothing goes before the next level has taken it in.
            if let Some(coarser) = level.coarser() {
                cutoff = cutoff.min(self.frontier(coarser)?.unwrap_or(i64::MIN));
            }
            // The newest raw row holds the latest results: it stays.
            if level == Level::Raw {
                cutoff = cutoff.min(newest_raw.unwrap_or(i64::MIN));
            }
            done.pruned += self.prune_level(level, cutoff)?;
        }
        Ok(done)
    }

    /// Takes `now` as the history's time, or holds it: see [`Store::maintain`]. The history's
    /// time (`meta/history_time`) is the newest time maintenance acted on.
    fn judge_time(&self, now_ms: i64, bound_ms: i64) -> Result<TimeVerdict, StoreError> {
        let history = self.read_ms(&self.inner.meta, KEY_HISTORY_TIME)?;
        let pending = self.read_ms(&self.inner.meta, KEY_JUMP_PENDING)?;
        let trusted = match history {
            None => true,
            Some(h) if now_ms <= h.saturating_add(bound_ms) => true,
            // The jump seen last time, still in force: the clock really is there now.
            Some(h) => match pending {
                Some(p) if now_ms >= p && now_ms - p <= bound_ms => {
                    tracing::warn!(
                        ahead_s = (now_ms - h) / 1000,
                        "the clock stayed ahead of the stored history; history maintenance follows it"
                    );
                    true
                }
                _ => false,
            },
        };
        let mut batch = sled::Batch::default();
        if trusted {
            batch.insert(
                KEY_HISTORY_TIME,
                &history.unwrap_or(now_ms).max(now_ms).to_be_bytes(),
            );
            batch.remove(KEY_JUMP_PENDING);
        } else {
            tracing::warn!(
                ahead_s = (now_ms - history.unwrap_or(now_ms)) / 1000,
                "the clock jumped ahead of the stored history; no roll-up or pruning until the next sweep confirms it"
            );
            batch.insert(KEY_JUMP_PENDING, &now_ms.to_be_bytes());
        }
        self.inner
            .meta
            .apply_batch(batch)
            .map_err(|e| self.err(e))?;
        Ok(if trusted {
            TimeVerdict::Trusted
        } else {
            TimeVerdict::Held
        })
    }

    /// Deletes raw rows filed after `after` (by a clock that was ahead and came back); they
    /// would otherwise be rolled into a minute far in the future. Returns how many rows went.
    fn drop_future_raw(&self, after: i64) -> Result<usize, StoreError> {
        // The latest results stay, wherever they are.
        let newest = self.newest_raw_ms()?;
        let dropped = self.remove_rows(Level::Raw, row_key(after, 0).., newest)?;
        if dropped > 0 {
            tracing::warn!(
                rows = dropped,
                "dropped raw history rows filed in the future by a clock that was ahead"
            );
        }
        Ok(dropped)
    }

    /// Makes the `level` rows for every finished bucket since the level's frontier.
    fn roll_up(&self, level: Level, now_ms: i64, skipped: &mut usize) -> Result<usize, StoreError> {
        let Some(finer) = level.finer() else {
            return Ok(0);
        };
        let target = level.floor(now_ms);
        let from = match self.frontier(level)? {
            Some(f) => f,
            None => match self.tree(finer).first().map_err(|e| self.err(e))? {
                Some((k, _)) => match parse_row_key(&k) {
                    Some((at, _)) => level.floor(at),
                    None => target,
                },
                None => target,
            },
        };
        if from >= target {
            return Ok(0);
        }
        let mut rows: BTreeMap<i64, BTreeMap<u32, Bucket>> = BTreeMap::new();
        for item in self.tree(finer).range(row_key(from, 0)..row_key(target, 0)) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let Some((at, chunk)) = parse_row_key(&k) else {
                *skipped += 1;
                continue;
            };
            let row = rows.entry(level.floor(at)).or_default();
            // A damaged chunk is already lost; the rest of the history still rolls up.
            match decode_chunk(finer, chunk, &v) {
                Ok(entries) => {
                    for (slot, entry) in entries {
                        entry.fold_into(row.entry(slot).or_default());
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        "history: skipping a damaged {} row chunk: {e}",
                        finer.as_str()
                    );
                    *skipped += 1;
                }
            }
        }
        let mut batch = sled::Batch::default();
        let made = rows.len();
        for (start, buckets) in rows {
            let mut chunks: BTreeMap<u32, Vec<(u8, Bucket)>> = BTreeMap::new();
            for (slot, bucket) in buckets {
                let (chunk, offset) = chunk_of(level, slot);
                chunks.entry(chunk).or_default().push((offset, bucket));
            }
            for (chunk, entries) in chunks {
                batch.insert(&row_key(start, chunk)[..], encode(&entries, "history row")?);
            }
        }
        // Rows first, then the frontier: after a crash between the two the same rows are
        // simply made again.
        self.tree(level)
            .apply_batch(batch)
            .map_err(|e| self.err(e))?;
        self.frontier_tree(level)
            .insert(frontier_key(level), &target.to_be_bytes())
            .map_err(|e| self.err(e))?;
        Ok(made)
    }

    /// Deletes the `level` rows older than `cutoff`; returns how many rows went.
    fn prune_level(&self, level: Level, cutoff: i64) -> Result<usize, StoreError> {
        self.remove_rows(level, ..row_key(cutoff, 0), None)
    }

    /// Deletes the `level` rows whose keys are in `range`, but the row at `except`; returns how
    /// many rows went.
    fn remove_rows(
        &self,
        level: Level,
        range: impl std::ops::RangeBounds<[u8; 12]>,
        except: Option<i64>,
    ) -> Result<usize, StoreError> {
        let mut batch = sled::Batch::default();
        let mut rows = std::collections::HashSet::new();
        for key in self.tree(level).range(range).keys() {
            let key = key.map_err(|e| self.err(e))?;
            if let Some((at, _)) = parse_row_key(&key) {
                if Some(at) == except {
                    continue;
                }
                rows.insert(at);
            }
            batch.remove(key);
        }
        if rows.is_empty() {
            return Ok(0);
        }
        self.tree(level)
            .apply_batch(batch)
            .map_err(|e| self.err(e))?;
        Ok(rows.len())
    }

    /// Folds the history in `[from, to)` into buckets per slot and point in time: `level` rows
    /// from the start of the bucket holding `from`, then finer rows where `level` has none yet
    /// (the unfinished hour, minute), down to the raw rows of the last sweeps. A point is the
    /// start of a `step` (a multiple of the level's span), or with no step one point per slot
    /// at the window's start. With `only`, just that slot, read chunk by chunk.
    pub fn collect(
        &self,
        level: Level,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        step: Option<chrono::Duration>,
        only: Option<u32>,
    ) -> Result<HashMap<u32, BTreeMap<i64, Bucket>>, StoreError> {
        let start = level.floor(from.timestamp_millis());
        let to = to.timestamp_millis();
        let step = step.map(|s| s.num_milliseconds().max(1));
        let point = |at: i64| match step {
            Some(s) => start + (at - start).div_euclid(s) * s,
            None => start,
        };
        let mut out: HashMap<u32, BTreeMap<i64, Bucket>> = HashMap::new();
        let mut cursor = start;
        let mut next = Some(level);
        while let Some(l) = next {
            let end = match l {
                Level::Raw => to,
                _ => self.frontier(l)?.unwrap_or(i64::MIN).min(to),
            };
            if end > cursor {
                self.read_rows(l, cursor, end, only, |at, slot, entry| {
                    entry.fold_into(out.entry(slot).or_default().entry(point(at)).or_default());
                })?;
                cursor = end;
            }
            next = l.finer();
        }
        Ok(out)
    }

    /// Calls `f(row time, slot, entry)` for the `level` rows in `[from, to)`.
    fn read_rows(
        &self,
        level: Level,
        from: i64,
        to: i64,
        only: Option<u32>,
        mut f: impl FnMut(i64, u32, Entry),
    ) -> Result<(), StoreError> {
        let mut visit = |at: i64, chunk: u32, value: &[u8]| -> Result<(), StoreError> {
            for (slot, entry) in decode_chunk(level, chunk, value)? {
                if only.is_none_or(|s| s == slot) {
                    f(at, slot, entry);
                }
            }
            Ok(())
        };
        let tree = self.tree(level);
        match only {
            // One peer of an aligned level: one small read per bucket.
            Some(slot) if level != Level::Raw => {
                let (chunk, _) = chunk_of(level, slot);
                let mut at = from;
                while at < to {
                    if let Some(v) = tree.get(row_key(at, chunk)).map_err(|e| self.err(e))? {
                        visit(at, chunk, &v)?;
                    }
                    at += level.span_ms();
                }
            }
            _ => {
                let wanted = only.map(|s| chunk_of(level, s).0);
                for item in tree.range(row_key(from, 0)..row_key(to, 0)) {
                    let (k, v) = item.map_err(|e| self.err(e))?;
                    let Some((at, chunk)) = parse_row_key(&k) else {
                        continue;
                    };
                    if wanted.is_none_or(|c| c == chunk) {
                        visit(at, chunk, &v)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Rows and bytes per level (the benchmark and the retention test report them).
    pub fn history_size(&self) -> Vec<(Level, usize, u64)> {
        [Level::Raw, Level::Minute, Level::Hour, Level::Day]
            .into_iter()
            .map(|l| {
                let mut rows = std::collections::HashSet::new();
                let mut bytes = 0;
                for (k, v) in self.tree(l).iter().flatten() {
                    if let Some((at, _)) = parse_row_key(&k) {
                        rows.insert(at);
                    }
                    bytes += (k.len() + v.len()) as u64;
                }
                (l, rows.len(), bytes)
            })
            .collect()
    }

    // ---- job runs ----

    /// Records the start of a run and returns its id.
    pub fn start_run(&self, mut run: JobRun) -> Result<JobRun, StoreError> {
        run.id = self.inner.db.generate_id().map_err(|e| self.err(e))?;
        self.put_run(&run)?;
        Ok(run)
    }

    /// Writes the record of a run (also used for runs that never started, e.g. skipped).
    /// Of a sweep's per-peer results it keeps the down peers, at most [`STORED_RESULTS`], and
    /// counts the rest in `results_omitted`.
    pub fn put_run(&self, run: &JobRun) -> Result<(), StoreError> {
        let mut stored = run.clone();
        compact_results(&mut stored.summary);
        let bytes = serde_json::to_vec(&stored).map_err(|e| corrupt("job run", e))?;
        self.inner
            .runs
            .insert(run_key(&run.job, run.id), bytes)
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn next_run_id(&self) -> Result<u64, StoreError> {
        self.inner.db.generate_id().map_err(|e| self.err(e))
    }

    /// Runs of `job`, newest first.
    pub fn runs(&self, job: &str, limit: usize) -> Result<Vec<JobRun>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .inner
            .runs
            .scan_prefix(run_prefix(job))
            .rev()
            .take(limit)
        {
            let (_, v) = item.map_err(|e| self.err(e))?;
            out.push(serde_json::from_slice(&v).map_err(|e| corrupt("job run", e))?);
        }
        Ok(out)
    }

    pub fn last_run(&self, job: &str) -> Result<Option<JobRun>, StoreError> {
        Ok(self.runs(job, 1)?.pop())
    }

    /// The newest run of `job` that finished ok.
    pub fn last_success(&self, job: &str) -> Result<Option<JobRun>, StoreError> {
        for item in self.inner.runs.scan_prefix(run_prefix(job)).rev() {
            let (_, v) = item.map_err(|e| self.err(e))?;
            let run: JobRun = serde_json::from_slice(&v).map_err(|e| corrupt("job run", e))?;
            if run.outcome == Outcome::Ok {
                return Ok(Some(run));
            }
        }
        Ok(None)
    }

    /// Deletes the runs of `job` beyond the newest `keep.runs_keep` and those started before
    /// `now - keep.runs_age`; the newest run always stays. Returns how many went.
    pub fn prune_runs(
        &self,
        job: &str,
        now: DateTime<Utc>,
        keep: &Retention,
    ) -> Result<usize, StoreError> {
        let cutoff = now - keep.runs_age;
        let mut batch = sled::Batch::default();
        let mut n = 0;
        let newest = self
            .inner
            .runs
            .scan_prefix(run_prefix(job))
            .keys()
            .next_back()
            .transpose()
            .map_err(|e| self.err(e))?;
        // Oldest first, while they are past the age.
        let mut oldest_kept = None;
        for item in self.inner.runs.scan_prefix(run_prefix(job)) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let old = serde_json::from_slice::<JobRun>(&v).map_or(true, |r| r.started_at < cutoff);
            if !old || Some(&k) == newest.as_ref() {
                oldest_kept = Some(k);
                break;
            }
            batch.remove(k);
            n += 1;
        }
        // Then beyond the count.
        if let Some(from) = oldest_kept {
            let mut end = run_prefix(job);
            if let Some(last) = end.last_mut() {
                *last = 1;
            }
            let excess: Vec<sled::IVec> = self
                .inner
                .runs
                .range(from..sled::IVec::from(end))
                .keys()
                .rev()
                .skip(keep.runs_keep.max(1))
                .collect::<Result<_, _>>()
                .map_err(|e| self.err(e))?;
            n += excess.len();
            for k in excess {
                batch.remove(k);
            }
        }
        if n > 0 {
            self.inner
                .runs
                .apply_batch(batch)
                .map_err(|e| self.err(e))?;
        }
        Ok(n)
    }

    fn mark_interrupted(&self) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        let mut any = false;
        for item in self.inner.runs.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let Ok(mut run) = serde_json::from_slice::<JobRun>(&v) else {
                continue;
            };
            if run.outcome == Outcome::Running {
                run.outcome = Outcome::Interrupted;
                run.error = Some("the process ended during this run".into());
                batch.insert(
                    k,
                    serde_json::to_vec(&run).map_err(|e| corrupt("job run", e))?,
                );
                any = true;
            }
        }
        if any {
            self.inner
                .runs
                .apply_batch(batch)
                .map_err(|e| self.err(e))?;
            self.inner.db.flush().map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn map(&self, e: GetError) -> StoreError {
        match e {
            GetError::Db(e) => self.err(e),
            GetError::Corrupt(e) => e,
        }
    }

    fn tx_err(&self, e: TransactionError<()>) -> StoreError {
        match e {
            TransactionError::Storage(e) => self.err(e),
            TransactionError::Abort(()) => StoreError::Corrupt {
                what: "transaction".into(),
                detail: "aborted".into(),
            },
        }
    }
}

enum GetError {
    Db(sled::Error),
    Corrupt(StoreError),
}

fn get_json<T: DeserializeOwned>(
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

fn encode<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(value).map_err(|e| StoreError::Corrupt {
        what: what.into(),
        detail: e.to_string(),
    })
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt {
        what: what.into(),
        detail: e.to_string(),
    })
}

fn corrupt(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        detail: e.to_string(),
    }
}

/// Keeps a stored sweep summary small: down peers' results only, at most [`STORED_RESULTS`].
fn compact_results(summary: &mut serde_json::Value) {
    let Some(serde_json::Value::Array(results)) = summary.get_mut("results") else {
        return;
    };
    let total = results.len();
    results.retain(|r| r.get("up") != Some(&serde_json::Value::Bool(true)));
    results.truncate(STORED_RESULTS);
    let omitted = (total - results.len()) as u64;
    let before = summary["results_omitted"].as_u64().unwrap_or(0);
    if omitted + before > 0 {
        summary["results_omitted"] = (omitted + before).into();
    }
}

fn describe_owner(dir: &Path) -> String {
    match std::fs::read(dir.join("owner"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Owner>(&b).ok())
    {
        Some(o) => format!(
            "another easytier-probe process (pid {}, `{}`, since {})",
            o.pid,
            o.command,
            o.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        None => "another easytier-probe process".into(),
    }
}

/// `len(id) as u16 BE ++ id ++ millis as i64 BE (sign-flipped)`, so one peer's samples are
/// contiguous and ordered by time.
fn history_key(id: &str, at: DateTime<Utc>) -> Vec<u8> {
    let id = id.as_bytes();
    let mut k = Vec::with_capacity(2 + id.len() + 8);
    k.extend_from_slice(&(id.len() as u16).to_be_bytes());
    k.extend_from_slice(id);
    let ms = at.timestamp_millis();
    k.extend_from_slice(&((ms as u64) ^ (1 << 63)).to_be_bytes());
    k
}

fn run_prefix(job: &str) -> Vec<u8> {
    let mut k = job.as_bytes().to_vec();
    k.push(0);
    k
}

fn run_key(job: &str, id: u64) -> Vec<u8> {
    let mut k = run_prefix(job);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Bytes of the files under `path` (a data dir: both databases and the rest). Files that
/// vanish while it looks (sled deletes some) count as nothing.
pub fn disk_usage(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_usage(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Converts a millisecond timestamp to a time, for callers building ranges.
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    /// For tests of roll-ups over simulated gaps: no clock-jump guard.
    const UNBOUNDED: Duration = Duration::days(100_000);
    use crate::model::{ListSource, Peer, Trigger};
    use chrono::Duration;

    fn peer(id: &str) -> Peer {
        Peer::for_tests(id)
    }

    fn result(up: bool, at: DateTime<Utc>) -> ProbeResult {
        ProbeResult {
            up,
            rtt_us: up.then_some(1500),
            error_kind: None,
            error: None,
            checked_at: at,
        }
    }

    #[test]
    fn a_second_open_is_refused_with_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let _a = Store::open(dir.path(), "serve").unwrap();
        let err = Store::open(dir.path(), "run-job").unwrap_err();
        assert!(matches!(err, StoreError::Busy { .. }), "{err}");
        assert!(err.to_string().contains("`serve`"), "{err}");
    }

    #[test]
    fn peer_list_replacement_counts_and_drops_latest_of_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), "t").unwrap();
        let now = Utc::now();
        let list = |ids: &[&str]| PeerList {
            fetched_at: now,
            source: ListSource::File,
            peers: ids.iter().map(|i| peer(i)).collect(),
        };
        assert_eq!(s.replace_peer_list(&list(&["a", "b"])).unwrap(), (2, 0));
        let results = vec![
            ("a".to_string(), result(true, now)),
            ("b".to_string(), result(false, now)),
        ];
        let summary = SweepSummary::from_results(now, results.iter().map(|(_, r)| r));
        s.record_sweep(&results, &summary).unwrap();
        assert_eq!(s.replace_peer_list(&list(&["b", "c"])).unwrap(), (1, 1));
        assert!(s.latest_result("a").unwrap().is_none());
        assert!(s.latest_result("b").unwrap().is_some());
        assert_eq!(s.last_sweep().unwrap().unwrap().reachable, 1);
        let ids: Vec<_> = s
            .peer_list()
            .unwrap()
            .unwrap()
            .peers
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(ids, ["b", "c"]);
    }

    fn list(ids: &[&str]) -> PeerList {
        PeerList {
            fetched_at: Utc::now(),
            source: ListSource::File,
            peers: ids.iter().map(|i| peer(i)).collect(),
        }
    }

    /// Three hours and a bit of sweeps every 20 s over two peers: `a` up with a varying RTT,
    /// `b` down every fourth sweep. Returns the time of the last sweep and, per peer,
    /// (checks, up, rtt sum).
    fn three_hours(s: &Store, keep: &Retention) -> (DateTime<Utc>, [(u64, u64, u64); 2]) {
        // Ending a little before now (peers leave at the wall clock's time).
        let hour = Level::Hour.floor(Utc::now().timestamp_millis());
        let t0 = from_millis(hour) - Duration::hours(4) + Duration::seconds(30 * 60 + 10);
        let mut expected = [(0, 0, 0); 2];
        let mut at = t0;
        for i in 0..600u64 {
            at = t0 + Duration::seconds(20 * i as i64);
            let a = ProbeResult {
                rtt_us: Some(1000 + (i % 7) * 100),
                ..result(true, at)
            };
            let b = result(i % 4 != 0, at);
            for (n, r) in [&a, &b].into_iter().enumerate() {
                expected[n].0 += 1;
                expected[n].1 += u64::from(r.up);
                expected[n].2 += r.rtt_us.unwrap_or(0);
            }
            let results = vec![("a".to_string(), a), ("b".to_string(), b)];
            let summary = SweepSummary::from_results(at, results.iter().map(|(_, r)| r));
            s.record_sweep(&results, &summary).unwrap();
            s.maintain(at, keep, UNBOUNDED).unwrap();
        }
        (at, expected)
    }

    /// A crash after a roll-up wrote its rows but before it moved the frontier: the next
    /// maintenance makes the same rows again, and nothing is counted twice.
    #[test]
    fn a_roll_up_cut_short_before_its_frontier_counts_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), "t").unwrap();
        s.replace_peer_list(&list(&["a", "b"])).unwrap();
        let keep = Retention {
            raw: Duration::minutes(10),
            minute: Duration::hours(26),
            ..Retention::default()
        };
        let (last, expected) = three_hours(&s, &keep);
        let from = from_millis(Level::Hour.floor(last.timestamp_millis())) - Duration::hours(4);
        let to = last + Duration::seconds(1);
        let hour_frontier = s.frontier(Level::Hour).unwrap().unwrap();
        // The frontier as it was before the last hour rows were made.
        s.frontier_tree(Level::Hour)
            .insert(
                frontier_key(Level::Hour),
                &(hour_frontier - 3 * 3_600_000).to_be_bytes(),
            )
            .unwrap();
        let done = s.maintain(last, &keep, UNBOUNDED).unwrap();
        assert!(done.rolled_up >= 3, "{done:?}");
        assert_eq!(s.frontier(Level::Hour).unwrap(), Some(hour_frontier));
        let roster = s.roster().unwrap();
        for (n, id) in ["a", "b"].into_iter().enumerate() {
            let slot = roster[id];
            let got = s.collect(Level::Hour, from, to, None, Some(slot)).unwrap();
            let b = got[&slot].values().next().unwrap();
            assert_eq!((b.checks, b.up, b.rtt_sum_us), expected[n], "{id}");
        }
    }

    #[test]
    fn sweeps_roll_up_and_every_level_gives_the_same_totals() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), "t").unwrap();
        s.replace_peer_list(&list(&["a", "b"])).unwrap();
        let keep = Retention {
            raw: Duration::minutes(10),
            minute: Duration::hours(26),
            ..Retention::default()
        };
        let (last, expected) = three_hours(&s, &keep);
        let roster = s.roster().unwrap();
        let to = last + Duration::seconds(1);
        let from = from_millis(Level::Hour.floor(last.timestamp_millis())) - Duration::hours(4);
        for level in [Level::Minute, Level::Hour, Level::Day] {
            let all = s.collect(level, from, to, None, None).unwrap();
            for (n, id) in ["a", "b"].into_iter().enumerate() {
                let slot = roster[id];
                let one = s.collect(level, from, to, None, Some(slot)).unwrap();
                assert_eq!(one[&slot], all[&slot], "{level:?} {id}");
                let b = one[&slot].values().next().unwrap();
                assert_eq!(
                    (b.checks, b.up, b.rtt_sum_us),
                    expected[n],
                    "{level:?} {id}"
                );
            }
        }
        let a = s
            .collect(Level::Hour, from, to, None, Some(roster["a"]))
            .unwrap()[&roster["a"]][&Level::Hour.floor(from.timestamp_millis())]
            .clone();
        assert_eq!((a.rtt_min_us, a.rtt_max_us), (1000, 1600));
        // Hourly series: hh:30:10 to hh:59:50 is 90 sweeps, then 180 an hour, 150 left over.
        let series = s
            .collect(
                Level::Minute,
                from,
                to,
                Some(Duration::hours(1)),
                Some(roster["b"]),
            )
            .unwrap()
            .remove(&roster["b"])
            .unwrap();
        let checks: Vec<u64> = series.values().map(|b| b.checks).collect();
        assert_eq!(checks, [90, 180, 180, 150]);
        // Raw rows beyond ten minutes went; the finer levels before the frontiers stay.
        let size = s.history_size();
        assert!((30..=34).contains(&size[0].1), "{size:?}");
        assert!(size[1].1 >= 180, "{size:?}");
        assert_eq!(size[2].1, 3, "{size:?}");
        // (a day row only if those hours crossed midnight UTC)
        assert!(size[3].1 <= 1, "{size:?}");
        assert_eq!(s.latest_result("a").unwrap().unwrap().checked_at, last);

        // A year and more later, with `b` gone: everything has aged out but the newest raw row,
        // and `b`'s slot is forgotten.
        s.replace_peer_list(&list(&["a"])).unwrap();
        assert!(s.slot("b").unwrap().is_some());
        let later = last + Duration::days(402);
        s.maintain(later, &keep, UNBOUNDED).unwrap();
        let size = s.history_size();
        assert_eq!(
            size.iter().map(|(_, rows, _)| *rows).collect::<Vec<_>>(),
            [1, 0, 0, 0],
            "{size:?}"
        );
        assert!(s.slot("b").unwrap().is_none());
        assert!(s.slot("a").unwrap().is_some());
    }

    #[test]
    fn a_clock_jump_ahead_is_held_for_one_sweep_then_followed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), "t").unwrap();
        s.replace_peer_list(&list(&["a"])).unwrap();
        let keep = Retention::default();
        let bound = Duration::hours(1);
        let t0 = from_millis(Level::Hour.floor(Utc::now().timestamp_millis())) - Duration::hours(3);
        let sweep = |at: DateTime<Utc>| {
            let results = vec![("a".to_string(), result(true, at))];
            s.record_sweep(&results, &SweepSummary::from_results(at, [&results[0].1]))
                .unwrap();
            s.maintain(at, &keep, bound).unwrap()
        };
        for i in 0..6 {
            assert!(!sweep(t0 + Duration::minutes(10 * i)).held);
        }
        // Two days ahead (a real step, or the process was stopped that long): held once...
        let step = t0 + Duration::days(2);
        assert!(sweep(step).held);
        // ...and followed once the next sweep confirms it.
        let done = sweep(step + Duration::minutes(1));
        assert!(!done.held && done.rolled_up > 0, "{done:?}");
        // A single reading far ahead, then the clock is right again: the row it filed in the
        // future goes, nothing was acted on as of it.
        let right = step + Duration::minutes(2);
        assert!(sweep(right + Duration::days(30)).held);
        let done = sweep(right + Duration::minutes(1));
        assert!(!done.held, "{done:?}");
        assert_eq!(done.dropped_future, 1, "{done:?}");
    }

    #[test]
    fn peers_gone_a_month_are_forgotten_and_their_slots_given_again_once_empty() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), "t").unwrap();
        let keep = Retention::default();
        let t0 = from_millis(Level::Day.floor(Utc::now().timestamp_millis())) - Duration::days(500);
        let ids = |p: &str| (0..10).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
        let at_time = |p: &str, at: DateTime<Utc>| {
            let names = ids(p);
            let mut l = list(&names.iter().map(String::as_str).collect::<Vec<_>>());
            l.fetched_at = at;
            s.replace_peer_list(&l).unwrap();
        };
        let sweep = |id: &str, at: DateTime<Utc>| {
            let results = vec![(id.to_string(), result(true, at))];
            s.record_sweep(&results, &SweepSummary::from_results(at, [&results[0].1]))
                .unwrap();
            s.maintain(at, &keep, UNBOUNDED).unwrap();
        };
        at_time("a", t0);
        sweep("a0", t0);
        at_time("b", t0 + Duration::hours(1));
        sweep("b0", t0 + Duration::hours(1));
        // A month and two days on: the `a` peers are forgotten; their slots are not given yet.
        sweep("b0", t0 + Duration::days(32));
        assert!(s.slot("a0").unwrap().is_none());
        assert_eq!(s.slot("b0").unwrap(), Some(10));
        at_time("c", t0 + Duration::days(33));
        assert_eq!(s.slot("c0").unwrap(), Some(20));
        // Once every row that could hold them is gone, the slots are given again: the counter
        // does not grow with churn.
        sweep("c0", t0 + Duration::days(450));
        at_time("d", t0 + Duration::days(451));
        let mut given: Vec<u32> = ids("d")
            .iter()
            .map(|id| s.slot(id).unwrap().unwrap())
            .collect();
        given.sort();
        assert_eq!(given, (0..10).collect::<Vec<_>>());
        assert_eq!(s.next_slot().unwrap(), 30);
    }

    #[test]
    fn an_unchanged_peer_list_is_not_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), "t").unwrap();
        let first = list(&["a", "b"]);
        s.replace_peer_list(&first).unwrap();
        let mut same = list(&["a", "b"]);
        same.fetched_at = first.fetched_at + Duration::minutes(1);
        assert_eq!(s.replace_peer_list(&same).unwrap(), (0, 0));
        // Not rewritten: the stored list is still the first one.
        assert_eq!(s.peer_list().unwrap().unwrap().fetched_at, first.fetched_at);
        let mut changed = list(&["a", "c"]);
        changed.fetched_at = same.fetched_at;
        assert_eq!(s.replace_peer_list(&changed).unwrap(), (1, 1));
        assert_eq!(
            s.peer_list().unwrap().unwrap().fetched_at,
            changed.fetched_at
        );
    }

    #[test]
    fn a_damaged_chunk_is_left_out_and_the_rest_rolls_up() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), "t").unwrap();
        s.replace_peer_list(&list(&["a", "b"])).unwrap();
        let t0 = from_millis(Level::Hour.floor(Utc::now().timestamp_millis())) - Duration::hours(2);
        for i in 0..3 {
            let at = t0 + Duration::seconds(10 * i);
            let results = vec![("a".to_string(), result(true, at))];
            s.record_sweep(&results, &SweepSummary::from_results(at, [&results[0].1]))
                .unwrap();
        }
        s.inner
            .raw
            .insert(
                row_key(t0.timestamp_millis() + 10_000, 0),
                &b"\xff\xff garbage"[..],
            )
            .unwrap();
        let done = s
            .maintain(t0 + Duration::minutes(5), &Retention::default(), UNBOUNDED)
            .unwrap();
        assert_eq!(done.skipped, 1);
        let slot = s.slot("a").unwrap().unwrap();
        let got = s
            .collect(
                Level::Minute,
                t0,
                t0 + Duration::minutes(5),
                None,
                Some(slot),
            )
            .unwrap();
        assert_eq!(got[&slot].values().next().unwrap().checks, 2);
    }

    #[test]
    fn a_clock_set_back_loses_no_check_and_freezes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), "t").unwrap();
        s.replace_peer_list(&list(&["a"])).unwrap();
        let keep = Retention::default();
        let t0 =
            from_millis(Level::Minute.floor(Utc::now().timestamp_millis())) - Duration::minutes(30);
        let sweep = |at: DateTime<Utc>| {
            let results = vec![("a".to_string(), result(true, at))];
            s.record_sweep(&results, &SweepSummary::from_results(at, [&results[0].1]))
                .unwrap();
            s.maintain(at, &keep, UNBOUNDED).unwrap();
        };
        for i in 0..10 {
            sweep(t0 + Duration::seconds(30 * i));
        }
        // The clock jumps back a year (a board without a real-time clock, before NTP)...
        let back = t0 - Duration::days(365);
        sweep(back);
        sweep(back + Duration::seconds(30));
        let latest = s.latest_result("a").unwrap().unwrap();
        assert_eq!(
            latest.checked_at,
            back + Duration::seconds(30),
            "the latest is the last sweep"
        );
        // ...then is right again: every check is counted, none twice.
        sweep(t0 + Duration::minutes(10));
        let later = t0 + Duration::minutes(12);
        s.maintain(later, &keep, UNBOUNDED).unwrap();
        let slot = s.slot("a").unwrap().unwrap();
        let all = s
            .collect(
                Level::Minute,
                t0 - Duration::hours(1),
                later,
                None,
                Some(slot),
            )
            .unwrap();
        assert_eq!(all[&slot].values().next().unwrap().checks, 13);
        assert_eq!(
            s.latest_result("a").unwrap().unwrap().checked_at,
            t0 + Duration::minutes(10)
        );
    }

    #[test]
    fn a_schema_1_store_is_migrated_keeping_its_history() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 5).unwrap();
        {
            let s = Store::open(dir.path(), "t").unwrap();
            s.inner
                .peers
                .insert(KEY_PEERS, serde_json::to_vec(&list(&["a", "b"])).unwrap())
                .unwrap();
            let history = s.inner.db.open_tree("history").unwrap();
            let latest = s.inner.db.open_tree("latest").unwrap();
            // `a` and `gone` (no longer listed) every 30 s for 5 minutes; `gone` half down.
            for i in 0..10 {
                let at = t0 + Duration::seconds(30 * i);
                for (id, up) in [("a", true), ("gone", i % 2 == 0)] {
                    let sample = Sample {
                        at,
                        up,
                        rtt_us: up.then_some(2000),
                        error_kind: None,
                    };
                    history
                        .insert(history_key(id, at), serde_json::to_vec(&sample).unwrap())
                        .unwrap();
                }
                latest
                    .insert("a", serde_json::to_vec(&result(true, at)).unwrap())
                    .unwrap();
            }
            // As if an earlier attempt had given `gone` its slot and then crashed.
            let entry = SlotEntry {
                slot: 7,
                removed_ms: Some(0),
            };
            s.inner
                .slots
                .insert("gone", encode(&entry, "slot").unwrap())
                .unwrap();
            s.inner
                .meta
                .insert(KEY_NEXT_SLOT, &8u32.to_be_bytes())
                .unwrap();
            s.inner
                .meta
                .insert(KEY_SCHEMA, &1u32.to_be_bytes())
                .unwrap();
            s.inner.db.flush().unwrap();
        }
        let s = Store::open(dir.path(), "t").unwrap();
        let names = s.inner.db.tree_names();
        assert!(!names.iter().any(|n| n.as_ref() == b"history"));
        let from = t0 - Duration::hours(1);
        let to = t0 + Duration::hours(1);
        for (id, up) in [("a", 10), ("gone", 5)] {
            let slot = s.slot(id).unwrap().unwrap();
            let got = s
                .collect(Level::Minute, from, to, None, Some(slot))
                .unwrap()
                .remove(&slot)
                .unwrap();
            let b = got.values().next().unwrap();
            assert_eq!((b.checks, b.up), (10, up), "{id}");
        }
        assert_eq!(
            s.latest_result("a").unwrap().unwrap().checked_at,
            t0 + Duration::seconds(270)
        );
        assert!(s.latest_result("b").unwrap().is_none());
        assert_eq!(s.roster().unwrap().len(), 2);
    }

    #[test]
    fn runs_are_pruned_by_count_and_age_keeping_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), "t").unwrap();
        let now = Utc::now();
        let record = |job: &str, started_at| {
            let run = s
                .start_run(JobRun {
                    id: 0,
                    job: job.into(),
                    trigger: Trigger::Schedule,
                    started_at,
                    duration_ms: 1,
                    outcome: Outcome::Ok,
                    summary: serde_json::json!({}),
                    error: None,
                })
                .unwrap();
            s.put_run(&run).unwrap();
        };
        for i in 0..30 {
            record(
                "probe-sweep",
                now - Duration::days(60) + Duration::days(2 * i),
            );
        }
        // Another job's runs, whose keys sort after these: untouched.
        for _ in 0..3 {
            record("status-report", now);
        }
        let keep = Retention {
            runs_keep: 10,
            ..Retention::default()
        };
        assert_eq!(s.prune_runs("probe-sweep", now, &keep).unwrap(), 20);
        assert_eq!(s.runs("status-report", 100).unwrap().len(), 3);
        assert_eq!(s.runs("probe-sweep", 100).unwrap().len(), 10);
        // 30 days of age: of the last ten (18 days old to the newest), all stay; at a year
        // on, only the newest.
        let later = now + Duration::days(365);
        s.prune_runs("probe-sweep", later, &keep).unwrap();
        let left = s.runs("probe-sweep", 100).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].started_at, now - Duration::days(2));
    }

    #[test]
    fn a_stored_sweep_run_keeps_only_down_results() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), "t").unwrap();
        let results: Vec<serde_json::Value> = (0..90)
            .map(|i| serde_json::json!({"id": i.to_string(), "up": i % 3 != 0}))
            .collect();
        let run = JobRun {
            id: 0,
            job: "probe-sweep".into(),
            trigger: Trigger::Cli,
            started_at: Utc::now(),
            duration_ms: 1,
            outcome: Outcome::Ok,
            summary: serde_json::json!({"peers": 90, "results": results}),
            error: None,
        };
        let run = s.start_run(run).unwrap();
        s.put_run(&run).unwrap();
        let stored = s.last_run("probe-sweep").unwrap().unwrap();
        let kept = stored.summary["results"].as_array().unwrap();
        assert_eq!(kept.len(), STORED_RESULTS);
        assert!(kept.iter().all(|r| r["up"] == false));
        assert_eq!(stored.summary["results_omitted"], 70);
        assert_eq!(stored.summary["peers"], 90);
    }

    #[test]
    fn runs_newest_first_and_interrupted_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), "t").unwrap();
            for outcome in [Outcome::Ok, Outcome::Failed] {
                let mut run = s
                    .start_run(JobRun {
                        id: 0,
                        job: "peer-fetch".into(),
                        trigger: Trigger::Cli,
                        started_at: Utc::now(),
                        duration_ms: 0,
                        outcome: Outcome::Running,
                        summary: serde_json::json!({}),
                        error: None,
                    })
                    .unwrap();
                run.outcome = outcome;
                s.put_run(&run).unwrap();
            }
            s.start_run(JobRun {
                id: 0,
                job: "peer-fetch".into(),
                trigger: Trigger::Schedule,
                started_at: Utc::now(),
                duration_ms: 0,
                outcome: Outcome::Running,
                summary: serde_json::json!({}),
                error: None,
            })
            .unwrap();
            s.inner.db.flush().unwrap();
        }
        let s = Store::open(dir.path(), "t").unwrap();
        let runs = s.runs("peer-fetch", 10).unwrap();
        let outcomes: Vec<_> = runs.iter().map(|r| r.outcome).collect();
        assert_eq!(
            outcomes,
            [Outcome::Interrupted, Outcome::Failed, Outcome::Ok]
        );
        assert_eq!(
            s.last_success("peer-fetch").unwrap().unwrap().id,
            runs[2].id
        );
        assert!(s.runs("probe-sweep", 10).unwrap().is_empty());
    }

    #[test]
    fn newer_or_unknown_schema_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), "t").unwrap();
            s.inner
                .meta
                .insert(KEY_SCHEMA, &(SCHEMA_VERSION + 1).to_be_bytes())
                .unwrap();
            s.inner.db.flush().unwrap();
        }
        let err = Store::open(dir.path(), "t").unwrap_err();
        assert!(
            matches!(err, StoreError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1)
        );
        assert!(dir.path().join("db").exists());

        let other = tempfile::tempdir().unwrap();
        {
            let db = sled::open(other.path().join("db")).unwrap();
            db.open_tree("somebody-else")
                .unwrap()
                .insert("k", "v")
                .unwrap();
            db.flush().unwrap();
        }
        let err = Store::open(other.path(), "t").unwrap_err();
        assert!(matches!(err, StoreError::UnknownSchema { .. }), "{err}");
        let db = sled::open(other.path().join("db")).unwrap();
        assert_eq!(db.open_tree("somebody-else").unwrap().len(), 1);
    }
}

#[cfg(test)]
mod damage_tests {
    use super::*;

    #[test]
    fn damaged_files_give_an_error_naming_the_path_and_are_kept() {
        for victim in ["conf", "db"] {
            let dir = tempfile::tempdir().unwrap();
            {
                let s = Store::open(dir.path(), "t").unwrap();
                s.inner.meta.insert(b"x", b"1".to_vec()).unwrap();
                s.inner.db.flush().unwrap();
            }
            let path = dir.path().join("db").join(victim);
            let len = std::fs::metadata(&path).unwrap().len().max(64);
            std::fs::write(&path, vec![0xA5u8; len as usize]).unwrap();
            // (sled may rewrite a damaged file while it opens it; ours must not go further.)
            for _ in 0..2 {
                let err = Store::open(dir.path(), "t").unwrap_err();
                assert!(
                    err.to_string().contains(dir.path().to_str().unwrap()),
                    "{victim}: {err}"
                );
                assert!(path.exists(), "{victim} was deleted");
            }
        }
    }
}
