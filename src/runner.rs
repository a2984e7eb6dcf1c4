//! The job driver: the one place that runs jobs, for the scheduler, `run-job`, the control
//! channel and the API alike. It records every run (start and end), enforces the spec's
//! timeout and `overlap = "forbid"`, and turns a panic into a failed run.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use crate::domain::{JobName, JobRun, Outcome, Trigger};
use crate::jobs::{self, JobContext};
use crate::store::StoreError;

#[derive(Clone)]
pub struct Runner {
    ctx: JobContext,
    running: Arc<Mutex<HashSet<JobName>>>,
    // Number of runs in progress, for a bounded drain at shutdown.
    active: Arc<watch::Sender<usize>>,
    // Set once to stop every run in progress (run-job on SIGTERM, serve past its drain).
    interrupt: Arc<watch::Sender<Option<&'static str>>>,
    // Runs by this process, by job and outcome (the metrics' counters).
    counts: Arc<Mutex<HashMap<(JobName, Outcome), u64>>>,
}

impl Runner {
    pub fn new(ctx: JobContext) -> Self {
        Self {
            ctx,
            running: Arc::default(),
            active: Arc::new(watch::channel(0).0),
            interrupt: Arc::new(watch::channel(None).0),
            counts: Arc::default(),
        }
    }

    pub fn context(&self) -> &JobContext {
        &self.ctx
    }

    /// Whether a run of `job` is going now.
    pub fn is_running(&self, job: JobName) -> bool {
        self.running.lock().is_ok_and(|r| r.contains(&job))
    }

    /// Runs `job` now and returns its record. Errors only when the store cannot record it.
    pub async fn run(&self, job: JobName, trigger: Trigger) -> Result<JobRun, StoreError> {
        self.run_within(job, trigger, job.spec().timeout).await
    }

    /// [`Runner::run`] with another timeout than the spec's (tests make it short).
    pub async fn run_within(
        &self,
        job: JobName,
        trigger: Trigger,
        timeout: Duration,
    ) -> Result<JobRun, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let work = jobs::run(job, self.ctx.clone(), deadline);
        self.execute(job, trigger, timeout, work).await
    }

    /// Stops every run in progress: each is recorded `interrupted` with `why`, and no new run
    /// starts. For `run-job` on SIGTERM and for `serve` when its drain runs out.
    pub fn interrupt(&self, why: &'static str) {
        self.interrupt.send_replace(Some(why));
    }

    /// Runs `work` as a run of `job`: the recording, overlap, timeout and panic handling of
    /// [`Runner::run`], for any work (the tests give it work that panics or hangs).
    ///
    /// The run's whole life (claim, records, work) is a task of its own: a caller that goes
    /// away (an HTTP client that disconnects) changes nothing about it.
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
        let this = self.clone();
        let life = tokio::spawn(async move { this.live(job, trigger, timeout, work).await });
        match life.await {
            Ok(recorded) => recorded,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(StoreError::Corrupt {
                what: format!("run of {job}"),
                detail: format!("the run's task ended: {e}"),
            }),
        }
    }

    async fn live<F>(
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
        let clock = &self.ctx.clock;
        let started_at = clock.now();
        let claimed = self
            .running
            .lock()
            .map(|mut r| r.insert(job))
            .unwrap_or(false);
        if !claimed {
            tracing::info!(job = %job, trigger = trigger.as_str(), "skipped: previous run still going");
            return self.skip(
                job,
                trigger,
                started_at,
                "the previous run of this job is still going (overlap = \"forbid\")".into(),
            );
        }
        let _release = Release {
            running: &self.running,
            job,
        };
        self.active.send_modify(|n| *n += 1);
        let _active = ActiveGuard(&self.active);
        let interrupted = self.interrupt.subscribe();
        let stopping = *interrupted.borrow();
        if let Some(why) = stopping {
            return self.skip(job, trigger, started_at, format!("not started: {why}"));
        }

        let mut run = store.start_run(JobRun::new(job, trigger, started_at, Outcome::Running))?;
        // The "running" mark must survive a crash so the run can be shown as interrupted.
        store.flush().await?;
        tracing::info!(job = %job, run = run.id, trigger = trigger.as_str(), "job started");

        let began = clock.instant();
        let ended = supervise(job, timeout, work, interrupted).await;
        run.duration_ms = clock.instant().saturating_duration_since(began).as_millis() as u64;
        record_outcome(&mut run, ended);
        store.put_run(&run)?;
        // Bounded job-run history, on this job's own cadence: its runs past the count or the
        // age go at the end of each of its runs (a handful of key reads when there are none).
        if let Err(e) = store.prune_runs(job.as_str(), clock.now(), &self.ctx.settings.retention) {
            tracing::warn!(job = %job, "pruning old runs failed: {e}");
        }
        store.flush().await?;
        self.count(job, run.outcome);
        Ok(run)
    }

    /// Records a run of `job` that did not start, and why.
    fn skip(
        &self,
        job: JobName,
        trigger: Trigger,
        started_at: chrono::DateTime<chrono::Utc>,
        why: String,
    ) -> Result<JobRun, StoreError> {
        let run = JobRun {
            id: self.ctx.store.next_run_id()?,
            error: Some(why),
            ..JobRun::new(job, trigger, started_at, Outcome::Skipped)
        };
        self.ctx.store.put_run(&run)?;
        self.count(job, Outcome::Skipped);
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

/// How a run's work ended: with its result, or interrupted (and why).
type Ended = Result<jobs::JobResult, &'static str>;

/// Runs `work` in a task of its own until it finishes, panics, times out or is interrupted.
async fn supervise<F>(
    job: JobName,
    timeout: Duration,
    work: F,
    mut interrupted: watch::Receiver<Option<&'static str>>,
) -> Ended
where
    F: std::future::Future<Output = jobs::JobResult> + Send + 'static,
{
    let handle = tokio::spawn(work);
    let abort = handle.abort_handle();
    let failed = |error: String| Ok(Err(jobs::JobFailure::new(error, json!({}))));
    tokio::select! {
        finished = tokio::time::timeout(timeout, handle) => match finished {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(e)) if e.is_panic() => {
                failed(format!("the job panicked: {}", panic_message(e.into_panic())))
            }
            Ok(Err(e)) => failed(format!("the job was cancelled: {e}")),
            Err(_) => {
                abort.abort();
                failed(format!(
                    "timed out after {}s (timeout in jobs/{job}.toml)",
                    timeout.as_secs()
                ))
            }
        },
        why = interrupted.wait_for(Option::is_some) => {
            abort.abort();
            Err(why.ok().and_then(|w| *w).unwrap_or("interrupted"))
        }
    }
}

/// Puts how the run ended into its record, and logs it.
fn record_outcome(run: &mut JobRun, ended: Ended) {
    let (job, id, duration_ms) = (run.job.clone(), run.id, run.duration_ms);
    match ended {
        Ok(Ok(summary)) => {
            run.outcome = Outcome::Ok;
            run.summary = summary;
            tracing::info!(job = %job, run = id, duration_ms, summary = %brief(&run.summary), "job ok");
        }
        Ok(Err(failure)) => {
            run.outcome = Outcome::Failed;
            run.summary = failure.summary;
            tracing::warn!(job = %job, run = id, duration_ms, error = %failure.error, "job failed");
            run.error = Some(failure.error);
        }
        Err(why) => {
            run.outcome = Outcome::Interrupted;
            tracing::warn!(job = %job, run = id, duration_ms, "job interrupted: {why}");
            run.error = Some(format!("interrupted: {why}"));
        }
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
    use crate::config::Options;

    fn runner(dir: &std::path::Path) -> Runner {
        Runner::new(jobs::test_context(dir, Options::default()))
    }

    /// Runs `work` as a run of `job` in a task of its own.
    fn spawn_run<F>(
        r: &Runner,
        job: JobName,
        trigger: Trigger,
        timeout: Duration,
        work: F,
    ) -> tokio::task::JoinHandle<Result<JobRun, StoreError>>
    where
        F: std::future::Future<Output = jobs::JobResult> + Send + 'static,
    {
        let r = r.clone();
        tokio::spawn(async move { r.execute(job, trigger, timeout, work).await })
    }

    /// A run of `job` whose work waits for the sender, then returns `summary`.
    fn held(
        r: &Runner,
        job: JobName,
        trigger: Trigger,
        summary: serde_json::Value,
    ) -> (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<Result<JobRun, StoreError>>,
    ) {
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let work = async move {
            let _ = wait.await;
            Ok(summary)
        };
        (
            go,
            spawn_run(r, job, trigger, Duration::from_secs(10), work),
        )
    }

    /// A run of `job` whose work is done at once.
    async fn quick(r: &Runner, job: JobName, trigger: Trigger) -> JobRun {
        r.execute(job, trigger, Duration::from_secs(5), async {
            Ok(json!({}))
        })
        .await
        .unwrap()
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
        let (release_tx, first) = held(&r, JobName::ProbeSweep, Trigger::Schedule, json!({}));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let second = quick(&r, JobName::ProbeSweep, Trigger::Cli).await;
        assert_eq!(second.outcome, Outcome::Skipped);
        // Another job is not affected.
        let other = quick(&r, JobName::PeerFetch, Trigger::Cli).await;
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

    #[tokio::test]
    async fn a_dropped_caller_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let r = runner(dir.path());
        let (go_tx, caller) = held(&r, JobName::PeerFetch, Trigger::Api, json!({"done": true}));
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The HTTP client went away: its handler future is dropped mid-run.
        caller.abort();
        let _ = caller.await;
        let _ = go_tx.send(());
        assert!(r.drain(Duration::from_secs(5)).await, "the run never ended");
        let run = r.context().store.last_run("peer-fetch").unwrap().unwrap();
        assert_eq!(run.outcome, Outcome::Ok, "{run:?}");
        assert_eq!(run.summary, json!({"done": true}));
        // The overlap claim was released: the job runs again.
        let again = quick(&r, JobName::PeerFetch, Trigger::Cli).await;
        assert_eq!(again.outcome, Outcome::Ok);
    }

    #[tokio::test]
    async fn an_interrupted_run_is_recorded_and_no_new_one_starts() {
        let dir = tempfile::tempdir().unwrap();
        let r = runner(dir.path());
        let running = spawn_run(
            &r,
            JobName::ProbeSweep,
            Trigger::Cli,
            Duration::from_secs(30),
            std::future::pending(),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        r.interrupt("SIGTERM");
        let run = tokio::time::timeout(Duration::from_secs(5), running)
            .await
            .expect("the interrupted run ends")
            .unwrap()
            .unwrap();
        assert_eq!(run.outcome, Outcome::Interrupted);
        assert_eq!(run.error.as_deref(), Some("interrupted: SIGTERM"));
        assert_eq!(
            r.context().store.last_run("probe-sweep").unwrap().unwrap(),
            run
        );
        let next = quick(&r, JobName::PeerFetch, Trigger::Schedule).await;
        assert_eq!(next.outcome, Outcome::Skipped, "{next:?}");
    }

    #[tokio::test]
    async fn every_job_prunes_its_own_runs() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            runs_keep: Some(3),
            ..Options::default()
        };
        let r = Runner::new(jobs::test_context(dir.path(), options));
        let store = r.context().store.clone();
        // Interleaved as the scheduler runs them: ids of one job never hit a shared modulus.
        for _ in 0..20 {
            for job in JobName::ALL {
                r.execute(job, Trigger::Schedule, Duration::from_secs(5), async {
                    Ok(json!({}))
                })
                .await
                .unwrap();
            }
        }
        for job in JobName::ALL {
            assert_eq!(store.runs(job.as_str(), 100).unwrap().len(), 3, "{job}");
        }
    }
}
