//! The job driver: the one place that runs jobs, for the scheduler, `run-job`, the control
//! channel and the API alike. It records every run (start and end), enforces the spec's
//! timeout and `overlap = "forbid"`, and turns a panic into a failed run.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use tokio::sync::watch;

use crate::jobs::{self, JobContext, JobName};
use crate::model::{JobRun, Outcome, Trigger};
use crate::store::StoreError;

#[derive(Clone)]
pub struct Runner {
    ctx: JobContext,
    running: Arc<Mutex<HashSet<JobName>>>,
    // Number of runs in progress, for a bounded drain at shutdown.
    active: Arc<watch::Sender<usize>>,
    // Runs by this process, by job and outcome (the metrics' counters).
    counts: Arc<Mutex<HashMap<(JobName, Outcome), u64>>>,
}

impl Runner {
    pub fn new(ctx: JobContext) -> Self {
        Self {
            ctx,
            running: Arc::default(),
            active: Arc::new(watch::channel(0).0),
            counts: Arc::default(),
        }
    }

    pub fn context(&self) -> &JobContext {
        &self.ctx
    }

    /// Runs `job` now and returns its record. Errors only when the store cannot record it.
    pub async fn run(&self, job: JobName, trigger: Trigger) -> Result<JobRun, StoreError> {
        let work = jobs::run(job, self.ctx.clone());
        self.execute(job, trigger, job.spec().timeout, work).await
    }

    /// Runs `work` as a run of `job`: the recording, overlap, timeout and panic handling of
    /// [`Runner::run`], for any work (the tests give it work that panics or hangs).
    pub(crate) async fn execute<F>(
        &self,
        job: JobName,
        trigger: Trigger,
        timeout: Duration,
        work: F,
    ) -> Result<JobRun, StoreError>
    where
        F: std::future::Future<Output = jobs::JobResult> + Send + 'static,
    {
        let store = &self.ctx.store;
        let started_at = Utc::now();
        let claimed = self
            .running
            .lock()
            .map(|mut r| r.insert(job))
            .unwrap_or(false);
        if !claimed {
            let run = JobRun {
                id: store.next_run_id()?,
                job: job.as_str().into(),
                trigger,
                started_at,
                duration_ms: 0,
                outcome: Outcome::Skipped,
                summary: json!({}),
                error: Some(
                    "the previous run of this job is still going (overlap = \"forbid\")".into(),
                ),
            };
            store.put_run(&run)?;
            self.count(job, Outcome::Skipped);
            tracing::info!(job = %job, trigger = trigger.as_str(), "skipped: previous run still going");
            return Ok(run);
        }
        let _release = Release {
            running: &self.running,
            job,
        };
        self.active.send_modify(|n| *n += 1);
        let _active = ActiveGuard(&self.active);

        let mut run = store.start_run(JobRun {
            id: 0,
            job: job.as_str().into(),
            trigger,
            started_at,
            duration_ms: 0,
            outcome: Outcome::Running,
            summary: json!({}),
            error: None,
        })?;
        // The "running" mark must survive a crash so the run can be shown as interrupted.
        store.flush().await?;
        tracing::info!(job = %job, run = run.id, trigger = trigger.as_str(), "job started");

        let clock = Instant::now();
        let handle = tokio::spawn(work);
        let abort = handle.abort_handle();
        let result = match tokio::time::timeout(timeout, handle).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) if e.is_panic() => Err(jobs::JobFailure::new(
                format!("the job panicked: {}", panic_message(e.into_panic())),
                json!({}),
            )),
            Ok(Err(e)) => Err(jobs::JobFailure::new(
                format!("the job was cancelled: {e}"),
                json!({}),
            )),
            Err(_) => {
                abort.abort();
                Err(jobs::JobFailure::new(
                    format!(
                        "timed out after {}s (timeout in jobs/{job}.toml)",
                        timeout.as_secs()
                    ),
                    json!({}),
                ))
            }
        };
        run.duration_ms = clock.elapsed().as_millis() as u64;
        match result {
            Ok(summary) => {
                run.outcome = Outcome::Ok;
                run.summary = summary;
                tracing::info!(job = %job, run = run.id, duration_ms = run.duration_ms, summary = %brief(&run.summary), "job ok");
            }
            Err(failure) => {
                run.outcome = Outcome::Failed;
                run.summary = failure.summary;
                tracing::warn!(job = %job, run = run.id, duration_ms = run.duration_ms, error = %failure.error, "job failed");
                run.error = Some(failure.error);
            }
        }
        store.put_run(&run)?;
        // Bounded job-run history: every so often, this job's oldest runs go.
        if run.id % 50 == 0 {
            if let Err(e) = store.prune_runs(job.as_str(), Utc::now(), &self.ctx.settings.retention)
            {
                tracing::warn!(job = %job, "pruning old runs failed: {e}");
            }
        }
        store.flush().await?;
        self.count(job, run.outcome);
        Ok(run)
    }

    fn count(&self, job: JobName, outcome: Outcome) {
        if let Ok(mut c) = self.counts.lock() {
            *c.entry((job, outcome)).or_default() += 1;
        }
    }

    /// Runs of `job` by this process so far, by outcome.
    pub fn counts(&self, job: JobName) -> Vec<(Outcome, u64)> {
        let Ok(c) = self.counts.lock() else {
            return Vec::new();
        };
        let mut out: Vec<_> = c
            .iter()
            .filter(|((j, _), _)| *j == job)
            .map(|((_, o), n)| (*o, *n))
            .collect();
        out.sort_by_key(|(o, _)| o.as_str());
        out
    }

    /// Waits until no run is in progress, at most `bound`. Returns whether it got there.
    pub async fn drain(&self, bound: Duration) -> bool {
        let mut rx = self.active.subscribe();
        let idle = tokio::time::timeout(bound, rx.wait_for(|n| *n == 0)).await;
        idle.is_ok()
    }
}

/// A summary without the per-peer results, for the log line.
fn brief(summary: &serde_json::Value) -> serde_json::Value {
    match summary {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.iter()
                .filter(|(k, _)| *k != "results")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

struct Release<'a> {
    running: &'a Mutex<HashSet<JobName>>,
    job: JobName,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        if let Ok(mut r) = self.running.lock() {
            r.remove(&self.job);
        }
    }
}

struct ActiveGuard<'a>(&'a watch::Sender<usize>);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EmptyEnv, Options, Settings};
    use crate::store::Store;

    fn runner(dir: &std::path::Path) -> Runner {
        let options = Options {
            data_dir: Some(dir.to_path_buf()),
            ..Options::default()
        };
        let settings = Arc::new(Settings::resolve(&options, &EmptyEnv).unwrap());
        let store = Store::open(dir, "test").unwrap();
        Runner::new(JobContext::new(store, settings))
    }

    #[tokio::test]
    async fn a_panic_becomes_a_failed_run() {
        let dir = tempfile::tempdir().unwrap();
        let r = runner(dir.path());
        let run = r
            .execute(
                JobName::ProbeSweep,
                Trigger::Cli,
                Duration::from_secs(5),
                async { panic!("boom in the job") },
            )
            .await
            .unwrap();
        assert_eq!(run.outcome, Outcome::Failed);
        assert!(run.error.as_deref().unwrap().contains("boom in the job"));
        let stored = r.context().store.last_run("probe-sweep").unwrap().unwrap();
        assert_eq!(stored, run);
        // The job is free again after the panic.
        let run = r
            .execute(
                JobName::ProbeSweep,
                Trigger::Cli,
                Duration::from_secs(5),
                async { Ok(json!({"n": 1})) },
            )
            .await
            .unwrap();
        assert_eq!(run.outcome, Outcome::Ok);
        assert_eq!(run.summary, json!({"n": 1}));
    }

    #[tokio::test]
    async fn a_run_past_its_timeout_fails_and_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let r = runner(dir.path());
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = finished.clone();
        let run = r
            .execute(
                JobName::PeerFetch,
                Trigger::Schedule,
                Duration::from_millis(200),
                async move {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    Ok(json!({}))
                },
            )
            .await
            .unwrap();
        assert_eq!(run.outcome, Outcome::Failed);
        assert!(
            run.error.as_deref().unwrap().contains("timed out"),
            "{:?}",
            run.error
        );
        assert!(
            run.duration_ms >= 200 && run.duration_ms < 2000,
            "{}",
            run.duration_ms
        );
        tokio::time::sleep(Duration::from_millis(2200)).await;
        assert!(
            !finished.load(std::sync::atomic::Ordering::SeqCst),
            "the timed-out work went on"
        );
    }

    #[tokio::test]
    async fn overlap_is_forbidden_and_recorded_as_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let r = runner(dir.path());
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let first = {
            let r = r.clone();
            tokio::spawn(async move {
                r.execute(
                    JobName::ProbeSweep,
                    Trigger::Schedule,
                    Duration::from_secs(10),
                    async move {
                        let _ = release_rx.await;
                        Ok(json!({}))
                    },
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let second = r
            .execute(
                JobName::ProbeSweep,
                Trigger::Cli,
                Duration::from_secs(10),
                async { Ok(json!({})) },
            )
            .await
            .unwrap();
        assert_eq!(second.outcome, Outcome::Skipped);
        // Another job is not affected.
        let other = r
            .execute(
                JobName::PeerFetch,
                Trigger::Cli,
                Duration::from_secs(10),
                async { Ok(json!({})) },
            )
            .await
            .unwrap();
        assert_eq!(other.outcome, Outcome::Ok);
        let _ = release_tx.send(());
        assert_eq!(first.await.unwrap().unwrap().outcome, Outcome::Ok);
        let outcomes: Vec<_> = r
            .context()
            .store
            .runs("probe-sweep", 10)
            .unwrap()
            .iter()
            .map(|r| r.outcome)
            .collect();
        assert_eq!(outcomes.len(), 2);
        assert!(outcomes.contains(&Outcome::Skipped) && outcomes.contains(&Outcome::Ok));
        assert!(r.drain(Duration::from_secs(1)).await);
        assert_eq!(
            r.counts(JobName::ProbeSweep),
            vec![(Outcome::Ok, 1), (Outcome::Skipped, 1)]
        );
    }
}
