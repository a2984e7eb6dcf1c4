//! `serve` and `run-job` as processes: exit codes, the control channel, the HTTP API, and a
//! graceful shutdown that reports `Offline`.

use std::time::{Duration, Instant};

use easytier_probe::store::Store;
use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::common::{
    backend, bin, http, node, output, peer_entry, stderr, stdout_json, stop_node, wait_for,
    ServeProcess,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "run_job::exit_2_names_the_setting",
            exit_2_names_the_setting,
        ),
        trial(
            "run_job::exit_1_when_the_job_fails",
            exit_1_when_the_job_fails,
        ),
        trial(
            "run_job::exit_75_when_the_store_stays_busy",
            exit_75_when_busy,
        ),
        trial(
            "run_job::runs_through_a_serve_holding_the_store",
            beside_serve,
        ),
        trial(
            "serve::routes_admin_trigger_and_offline_on_sigterm",
            serve_routes_and_sigterm,
        ),
        trial(
            "build::vendored_protoc_runs_without_protoc_on_path",
            vendored_protoc,
        ),
        trial("demo::probes_its_nodes_and_stops_on_ctrl_c", demo),
        trial("serve::slow_clients_are_cut_off", slow_clients),
        trial("control::another_user_cannot_run_jobs", another_user)
            // Switching users needs root (and setpriv, from util-linux).
            .with_ignored_flag(
                unsafe { libc::geteuid() } != 0
                    || !std::path::Path::new("/usr/bin/setpriv").exists(),
            ),
    ]
}

async fn exit_2_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    // (arguments, environment, what stderr must name)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["run-job", "peer-fetch"],
            vec![("DISTRIBUTED_MODE_ENABLED", "true"), ("NODE_TOKEN", "t")],
            "BACKEND_BASE_URL",
        ),
        (
            vec!["run-job", "peer-fetch"],
            vec![
                ("DISTRIBUTED_MODE_ENABLED", "true"),
                ("BACKEND_BASE_URL", "http://127.0.0.1:9"),
            ],
            "NODE_TOKEN",
        ),
        (
            vec!["run-job", "probe-sweep", "--health-check-interval", "0"],
            vec![],
            "HEALTH_CHECK_INTERVAL",
        ),
        (
            vec!["run-job", "status-report"],
            vec![],
            "status-report needs a backend",
        ),
        (vec!["run-job", "peer-fetch"], vec![], "PEERS_FILE"),
        (vec!["run-job", "no-such-job"], vec![], "no-such-job"),
        (
            vec!["run-job", "peer-fetch", "--wait", "soon"],
            vec![],
            "--wait",
        ),
    ];
    for (args, env, needle) in cases {
        let mut c = bin(dir.path());
        c.env("DATA_DIR", dir.path().join("data"))
            .args(&args)
            .envs(env);
        let o = output(c).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty());
    }
    // A .env in the working directory is read, and the environment wins over it.
    std::fs::write(
        dir.path().join(".env"),
        "DISTRIBUTED_MODE_ENABLED=true\nNODE_TOKEN=t\n",
    )
    .unwrap();
    let mut c = bin(dir.path());
    c.args(["run-job", "peer-fetch"]);
    let o = output(c).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("BACKEND_BASE_URL"), "{}", stderr(&o));
    let mut c = bin(dir.path());
    c.env("DISTRIBUTED_MODE_ENABLED", "false")
        .args(["run-job", "peer-fetch"]);
    let o = output(c).await;
    assert!(stderr(&o).contains("PEERS_FILE"), "{}", stderr(&o));
}

async fn exit_1_when_the_job_fails() {
    let dir = tempfile::tempdir().unwrap();
    let peers = dir.path().join("peers.json");
    std::fs::write(&peers, "[{\"id\": 1, \"host\": ").unwrap();
    let mut c = bin(dir.path());
    c.env("DATA_DIR", dir.path().join("data"))
        .env("PEERS_FILE", &peers)
        .args(["run-job", "peer-fetch", "--json"]);
    let o = output(c).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let j = stdout_json(&o);
    assert_eq!(j["outcome"], "failed");
    assert!(j["error"].as_str().unwrap().contains("peers.json"));
    assert!(stderr(&o).contains("malformed"), "{}", stderr(&o));
    // The failed run is recorded.
    let store = Store::open(&dir.path().join("data"), "test").unwrap();
    let runs = store.runs("peer-fetch", 5).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].outcome.as_str(), "failed");
}

async fn exit_75_when_busy() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let holder = Store::open(&data, "a test holding the store").unwrap();
    let mut c = bin(dir.path());
    c.env("DATA_DIR", &data)
        .args(["run-job", "probe-sweep", "--wait", "1s"]);
    let start = Instant::now();
    let o = output(c).await;
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert!(start.elapsed() < Duration::from_secs(10));
    let err = stderr(&o);
    assert!(err.contains("a test holding the store"), "{err}");
    assert!(
        !err.to_lowercase().contains("could not acquire lock"),
        "{err}"
    );
    // --busy-ok (the Nomad jobs'): the same wait and reason, then exit 0, saying why.
    let mut c = bin(dir.path());
    c.env("DATA_DIR", &data)
        .args(["run-job", "probe-sweep", "--wait", "1s", "--busy-ok"]);
    let o = output(c).await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("a test holding the store"), "{err}");
    assert!(err.contains("exit 0 rather than 75 (--busy-ok)"), "{err}");

    // Released within --wait: the run goes ahead.
    let mut c = bin(dir.path());
    c.env("DATA_DIR", &data)
        .args(["run-job", "probe-sweep", "--wait", "20s"]);
    let spawned = Instant::now();
    let child = std::thread::spawn(move || c.output().unwrap());
    tokio::time::sleep(Duration::from_millis(2000)).await;
    drop(holder);
    let o = tokio::task::spawn_blocking(move || child.join().unwrap())
        .await
        .unwrap();
    // It ran (and failed: no peer list yet), which is exit 1, not 75...
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("no stored peer list"), "{}", stderr(&o));
    // ...and only after the store was released: it waited (a run on a free store takes ms).
    assert!(
        spawned.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        spawned.elapsed()
    );
}

async fn beside_serve() {
    let n = node("beside", "net-b", "sec-b", &["tcp", "wg"]).await;
    let dir = tempfile::tempdir().unwrap();
    let peers = dir.path().join("peers.toml");
    std::fs::write(
        &peers,
        format!(
            "[[peers]]\nid = 1\nname = \"b tcp\"\nhost = \"127.0.0.1\"\nport = {}\nprotocol = \"tcp\"\nnetwork_name = \"net-b\"\n\n\
             [[peers]]\nid = 2\nname = \"b wg\"\nhost = \"localhost\"\nport = {}\nprotocol = \"wg\"\nnetwork_name = \"net-b\"\n",
            n.port("tcp"),
            n.port("wg")
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let env = |c: &mut std::process::Command| {
        c.env("DATA_DIR", &data)
            .env("PEERS_FILE", &peers)
            .env("NETWORK_SECRET", "sec-b");
    };
    let mut c = bin(dir.path());
    env(&mut c);
    c.args(["serve", "--no-schedule"]);
    let mut serve = ServeProcess::start(c, dir.path()).await;

    // Nothing is scheduled: no runs appear by themselves.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, runs) = serve.get("/api/jobs/peer-fetch/runs").await;
    assert_eq!(runs["data"]["items"], json!([]));

    for job in ["peer-fetch", "probe-sweep"] {
        let mut c = bin(dir.path());
        env(&mut c);
        c.args(["run-job", job, "--json"]);
        let o = output(c).await;
        assert_eq!(
            o.status.code(),
            Some(0),
            "{job}: {}\nserve log:\n{}",
            stderr(&o),
            serve.log()
        );
        assert_eq!(stdout_json(&o)["outcome"], "ok");
    }
    let (code, body) = serve.get("/api/jobs/probe-sweep/runs").await;
    assert_eq!(code, 200);
    let items = body["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["trigger"], "cli");
    assert_eq!(items[0]["summary"]["reachable"], 2, "{}", items[0]);

    // `jobs` reads the last runs through the serve that holds the store.
    let mut c = bin(dir.path());
    env(&mut c);
    c.arg("jobs");
    let o = output(c).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let listing = String::from_utf8_lossy(&o.stdout).to_string();
    let sweep_line = listing
        .lines()
        .find(|l| l.starts_with("probe-sweep"))
        .unwrap_or("");
    assert!(
        sweep_line.contains("every 5s") && sweep_line.contains("forbid"),
        "{listing}"
    );
    assert!(
        sweep_line.contains(" ok (") && sweep_line.contains("cli"),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("status-report") && l.contains("never")),
        "{listing}"
    );

    // `jobs --json`: the items of /api/jobs, the last runs read through serve as well.
    let mut c = bin(dir.path());
    env(&mut c);
    c.args(["jobs", "--json"]);
    let o = output(c).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let listed = stdout_json(&o);
    let (_, api) = serve.get("/api/jobs").await;
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["name"].to_string())
            .collect()
    };
    assert_eq!(names(&listed), names(&api["data"]), "{listed}");
    let sweep = &listed["items"][1];
    assert_eq!(sweep["name"], "probe-sweep", "{listed}");
    assert_eq!(sweep["overlap"], "forbid", "{listed}");
    assert_eq!(sweep["last_run"]["outcome"], "ok", "{listed}");
    assert_eq!(sweep["last_run"]["trigger"], "cli", "{listed}");
    assert!(listed["items"][2]["last_run"].is_null(), "{listed}");
    assert!(listed["last_runs_unavailable"].is_null(), "{listed}");

    // `healthcheck` reads /health on LISTEN_ADDR (0.0.0.0 read on loopback): serve answers.
    let port = serve.base.rsplit(':').next().unwrap().to_string();
    let healthcheck = |listen: String| {
        let mut c = bin(dir.path());
        c.env("LISTEN_ADDR", listen).arg("healthcheck");
        c
    };
    for listen in [format!("127.0.0.1:{port}"), format!("0.0.0.0:{port}")] {
        let o = output(healthcheck(listen.clone())).await;
        assert_eq!(
            o.status.code(),
            Some(0),
            "{listen}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        assert!(
            String::from_utf8_lossy(&o.stdout).starts_with("healthy"),
            "{listen}"
        );
    }

    // Triggering over the API is off without an admin token.
    let (code, body) =
        http(reqwest::Client::new().post(format!("{}/api/jobs/probe-sweep/run", serve.base))).await;
    assert_eq!(code, 403);
    assert_eq!(body["code"], 403);

    let status = serve.terminate(Duration::from_secs(15)).await;
    // Nothing answers once serve is gone: unhealthy, exit 1.
    let o = output(healthcheck(format!("127.0.0.1:{port}"))).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("does not answer"));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", serve.log());
    stop_node(n).await;
}

const NODE_TOKEN: &str = "node-secret-Zq81";
const ADMIN_TOKEN: &str = "admin-secret-Xk27";
const NET_SECRET: &str = "net-secret-Pw55";
const API_KEY: &str = "api-secret-Qm63";
/// The token a webhook URL carries in its path, and an ntfy password.
const HOOK_TOKEN: &str = "hook-secret-Hd44";
const NTFY_PASSWORD: &str = "ntfy-secret-Lm90";

/// Fails if any of the secrets above appears in `text`.
fn assert_no_secret(what: &str, text: &str) {
    for secret in [
        NODE_TOKEN,
        ADMIN_TOKEN,
        NET_SECRET,
        API_KEY,
        HOOK_TOKEN,
        NTFY_PASSWORD,
    ] {
        assert!(!text.contains(secret), "{what} contains a secret:\n{text}");
    }
}

async fn serve_routes_and_sigterm() {
    let n = node("serve", "net-c", NET_SECRET, &["tcp", "udp"]).await;
    let (b, url) = backend(vec![
        peer_entry(json!(1), "tcp", n.port("tcp"), "net-c", Some(NET_SECRET)),
        peer_entry(json!(2), "udp", n.port("udp"), "net-c", Some("wrong")),
    ])
    .await;
    // Alerts go to a webhook and an ntfy server (both a receiver on loopback), with secrets in
    // their URLs; peer 2 (wrong secret) is down, so its alert fires at once and is delivered.
    let receiver = easytier_probe::testkit::Receiver::default();
    let receiver_url = receiver.start().await.unwrap();
    let ntfy_host = receiver_url.trim_start_matches("http://");
    let notify_urls = format!(
        "{receiver_url}/{HOOK_TOKEN}, ntfy://probe:{NTFY_PASSWORD}@{ntfy_host}/alerts?scheme=http"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut c = bin(dir.path());
    c.env("DISTRIBUTED_MODE_ENABLED", "true")
        .env("BACKEND_BASE_URL", &url)
        .env("NODE_TOKEN", NODE_TOKEN)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("NOTIFY_URLS", &notify_urls)
        .env("NOTIFY_FAILURE_THRESHOLD", "1")
        .env("RUST_LOG", "debug,easytier=off")
        .env("DATA_DIR", dir.path().join("data"))
        .env("HEALTH_CHECK_INTERVAL", "1")
        // Peer 2 takes the whole timeout: with the default 3 s the sweeps could not keep to the
        // 1 s interval, and /health would rightly say degraded.
        .env("PROBE_TIMEOUT", "500ms")
        .env("STATUS_REPORT_INTERVAL", "2")
        .env("REGION", "eu");
    let mut serve = ServeProcess::start(c, dir.path()).await;

    let ready = wait_for(Duration::from_secs(20), || async {
        let (_, h) = serve.get("/health").await;
        h["data"]["jobs"]["probe-sweep"]["last_outcome"] == "ok"
            && h["data"]["jobs"]["status-report"]["last_outcome"] == "ok"
    })
    .await;
    assert!(ready, "{}", serve.log());
    let notified = wait_for(Duration::from_secs(20), || async {
        receiver.delivered().len() >= 2
    })
    .await;
    assert!(
        notified,
        "no alert delivered to both; log:\n{}",
        serve.log()
    );

    let (code, h) = serve.get("/health").await;
    assert_eq!(code, 200);
    assert_eq!(h["code"], 200);
    assert!(h["message"].is_string());
    let d = &h["data"];
    assert_eq!(d["status"], "ok", "{d}");
    assert_eq!(d["version"], env!("CARGO_PKG_VERSION"));
    assert!(d["uptime_s"].is_u64());
    assert_eq!(d["peers"], 2);
    for job in ["peer-fetch", "probe-sweep", "status-report"] {
        assert!(d["jobs"][job]["last_run_at"].is_string(), "{job}: {d}");
    }

    let (code, nodes) = serve.get("/api/nodes").await;
    assert_eq!(code, 200);
    assert_eq!(nodes["data"]["total"], 2);
    let items = nodes["data"]["items"].as_array().unwrap();
    let one = items.iter().find(|i| i["id"] == "1").unwrap();
    for field in [
        "name",
        "host",
        "port",
        "protocol",
        "network_name",
        "last_checked_at",
    ] {
        assert!(!one[field].is_null(), "{field}: {one}");
    }
    assert_eq!(one["up"], true);
    assert!(one["rtt_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(one["error_kind"], Value::Null);
    assert_eq!(one["uptime"]["1h"], 100.0);
    let two = items.iter().find(|i| i["id"] == "2").unwrap();
    assert_eq!(two["up"], false);
    assert!(two["error_kind"].is_string());
    assert_eq!(two["uptime"]["24h"], 0.0);

    let (code, health) = serve.get("/api/nodes/1/health?window=1h").await;
    assert_eq!(code, 200);
    let d = &health["data"];
    assert_eq!(d["id"], "1");
    assert_eq!(d["window"], "1h");
    assert!(d["stats"]["checks"].as_u64().unwrap() >= 1);
    assert_eq!(d["stats"]["checks"], d["stats"]["up"]);
    assert_eq!(d["stats"]["loss_pct"], 0.0);
    assert!(d["stats"]["rtt_ms"]["p95"].as_f64().unwrap() > 0.0);
    assert!(!d["series"].as_array().unwrap().is_empty());
    for window in ["24h", "7d", "30d"] {
        let (code, _) = serve
            .get(&format!("/api/nodes/1/health?window={window}"))
            .await;
        assert_eq!(code, 200, "{window}");
    }
    let (code, bad) = serve.get("/api/nodes/1/health?window=2d").await;
    assert_eq!((code, bad["code"].clone()), (400, json!(400)));
    let (code, missing) = serve.get("/api/nodes/nope/health").await;
    assert_eq!((code, missing["code"].clone()), (404, json!(404)));
    assert_eq!(missing["data"], Value::Null);
    let (code, missing) = serve.get("/no/such/route").await;
    assert_eq!((code, missing["code"].clone()), (404, json!(404)));

    let (code, jobs) = serve.get("/api/jobs").await;
    assert_eq!(code, 200);
    let items = jobs["data"]["items"].as_array().unwrap();
    // peer-fetch, probe-sweep, status-report and notify.
    assert_eq!(items.len(), 4);
    let sweep = items.iter().find(|i| i["name"] == "probe-sweep").unwrap();
    assert_eq!(sweep["schedule"], "every 1s");
    assert_eq!(sweep["overlap"], "forbid");
    assert!(sweep["timeout_s"].as_u64().unwrap() > 0);
    assert!(sweep["next_run_at"].is_string(), "{sweep}");
    assert!(sweep["last_run"]["id"].is_u64());

    let (code, runs) = serve.get("/api/jobs/probe-sweep/runs?limit=2").await;
    assert_eq!(code, 200);
    let runs = runs["data"]["items"].as_array().unwrap();
    assert!(!runs.is_empty() && runs.len() <= 2);
    if runs.len() == 2 {
        assert!(
            runs[0]["id"].as_u64() > runs[1]["id"].as_u64(),
            "newest first"
        );
    }
    for field in [
        "id",
        "job",
        "trigger",
        "started_at",
        "duration_ms",
        "outcome",
        "summary",
        "error",
    ] {
        assert!(runs[0].get(field).is_some(), "{field}");
    }
    let (code, _) = serve.get("/api/jobs/probe-sweep/runs?limit=zero").await;
    assert_eq!(code, 400);
    let (code, _) = serve.get("/api/jobs/nope/runs").await;
    assert_eq!(code, 404);

    let post = |token: Option<&str>| {
        let mut r = reqwest::Client::new().post(format!("{}/api/jobs/peer-fetch/run", serve.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        http(r)
    };
    assert_eq!(post(None).await.0, 401);
    assert_eq!(post(Some("admin-secret-Xk2")).await.0, 401);
    let (code, run) = post(Some(ADMIN_TOKEN)).await;
    assert_eq!(code, 200, "{run}");
    assert_eq!(run["data"]["trigger"], "api");
    assert_eq!(run["data"]["outcome"], "ok");
    let (code, big) = http(
        reqwest::Client::new()
            .post(format!("{}/api/jobs/peer-fetch/run", serve.base))
            .bearer_auth(ADMIN_TOKEN)
            .body(vec![b'x'; 200_000]),
    )
    .await;
    assert_eq!((code, big["code"].clone()), (413, json!(413)));

    let metrics = reqwest::get(format!("{}/metrics", serve.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "easytier_probe_peer_up{id=\"1\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(|l| l
            .starts_with("easytier_probe_peer_info{id=\"1\",name=\"peer 1\",host=\"127.0.0.1\",")
            && l.contains(",protocol=\"tcp\",")),
        "{metrics}"
    );
    assert!(
        metrics.contains("easytier_probe_probe_info{name=") && metrics.contains("region=\"eu\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("easytier_probe_peer_checks_total{id=\"1\",result=\"up\"}"));
    assert!(
        metrics.contains("process_resident_memory_bytes "),
        "{metrics}"
    );
    assert!(
        metrics.contains("easytier_probe_peer_up{id=\"2\""),
        "{metrics}"
    );
    assert!(metrics.contains("easytier_probe_peer_rtt_seconds{id=\"1\""));
    assert!(metrics.contains("easytier_probe_job_runs_total{job=\"probe-sweep\",outcome=\"ok\"}"));
    assert!(
        metrics.contains("easytier_probe_job_last_success_timestamp_seconds{job=\"peer-fetch\"}")
    );

    // A real Prometheus text-format parser reads it, and its values agree with the API.
    // Every family with HELP and TYPE, counters in `_total`, promtool content, the join.
    let scrape = crate::prometheus::prometheus_scrape(&metrics);
    let (_, nodes_now) = serve.get("/api/nodes").await;
    for id in ["1", "2"] {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == "easytier_probe_peer_up" && s.labels.get("id") == Some(id))
            .unwrap_or_else(|| panic!("no easytier_probe_peer_up for {id}"));
        let expected = nodes_now["data"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .unwrap()["up"]
            == true;
        assert!(
            matches!(sample.value, prometheus_parse::Value::Gauge(v) if v == f64::from(u8::from(expected))),
            "{id}: {:?}",
            sample.value
        );
    }
    let runs_total = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "easytier_probe_job_runs_total"
                && s.labels.get("job") == Some("probe-sweep")
                && s.labels.get("outcome") == Some("ok")
        })
        .expect("a probe-sweep ok counter");
    assert!(
        matches!(runs_total.value, prometheus_parse::Value::Counter(v) if v >= 1.0),
        "{:?}",
        runs_total.value
    );
    assert!(page_has_bar(
        &reqwest::get(format!("{}/", serve.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    ));

    let page = reqwest::get(format!("{}/", serve.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("peer 1") && page.contains("peer 2"));
    assert!(page.contains(">up<") && page.contains(">down<"));
    for route in [
        "/health",
        "/api/nodes",
        "/api/nodes/1/health?window=1h",
        "/api/jobs",
        "/api/jobs/peer-fetch/runs",
        "/api/jobs/probe-sweep/runs",
        "/api/jobs/status-report/runs",
        "/api/jobs/notify/runs",
        "/api/alerts",
        "/api/silences",
    ] {
        let (_, body) = serve.get(route).await;
        assert_no_secret(route, &body.to_string());
    }
    assert_no_secret("/metrics", &metrics);
    assert_no_secret("/", &page);

    let puts_before = b.recorded().iter().filter(|r| r.method == "PUT").count();
    assert!(puts_before >= 1);
    let status = serve.terminate(Duration::from_secs(15)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", serve.log());
    let log = serve.log();
    assert!(log.contains("DEBUG"), "the log has no debug lines:\n{log}");
    assert_no_secret("the serve log", &log);
    let mut c = bin(dir.path());
    c.env("NODE_TOKEN", NODE_TOKEN)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("NETWORK_SECRET", NET_SECRET)
        .env("NOTIFY_URLS", &notify_urls)
        .arg("--help");
    let help = output(c).await;
    assert!(help.status.success());
    assert_no_secret("--help", &String::from_utf8_lossy(&help.stdout));
    let last = b
        .recorded()
        .into_iter()
        .rfind(|r| r.method == "PUT")
        .unwrap();
    let body = last.body.unwrap();
    assert_eq!(body["status"], "Offline");
    assert_eq!(last.headers["x-node-token"], NODE_TOKEN);
    assert_eq!(body["metadata"]["region"], "eu");
    // JSON logs and `run-job --json` output carry no secret either.
    for job in ["peer-fetch", "status-report", "notify"] {
        let mut c = bin(dir.path());
        c.env("DISTRIBUTED_MODE_ENABLED", "true")
            .env("BACKEND_BASE_URL", &url)
            .env("NODE_TOKEN", NODE_TOKEN)
            .env("API_KEY", API_KEY)
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("NETWORK_SECRET", NET_SECRET)
            .env("NOTIFY_URLS", &notify_urls)
            .env("DATA_DIR", dir.path().join("data"))
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "debug,easytier=off")
            .args(["run-job", job, "--json"]);
        let o = output(c).await;
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let logs = stderr(&o);
        assert!(!logs.trim().is_empty());
        for line in logs.lines() {
            assert!(
                serde_json::from_str::<Value>(line).is_ok(),
                "not a JSON log line: {line}"
            );
        }
        assert_no_secret("JSON logs", &logs);
        assert_no_secret("run-job --json", &String::from_utf8_lossy(&o.stdout));
    }
    let api_key_used = b.recorded().iter().any(|r| {
        r.headers
            .get("authorization")
            .is_some_and(|v| v == &format!("Bearer {API_KEY}"))
    });
    assert!(api_key_used, "the API key was sent, so it was in play");
    stop_node(n).await;
}

async fn vendored_protoc() {
    let root = env!("CARGO_MANIFEST_DIR");
    let config = std::fs::read_to_string(format!("{root}/.cargo/config.toml")).unwrap();
    assert!(
        config.contains("PROTOC") && config.contains("tools/protoc"),
        "{config}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.proto"),
        "syntax = \"proto3\";\nmessage M { uint32 a = 1; }\n",
    )
    .unwrap();
    let mut c = std::process::Command::new("sh");
    c.arg(format!("{root}/tools/protoc"))
        .arg(format!("-I{}", dir.path().display()))
        .arg(format!(
            "--descriptor_set_out={}",
            dir.path().join("t.desc").display()
        ))
        .arg("t.proto")
        .env_clear()
        // A PATH with the basic tools only: no protoc on it.
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", std::env::var("HOME").unwrap_or_default());
    if let Ok(h) = std::env::var("CARGO_HOME") {
        c.env("CARGO_HOME", h);
    }
    let o = output(c).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::metadata(dir.path().join("t.desc")).unwrap().len() > 0);
}

async fn demo() {
    let dir = tempfile::tempdir().unwrap();
    let port = easytier_probe::testkit::free_port();
    let out_path = dir.path().join("demo.out");
    let mut c = bin(dir.path());
    c.args(["demo", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(dir.path().join("demo.err")).unwrap());
    let mut child = c.spawn().unwrap();
    let out = || std::fs::read_to_string(&out_path).unwrap_or_default();
    let summarised = wait_for(Duration::from_secs(40), || async {
        out().contains(" up, avg ")
    })
    .await;
    assert!(summarised, "no live summary:\n{}", out());
    assert!(
        out().contains(&format!("http://127.0.0.1:{port}/")),
        "{}",
        out()
    );

    let (code, nodes) =
        http(reqwest::Client::new().get(format!("http://127.0.0.1:{port}/api/nodes"))).await;
    assert_eq!(code, 200);
    assert_eq!(nodes["data"]["total"], 12);
    let items = nodes["data"]["items"].as_array().unwrap();
    let state = |id: &str| {
        let i = items.iter().find(|i| i["id"] == id).unwrap();
        (i["up"].clone(), i["error_kind"].clone())
    };
    for id in ["1", "2", "3", "4", "5", "6", "8", "9", "11"] {
        assert_eq!(state(id).0, json!(true), "peer {id}: {:?}", state(id));
    }
    assert_eq!(state("7"), (json!(false), json!("handshake_rejected")));
    assert_eq!(state("10"), (json!(false), json!("connect_refused")));
    assert_eq!(state("12"), (json!(false), json!("unsupported_protocol")));
    // The http peer is up through the URL its page names.
    let page = items.iter().find(|i| i["id"] == "11").unwrap();
    assert_eq!(page["candidates"][0]["up"], true, "{page}");

    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", out());
    assert!(out().contains("the last report was Offline"), "{}", out());
    assert!(
        !out().contains("[server]"),
        "easytier's own notices reached the terminal"
    );
}

async fn slow_clients() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let mut c = bin(dir.path());
    c.env("DATA_DIR", dir.path().join("data"))
        .args(["serve", "--no-schedule"]);
    let serve = ServeProcess::start(c, dir.path()).await;
    let addr = serve.base.trim_start_matches("http://").to_string();
    // Half a request, then silence: the server hangs up once the header timeout passes.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    // Meanwhile the API answers others.
    let (code, _) = serve.get("/health").await;
    assert_eq!(code, 200);
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the slow client was never cut off");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(8) && took < Duration::from_secs(25),
        "{took:?}"
    );
}

async fn another_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    let mut c = bin(dir.path());
    c.env("DATA_DIR", &data).args(["serve", "--no-schedule"]);
    let serve = ServeProcess::start(c, dir.path()).await;
    // Even with the data dir opened up, the store and its control socket stay the owner's.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = data.join("control.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut c = std::process::Command::new("/usr/bin/setpriv");
    c.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        env!("CARGO_BIN_EXE_easytier-probe"),
    ])
    .args(["run-job", "probe-sweep", "--wait", "1s"])
    .env_clear()
    .env("DATA_DIR", &data)
    .current_dir("/");
    let o = output(c).await;
    assert_ne!(
        o.status.code(),
        Some(0),
        "another user ran a job: {}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains(data.to_str().unwrap()),
        "{}",
        stderr(&o)
    );
    let (_, runs) = serve.get("/api/jobs/probe-sweep/runs").await;
    assert_eq!(runs["data"]["items"], json!([]), "no run was recorded");
}

/// The status page shows a 24-cell uptime bar per node.
fn page_has_bar(page: &str) -> bool {
    page.contains("<div class=\"bar\">") && page.matches("<i class=").count() >= 24
}
