//! status-report: the latest sweep in the store → `PUT /nodes/status`.
//! The report is stored as pending before it is sent and cleared once delivered, so a report
//! that could not be delivered survives a restart; a newer report replaces an older one.

use serde_json::json;

use super::{JobContext, JobFailure, JobResult};
use crate::backend::{NodeStatus, StatusReport};

pub async fn run(ctx: &JobContext) -> JobResult {
    let report = build(ctx, NodeStatus::Online).map_err(|e| JobFailure::new(e, json!({})))?;
    deliver(ctx, report).await
}

/// Sends `Offline` (used once on graceful shutdown of `serve`).
pub async fn send_offline(ctx: &JobContext) -> JobResult {
    let report = build(ctx, NodeStatus::Offline).map_err(|e| JobFailure::new(e, json!({})))?;
    deliver(ctx, report).await
}

fn build(ctx: &JobContext, status: NodeStatus) -> Result<StatusReport, crate::store::StoreError> {
    let sweep = ctx.store.last_sweep()?;
    let peers = ctx.store.peer_list()?.map_or(0, |l| l.peers.len());
    Ok(StatusReport::from_sweep(
        status,
        sweep.as_ref(),
        peers,
        ctx.settings.region.as_deref(),
    ))
}

async fn deliver(ctx: &JobContext, report: StatusReport) -> JobResult {
    let summary = |delivered: bool| {
        json!({
            "status": report.status,
            "response_time": report.response_time,
            "delivered": delivered,
        })
    };
    let Some(client) = &ctx.backend else {
        return Err(JobFailure::new(
            "status-report needs a backend: set DISTRIBUTED_MODE_ENABLED, BACKEND_BASE_URL and NODE_TOKEN",
            summary(false),
        ));
    };
    let value = serde_json::to_value(&report).map_err(|e| JobFailure::new(e, summary(false)))?;
    ctx.store
        .set_pending_report(&value)
        .map_err(|e| JobFailure::new(e, summary(false)))?;
    match client.put_status(&report).await {
        Ok(()) => {
            ctx.store
                .clear_pending_report(&value)
                .map_err(|e| JobFailure::new(e, summary(true)))?;
            Ok(summary(true))
        }
        Err(e) => Err(JobFailure::new(
            format!("{e}; the report stays pending and goes out with the next run"),
            summary(false),
        )),
    }
}
