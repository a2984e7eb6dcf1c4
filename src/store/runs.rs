//! Job runs: one record per run under `job ++ 0 ++ id`, pruned by count and age.

use chrono::{DateTime, Utc};

use super::codec::{corrupt, get_json, GetError};
use super::keys::{durations_key, run_key, run_prefix};
use super::{Store, StoreError};
use crate::domain::{Durations, JobRun, Outcome, Retention};

/// A stored run keeps at most this many per-peer results (the down ones); the full list is in
/// the history and in what the run returned.
pub const STORED_RESULTS: usize = 20;

impl Store {
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
        if matches!(run.outcome, Outcome::Ok | Outcome::Failed) {
            let mut durations = self.durations(&run.job)?;
            durations.observe(run.duration_ms);
            let bytes = serde_json::to_vec(&durations).map_err(|e| corrupt("run durations", e))?;
            self.inner
                .meta
                .insert(durations_key(&run.job), bytes)
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// How long the finished runs of `job` took, over the store's life (written by
    /// [`Store::put_run`]). Damaged figures start again from nothing, with a warning.
    pub fn durations(&self, job: &str) -> Result<Durations, StoreError> {
        match get_json(&self.inner.meta, &durations_key(job), "run durations") {
            Ok(d) => Ok(d.unwrap_or_default()),
            Err(GetError::Corrupt(e)) => {
                tracing::warn!("{e}; counting {job} run durations again from now");
                Ok(Durations::default())
            }
            Err(e) => Err(self.map(e)),
        }
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

    /// The last run of each of `jobs`, in their order.
    pub fn last_runs<'a>(
        &self,
        jobs: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<Option<JobRun>>, StoreError> {
        jobs.into_iter().map(|j| self.last_run(j)).collect()
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

    pub(super) fn mark_interrupted(&self) -> Result<(), StoreError> {
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
