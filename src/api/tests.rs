use std::time::Instant;

use chrono::Utc;
use serde_json::{json, Value};

use super::views::{merged, stats};
use super::*;
use crate::domain::Bucket;

/// 19 up checks of 1..=19 ms, one of 100 ms, two down: split over two buckets, as rows
/// of two minutes would be.
fn fixture() -> (Bucket, Bucket) {
    let (mut a, mut b) = (Bucket::default(), Bucket::default());
    for i in 1..=19u64 {
        if i % 2 == 0 { &mut a } else { &mut b }.add(true, Some(i * 1000));
    }
    a.add(true, Some(100_000));
    a.add(false, None);
    b.add(false, None);
    (a, b)
}

#[test]
fn stats_match_hand_computed_figures() {
    let (a, b) = fixture();
    let s = serde_json::to_value(stats(&merged([&a, &b]))).unwrap();
    assert_eq!(s["checks"], 22);
    assert_eq!(s["up"], 20);
    // 2 of 22 down
    assert_eq!(s["loss_pct"], 9.09);
    assert_eq!(s["uptime_pct"], 90.91);
    assert_eq!(s["rtt_ms"]["min"], 1.0);
    assert_eq!(s["rtt_ms"]["max"], 100.0);
    // (1+..+19 + 100) / 20 = 14.5 ms
    assert_eq!(s["rtt_ms"]["avg"], 14.5);
    // nearest rank: ceil(0.95 * 20) = 19th smallest = 19 ms; the histogram keeps it to 2 %
    let p95 = s["rtt_ms"]["p95"].as_f64().unwrap();
    assert!((p95 - 19.0).abs() <= 19.0 * 0.02, "p95 {p95}");
    // Only the down checks: loss 100 %, no RTT at all.
    let mut down = Bucket::default();
    down.add(false, None);
    let s = serde_json::to_value(stats(&down)).unwrap();
    assert_eq!(
        (s["loss_pct"].as_f64(), s["uptime_pct"].as_f64()),
        (Some(100.0), Some(0.0))
    );
    assert!(s["rtt_ms"]["min"].is_null() && s["rtt_ms"]["p95"].is_null());
    // An empty window: no checks, and every figure null rather than 0.
    let empty = serde_json::to_value(stats(&Bucket::default())).unwrap();
    assert_eq!(empty["checks"], 0);
    assert!(empty["uptime_pct"].is_null() && empty["loss_pct"].is_null());
    assert!(empty["rtt_ms"]["avg"].is_null() && empty["rtt_ms"]["max"].is_null());
}

/// The windows of a real store behind a real server, against figures worked out by hand.
#[tokio::test]
async fn windows_over_every_level_match_hand_computed_figures() {
    use crate::domain::{ListSource, Peer, PeerList, ProbeResult, SweepSummary};

    let dir = tempfile::tempdir().unwrap();
    let ctx = crate::jobs::test_context(dir.path(), Default::default());
    let store = ctx.store.clone();
    let peer = Peer::for_tests;
    let now = Utc::now();
    store
        .replace_peer_list(&PeerList {
            fetched_at: now,
            source: ListSource::File,
            peers: vec![peer("p"), peer("q"), peer("idle")],
        })
        .unwrap();
    let check = |at, rtt_ms: Option<u64>| ProbeResult {
        up: rtt_ms.is_some(),
        rtt_us: rtt_ms.map(|ms| ms * 1000),
        error_kind: None,
        error: None,
        checked_at: at,
    };
    let m = chrono::Duration::minutes;
    // (minutes ago, p's RTT, q's RTT); None is a down check.
    let sweeps = [
        (20 * 24 * 60, None, None),
        (3 * 24 * 60, Some(80), None),
        (3 * 60, Some(40), None),
        (30, Some(10), None),
        (20, Some(20), Some(5)),
        (10, None, Some(5)),
    ];
    for (ago, p, q) in sweeps {
        let at = now - m(ago);
        let results = vec![
            ("p".to_string(), check(at, p)),
            ("q".to_string(), check(at, q)),
        ];
        let summary = SweepSummary::from_results(at, results.iter().map(|(_, r)| r));
        store.record_sweep(&results, &summary).unwrap();
    }
    // Everything rolled up into minutes, hours and days, and pruned by the defaults.
    store
        .maintain(now, &ctx.settings.retention, chrono::Duration::hours(1))
        .unwrap();

    let state = ApiState {
        runner: Runner::new(ctx),
        scheduler: None,
        started: Instant::now(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, state, async {
        let _ = stopped.await;
    }));
    let get = |path: String| async move {
        let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        (
            r.status().as_u16(),
            r.json::<Value>().await.unwrap()["data"].clone(),
        )
    };

    // p: (window, checks, up, loss %, uptime %, min, avg, p95, max)
    let expected = [
        ("1h", 3, 2, 33.33, 66.67, 10.0, 15.0, 20.0, 20.0),
        ("24h", 4, 3, 25.0, 75.0, 10.0, 23.333, 40.0, 40.0),
        ("7d", 5, 4, 20.0, 80.0, 10.0, 37.5, 80.0, 80.0),
        ("30d", 6, 4, 33.33, 66.67, 10.0, 37.5, 80.0, 80.0),
    ];
    for (w, checks, up, loss, uptime, min, avg, p95, max) in expected {
        let (code, d) = get(format!("/api/nodes/p/health?window={w}")).await;
        assert_eq!(code, 200, "{w}");
        let st = &d["stats"];
        assert_eq!(
            (st["checks"].as_u64(), st["up"].as_u64()),
            (Some(checks), Some(up)),
            "{w}: {d}"
        );
        assert_eq!(
            (st["loss_pct"].as_f64(), st["uptime_pct"].as_f64()),
            (Some(loss), Some(uptime)),
            "{w}"
        );
        let rtt = |k: &str| st["rtt_ms"][k].as_f64().unwrap();
        assert_eq!((rtt("min"), rtt("max")), (min, max), "{w}");
        assert!((rtt("avg") - avg).abs() < 0.001, "{w}: {}", rtt("avg"));
        assert!(
            (rtt("p95") - p95).abs() <= p95 * 0.02,
            "{w}: {}",
            rtt("p95")
        );
        let series = d["series"].as_array().unwrap();
        let in_series: u64 = series.iter().map(|p| p["checks"].as_u64().unwrap()).sum();
        assert_eq!(in_series, checks, "{w}: the series adds up to the stats");
    }
    // q: all its RTTs are 5 ms, so the p95 is exact.
    let (_, d) = get("/api/nodes/q/health?window=1h".into()).await;
    assert_eq!(
        d["stats"]["rtt_ms"],
        json!({"min": 5.0, "avg": 5.0, "p95": 5.0, "max": 5.0})
    );
    assert_eq!(d["stats"]["loss_pct"], 33.33);
    // A listed peer never checked: empty windows, nulls rather than zeros.
    let (code, d) = get("/api/nodes/idle/health?window=30d".into()).await;
    assert_eq!(code, 200);
    assert_eq!(d["stats"]["checks"], 0);
    assert!(d["stats"]["uptime_pct"].is_null() && d["stats"]["rtt_ms"]["p95"].is_null());
    assert_eq!(d["series"], json!([]));
    let (code, _) = get("/api/nodes/nobody/health".into()).await;
    assert_eq!(code, 404);

    let (_, d) = get("/api/nodes".into()).await;
    let item = |id: &str| {
        d["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(
        item("p")["uptime"],
        json!({"1h": 66.67, "24h": 75.0, "7d": 80.0})
    );
    assert_eq!(item("q")["uptime"]["24h"], 50.0);
    assert_eq!(item("p")["up"], false);
    assert_eq!(item("q")["rtt_ms"], 5.0);
    assert_eq!(
        item("idle")["uptime"],
        json!({"1h": null, "24h": null, "7d": null})
    );
    assert!(item("idle")["up"].is_null());

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// `/metrics` declares exactly the metrics of [`metrics::METRICS`], and `/api/alerts` and the
/// alert metrics read the notify job's records, over a real store behind a real server.
#[tokio::test]
async fn metrics_are_the_declared_ones_and_alerts_show_the_notify_jobs_records() {
    use crate::domain::{ListSource, Peer, PeerList, ProbeResult, SweepSummary};

    let dir = tempfile::tempdir().unwrap();
    let options = crate::config::Options {
        notify_urls: Some(format!(
            "http://127.0.0.1:{}/x",
            crate::testkit::free_port()
        )),
        notify_failure_threshold: Some("1".into()),
        ..Default::default()
    };
    let ctx = crate::jobs::test_context(dir.path(), options);
    let store = ctx.store.clone();
    store
        .replace_peer_list(&PeerList {
            fetched_at: Utc::now(),
            source: ListSource::File,
            peers: vec![Peer::for_tests("p")],
        })
        .unwrap();
    let down = ProbeResult {
        up: false,
        rtt_us: None,
        error_kind: Some(crate::domain::ErrorKind::ConnectRefused),
        error: Some("refused".into()),
        checked_at: Utc::now(),
    };
    let results = vec![("p".to_string(), down)];
    let summary = SweepSummary::from_results(Utc::now(), results.iter().map(|(_, r)| r));
    store.record_sweep(&results, &summary).unwrap();
    let runner = Runner::new(ctx);
    runner
        .run(crate::domain::JobName::Notify, crate::domain::Trigger::Cli)
        .await
        .unwrap();

    let state = ApiState {
        runner,
        scheduler: None,
        started: Instant::now(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(run(listener, state, std::future::pending()));
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let declared: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(declared, metrics::METRICS, "{text}");
    assert!(
        text.contains("easytier_probe_alerts_firing{alertname=\"PeerDown\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "easytier_probe_notifications_total{destination=\"webhook#1\",outcome=\"failed\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("easytier_probe_notify_outbox_messages 1"),
        "{text}"
    );
    let alerts: Value = reqwest::get(format!("http://{addr}/api/alerts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let d = &alerts["data"];
    assert_eq!(d["firing"][0]["peer_id"], "p", "{alerts}");
    assert_eq!(d["firing"][0]["error_kind"], "connect_refused");
    assert_eq!(d["recent"][0]["fate"], "queued");
    assert_eq!(d["outbox"]["depth"], 1);
    assert_eq!(d["destinations"][0]["destination"], "webhook#1");
    assert_eq!(d["destinations"][0]["kind"], "webhook");
    assert_eq!(d["destinations"][0]["pending"], 1);
    assert_eq!(d["destinations"][0]["last_error"], "could not connect");
    assert!(!alerts.to_string().contains("/x"), "no URL in {alerts}");
}
