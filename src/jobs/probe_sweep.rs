//! probe-sweep: the stored peer list → one probe per peer → results and history in the store.

use chrono::Utc;
use serde_json::{json, Value};

use super::{ms, JobContext, JobFailure, JobResult};
use crate::model::SweepSummary;
use crate::probe::{self, Target};

pub async fn run(ctx: &JobContext) -> JobResult {
    let store = &ctx.store;
    let list = store
        .peer_list()
        .map_err(|e| JobFailure::new(e, json!({})))?
        .ok_or_else(|| {
            JobFailure::new(
                "no stored peer list yet: peer-fetch has not succeeded on this data dir",
                json!({"peers": 0, "reachable": 0}),
            )
        })?;

    let secret = ctx.settings.network_secret.expose();
    let targets = list
        .peers
        .iter()
        .map(|p| Target::for_peer(p, secret))
        .collect();
    let probe = &ctx.settings.probe;
    let started = std::time::Instant::now();
    let results = probe::probe_all(targets, probe.timeout, probe.concurrency).await;
    let probed_in = started.elapsed();

    let previous = store.latest_results().unwrap_or_else(|e| {
        tracing::warn!("reading the previous sweep: {e}");
        Default::default()
    });
    let mut stored = Vec::with_capacity(results.len());
    let mut items = Vec::with_capacity(results.len());
    for (peer, result) in list.peers.iter().zip(results) {
        if previous.get(&peer.id).map(|p| p.up) != Some(result.up) {
            if result.up {
                tracing::info!(peer = %peer.id, name = %peer.name, rtt_us = result.rtt_us, "peer is up");
            } else {
                tracing::info!(
                    peer = %peer.id,
                    name = %peer.name,
                    error_kind = result.error_kind.map(|k| k.as_str()),
                    error = result.error.as_deref(),
                    "peer is down"
                );
            }
        }
        items.push(json!({
            "id": peer.id,
            "up": result.up,
            "rtt_ms": result.rtt_us.map(ms),
            "error_kind": result.error_kind.map(|k| k.as_str()),
        }));
        stored.push((peer.id.clone(), result));
    }
    let now = Utc::now();
    let summary = SweepSummary::from_results(now, stored.iter().map(|(_, r)| r));
    let summary_json = json!({
        "peers": summary.peers,
        "reachable": summary.reachable,
        "avg_rtt_ms": summary.avg_rtt_us.map(ms),
        "max_rtt_ms": summary.max_rtt_us.map(ms),
        "results": Value::Array(items),
    });
    store
        .record_sweep(&stored, &summary)
        .map_err(|e| JobFailure::new(e, summary_json.clone()))?;
    // Finished minutes, hours and days roll up; every level past its retention goes.
    match store.maintain(now, &ctx.settings.retention) {
        Ok(done) if done.skipped > 0 => {
            tracing::warn!(
                skipped = done.skipped,
                "history: damaged rows were left out"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("history roll-up and pruning failed: {e}"),
    }
    tracing::debug!(
        peers = summary.peers,
        probe_ms = probed_in.as_millis() as u64,
        store_ms = (started.elapsed() - probed_in).as_millis() as u64,
        "sweep timing"
    );
    Ok(summary_json)
}
