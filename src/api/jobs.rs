//! `/api/jobs`, a job's runs, and triggering a run (with the admin token).

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use serde::Deserialize;

use super::error::{ok, ApiError};
use super::views::{Items, JobView, RunView};
use super::ApiState;
use crate::config::Settings;
use crate::domain::time::rfc3339;
use crate::domain::{JobName, Trigger};
use crate::jobs::effective_schedule;

pub(super) async fn jobs(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let ctx = s.runner.context();
    let mut items = Vec::new();
    for job in JobName::ALL {
        let spec = job.spec();
        let last = ctx.store.last_run(job.as_str())?;
        let next = match &s.scheduler {
            Some(sched) => sched.next_run(job).await,
            None => None,
        };
        items.push(JobView {
            name: job,
            schedule: effective_schedule(job, &ctx.settings).to_string(),
            timeout_s: spec.timeout.as_secs(),
            overlap: spec.overlap,
            next_run_at: next.map(rfc3339),
            last_run: last.as_ref().map(RunView::of),
        });
    }
    Ok(ok(Items { items }))
}

#[derive(Deserialize)]
pub(super) struct LimitQuery {
    limit: Option<String>,
}

fn job_named(name: &str) -> Result<JobName, ApiError> {
    JobName::parse(name).ok_or(ApiError::NotFound("no job with this name"))
}

pub(super) async fn job_runs(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Result<Response, ApiError> {
    let job = job_named(&name)?;
    let limit = match q.limit.as_deref().map(str::parse::<usize>) {
        None => 20,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "limit must be a number from 1 to 1000",
            ))
        }
    };
    let runs = s.runner.context().store.runs(job.as_str(), limit)?;
    Ok(ok(Items {
        items: runs.iter().map(RunView::of).collect(),
    }))
}

/// Compares in time independent of where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks `Authorization: Bearer <ADMIN_TOKEN>`: 403 `disabled` when no admin token is
/// configured, 401 when it is missing or wrong.
pub(super) fn require_admin(
    settings: &Settings,
    headers: &HeaderMap,
    disabled: &'static str,
) -> Result<(), ApiError> {
    let Some(expected) = &settings.admin_token else {
        return Err(ApiError::Forbidden(disabled));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(given.as_bytes(), expected.expose().as_bytes()) {
        return Err(ApiError::Unauthorized("missing or wrong bearer token"));
    }
    Ok(())
}

pub(super) async fn trigger_job(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let ctx = s.runner.context();
    require_admin(
        &ctx.settings,
        &headers,
        "triggering jobs is disabled: no ADMIN_TOKEN is configured",
    )?;
    let job = job_named(&name)?;
    let run = s.runner.run(job, Trigger::Api).await?;
    Ok(ok(RunView::of(&run)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
