//! Alerts end to end: the real binary probing real EasyTier nodes, sending to a real HTTP
//! receiver on loopback.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use easytier_probe::testkit::{LocalNode, Received, Receiver};
use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::common::{bin, http, node, peer_entry, stop_node, wait_for, ServeProcess};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "alerts::a_peer_that_stops_fires_once_and_resolves_once",
            fires_once_resolves_once,
        ),
        trial(
            "alerts::a_failing_receiver_and_kill_9_still_deliver",
            redelivered_after_kill_9,
        ),
        trial(
            "alerts::most_peers_down_at_once_is_one_isolation_message",
            isolation,
        ),
        trial("alerts::a_silenced_change_is_recorded_not_sent", silenced),
    ]
}

/// The path part of the webhook URL: stands in for a token a real webhook URL carries.
const URL_TOKEN: &str = "hook-t0k3n-8f2c";
const ADMIN: &str = "admin-t0k3n-77";

fn write_peers(dir: &Path, entries: &[Value]) -> std::path::PathBuf {
    let path = dir.join("peers.json");
    std::fs::write(&path, Value::Array(entries.to_vec()).to_string()).unwrap();
    path
}

/// `serve` on `data` with 1 s sweeps, thresholds `thresholds`, sending to `hook`.
fn serve_cmd(
    dir: &Path,
    peers: &Path,
    hook: &str,
    thresholds: (u32, u32),
) -> std::process::Command {
    let mut c = bin(dir);
    c.env("DATA_DIR", dir.join("data"))
        .env("PEERS_FILE", peers)
        .env("HEALTH_CHECK_INTERVAL", "1")
        .env("NOTIFY_INTERVAL", "1")
        .env("NOTIFY_URLS", hook)
        .env("NOTIFY_FAILURE_THRESHOLD", thresholds.0.to_string())
        .env("NOTIFY_SUCCESS_THRESHOLD", thresholds.1.to_string())
        .env("PROBE_NAME", "e2e-probe")
        .env("ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "info")
        .arg("serve");
    c
}

/// The alerts of every delivered webhook body: (alertname, peer_id, status).
fn delivered_alerts(r: &Receiver) -> Vec<(String, String, String)> {
    r.delivered()
        .iter()
        .flat_map(|m| m.json()["alerts"].as_array().cloned().unwrap_or_default())
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                a["labels"]["peer_id"].as_str().unwrap_or("").to_string(),
                a["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Checks a body against Alertmanager's webhook payload, version 4.
fn assert_webhook_v4(m: &Received) {
    let b = m.json();
    assert_eq!(b["version"], "4", "{b}");
    for key in ["groupKey", "status", "receiver", "externalURL"] {
        assert!(b[key].is_string(), "{key}: {b}");
    }
    for key in ["groupLabels", "commonLabels", "commonAnnotations"] {
        assert!(b[key].is_object(), "{key}: {b}");
    }
    assert!(b["truncatedAlerts"].is_u64(), "{b}");
    for a in b["alerts"].as_array().expect("alerts") {
        for key in [
            "status",
            "startsAt",
            "endsAt",
            "generatorURL",
            "fingerprint",
        ] {
            assert!(a[key].is_string(), "{key}: {a}");
        }
        assert!(
            a["labels"].is_object() && a["annotations"].is_object(),
            "{a}"
        );
    }
}

/// Nothing of the webhook URL's token or the admin token in what the probe shows.
async fn assert_no_secrets(serve: &ServeProcess) {
    let mut shown = serve.log();
    for path in [
        "/api/alerts",
        "/metrics",
        "/api/jobs",
        "/api/jobs/notify/runs",
        "/",
        "/health",
    ] {
        let (_, body) = serve.get(path).await;
        shown.push_str(&body.to_string());
    }
    for secret in [URL_TOKEN, ADMIN] {
        assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
    }
}

async fn fires_once_resolves_once() {
    let a = node("alert-a", "alerts", "s", &["tcp"]).await;
    let b = node("alert-b", "alerts", "s", &["tcp"]).await;
    let listeners = a.listeners.clone();
    let receiver = Receiver::default();
    let hook = format!("{}/{URL_TOKEN}", receiver.start().await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let peers = write_peers(
        dir.path(),
        &[
            peer_entry(json!("a"), "tcp", a.port("tcp"), "alerts", Some("s")),
            peer_entry(json!("b"), "tcp", b.port("tcp"), "alerts", Some("s")),
        ],
    );
    let serve = ServeProcess::start(serve_cmd(dir.path(), &peers, &hook, (2, 2)), dir.path()).await;
    let both_up = wait_for(Duration::from_secs(20), || async {
        let (_, n) = serve.get("/api/nodes").await;
        n["data"]["items"]
            .as_array()
            .is_some_and(|i| i.len() == 2 && i.iter().all(|p| p["up"] == true))
    })
    .await;
    assert!(both_up, "{}", serve.log());

    stop_node(a).await;
    let fired = wait_for(Duration::from_secs(30), || async {
        !receiver.delivered().is_empty()
    })
    .await;
    assert!(fired, "no firing message; log:\n{}", serve.log());
    let firing = receiver.delivered()[0].clone();
    assert_webhook_v4(&firing);
    assert_eq!(
        delivered_alerts(&receiver),
        [("PeerDown".into(), "a".into(), "firing".into())]
    );
    // Fired after the second failed check: two down checks in the peer's recent history.
    let (_, alerts) = serve.get("/api/alerts").await;
    let fired_at = alerts["data"]["recent"][0]["at"]
        .as_str()
        .unwrap()
        .to_string();
    let started = alerts["data"]["recent"][0]["started_at"]
        .as_str()
        .unwrap()
        .to_string();
    let (fired_at, started) = (parse(&fired_at), parse(&started));
    let gap = (fired_at - started).num_milliseconds();
    assert!(
        (500..=6000).contains(&gap),
        "fired {gap} ms after the first failed check"
    );
    println!(
        "delivery latency, failing check -> receiver: {} ms",
        (firing.at - fired_at).num_milliseconds()
    );
    let (code, page) = http(reqwest::Client::new().get(format!("{}/", serve.base))).await;
    assert_eq!(code, 200);
    let page = page.as_str().unwrap();
    assert!(page.contains("class=\"alert\""), "the status page marks it");
    assert!(
        page.contains("id=\"peer-a\""),
        "alerts link to the peer's row"
    );

    let a = tokio::task::spawn_blocking(move || {
        LocalNode::start_on("alert-a", "alerts", "s", &listeners)
    })
    .await
    .unwrap()
    .unwrap();
    let resolved = wait_for(Duration::from_secs(30), || async {
        receiver.delivered().len() >= 2
    })
    .await;
    assert!(resolved, "no resolved message; log:\n{}", serve.log());
    // A few more sweeps: nothing else arrives.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        delivered_alerts(&receiver),
        [
            ("PeerDown".into(), "a".into(), "firing".into()),
            ("PeerDown".into(), "a".into(), "resolved".into())
        ]
    );
    assert_webhook_v4(&receiver.delivered()[1]);
    assert!(receiver
        .delivered()
        .iter()
        .all(|m| m.uri.path() == format!("/{URL_TOKEN}") && m.method == "POST"));
    assert_no_secrets(&serve).await;
    stop_node(a).await;
    stop_node(b).await;
}

fn parse(t: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc()
}

async fn redelivered_after_kill_9() {
    let up = node("redeliver-up", "alerts", "s", &["tcp"]).await;
    let dead = easytier_probe::testkit::free_port();
    let receiver = Receiver::default();
    receiver.set_status(500);
    let hook = format!("{}/{URL_TOKEN}", receiver.start().await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let peers = write_peers(
        dir.path(),
        &[
            peer_entry(json!("up"), "tcp", up.port("tcp"), "alerts", Some("s")),
            peer_entry(json!("dead"), "tcp", dead, "alerts", Some("s")),
        ],
    );
    let mut serve =
        ServeProcess::start(serve_cmd(dir.path(), &peers, &hook, (1, 1)), dir.path()).await;
    let tried = wait_for(Duration::from_secs(30), || async {
        !receiver.all().is_empty()
    })
    .await;
    assert!(tried, "no delivery attempt; log:\n{}", serve.log());
    let (_, alerts) = serve.get("/api/alerts").await;
    let dest = &alerts["data"]["destinations"][0];
    assert_eq!(dest["destination"], "webhook#1", "{alerts}");
    assert!(
        dest["last_error"].as_str().unwrap().contains("HTTP 500"),
        "{alerts}"
    );
    assert_eq!(alerts["data"]["outbox"]["depth"], 1, "{alerts}");
    // A notify run that failed is recorded (and flushed) before the kill.
    let recorded = wait_for(Duration::from_secs(20), || async {
        let (_, runs) = serve.get("/api/jobs/notify/runs").await;
        runs["data"]["items"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["outcome"] == "failed"))
    })
    .await;
    assert!(recorded, "{}", serve.log());
    assert_no_secrets(&serve).await;
    let mut child = serve.child.take().unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    receiver.set_status(200);
    let serve = ServeProcess::start(serve_cmd(dir.path(), &peers, &hook, (1, 1)), dir.path()).await;
    let delivered = wait_for(Duration::from_secs(30), || async {
        !receiver.delivered().is_empty()
    })
    .await;
    assert!(
        delivered,
        "not delivered after the restart; log:\n{}",
        serve.log()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut pairs: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for m in receiver.delivered() {
        for a in m.json()["alerts"].as_array().unwrap() {
            let key = (
                a["fingerprint"].as_str().unwrap().to_string(),
                a["labels"]["peer_id"].as_str().unwrap().to_string(),
                a["status"].as_str().unwrap().to_string(),
            );
            *pairs.entry(key).or_default() += 1;
        }
    }
    assert!(
        pairs
            .keys()
            .any(|(_, peer, status)| peer == "dead" && status == "firing"),
        "{pairs:?}"
    );
    assert!(
        pairs.values().all(|n| *n <= 2),
        "delivered more than twice: {pairs:?}"
    );
    assert!(pairs.keys().all(|(_, peer, _)| peer == "dead"), "{pairs:?}");
    let (_, alerts) = serve.get("/api/alerts").await;
    assert_eq!(alerts["data"]["outbox"]["depth"], 0, "{alerts}");
    let (_, metrics) = http(reqwest::Client::new().get(format!("{}/metrics", serve.base))).await;
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains(
            "easytier_probe_notifications_total{destination=\"webhook#1\",outcome=\"failed\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("easytier_probe_alerts_firing{alertname=\"PeerDown\"} 1"),
        "{metrics}"
    );
    assert_no_secrets(&serve).await;
    stop_node(up).await;
}

async fn isolation() {
    let many = node("iso-many", "alerts", "s", &["tcp"]).await;
    let few = node("iso-few", "alerts", "s", &["tcp"]).await;
    let receiver = Receiver::default();
    let hook = receiver.start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Ten peers: eight entries for one node, two for the other; the first node stops.
    let entries: Vec<Value> = (0..10)
        .map(|i| {
            let port = if i < 8 {
                many.port("tcp")
            } else {
                few.port("tcp")
            };
            peer_entry(json!(format!("p{i}")), "tcp", port, "alerts", Some("s"))
        })
        .collect();
    let peers = write_peers(dir.path(), &entries);
    let serve = ServeProcess::start(serve_cmd(dir.path(), &peers, &hook, (2, 2)), dir.path()).await;
    let all_up = wait_for(Duration::from_secs(30), || async {
        let (_, n) = serve.get("/api/nodes").await;
        n["data"]["items"]
            .as_array()
            .is_some_and(|i| i.len() == 10 && i.iter().all(|p| p["up"] == true))
    })
    .await;
    assert!(all_up, "{}", serve.log());
    stop_node(many).await;
    let fired = wait_for(Duration::from_secs(30), || async {
        !receiver.delivered().is_empty()
    })
    .await;
    assert!(fired, "no message; log:\n{}", serve.log());
    // Several more sweeps with the eight still down: still only the one message.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        delivered_alerts(&receiver),
        [("ProbeIsolated".into(), "".into(), "firing".into())],
        "{}",
        serve.log()
    );
    let (_, alerts) = serve.get("/api/alerts").await;
    assert_eq!(
        alerts["data"]["firing"][0]["alertname"], "ProbeIsolated",
        "{alerts}"
    );
    stop_node(few).await;
}

async fn silenced() {
    let dead = easytier_probe::testkit::free_port();
    let receiver = Receiver::default();
    let hook = receiver.start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let peers = write_peers(
        dir.path(),
        &[peer_entry(json!("quiet"), "tcp", dead, "alerts", Some("s"))],
    );
    // Thresholds high enough that the silence is in place before the alert could fire.
    let mut c = serve_cmd(dir.path(), &peers, &hook, (3, 1));
    c.env("HEALTH_CHECK_INTERVAL", "1");
    let serve = ServeProcess::start(c, dir.path()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/silences", serve.base);
    let body =
        json!({"matchers": {"peer_id": "quiet"}, "duration": "1h", "comment": "maintenance"});
    let (code, _) = http(client.post(&url).json(&body)).await;
    assert_eq!(code, 401, "no token, no silence");
    let (code, made) = http(client.post(&url).bearer_auth(ADMIN).json(&body)).await;
    assert_eq!(code, 201, "{made}");
    let id = made["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(made["data"]["active"], true);
    let (code, bad) = http(
        client
            .post(&url)
            .bearer_auth(ADMIN)
            .json(&json!({"matchers": {"host": "x"}, "duration": "1h"})),
    )
    .await;
    assert_eq!(code, 400, "{bad}");

    let recorded = wait_for(Duration::from_secs(30), || async {
        let (_, a) = serve.get("/api/alerts").await;
        a["data"]["recent"][0]["fate"] == "silenced"
    })
    .await;
    assert!(
        recorded,
        "the change is not recorded; log:\n{}",
        serve.log()
    );
    let (_, a) = serve.get("/api/alerts").await;
    assert_eq!(a["data"]["recent"][0]["silence"], id.as_str(), "{a}");
    assert_eq!(a["data"]["firing"][0]["peer_id"], "quiet", "{a}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(receiver.all().is_empty(), "a silenced change was sent");

    let (_, list) = serve.get("/api/silences").await;
    assert_eq!(list["data"]["items"][0]["id"], id.as_str());
    let gone = format!("{url}/{id}");
    let (code, _) = http(client.delete(&gone)).await;
    assert_eq!(code, 401);
    let (code, _) = http(client.delete(&gone).bearer_auth(ADMIN)).await;
    assert_eq!(code, 200);
    let (code, _) = http(client.delete(&gone).bearer_auth(ADMIN)).await;
    assert_eq!(code, 404);
}
