//! A probe that never lies: it keeps probing after a stall, says so when it is not probing,
//! records every peer of a sweep that runs out of time, keeps its token from redirects,
//! survives SIGHUP, records a run-job stopped by SIGTERM, and refuses hostile answers in
//! bounded memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use easytier_probe::config::{EmptyEnv, Options, Settings};
use easytier_probe::domain::JobName;
use easytier_probe::domain::Trigger;
use easytier_probe::jobs::JobContext;
use easytier_probe::runner::Runner;
use easytier_probe::store::Store;
use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::common::{
    backend, bin, node, output, peer_entry, peers_file, plaintext_quic_bridge, silent_listeners,
    stderr, stdout_json, stop_node, wait_for, ServeProcess,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "truth::sweeps_resume_and_keep_their_cadence_after_sigstop",
            sweeps_resume_after_sigstop,
        ),
        trial(
            "truth::without_sweeps_health_is_stale_and_reports_are_offline",
            stale_without_sweeps,
        ),
        trial(
            "truth::a_sweep_past_its_deadline_records_every_peer",
            sweep_past_its_deadline,
        ),
        trial(
            "truth::a_redirect_never_carries_the_token_elsewhere",
            redirects_keep_the_token,
        ),
        trial(
            "truth::sighup_is_ignored_and_sigterm_records_a_run_job",
            signals,
        ),
        trial(
            "truth::a_million_entries_are_refused_in_bounded_memory",
            a_million_entries,
        ),
        trial(
            "truth::the_quic_flavour_is_kept_across_run_jobs",
            quic_flavour_is_kept,
        ),
        trial(
            "truth::run_job_exits_75_while_serve_runs_the_same_job",
            overlap_exits_75,
        ),
        trial(
            "truth::a_huge_chunked_answer_is_cut_off_at_the_cap",
            huge_chunked_answer,
        ),
    ]
}

fn sig(child: &std::process::Child, signal: i32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
}

/// Start times of the finished probe-sweep runs, oldest first.
async fn sweep_starts(serve: &ServeProcess) -> Vec<DateTime<Utc>> {
    let (_, runs) = serve.get("/api/jobs/probe-sweep/runs?limit=200").await;
    let mut starts: Vec<DateTime<Utc>> = runs["data"]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|r| r["outcome"] == "ok")
        .filter_map(|r| r["started_at"].as_str()?.parse().ok())
        .collect();
    starts.sort();
    starts
}

async fn sweeps_resume_after_sigstop() {
    let dir = tempfile::tempdir().unwrap();
    // A closed port: each sweep is over at once (connection refused).
    let peers = peers_file(dir.path(), &[easytier_probe::testkit::free_port()]);
    let mut c = bin(dir.path());
    c.env("DATA_DIR", dir.path().join("data"))
        .env("PEERS_FILE", &peers)
        .env("HEALTH_CHECK_INTERVAL", "2")
        .arg("serve");
    let serve = ServeProcess::start(c, dir.path()).await;
    let going = wait_for(Duration::from_secs(10), || async {
        sweep_starts(&serve).await.len() >= 2
    })
    .await;
    assert!(going, "{}", serve.log());

    // Stopped for 3 intervals (a VM pause, a suspend), then continued.
    let child = serve.child.as_ref().unwrap();
    sig(child, libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(6));
    let continued = Utc::now();
    sig(child, libc::SIGCONT);

    let enough = wait_for(Duration::from_secs(25), || async {
        sweep_starts(&serve)
            .await
            .iter()
            .filter(|t| **t > continued)
            .count()
            >= 6
    })
    .await;
    let after: Vec<_> = sweep_starts(&serve)
        .await
        .into_iter()
        .filter(|t| *t > continued)
        .collect();
    assert!(
        enough,
        "after SIGCONT only {} sweeps: {after:?}\n{}",
        after.len(),
        serve.log()
    );
    // Resumed within 2 intervals...
    let first = after[0] - continued;
    eprintln!("after SIGCONT: first sweep after {first:?}, then {after:?}");
    assert!(
        first <= chrono::Duration::seconds(4),
        "first sweep {first:?} after SIGCONT"
    );
    // ...and then the cadence: every gap about one interval, no burst of missed runs.
    for pair in after.windows(2).take(5) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= chrono::Duration::milliseconds(1500) && gap <= chrono::Duration::seconds(3),
            "gap {gap:?} in {after:?}"
        );
    }
}

async fn stale_without_sweeps() {
    let n = node("stale", "net-s", "sec-s", &["tcp"]).await;
    let (b, url) = backend(vec![peer_entry(
        json!(1),
        "tcp",
        n.port("tcp"),
        "net-s",
        Some("sec-s"),
    )])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = |c: &mut std::process::Command| {
        c.env("DISTRIBUTED_MODE_ENABLED", "true")
            .env("BACKEND_BASE_URL", &url)
            .env("NODE_TOKEN", "t")
            .env("HEALTH_CHECK_INTERVAL", "1")
            .env("DATA_DIR", &data);
    };
    let mut c = bin(dir.path());
    env(&mut c);
    c.args(["serve", "--no-schedule"]);
    let serve = ServeProcess::start(c, dir.path()).await;
    let run_job = |job: &str| {
        let mut c = bin(dir.path());
        env(&mut c);
        c.args(["run-job", job, "--json"]);
        c
    };

    // No peer list yet, for longer than 3 intervals: degraded (a restart would not help).
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (code, h) = serve.get("/health").await;
    assert_eq!(
        (code, h["data"]["status"].clone()),
        (200, json!("degraded")),
        "{h}"
    );
    assert!(h["data"]["reason"]
        .as_str()
        .unwrap()
        .contains("no peer list"));

    assert_eq!(output(run_job("peer-fetch")).await.status.code(), Some(0));
    assert_eq!(output(run_job("probe-sweep")).await.status.code(), Some(0));
    let (code, h) = serve.get("/health").await;
    assert_eq!(
        (code, h["data"]["status"].clone()),
        (200, json!("ok")),
        "{h}"
    );
    let o = output(run_job("status-report")).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let online = b.recorded().pop().unwrap().body.unwrap();
    assert_eq!(online["status"], "Online");
    assert!(online["response_time"].is_u64(), "{online}");

    // The timers stopped: after 3 intervals without a sweep the API is unhealthy...
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (code, h) = serve.get("/health").await;
    assert_eq!(
        (code, h["data"]["status"].clone()),
        (503, json!("stale")),
        "{h}"
    );
    assert!(
        h["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("no probe sweep since"),
        "{h}"
    );
    assert_eq!(h["code"], 503);
    // ...and the report says Offline, without RTT figures.
    let o = output(run_job("status-report")).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout_json(&o)["summary"]["status"], "Offline");
    let offline = b.recorded().pop().unwrap().body.unwrap();
    assert_eq!(offline["status"], "Offline", "{offline}");
    assert!(offline.get("response_time").is_none(), "{offline}");
    for absent in ["avg_peer_rtt", "max_peer_rtt"] {
        assert!(offline["metadata"].get(absent).is_none(), "{offline}");
    }
    assert_eq!(offline["metadata"]["reachable_peers"], 0);

    // A sweep again: healthy again.
    assert_eq!(output(run_job("probe-sweep")).await.status.code(), Some(0));
    let (code, h) = serve.get("/health").await;
    assert_eq!(
        (code, h["data"]["status"].clone()),
        (200, json!("ok")),
        "{h}"
    );
    drop(serve);
    stop_node(n).await;
}

async fn sweep_past_its_deadline() {
    let n = node("deadline", "n", "", &["tcp"]).await;
    let (mut ports, _silent) = silent_listeners(2).await;
    ports.push(n.port("tcp"));
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        data_dir: Some(dir.path().join("data")),
        peers_file: Some(peers_file(dir.path(), &ports)),
        ..Options::default()
    };
    let mut settings = Settings::resolve(&options, &EmptyEnv).unwrap();
    // Each silent peer would take far longer than the sweep may.
    settings.probe.timeout = Duration::from_secs(60);
    let store = Store::open(&dir.path().join("data"), "test").unwrap();
    let runner = Runner::new(JobContext::new(store.clone(), Arc::new(settings)));
    let fetched = runner.run(JobName::PeerFetch, Trigger::Cli).await.unwrap();
    assert_eq!(fetched.outcome.as_str(), "ok", "{fetched:?}");

    let start = Instant::now();
    let run = runner
        .run_within(JobName::ProbeSweep, Trigger::Cli, Duration::from_secs(4))
        .await
        .unwrap();
    let took = start.elapsed();
    assert_eq!(run.outcome.as_str(), "ok", "{run:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert_eq!(run.summary["peers"], 3);
    assert_eq!(run.summary["reachable"], 1);
    let results = run.summary["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for r in &results[..2] {
        assert_eq!(r["error_kind"], "timeout", "{r}");
    }
    assert_eq!(results[2]["up"], true, "{}", results[2]);
    // Every peer has its verdict in the store, and the sweep is in the history.
    let latest = store.latest_results().unwrap();
    assert_eq!(latest.len(), 3);
    assert!(latest["1"].error.as_deref().unwrap().contains("deadline"));
    assert_eq!(store.last_sweep().unwrap().unwrap().peers, 3);
    drop(runner);
    stop_node(n).await;
}

async fn redirects_keep_the_token() {
    // Where a redirect points: it records anything that reaches it.
    let (elsewhere, elsewhere_url) = backend(vec![peer_entry(json!(1), "tcp", 1, "n", None)]).await;
    // 307 for /peers, 308 for /nodes/status: both keep the method, body and headers.
    let redirecting = axum::Router::new().fallback({
        let target = elsewhere_url.clone();
        move |uri: axum::http::Uri| {
            let target = target.clone();
            async move {
                let status = if uri.path().starts_with("/peers") {
                    axum::http::StatusCode::TEMPORARY_REDIRECT
                } else {
                    axum::http::StatusCode::PERMANENT_REDIRECT
                };
                (
                    status,
                    [(axum::http::header::LOCATION, format!("{target}{uri}"))],
                )
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, redirecting).await;
    });
    let dir = tempfile::tempdir().unwrap();
    for job in ["status-report", "peer-fetch"] {
        let mut c = bin(dir.path());
        c.env("DISTRIBUTED_MODE_ENABLED", "true")
            .env("BACKEND_BASE_URL", &url)
            .env("NODE_TOKEN", "node-token-redirected")
            .env("API_KEY", "api-key-redirected")
            .env("DATA_DIR", dir.path().join("data"))
            .args(["run-job", job]);
        let o = output(c).await;
        assert_eq!(o.status.code(), Some(1), "{job}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("redirected to") && err.contains(&elsewhere_url),
            "{job}: {err}"
        );
        assert!(
            !err.contains("node-token-redirected") && !err.contains("api-key-redirected"),
            "{err}"
        );
    }
    assert!(
        elsewhere.recorded().is_empty(),
        "the redirect target was reached: {:?}",
        elsewhere
            .recorded()
            .iter()
            .map(|r| r.headers.clone())
            .collect::<Vec<_>>()
    );
}

async fn signals() {
    let (ports, _silent) = silent_listeners(2).await;
    let dir = tempfile::tempdir().unwrap();
    let peers = peers_file(dir.path(), &ports);

    // SIGHUP: serve goes on serving.
    let mut c = bin(dir.path());
    c.env("DATA_DIR", dir.path().join("serve-data"))
        .env("PEERS_FILE", &peers)
        .arg("serve");
    let mut serve = ServeProcess::start(c, dir.path()).await;
    sig(serve.child.as_ref().unwrap(), libc::SIGHUP);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        serve.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "serve ended on SIGHUP"
    );
    let (code, _) = serve.get("/health").await;
    assert_eq!(code, 200);
    assert!(serve.log().contains("SIGHUP ignored"), "{}", serve.log());
    let status = serve.terminate(Duration::from_secs(25)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", serve.log());

    // SIGTERM to a run-job in the middle of a sweep: it exits soon, its run recorded.
    let data = dir.path().join("data");
    let mut c = bin(dir.path());
    c.env("DATA_DIR", &data)
        .env("PEERS_FILE", &peers)
        .args(["run-job", "peer-fetch"]);
    assert_eq!(output(c).await.status.code(), Some(0));
    let mut c = bin(dir.path());
    c.env("DATA_DIR", &data)
        .env("PEERS_FILE", &peers)
        .args(["run-job", "probe-sweep"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    // The sweep takes the 3 s probe timeout; stop it a second in.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    sig(&child, libc::SIGHUP);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "run-job ended on SIGHUP"
    );
    let start = Instant::now();
    sig(&child, libc::SIGTERM);
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let store = Store::open(&data, "test").unwrap();
    let run = store.last_run("probe-sweep").unwrap().unwrap();
    assert_eq!(run.outcome.as_str(), "interrupted", "{run:?}");
    assert_eq!(
        run.error.as_deref(),
        Some("interrupted: SIGTERM"),
        "{run:?}"
    );
}

/// Runs `c` to its end; returns its output and its peak RSS (VmHWM) in kB.
fn peak_rss(mut c: std::process::Command) -> (std::process::Output, u64) {
    let child = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let hwm = std::fs::read_to_string(&status).ok().and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmHWM:"))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                });
                peak = peak.max(hwm.unwrap_or(0));
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    let o = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    (o, watcher.join().unwrap())
}

async fn a_million_entries() {
    let (b, url) = backend(vec![peer_entry(json!(1), "tcp", 1, "n", None)]).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fetch = || {
        let mut c = bin(dir.path());
        c.env("DISTRIBUTED_MODE_ENABLED", "true")
            .env("BACKEND_BASE_URL", &url)
            .env("NODE_TOKEN", "t")
            .env("DATA_DIR", &data)
            .args(["run-job", "peer-fetch"]);
        c
    };
    assert_eq!(output(fetch()).await.status.code(), Some(0));

    let mut body = String::from(r#"{"code":200,"message":"ok","data":{"peers":["#);
    body.push_str(&vec!["0"; 1_000_000].join(","));
    body.push_str("]}}");
    *b.fault.lock().unwrap() = Some((200, body));
    let c = fetch();
    let (o, peak_kb) = tokio::task::spawn_blocking(move || peak_rss(c))
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("more than 100000 peer entries"), "{err}");
    assert!(err.contains("keeping the stored list of 1 peers"), "{err}");
    assert!(peak_kb > 0 && peak_kb < 200 * 1024, "peak RSS {peak_kb} kB");
    eprintln!("1 000 000-entry answer: refused, peak RSS {peak_kb} kB");
    let store = Store::open(&data, "test").unwrap();
    assert_eq!(store.peer_list().unwrap().unwrap().peers.len(), 1);
}

async fn quic_flavour_is_kept() {
    let n = node("flavour", "net-q", "sec-q", &["tcp"]).await;
    let (addr, _bridge) = plaintext_quic_bridge(n.port("tcp")).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let peers = dir.path().join("peers.json");
    std::fs::write(
        &peers,
        Value::Array(vec![peer_entry(
            json!(1),
            "quic",
            addr.port(),
            "net-q",
            Some("sec-q"),
        )])
        .to_string(),
    )
    .unwrap();
    let run = |job: &str| {
        let mut c = bin(dir.path());
        c.env("DATA_DIR", &data)
            .env("PEERS_FILE", &peers)
            .args(["run-job", job, "--json"]);
        c
    };
    assert_eq!(output(run("peer-fetch")).await.status.code(), Some(0));
    for _ in 0..2 {
        let o = output(run("probe-sweep")).await;
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(stdout_json(&o)["summary"]["reachable"], 1, "{}", stderr(&o));
    }
    // The next process (a timer's run-job) starts from what worked: plaintext, for 2.6 nodes.
    let store = Store::open(&data, "test").unwrap();
    let kept = store.quic_flavours().unwrap();
    assert_eq!(
        kept.get(&addr.to_string()).map(String::as_str),
        Some("plaintext"),
        "{kept:?}"
    );
    drop(store);
    stop_node(n).await;
}

async fn overlap_exits_75() {
    let (ports, _silent) = silent_listeners(2).await;
    let dir = tempfile::tempdir().unwrap();
    let peers = peers_file(dir.path(), &ports);
    let data = dir.path().join("data");
    let mut c = bin(dir.path());
    c.env("DATA_DIR", &data)
        .env("PEERS_FILE", &peers)
        .arg("serve");
    let serve = ServeProcess::start(c, dir.path()).await;
    // serve's own sweep takes the 3 s probe timeout of the silent peers.
    let sweeping = wait_for(Duration::from_secs(10), || async {
        let (_, runs) = serve.get("/api/jobs/probe-sweep/runs").await;
        runs["data"]["items"][0]["outcome"] == "running"
    })
    .await;
    assert!(sweeping, "{}", serve.log());
    let mut c = bin(dir.path());
    c.env("DATA_DIR", &data)
        .env("PEERS_FILE", &peers)
        .args(["run-job", "probe-sweep"]);
    let o = output(c).await;
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    assert!(stderr(&o).contains("still going"), "{}", stderr(&o));
    let (_, runs) = serve.get("/api/jobs/probe-sweep/runs").await;
    assert!(
        runs["data"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["outcome"] == "skipped" && r["trigger"] == "cli"),
        "{runs}"
    );
}

/// A backend that streams an endless body without a Content-Length: read up to the cap, then
/// refused.
async fn huge_chunked_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b' '; 1 << 20];
                // At most 64 MiB, then the end: a bounded loop.
                for _ in 0..64 {
                    let frame = format!("{:x}\r\n", chunk.len());
                    if s.write_all(frame.as_bytes()).await.is_err()
                        || s.write_all(&chunk).await.is_err()
                        || s.write_all(b"\r\n").await.is_err()
                    {
                        return;
                    }
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let _ = s.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut c = bin(dir.path());
    c.env("DISTRIBUTED_MODE_ENABLED", "true")
        .env("BACKEND_BASE_URL", &url)
        .env("NODE_TOKEN", "t")
        .env("DATA_DIR", dir.path().join("data"))
        .args(["run-job", "peer-fetch"]);
    let o = output(c).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("larger than 16777216 bytes"),
        "{}",
        stderr(&o)
    );
    // It stopped reading at the cap: the backend could not send all 64 MiB.
    let mib = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(mib < 64, "{mib} MiB sent");
}
