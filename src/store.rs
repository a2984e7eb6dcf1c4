//! The store: one sled database in the data directory. The only module that uses sled.
//!
//! Layout (trees): `meta` (schema version, latest sweep, pending report), `peers` (the peer
//! list under one key, so it is replaced atomically), `latest` (peer id → latest result),
//! `history` (peer id + timestamp → sample), `runs` (job + run id → run record).
//! One process at a time holds the store: an exclusive `flock` on `<data-dir>/lock`, with the
//! holder described in `<data-dir>/owner`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::model::{JobRun, Outcome, PeerList, ProbeResult, Sample, SweepSummary};

/// The schema this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The longest a flush may take before the store counts as stalled.
pub const FLUSH_BOUND: std::time::Duration = std::time::Duration::from_secs(15);

/// Job runs kept per job; older ones are pruned.
const RUNS_KEPT_PER_JOB: usize = 2000;

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
    meta: sled::Tree,
    peers: sled::Tree,
    latest: sled::Tree,
    history: sled::Tree,
    runs: sled::Tree,
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
const KEY_PENDING: &[u8] = b"pending_report";
const KEY_PEERS: &[u8] = b"current";

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
        let store = Store {
            inner: std::sync::Arc::new(Inner {
                meta,
                peers: db.open_tree("peers").map_err(db_err)?,
                latest: db.open_tree("latest").map_err(db_err)?,
                history: db.open_tree("history").map_err(db_err)?,
                runs: db.open_tree("runs").map_err(db_err)?,
                db,
                path: dir.to_path_buf(),
                _lock: lock,
            }),
        };
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
        match tokio::time::timeout(FLUSH_BOUND, self.inner.db.flush_async()).await {
            Ok(done) => done.map(|_| ()).map_err(|e| self.err(e)),
            Err(_) => {
                // sled flushes again when its last handle drops, and that would hang the same
                // way: one leaked handle keeps it from ever trying, so the process can report the
                // error and end.
                std::mem::forget(self.inner.db.clone());
                Err(StoreError::Stalled {
                    path: self.inner.path.clone(),
                })
            }
        }
    }

    // ---- peer list ----

    pub fn peer_list(&self) -> Result<Option<PeerList>, StoreError> {
        get_json(&self.inner.peers, KEY_PEERS, "peer list").map_err(|e| self.map(e))
    }

    /// Replaces the peer list in one write; the latest results of peers that left are dropped
    /// (their history stays until it ages out). Returns (added, removed).
    pub fn replace_peer_list(&self, list: &PeerList) -> Result<(usize, usize), StoreError> {
        let old: std::collections::HashSet<String> = self
            .peer_list()?
            .map(|l| l.peers.into_iter().map(|p| p.id).collect())
            .unwrap_or_default();
        let new: std::collections::HashSet<&str> =
            list.peers.iter().map(|p| p.id.as_str()).collect();
        let added = new.iter().filter(|id| !old.contains(**id)).count();
        let removed: Vec<&String> = old.iter().filter(|id| !new.contains(id.as_str())).collect();
        let bytes = serde_json::to_vec(list).map_err(|e| corrupt("peer list", e))?;
        (&self.inner.peers, &self.inner.latest)
            .transaction(|(peers, latest)| {
                peers.insert(KEY_PEERS, bytes.as_slice())?;
                for id in &removed {
                    latest.remove(id.as_bytes())?;
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e| self.tx_err(e))?;
        Ok((added, removed.len()))
    }

    // ---- probe results ----

    /// Stores one sweep: every peer's latest result, a history sample each, and the summary,
    /// all in one transaction.
    pub fn record_sweep(
        &self,
        results: &[(String, ProbeResult)],
        summary: &SweepSummary,
    ) -> Result<(), StoreError> {
        let mut encoded = Vec::with_capacity(results.len());
        for (id, r) in results {
            let sample = Sample {
                at: r.checked_at,
                up: r.up,
                rtt_us: r.rtt_us,
                error_kind: r.error_kind,
            };
            encoded.push((
                id.as_bytes().to_vec(),
                serde_json::to_vec(r).map_err(|e| corrupt("result", e))?,
                history_key(id, r.checked_at),
                serde_json::to_vec(&sample).map_err(|e| corrupt("sample", e))?,
            ));
        }
        let summary = serde_json::to_vec(summary).map_err(|e| corrupt("sweep", e))?;
        (&self.inner.latest, &self.inner.history, &self.inner.meta)
            .transaction(|(latest, history, meta)| {
                for (id, result, hkey, sample) in &encoded {
                    latest.insert(id.as_slice(), result.as_slice())?;
                    history.insert(hkey.as_slice(), sample.as_slice())?;
                }
                meta.insert(KEY_SWEEP, summary.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e| self.tx_err(e))
    }

    pub fn latest_result(&self, id: &str) -> Result<Option<ProbeResult>, StoreError> {
        get_json(&self.inner.latest, id.as_bytes(), "latest result").map_err(|e| self.map(e))
    }

    pub fn last_sweep(&self) -> Result<Option<SweepSummary>, StoreError> {
        get_json(&self.inner.meta, KEY_SWEEP, "last sweep").map_err(|e| self.map(e))
    }

    /// Samples of one peer with `from <= at < to`, oldest first.
    pub fn history(
        &self,
        id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Sample>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .inner
            .history
            .range(history_key(id, from)..history_key(id, to))
        {
            let (_, v) = item.map_err(|e| self.err(e))?;
            out.push(serde_json::from_slice(&v).map_err(|e| corrupt("sample", e))?);
        }
        Ok(out)
    }

    /// Deletes samples of `ids` older than `cutoff`. Cost is the number of samples deleted.
    pub fn prune_history<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
        cutoff: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for id in ids {
            let start = history_key(id, DateTime::<Utc>::MIN_UTC);
            for item in self.inner.history.range(start..history_key(id, cutoff)) {
                let (k, _) = item.map_err(|e| self.err(e))?;
                batch.remove(k);
                n += 1;
            }
        }
        self.inner
            .history
            .apply_batch(batch)
            .map_err(|e| self.err(e))?;
        Ok(n)
    }

    // ---- job runs ----

    /// Records the start of a run and returns its id.
    pub fn start_run(&self, mut run: JobRun) -> Result<JobRun, StoreError> {
        run.id = self.inner.db.generate_id().map_err(|e| self.err(e))?;
        self.put_run(&run)?;
        Ok(run)
    }

    /// Writes the final record of a run (also used for runs that never started, e.g. skipped).
    pub fn put_run(&self, run: &JobRun) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(run).map_err(|e| corrupt("job run", e))?;
        self.inner
            .runs
            .insert(run_key(&run.job, run.id), bytes)
            .map_err(|e| self.err(e))?;
        if run.outcome != Outcome::Running && run.id % 100 == 0 {
            self.prune_runs(&run.job)?;
        }
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

    fn prune_runs(&self, job: &str) -> Result<(), StoreError> {
        let keys: Vec<sled::IVec> = self
            .inner
            .runs
            .scan_prefix(run_prefix(job))
            .keys()
            .rev()
            .skip(RUNS_KEPT_PER_JOB)
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        let mut batch = sled::Batch::default();
        for k in keys {
            batch.remove(k);
        }
        self.inner.runs.apply_batch(batch).map_err(|e| self.err(e))
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

    // ---- pending status report ----

    pub fn pending_report(&self) -> Result<Option<serde_json::Value>, StoreError> {
        get_json(&self.inner.meta, KEY_PENDING, "pending report").map_err(|e| self.map(e))
    }

    pub fn set_pending_report(&self, report: &serde_json::Value) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(report).map_err(|e| corrupt("pending report", e))?;
        self.inner
            .meta
            .insert(KEY_PENDING, bytes)
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Clears the pending report if it is still `delivered` (a newer one stays).
    pub fn clear_pending_report(&self, delivered: &serde_json::Value) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(delivered).map_err(|e| corrupt("pending report", e))?;
        self.inner
            .meta
            .compare_and_swap(KEY_PENDING, Some(bytes), None as Option<&[u8]>)
            .map_err(|e| self.err(e))?
            .ok();
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

fn corrupt(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        detail: e.to_string(),
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

/// Converts a millisecond timestamp to a time, for callers building ranges.
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ListSource, Peer, Trigger};
    use chrono::Duration;

    fn peer(id: &str) -> Peer {
        Peer {
            id: id.into(),
            name: id.into(),
            host: "127.0.0.1".into(),
            port: 1,
            protocol: "tcp".into(),
            network_name: "n".into(),
            network_secret: None,
            backend_status: None,
        }
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

    #[test]
    fn history_ranges_and_pruning() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), "t").unwrap();
        let t0 = Utc::now() - Duration::hours(2);
        for i in 0..10 {
            let at = t0 + Duration::minutes(10 * i);
            let r = vec![
                ("p".to_string(), result(i % 2 == 0, at)),
                ("pp".to_string(), result(true, at)),
            ];
            s.record_sweep(
                &r,
                &SweepSummary::from_results(at, r.iter().map(|(_, r)| r)),
            )
            .unwrap();
        }
        let all = s.history("p", t0, Utc::now()).unwrap();
        assert_eq!(all.len(), 10);
        assert!(all.windows(2).all(|w| w[0].at < w[1].at));
        assert_eq!(all.iter().filter(|x| x.up).count(), 5);
        let deleted = s.prune_history(["p"], t0 + Duration::minutes(45)).unwrap();
        assert_eq!(deleted, 5);
        assert_eq!(s.history("p", t0, Utc::now()).unwrap().len(), 5);
        assert_eq!(s.history("pp", t0, Utc::now()).unwrap().len(), 10);
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

    #[test]
    fn pending_report_is_cleared_only_if_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), "t").unwrap();
        let a = serde_json::json!({"status": "Online", "n": 1});
        let b = serde_json::json!({"status": "Online", "n": 2});
        s.set_pending_report(&a).unwrap();
        s.set_pending_report(&b).unwrap();
        s.clear_pending_report(&a).unwrap();
        assert_eq!(s.pending_report().unwrap(), Some(b.clone()));
        s.clear_pending_report(&b).unwrap();
        assert_eq!(s.pending_report().unwrap(), None);
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
                s.set_pending_report(&serde_json::json!({"x": 1})).unwrap();
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
