//! A sweep's probes: every target in its lane, each in its own task, every one a verdict.

use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;

use super::{probe, Resolver, Target};
use crate::domain::{ErrorKind, ProbeResult};

/// How many probes a sweep runs at once: the first `waiting` targets (peers down last time,
/// which mostly wait out their timeout) at most `waiting_width` at once, beside the rest at
/// most `width` at once, so neither holds the other up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lanes {
    pub waiting: usize,
    pub waiting_width: usize,
    pub width: usize,
}

impl Lanes {
    /// Every target in one lane of `width`.
    pub fn one(width: usize) -> Self {
        Self {
            waiting: 0,
            waiting_width: 1,
            width,
        }
    }
}

/// Probes every target in its `lanes`, each within its own timeout or `timeout`, names through
/// `dns`; results in input order.
/// Each probe runs in its own task, so a panic in one becomes that peer's failure. Peers still
/// unanswered at `deadline` (queued or in flight) are `timeout`: every target gets a verdict.
pub async fn probe_all(
    targets: Vec<Target>,
    timeout: Duration,
    lanes: Lanes,
    deadline: Option<tokio::time::Instant>,
    dns: &Resolver,
) -> Vec<ProbeResult> {
    // Only a lane's width of probe tasks exist at any time: a probe's future holds its
    // connector's whole state (TLS, websocket, ...), so spawning every probe up front would
    // cost memory in proportion to the number of peers rather than to the widths.
    let mut results: Vec<Option<ProbeResult>> = vec![None; targets.len()];
    let in_flight = std::sync::Mutex::new(std::collections::HashMap::new());
    let start = |(index, target): (usize, Target)| {
        let timeout = target.timeout.unwrap_or(timeout);
        let dns = dns.clone();
        let handle = tokio::spawn(async move { probe(&target, timeout, &dns).await });
        if let Ok(mut f) = in_flight.lock() {
            f.insert(index, handle.abort_handle());
        }
        async move { (index, handle.await) }
    };
    let mut targets = targets.into_iter().enumerate();
    let waiting: Vec<_> = targets.by_ref().take(lanes.waiting).collect();
    let waiting = futures::stream::iter(waiting)
        .map(start)
        .buffer_unordered(lanes.waiting_width.max(1));
    let others = futures::stream::iter(targets)
        .map(start)
        .buffer_unordered(lanes.width.max(1));
    let mut running = futures::stream::select(waiting, others);
    let cut_off = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(cut_off);
    loop {
        let (index, joined) = tokio::select! {
            next = running.next() => match next {
                Some(done) => done,
                None => break,
            },
            _ = &mut cut_off => break,
        };
        if let Ok(mut f) = in_flight.lock() {
            f.remove(&index);
        }
        results[index] = Some(joined.unwrap_or_else(|e| {
            failed(
                ErrorKind::ProtocolError,
                format!("the probe task failed: {e}"),
            )
        }));
    }
    drop(running);
    if let Ok(f) = in_flight.lock() {
        for handle in f.values() {
            handle.abort();
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                failed(
                    ErrorKind::Timeout,
                    "no answer before the sweep's deadline (the sweep ran out of time)".into(),
                )
            })
        })
        .collect()
}

/// A verdict for a probe that never gave one itself.
fn failed(kind: ErrorKind, detail: String) -> ProbeResult {
    ProbeResult {
        up: false,
        rtt_us: None,
        error_kind: Some(kind),
        error: Some(detail),
        checked_at: Utc::now(),
        candidates: Vec::new(),
        node: None,
        node_key: None,
    }
}
