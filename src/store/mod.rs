//! The store: one sled database in the data directory, and a second for long-lived history.
//! **The only module that uses sled.**
//!
//! Layout (trees): `meta` (schema version, latest sweep, roll-up frontiers),
//! `peers` (the peer list and its roster, each under one key so they are replaced atomically),
//! `slots` (peer id → its slot in history rows), `free_slots`, `raw`, `minute` (history rows,
//! see `keys.rs`), `runs` (job + run id → run record). A second database, `<data-dir>/archive`,
//! holds the long-lived history: `hour`, `day` and their frontiers (`meta`).
//!
//! One `impl Store` block per concern: [`peers`], [`sweeps`], [`rollup`], [`windows`],
//! [`runs`], [`migrate`]; this file opens the store (lock, schema) and flushes it.

mod alerts;
mod codec;
mod figures;
mod keys;
mod lock;
mod migrate;
mod node_keys;
mod peers;
mod rollup;
mod runs;
mod sweeps;
mod totals;
mod windows;

use std::fs::File;
use std::path::{Path, PathBuf};

use sled::transaction::TransactionError;

pub use alerts::{
    Attempt, ChangeRecord, DestinationStats, Evaluation, OutboxEntry, CHANGES_KEEP, OUTBOX_MAX,
};
pub use codec::Check;
pub use figures::Uptimes;
pub use node_keys::KeyAccept;
pub use rollup::Maintenance;
pub use runs::STORED_RESULTS;
pub use totals::CheckTotals;

use codec::GetError;
use keys::{KEY_ALIVE, KEY_SCHEMA, SCHEMA_MARKER};

/// The schema this build writes and reads. Version 1 (per-peer history) is migrated on open.
pub const SCHEMA_VERSION: u32 = 2;

/// The longest a flush may take before the store counts as stalled.
pub const FLUSH_BOUND: std::time::Duration = std::time::Duration::from_secs(15);

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
    /// Alert book, changes, outbox, silences, destination figures (`alerts.rs`).
    alerts: sled::Tree,
    /// Per-slot counts of rolled-up rows, kept for [`Store::uptimes`] (`figures.rs`).
    sums: figures::RowSums,
    /// Held by `maintain` and by the reader of the check totals (`totals.rs`).
    totals: std::sync::Mutex<()>,
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

impl Store {
    /// Opens (creating if needed) the store in `dir`, as `command` (shown to whoever finds it busy).
    /// Runs left `running` by a process that died are marked `interrupted`.
    pub fn open(dir: &Path, command: &str) -> Result<Store, StoreError> {
        let lock = lock::acquire(dir, command)?;
        let db_path = dir.join("db");
        let db_err = |source| StoreError::Db {
            path: db_path.clone(),
            source,
        };
        let existed = db_path.exists();
        let db = open_sled(&db_path, 16 * 1024 * 1024)?;
        let meta = db.open_tree("meta").map_err(db_err)?;
        let migrate_from = check_schema(dir, &db, &meta, existed)?;
        if !dir.join(SCHEMA_MARKER).exists() {
            std::fs::write(dir.join(SCHEMA_MARKER), format!("{SCHEMA_VERSION}\n")).map_err(
                |source| StoreError::Open {
                    path: dir.to_path_buf(),
                    source,
                },
            )?;
        }
        // Hour and day rows live for days: in the main database they would pin its log
        // segments, full of short-lived raw checks, for as long. Apart, both stay small.
        let archive_path = dir.join("archive");
        let archive_err = |source| StoreError::Db {
            path: archive_path.clone(),
            source,
        };
        let archive = open_sled(&archive_path, 4 * 1024 * 1024)?;
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
                alerts: db.open_tree("alerts").map_err(db_err)?,
                db,
                path: dir.to_path_buf(),
                sums: Default::default(),
                totals: Default::default(),
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

    /// One small write (a counter in `meta`), for a watchdog to see that writes still return:
    /// a hung sled write (sled#1412) hangs this too. Blocking; flush it to know it reached disk.
    pub fn touch(&self) -> Result<(), StoreError> {
        self.inner
            .meta
            .update_and_fetch(KEY_ALIVE, |old| {
                let n = old
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(0, u64::from_be_bytes);
                Some(n.wrapping_add(1).to_be_bytes().to_vec())
            })
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Whether writes reach the disk: false once a flush failed or stalled (a full disk), until
    /// a flush succeeds again (a stalled one never does: the process must restart).
    pub fn writable(&self) -> bool {
        use std::sync::atomic::Ordering;
        !self.inner.stalled.load(Ordering::SeqCst)
            && !self.inner.flush_failed.load(Ordering::SeqCst)
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

/// The schema of the database just opened: `Some(version)` when it must be migrated. A new
/// database is stamped with this build's version; a newer one, one that is not ours, or one
/// that sled recovered as empty from damaged files is refused, and nothing is changed.
fn check_schema(
    dir: &Path,
    db: &sled::Db,
    meta: &sled::Tree,
    existed: bool,
) -> Result<Option<u32>, StoreError> {
    let db_path = dir.join("db");
    let db_err = |source| StoreError::Db {
        path: db_path.clone(),
        source,
    };
    if let Some(v) = meta.get(KEY_SCHEMA).map_err(db_err)? {
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
        return Ok((found < SCHEMA_VERSION).then_some(found));
    }
    let has_data = existed
        && db
            .tree_names()
            .iter()
            .filter(|n| n.as_ref() != b"__sled__default")
            .any(|n| db.open_tree(n).map(|t| !t.is_empty()).unwrap_or(true));
    if has_data || !db.is_empty() {
        return Err(StoreError::UnknownSchema { path: db_path });
    }
    // sled recovers a damaged database as an empty one: the marker outside it tells such an
    // empty database from a new one, so it is not taken over.
    if dir.join(SCHEMA_MARKER).exists() {
        return Err(StoreError::Damaged { path: db_path });
    }
    meta.insert(KEY_SCHEMA, &SCHEMA_VERSION.to_be_bytes())
        .map_err(db_err)?;
    db.flush().map_err(db_err)?;
    Ok(None)
}

/// Opens the sled database at `path` with a cache of `cache_bytes`, after clearing what a killed
/// process may have left half written.
fn open_sled(path: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    drop_unfinished_snapshots(path)?;
    sled::Config::new()
        .path(path)
        .cache_capacity(cache_bytes)
        .open()
        .map_err(|source| StoreError::Db {
            path: path.to_path_buf(),
            source,
        })
}

/// Removes the snapshot files a killed process left half written in the sled database at
/// `db_path` (`snap.<lsn>.generating`). sled 0.34 reads the newest `snap.*` file, finished or
/// not, and refuses to open on a half-written one ("Corruption"), although a finished
/// snapshot is renamed before it counts: without it sled starts from the previous snapshot and
/// replays its log, and loses nothing. Runs only while holding the lock, so no one writes one.
fn drop_unfinished_snapshots(db_path: &Path) -> Result<(), StoreError> {
    let Ok(entries) = std::fs::read_dir(db_path) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(
                "{}: removing a half-written snapshot file left by a process that was killed",
                entry.path().display()
            );
            std::fs::remove_file(entry.path()).map_err(|source| StoreError::Open {
                path: entry.path(),
                source,
            })?;
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests;
