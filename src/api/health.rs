//! `/health`: 200 `ok` or `degraded` (a job's last run failed, sweeps do not keep to their
//! interval, or no peer list yet, while probing goes on), 503 `stale` (no sweep for 3 sweep intervals) or `store` (writes do not
//! reach the disk). The reason is in `data.reason`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::error::{envelope, ApiError};
use super::views::{HealthView, JobHealth};
use super::ApiState;
use crate::domain::time::rfc3339;
use crate::domain::{overrun, Freshness, JobName, JobRun, Outcome, OVERRUN_SWEEPS};
use crate::store::Store;

type FinishedRuns = (BTreeMap<JobName, JobHealth>, Vec<String>, Vec<JobRun>);

pub(super) async fn health(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let ctx = s.runner.context();
    let store = &ctx.store;
    let list = store.peer_list()?;
    let (jobs, failed_jobs, sweeps) = last_finished_runs(store)?;
    let freshness = ctx.judge(store.last_sweep()?.map(|s| s.at), list.is_some());
    let now = ctx.clock.now();
    let recent = &sweeps[..sweeps.len().min(2 * OVERRUN_SWEEPS)];
    let overrun = overrun(recent, ctx.sweep_period(now), now);
    let (code, status, reason) = if !store.writable() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "store",
            Some(format!(
                "the store in {} cannot be written to disk (disk full or failing?); jobs fail until it can",
                store.path().display()
            )),
        )
    } else if let Freshness::Stale { .. } = freshness {
        (StatusCode::SERVICE_UNAVAILABLE, "stale", freshness.reason())
    } else if let Some(why) = freshness.reason() {
        (StatusCode::OK, "degraded", Some(why))
    } else if let Some(why) = overrun {
        (StatusCode::OK, "degraded", Some(why))
    } else if !failed_jobs.is_empty() {
        (StatusCode::OK, "degraded", Some(failed_jobs.join("; ")))
    } else {
        (StatusCode::OK, "ok", None)
    };
    let message = reason.clone().unwrap_or_else(|| "ok".into());
    let view = HealthView {
        status,
        reason,
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: s.started.elapsed().as_secs(),
        peers: list.as_ref().map_or(0, |l| l.peers.len()),
        jobs,
    };
    Ok(envelope(code, &message, view))
}

/// Each job's last finished run (a skip or a run still going says nothing about health), what
/// failed, and the newest probe-sweep runs (newest first).
fn last_finished_runs(store: &Store) -> Result<FinishedRuns, ApiError> {
    let mut jobs = BTreeMap::new();
    let mut failed = Vec::new();
    let mut sweeps = Vec::new();
    for job in JobName::ALL {
        let runs = store.runs(job.as_str(), 50)?;
        let last = runs
            .iter()
            .find(|r| !matches!(r.outcome, Outcome::Skipped | Outcome::Running))
            .cloned();
        if let Some(run) = &last {
            if matches!(run.outcome, Outcome::Failed | Outcome::Interrupted) {
                failed.push(format!("the last {job} run {}", run.outcome.as_str()));
            }
        }
        jobs.insert(
            job,
            JobHealth {
                last_run_at: last.as_ref().map(|r| rfc3339(r.started_at)),
                last_outcome: last.as_ref().map(|r| r.outcome),
            },
        );
        if job == JobName::ProbeSweep {
            sweeps = runs;
        }
    }
    Ok((jobs, failed, sweeps))
}
