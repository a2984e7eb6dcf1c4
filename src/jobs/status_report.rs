//! status-report: the latest sweep in the store → `PUT /nodes/status`.
//!
//! Every run builds its report afresh from the newest sweep; a report that could not be
//! delivered is not kept (the next run's report, built on newer data, supersedes it). A sweep
//! older than [`crate::domain::job::STALE_AFTER_SWEEPS`] intervals is stale: the report is then `Offline`
//! without RTT figures, since the probe is not probing.

use serde_json::json;

use super::{JobContext, JobFailure, JobResult};
use crate::backend::{NodeStatus, StatusReport};
use crate::config::NEEDS_BACKEND;
use crate::domain::Freshness;
use crate::store::StoreError;

pub async fn run(ctx: &JobContext) -> JobResult {
    let report = build(ctx, NodeStatus::Online).map_err(|e| JobFailure::new(e, json!({})))?;
    deliver(ctx, report).await
}

/// Sends `Offline` (used once on graceful shutdown of `serve`).
pub async fn send_offline(ctx: &JobContext) -> JobResult {
    let report = build(ctx, NodeStatus::Offline).map_err(|e| JobFailure::new(e, json!({})))?;
    deliver(ctx, report).await
}

struct Built {
    report: StatusReport,
    /// Why the report says `Offline` although the probe runs.
    stale: Option<String>,
}

fn build(ctx: &JobContext, status: NodeStatus) -> Result<Built, StoreError> {
    let sweep = ctx.store.last_sweep()?;
    let list = ctx.store.peer_list()?;
    let peers = list.as_ref().map_or(0, |l| l.peers.len());
    let region = ctx.settings.region.as_deref();
    let freshness = ctx.judge(sweep.as_ref().map(|s| s.at), list.is_some());
    if let Freshness::Stale { .. } = freshness {
        let reason = freshness.reason();
        tracing::warn!(
            "status-report: reporting Offline: {}",
            reason.as_deref().unwrap_or("stale")
        );
        return Ok(Built {
            report: StatusReport::from_sweep(NodeStatus::Offline, None, peers, region),
            stale: reason,
        });
    }
    Ok(Built {
        report: StatusReport::from_sweep(status, sweep.as_ref(), peers, region),
        stale: None,
    })
}

async fn deliver(ctx: &JobContext, built: Built) -> JobResult {
    let Built { report, stale } = built;
    let summary = |delivered: bool| {
        json!({
            "status": report.status,
            "response_time": report.response_time,
            "delivered": delivered,
            "stale": stale,
        })
    };
    let Some(client) = &ctx.backend else {
        return Err(JobFailure::new(NEEDS_BACKEND, summary(false)));
    };
    match client.put_status(&report).await {
        Ok(()) => Ok(summary(true)),
        Err(e) => Err(JobFailure::new(
            format!("{e}; this report is dropped, the next run sends a fresh one"),
            summary(false),
        )),
    }
}
