use std::time::Instant;

use chrono::Utc;
use serde_json::{json, Value};

use super::views::{merged, stats};
use super::*;
use crate::domain::Bucket;

/// The API over `runner`'s context on a loopback port of its own, until the test ends.
/// The body of `GET http://{addr}{path}`, as text.
async fn text(addr: std::net::SocketAddr, path: &str) -> String {
    let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    r.text().await.unwrap()
}

pub(super) async fn serve(runner: Runner) -> std::net::SocketAddr {
    let state = ApiState {
        runner,
        scheduler: None,
        started: Instant::now(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(run(listener, state, std::future::pending()));
    addr
}

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
        candidates: Vec::new(),
        node: None,
        node_key: None,
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
        notify_failure_threshold: Some(1),
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
        candidates: Vec::new(),
        node: None,
        node_key: None,
    };
    let results = vec![("p".to_string(), down)];
    let summary = SweepSummary::from_results(Utc::now(), results.iter().map(|(_, r)| r));
    store.record_sweep(&results, &summary).unwrap();
    let runner = Runner::new(ctx);
    runner
        .run(crate::domain::JobName::Notify, crate::domain::Trigger::Cli)
        .await
        .unwrap();

    let addr = serve(runner).await;
    let text = text(addr, "/metrics").await;
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

/// Sweeps that take longer than their interval are visible: 3 in a row (overruns or skips)
/// make `/health` degraded, and every finished sweep is in the stored duration histogram.
#[tokio::test]
async fn overrunning_sweeps_degrade_health_and_fill_the_histogram() {
    use crate::domain::{
        JobName, JobRun, ListSource, Outcome, Peer, PeerList, SweepSummary, Trigger,
    };

    let dir = tempfile::tempdir().unwrap();
    let ctx = crate::jobs::test_context(dir.path(), Default::default());
    let store = ctx.store.clone();
    store
        .replace_peer_list(&PeerList {
            fetched_at: Utc::now(),
            source: ListSource::File,
            peers: vec![Peer::for_tests("p")],
        })
        .unwrap();
    let summary = SweepSummary::from_results(Utc::now(), std::iter::empty());
    store.record_sweep(&[], &summary).unwrap();
    let sweep = |outcome, ms| {
        let run = store
            .start_run(JobRun::new(
                JobName::ProbeSweep,
                Trigger::Schedule,
                Utc::now(),
                Outcome::Running,
            ))
            .unwrap();
        store
            .put_run(&JobRun {
                duration_ms: ms,
                outcome,
                ..run
            })
            .unwrap();
    };
    sweep(Outcome::Ok, 800);
    sweep(Outcome::Ok, 12_000);
    sweep(Outcome::Skipped, 0);

    let addr = serve(Runner::new(ctx)).await;
    let health = || async move {
        let r = reqwest::get(format!("http://{addr}/health")).await.unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["data"].clone()
    };
    let metric = |text: &str, name: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(name));
        let line = line.unwrap_or_else(|| panic!("no {name} in {text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    // Two late sweeps after one on time: not yet.
    assert_eq!(health().await["status"], "ok");
    sweep(Outcome::Failed, 9_000);
    let h = health().await;
    assert_eq!(h["status"], "degraded", "{h}");
    let why = h["reason"].as_str().unwrap();
    assert!(
        why.contains("5s interval") && why.contains("12.0s"),
        "{why}"
    );

    let text = text(addr, "/metrics").await;
    let bucket = |le: &str| {
        metric(
            &text,
            &format!(
                "easytier_probe_job_duration_seconds_bucket{{job=\"probe-sweep\",le=\"{le}\"}}"
            ),
        )
    };
    // The skipped run is not a duration: 0.8 s, 12 s and 9 s.
    assert_eq!(bucket("1"), 1.0, "{text}");
    assert_eq!(bucket("10"), 2.0);
    assert_eq!(bucket("30"), 3.0);
    assert_eq!(bucket("+Inf"), 3.0);
    assert_eq!(
        metric(
            &text,
            "easytier_probe_job_duration_seconds_count{job=\"probe-sweep\"}"
        ),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            "easytier_probe_job_duration_seconds_sum{job=\"probe-sweep\"}"
        ),
        21.8
    );

    // A sweep on time ends it; the histogram is the store's, so it outlives the process.
    sweep(Outcome::Ok, 1_000);
    assert_eq!(health().await["status"], "ok");
    assert_eq!(store.durations("probe-sweep").unwrap().count, 4);
}

/// `/api/nodes` pages, filters, searches and sorts over a real store behind a real server.
#[tokio::test]
async fn nodes_are_paged_filtered_searched_and_sorted() {
    use crate::domain::{ListSource, Peer, PeerList, ProbeResult, SweepSummary};

    let dir = tempfile::tempdir().unwrap();
    let ctx = crate::jobs::test_context(dir.path(), Default::default());
    let store = ctx.store.clone();
    // 30 peers: every third down, every fifth never checked (it joins after the sweep), the
    // rest up with an RTT of 30 - i ms; the names run backwards against the list.
    let peers: Vec<Peer> = (0..30)
        .map(|i| Peer {
            name: format!("{}-node", ["tokyo", "Paris", "lima"][i % 3]) + &format!("{:02}", 29 - i),
            host: format!("h{i}.example.net"),
            network_name: if i == 7 {
                "TokyoNet".into()
            } else {
                "public".into()
            },
            ..Peer::for_tests(&format!("p{i:02}"))
        })
        .collect();
    let checked: Vec<&Peer> = peers
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 5 != 4)
        .map(|(_, p)| p)
        .collect();
    store
        .replace_peer_list(&PeerList {
            fetched_at: Utc::now(),
            source: ListSource::File,
            peers: checked.iter().map(|p| (*p).clone()).collect(),
        })
        .unwrap();
    let now = Utc::now();
    let results: Vec<(String, ProbeResult)> = checked
        .iter()
        .map(|p| {
            let i: u64 = p.id[1..].parse().unwrap();
            let up = i % 3 != 0;
            let r = ProbeResult {
                up,
                rtt_us: up.then_some((30 - i) * 1000),
                error_kind: (!up).then_some(crate::domain::ErrorKind::Timeout),
                error: None,
                checked_at: now,
                // p01 is an indirect peer, up through the one URL its page named.
                candidates: (i == 1)
                    .then(|| crate::domain::Candidate {
                        url: "tcp://10.0.0.1:11010".into(),
                        up: true,
                        rtt_us: Some(29_000),
                        error_kind: None,
                        error: None,
                    })
                    .into_iter()
                    .collect(),
                // p02's node said what it runs.
                node: (i == 2).then(|| crate::domain::NodeInfo {
                    version: "2.6.4".into(),
                    hostname: Some("node-<two>".into()),
                    public_server: true,
                }),
                node_key: None,
            };
            (p.id.clone(), r)
        })
        .collect();
    let summary = SweepSummary::from_results(now, results.iter().map(|(_, r)| r));
    store.record_sweep(&results, &summary).unwrap();
    store
        .replace_peer_list(&PeerList {
            fetched_at: now,
            source: ListSource::File,
            peers: peers.clone(),
        })
        .unwrap();

    let addr = serve(Runner::new(ctx)).await;
    let get = |query: &str| {
        let url = format!("http://{addr}/api/nodes{query}");
        async move {
            let r = reqwest::get(url).await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let ids = |v: &Value| -> Vec<String> {
        v["data"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (down, unchecked): (Vec<usize>, Vec<usize>) = (
        (0..30).filter(|i| i % 3 == 0 && i % 5 != 4).collect(),
        (0..30).filter(|i| i % 5 == 4).collect(),
    );
    let id = |i: &usize| format!("p{i:02}");

    // No parameters: every peer, in the list's order, with the counts.
    let (code, all) = get("").await;
    assert_eq!(code, 200);
    assert_eq!(ids(&all), (0..30).map(|i| id(&i)).collect::<Vec<_>>());
    assert_eq!(all["data"]["total"], 30);
    assert_eq!(
        all["data"]["counts"],
        json!({"up": 30 - down.len() - unchecked.len(), "down": down.len(), "unchecked": unchecked.len()})
    );

    // An indirect peer's URLs are shown with it; a direct peer has none.
    let items = all["data"]["items"].as_array().unwrap();
    assert_eq!(
        items[1]["candidates"],
        json!([{"url": "tcp://10.0.0.1:11010", "up": true, "rtt_ms": 29.0, "error_kind": null, "error": null}])
    );
    assert!(items[2].get("candidates").is_none());
    // What a node said of itself; null where nothing was read.
    assert_eq!(
        (&items[2]["version"], &items[2]["hostname"]),
        (&json!("2.6.4"), &json!("node-<two>"))
    );
    assert_eq!(
        (&items[3]["version"], &items[3]["hostname"]),
        (&Value::Null, &Value::Null)
    );
    let page = text(addr, "/?q=p02").await;
    assert!(page.contains("EasyTier 2.6.4 · node-&lt;two&gt;"), "{page}");

    let (_, d) = get("?sort=-list&limit=2").await;
    assert_eq!(ids(&d), ["p29", "p28"]);
    // Pages of 7 put back together are the whole list, each peer once.
    let mut paged = Vec::new();
    for offset in (0..35).step_by(7) {
        let (_, page) = get(&format!("?limit=7&offset={offset}")).await;
        assert_eq!(page["data"]["total"], 30);
        assert!(ids(&page).len() <= 7);
        paged.extend(ids(&page));
    }
    assert_eq!(paged, ids(&all));

    // State filters; the total is what matches.
    let (_, d) = get("?state=down").await;
    assert_eq!(ids(&d), down.iter().map(id).collect::<Vec<_>>());
    assert_eq!(d["data"]["total"], down.len());
    let (_, d) = get("?state=unchecked").await;
    assert_eq!(ids(&d), unchecked.iter().map(id).collect::<Vec<_>>());
    assert!(d["data"]["items"][0]["up"].is_null());

    // Search: any of id, name, host, network name, whatever the case.
    let (_, d) = get("?q=TOKYO").await;
    let tokyo: Vec<String> = (0..30)
        .filter(|i| i % 3 == 0 || *i == 7)
        .map(|i| id(&i))
        .collect();
    assert_eq!(ids(&d), tokyo);
    assert_eq!(
        d["data"]["counts"]["down"],
        down.len(),
        "tokyo peers are the down ones"
    );
    let (_, d) = get("?q=h12.example").await;
    assert_eq!(ids(&d), ["p12"]);
    let (_, d) = get("?q=tokyo&state=up").await;
    assert_eq!(ids(&d), ["p07"]);

    // Sorts: down first, then unchecked, then up, by name in each; RTT; reversed.
    let (_, d) = get("?sort=state&limit=100").await;
    let sorted = ids(&d);
    let first_down: Vec<String> = {
        let mut names: Vec<(String, String)> = down
            .iter()
            .map(|i| (peers[*i].name.clone(), id(i)))
            .collect();
        names.sort();
        names.into_iter().map(|(_, i)| i).collect()
    };
    assert_eq!(sorted[..down.len()], first_down[..]);
    assert_eq!(
        sorted[down.len()..down.len() + unchecked.len()]
            .iter()
            .map(|i| i.as_str())
            .collect::<std::collections::BTreeSet<_>>(),
        unchecked
            .iter()
            .map(id)
            .collect::<Vec<_>>()
            .iter()
            .map(|s| s.as_str())
            .collect()
    );
    let (_, d) = get("?sort=rtt&state=up&limit=3").await;
    assert_eq!(ids(&d), ["p28", "p26", "p25"], "lowest RTT first");
    let (_, d) = get("?sort=-rtt&state=up&limit=2").await;
    assert_eq!(ids(&d), ["p01", "p02"]);
    let (_, d) = get("?sort=rtt").await;
    let with_rtt: Vec<bool> = d["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["rtt_ms"].is_number())
        .collect();
    let measured = with_rtt.iter().filter(|m| **m).count();
    assert!(
        with_rtt[..measured].iter().all(|m| *m) && measured < 30,
        "peers without an RTT last: {with_rtt:?}"
    );
    let (_, d) = get("?sort=-rtt").await;
    let items = d["data"]["items"].as_array().unwrap();
    assert_eq!(items[0]["id"], "p01", "the highest RTT first");
    assert!(
        items.last().unwrap()["rtt_ms"].is_null(),
        "peers without an RTT still last"
    );
    let (_, d) = get("?sort=uptime_1h&limit=1").await;
    assert_eq!(
        d["data"]["items"][0]["uptime"]["1h"], 0.0,
        "the lowest uptime first"
    );

    // Bad parameters are refused with the reason, in the envelope.
    for (query, needle) in [
        ("?limit=0", "limit"),
        ("?limit=1001", "limit"),
        ("?limit=ten", "limit"),
        ("?offset=-1", "offset"),
        ("?state=sideways", "state"),
        ("?sort=colour", "sort"),
        ("?sort=uptime_2h", "sort"),
    ] {
        let (code, body) = get(query).await;
        assert_eq!(code, 400, "{query}");
        assert!(
            body["message"].as_str().unwrap().contains(needle),
            "{query}: {body}"
        );
    }
}

/// The status page shows 100 peers a page, down ones first, with state tabs, search and
/// links to the other pages; a full page stays small.
#[tokio::test]
async fn the_status_page_pages_down_peers_first() {
    use crate::domain::{ListSource, Peer, PeerList, ProbeResult, SweepSummary};

    let dir = tempfile::tempdir().unwrap();
    let ctx = crate::jobs::test_context(dir.path(), Default::default());
    let store = ctx.store.clone();
    // 250 peers, every tenth down, with long names so a page is as big as it gets.
    let peers: Vec<Peer> = (0..250)
        .map(|i| Peer {
            name: format!("node-{i:03}-{}", "x".repeat(60)),
            host: format!("h{i}.{}.example.net", "y".repeat(40)),
            ..Peer::for_tests(&format!("p{i:03}"))
        })
        .collect();
    store
        .replace_peer_list(&PeerList {
            fetched_at: Utc::now(),
            source: ListSource::File,
            peers: peers.clone(),
        })
        .unwrap();
    let now = Utc::now();
    let results: Vec<(String, ProbeResult)> = (0..250)
        .map(|i| {
            let up = i % 10 != 3;
            let r = ProbeResult {
                up,
                rtt_us: up.then_some(12_345),
                error_kind: (!up).then_some(crate::domain::ErrorKind::Timeout),
                error: None,
                checked_at: now,
                candidates: Vec::new(),
                node: None,
                node_key: None,
            };
            (format!("p{i:03}"), r)
        })
        .collect();
    let summary = SweepSummary::from_results(now, results.iter().map(|(_, r)| r));
    store.record_sweep(&results, &summary).unwrap();

    let addr = serve(Runner::new(ctx)).await;
    let page = |query: &str| {
        let url = format!("http://{addr}/{query}");
        async move {
            let r = reqwest::get(url).await.unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    };
    let rows = |page: &str| -> Vec<String> {
        page.split("<tr id=\"peer-")
            .skip(1)
            .map(|r| r[..r.find('"').unwrap()].to_string())
            .collect()
    };

    let first = page("").await;
    let shown = rows(&first);
    assert_eq!(shown.len(), 100);
    let down: Vec<String> = (0..250)
        .filter(|i| i % 10 == 3)
        .map(|i| format!("p{i:03}"))
        .collect();
    assert_eq!(
        shown[..25],
        down[..],
        "the 25 down peers come first, by name"
    );
    assert!(first.contains("1–100 of 250 · page 1 of 3"), "{first}");
    assert!(first.contains("rel=\"next\" href=\"/?page=2\""));
    assert!(
        first.contains("Down (25)") && first.contains("Up (225)") && first.contains("All (250)")
    );
    assert!(first.contains("225 of 250 nodes up"));
    assert!(
        first.len() < 300_000,
        "a full page is {} bytes",
        first.len()
    );
    assert_eq!(first.matches("<div class=\"bar\">").count(), 100);

    let last = page("?page=3").await;
    assert_eq!(
        page("?page=9").await,
        last,
        "a page past the end is the last one"
    );
    assert_eq!(rows(&last).len(), 50);
    assert!(last.contains("201–250 of 250") && last.contains("rel=\"prev\" href=\"/?page=2\""));
    assert!(!last.contains("rel=\"next\""));
    // Every peer is on exactly one page.
    let mut all = shown;
    all.extend(rows(&page("?page=2").await));
    all.extend(rows(&last));
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 250);

    let d = page("?state=down").await;
    assert_eq!(rows(&d), down);
    assert!(d.contains("aria-current=\"page\">Down (25)"));
    let found = page("?q=NODE-042").await;
    assert_eq!(rows(&found), ["p042"]);
    assert!(found.contains("value=\"NODE-042\""));
    let none = page("?q=%3Cscript%3E").await;
    assert!(none.contains("No node matches") && !none.contains("<script>"));
    // Unknown values show everything rather than an error page.
    assert_eq!(rows(&page("?state=sideways&page=x").await).len(), 100);
}
