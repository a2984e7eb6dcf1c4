//! probe-sweep: the stored peer list → one probe per peer → results and history in the store.
//! A sweep plans its own deadline inside the job's timeout: peers still unanswered then are
//! recorded as `timeout`, so a sweep that runs out of time still records every peer.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::{effective_schedule, JobContext, JobFailure, JobResult};
use crate::config::ProbeSettings;
use crate::domain::time::ms;
use crate::domain::{JobName, Peer, ProbeResult, SweepSummary};
use crate::probe::{self, Target};
use crate::store::Store;

/// Of the job's time, what a sweep keeps to record its results, at most.
const RECORD_MARGIN: Duration = Duration::from_secs(10);

/// A clock this far (or 3 sweep intervals, if more) ahead of the history has jumped: history
/// maintenance waits for the next sweep to confirm it.
const MIN_JUMP_BOUND: chrono::Duration = chrono::Duration::hours(1);

/// When probing must stop for the results to be recorded before `job_deadline`.
fn probe_deadline(started: Instant, job_deadline: Instant) -> Instant {
    let budget = job_deadline.saturating_duration_since(started);
    job_deadline - (budget / 4).min(RECORD_MARGIN)
}

pub async fn run(ctx: &JobContext, job_deadline: Instant) -> JobResult {
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

    let previous = store.latest_results().unwrap_or_else(|e| {
        tracing::warn!("reading the previous sweep: {e}");
        Default::default()
    });
    let order = probe_order(&list.peers, &previous);
    let secret = ctx.settings.network_secret.expose();
    let targets = order
        .iter()
        .map(|&i| Target::for_peer(&list.peers[i], secret))
        .collect();
    let probe = &ctx.settings.probe;
    recall_learnt(store);
    let lanes = lanes(probe, &list.peers, &order, &previous);
    let started = Instant::now();
    let deadline = probe_deadline(started, job_deadline);
    let probed = probe::probe_all(targets, probe.timeout, lanes, Some(deadline), &ctx.dns).await;
    let probed_in = started.elapsed();
    let results = in_list_order(&order, probed);

    let (stored, items) = verdicts(&previous, &list.peers, results);
    let now = ctx.clock.now();
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
    keep_learnt(store);
    maintain(ctx, now);
    tracing::debug!(
        peers = summary.peers,
        probe_ms = probed_in.as_millis() as u64,
        store_ms = (started.elapsed() - probed_in).as_millis() as u64,
        "sweep timing"
    );
    Ok(summary_json)
}

/// Hands the probe what earlier sweeps (of this process or another) learnt of the peers'
/// addresses: the QUIC flavour each speaks, and the handshake each takes per network.
fn recall_learnt(store: &Store) {
    match store.quic_flavours() {
        Ok(kept) => {
            probe::remember_quic_flavours(kept.iter().map(|(a, f)| (a.as_str(), f.as_str())))
        }
        Err(e) => tracing::warn!("reading the QUIC flavours: {e}"),
    }
    match store.handshakes() {
        Ok(kept) => probe::remember_handshakes(kept.iter().map(|(a, m)| (a.as_str(), m.as_str()))),
        Err(e) => tracing::warn!("reading the handshakes learnt: {e}"),
    }
}

/// Keeps what this sweep learnt, for the next sweep whichever process runs it.
fn keep_learnt(store: &Store) {
    let flavours = probe::quic_flavours()
        .into_iter()
        .map(|(addr, f)| (addr.to_string(), f.to_string()))
        .collect();
    if let Err(e) = store.set_quic_flavours(&flavours) {
        tracing::warn!("keeping the QUIC flavours: {e}");
    }
    let handshakes = probe::handshakes()
        .into_iter()
        .map(|(key, mode)| (key, mode.to_string()))
        .collect();
    if let Err(e) = store.set_handshakes(&handshakes) {
        tracing::warn!("keeping the handshakes learnt: {e}");
    }
}

/// The order to probe `peers` in (indices into it): those down in the previous sweep first,
/// then those not yet checked, then those up, each in list order. A peer that stays down holds
/// its slot for the whole timeout: started first, its timeout runs beside the live peers'
/// work rather than after it, so a sweep takes about one timeout or the live work, whichever
/// is longer, not the two added up.
fn probe_order(peers: &[Peer], previous: &HashMap<String, ProbeResult>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..peers.len()).collect();
    order.sort_by_key(|&i| match previous.get(&peers[i].id) {
        Some(r) if !r.up => 0,
        None => 1,
        Some(_) => 2,
    });
    order
}

/// The sweep's lanes (see [`ProbeSettings::lanes`]): the peers down last time lead `order`.
/// Says so when the open-files limit makes the sweep slower.
fn lanes(
    probe: &ProbeSettings,
    peers: &[Peer],
    order: &[usize],
    previous: &HashMap<String, ProbeResult>,
) -> probe::Lanes {
    let open_files = probe::limits::open_files_limit();
    let waiting = order
        .iter()
        .take_while(|&&i| previous.get(&peers[i].id).is_some_and(|r| !r.up))
        .count();
    let (in_flight, limited) = probe.in_flight(open_files);
    if limited && peers.len() > in_flight {
        tracing::warn!(
            peers = peers.len(),
            in_flight,
            open_files,
            "the open-files limit allows only {in_flight} probes at once: unresponsive peers \
             may make this sweep take up to {} timeouts (raise LimitNOFILE / ulimit -n)",
            peers.len().div_ceil(in_flight)
        );
    }
    match probe.lanes(open_files, waiting, peers.len() - waiting) {
        (0, width) => probe::Lanes::one(width),
        (waiting_width, width) => probe::Lanes {
            waiting,
            waiting_width,
            width,
        },
    }
}

/// `probed[k]` is the result of peer `order[k]`: the results in the list's order.
fn in_list_order(order: &[usize], probed: Vec<ProbeResult>) -> Vec<ProbeResult> {
    let mut results = vec![None; probed.len()];
    for (&i, result) in order.iter().zip(probed) {
        results[i] = Some(result);
    }
    results.into_iter().flatten().collect()
}

/// Each peer's result to store, and its line in the summary; a peer whose state changed since
/// the `previous` sweep is logged.
fn verdicts(
    previous: &HashMap<String, ProbeResult>,
    peers: &[Peer],
    results: Vec<ProbeResult>,
) -> (Vec<(String, ProbeResult)>, Vec<Value>) {
    let mut stored = Vec::with_capacity(results.len());
    let mut items = Vec::with_capacity(results.len());
    for (peer, result) in peers.iter().zip(results) {
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
    (stored, items)
}

/// Finished minutes, hours and days roll up; every level past its retention goes.
fn maintain(ctx: &JobContext, now: chrono::DateTime<chrono::Utc>) {
    let period = effective_schedule(JobName::ProbeSweep, &ctx.settings).period(now);
    let jump_bound = chrono::Duration::from_std(period * 3)
        .unwrap_or(chrono::Duration::MAX)
        .max(MIN_JUMP_BOUND);
    match ctx.store.maintain(now, &ctx.settings.retention, jump_bound) {
        Ok(done) if done.skipped > 0 => {
            tracing::warn!(
                skipped = done.skipped,
                "history: damaged rows were left out"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("history roll-up and pruning failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_down_last_time_are_probed_first() {
        let peers: Vec<Peer> = ["up", "down", "new", "down2", "up2"]
            .iter()
            .map(|id| Peer::for_tests(id))
            .collect();
        let result = |up| ProbeResult {
            up,
            rtt_us: None,
            error_kind: None,
            error: None,
            checked_at: chrono::Utc::now(),
            candidates: Vec::new(),
            node: None,
            node_key: None,
        };
        let previous = HashMap::from([
            ("up".to_string(), result(true)),
            ("down".to_string(), result(false)),
            ("down2".to_string(), result(false)),
            ("up2".to_string(), result(true)),
            ("gone".to_string(), result(false)),
        ]);
        let order = probe_order(&peers, &previous);
        assert_eq!(order, [1, 3, 2, 0, 4]);
        // Results come back in the list's order.
        let probed: Vec<ProbeResult> = order
            .iter()
            .map(|&i| ProbeResult {
                rtt_us: Some(i as u64),
                ..result(true)
            })
            .collect();
        let back: Vec<u64> = in_list_order(&order, probed)
            .iter()
            .map(|r| r.rtt_us.unwrap())
            .collect();
        assert_eq!(back, [0, 1, 2, 3, 4]);
        assert_eq!(probe_order(&peers, &HashMap::new()), [0, 1, 2, 3, 4]);
    }

    use crate::config::Options;
    use crate::domain::{Clock, Level, ManualClock, Trigger, WINDOWS};
    use crate::runner::Runner;
    use crate::store::Store;

    /// Checks of peer "1" in each window (1h, 24h, 7d, 30d) as of the clock's now.
    fn window_checks(store: &Store, now: chrono::DateTime<chrono::Utc>) -> Vec<u64> {
        let slot = store.slot("1").unwrap().unwrap();
        WINDOWS
            .iter()
            .map(|w| {
                let got = store
                    .collect(
                        w.level,
                        now - w.length,
                        now + chrono::Duration::seconds(1),
                        None,
                        Some(slot),
                    )
                    .unwrap();
                got.get(&slot)
                    .map_or(0, |b| b.values().map(|b| b.checks).sum())
            })
            .collect()
    }

    fn raw_rows(store: &Store) -> usize {
        store
            .history_size()
            .into_iter()
            .find(|(l, _, _)| *l == Level::Raw)
            .map_or(0, |(_, rows, _)| rows)
    }

    /// Through the real job and runner, with the clock as the only input: a week of sweeps,
    /// one sweep with the clock 30 days ahead, then the clock back. No window loses its
    /// history, and roll-ups and pruning go on at once.
    #[tokio::test]
    async fn a_clock_thirty_days_ahead_and_back_loses_no_window() {
        let dir = tempfile::tempdir().unwrap();
        let peers = dir.path().join("peers.json");
        // faketcp: judged unsupported at once, so the sweep does no I/O.
        std::fs::write(
            &peers,
            r#"[{"id": 1, "host": "127.0.0.1", "port": 1, "protocol": "faketcp", "network_name": "n"}]"#,
        )
        .unwrap();
        let options = Options {
            peers_file: Some(peers),
            ..Options::default()
        };
        let ctx = crate::jobs::test_context(&dir.path().join("data"), options);
        let store = ctx.store.clone();
        let t0 = chrono::DateTime::from_timestamp(1_760_000_000, 0).unwrap();
        let clock = ManualClock::new(t0);
        let runner = Runner::new(ctx.with_clock(clock.shared()));
        let sweep = || async {
            let run = runner
                .run(JobName::ProbeSweep, Trigger::Schedule)
                .await
                .unwrap();
            assert_eq!(run.outcome.as_str(), "ok", "{run:?}");
        };
        assert_eq!(
            runner
                .run(JobName::PeerFetch, Trigger::Cli)
                .await
                .unwrap()
                .outcome
                .as_str(),
            "ok"
        );
        let step = Duration::from_secs(15 * 60);
        for _ in 0..(8 * 24 * 4) {
            clock.advance(step);
            sweep().await;
        }
        let before = window_checks(&store, clock.now());
        assert!(before.iter().all(|n| *n > 0), "{before:?}");
        // The sweep calls maintenance: raw rows older than their retention (1h) are gone.
        assert!(raw_rows(&store) <= 6, "{} raw rows", raw_rows(&store));

        // One sweep with the clock 30 days ahead, then the clock is right again.
        clock.jump_wall(chrono::Duration::days(30));
        clock.advance(step);
        sweep().await;
        clock.jump_wall(chrono::Duration::days(-30));
        clock.advance(step);
        sweep().await;
        let after = window_checks(&store, clock.now());
        for (w, (b, a)) in WINDOWS.iter().zip(before.iter().zip(&after)) {
            // Half an hour on, a window's start may have passed an hour bucket (4 sweeps), and
            // the one sweep filed 30 days ahead is dropped; nothing was pruned as of that time.
            assert!(
                *a + 5 >= *b,
                "{}: {b} checks before the jump, {a} after",
                w.name
            );
        }
        // Roll-ups and pruning resume at once: three hours on, raw rows are an hour's worth,
        // and the row the false clock filed 30 days ahead is gone.
        for _ in 0..12 {
            clock.advance(step);
            sweep().await;
        }
        assert!(raw_rows(&store) <= 6, "{} raw rows", raw_rows(&store));
        let ahead = store
            .collect(
                Level::Raw,
                clock.now() + chrono::Duration::days(1),
                clock.now() + chrono::Duration::days(60),
                None,
                None,
            )
            .unwrap();
        assert!(ahead.values().all(|b| b.is_empty()), "{ahead:?}");
        let now = window_checks(&store, clock.now());
        assert!(now[0] >= 3, "{now:?}: the 1h window is rolled up again");
        let _ = clock.instant();
    }

    #[test]
    fn the_deadline_leaves_time_to_record() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        assert_eq!(probe_deadline(t0, t0 + 60 * s), t0 + 50 * s);
        assert_eq!(probe_deadline(t0, t0 + 4 * s), t0 + 3 * s);
        assert_eq!(probe_deadline(t0, t0), t0);
    }
}
