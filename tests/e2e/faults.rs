//! Faults the node must survive: crashes and signals mid-run, a second process on the same
//! data dir, a backend that is down when the node starts.

use std::time::{Duration, Instant};

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::common::{
    backend, bin, node, output, peer_entry, peers_file, silent_listeners, stderr, stdout_json,
    stop_node, wait_for, ServeProcess,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial("faults::serve_twice_names_the_holder", serve_twice),
        trial(
            "faults::kill_9_during_peer_fetch_commits_keeps_a_whole_list",
            kill_9_during_peer_fetch_commits,
        ),
        trial(
            "faults::ten_thousand_entries_some_bad",
            ten_thousand_entries_some_bad,
        ),
        trial(
            "faults::serve_waits_for_a_one_shot_holder",
            serve_waits_for_one_shot,
        ),
        trial(
            "faults::kill_9_mid_sweep_is_interrupted_not_lost",
            kill_9_mid_sweep,
        ),
        trial(
            "faults::sigterm_mid_sweep_drains_and_reports_offline",
            sigterm_mid_sweep,
        ),
        trial("faults::two_run_jobs_at_once_both_run", two_run_jobs),
        trial(
            "faults::backend_down_at_start_then_back",
            backend_down_at_start,
        ),
        trial(
            "faults::backend_that_never_answers_times_out",
            backend_never_answers,
        ),
        trial(
            "faults::backend_dropping_mid_request_keeps_the_list",
            backend_drops_mid_request,
        ),
    ]
}

/// Waits until `serve` is in the middle of a probe-sweep.
async fn wait_until_sweeping(serve: &ServeProcess) {
    let sweeping = wait_for(Duration::from_secs(10), || async {
        let (_, runs) = serve.get("/api/jobs/probe-sweep/runs").await;
        runs["data"]["items"][0]["outcome"] == "running"
    })
    .await;
    assert!(sweeping, "{}", serve.log());
}

async fn serve_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut c = bin(dir.path());
    c.env("DATA_DIR", &data).args(["serve", "--no-schedule"]);
    let first = ServeProcess::start(c, dir.path()).await;
    let pid = first.child.as_ref().unwrap().id();

    let mut c = bin(dir.path());
    c.env("DATA_DIR", &data)
        .env(
            "LISTEN_ADDR",
            format!("127.0.0.1:{}", easytier_probe::testkit::free_port()),
        )
        .arg("serve");
    let start = Instant::now();
    let o = output(c).await;
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("in use by"), "{err}");
    assert!(
        err.contains(&format!("pid {pid}")) && err.contains("`serve`"),
        "{err}"
    );
    // The first one is unaffected.
    let (code, _) = first.get("/health").await;
    assert_eq!(code, 200);
}

async fn kill_9_mid_sweep() {
    let (ports, _silent) = silent_listeners(3).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let peers = peers_file(dir.path(), &ports);
    let mut c = bin(dir.path());
    c.env("DATA_DIR", &data)
        .env("PEERS_FILE", &peers)
        .arg("serve");
    let mut serve = ServeProcess::start(c, dir.path()).await;
    wait_until_sweeping(&serve).await;
    let mut child = serve.child.take().unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let mut c = bin(dir.path());
    c.env("DATA_DIR", &data)
        .env("PEERS_FILE", &peers)
        .args(["serve", "--no-schedule"]);
    let serve = ServeProcess::start(c, dir.path()).await;
    let (_, runs) = serve.get("/api/jobs/probe-sweep/runs").await;
    let last = &runs["data"]["items"][0];
    assert_eq!(last["outcome"], "interrupted", "{runs}");
    assert!(last["error"]
        .as_str()
        .unwrap()
        .contains("ended during this run"));
    let (_, fetches) = serve.get("/api/jobs/peer-fetch/runs").await;
    assert_eq!(fetches["data"]["items"][0]["outcome"], "ok");
    let (_, nodes) = serve.get("/api/nodes").await;
    assert_eq!(nodes["data"]["total"], 3, "the peer list survived");
    let (_, health) = serve.get("/health").await;
    assert_eq!(health["data"]["status"], "degraded");
}

async fn sigterm_mid_sweep() {
    let (ports, _silent) = silent_listeners(2).await;
    let entries: Vec<Value> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| peer_entry(json!(i + 1), "tcp", *p, "n", None))
        .collect();
    let (b, url) = backend(entries).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut c = bin(dir.path());
    c.env("DISTRIBUTED_MODE_ENABLED", "true")
        .env("BACKEND_BASE_URL", &url)
        .env("NODE_TOKEN", "t")
        .env("DATA_DIR", &data)
        .arg("serve");
    let mut serve = ServeProcess::start(c, dir.path()).await;
    wait_until_sweeping(&serve).await;
    let start = Instant::now();
    let status = serve.terminate(Duration::from_secs(15)).await;
    let took = start.elapsed();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", serve.log());
    // The sweep (3 s per-peer timeout) finished within the drain, then Offline went out.
    assert!(took < Duration::from_secs(10), "{took:?}");
    let last = b
        .recorded()
        .into_iter()
        .rfind(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(last.body.unwrap()["status"], "Offline");
    let store = easytier_probe::store::Store::open(&data, "test").unwrap();
    let sweep = store.runs("probe-sweep", 1).unwrap().pop().unwrap();
    assert_eq!(sweep.outcome.as_str(), "ok", "{sweep:?}");
    assert_eq!(sweep.summary["peers"], 2);
}

async fn two_run_jobs() {
    let (ports, _silent) = silent_listeners(1).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let peers = peers_file(dir.path(), &ports);
    let run = |job: &str| {
        let mut c = bin(dir.path());
        c.env("DATA_DIR", &data)
            .env("PEERS_FILE", &peers)
            .args(["run-job", job, "--json"]);
        c
    };
    assert_eq!(output(run("peer-fetch")).await.status.code(), Some(0));
    let (a, b) = tokio::join!(output(run("probe-sweep")), output(run("probe-sweep")));
    for o in [&a, &b] {
        assert_eq!(
            o.status.code(),
            Some(0),
            "stderr: {}\nstdout: {}",
            stderr(o),
            String::from_utf8_lossy(&o.stdout)
        );
        assert_eq!(stdout_json(o)["summary"]["peers"], 1);
    }
    let store = easytier_probe::store::Store::open(&data, "test").unwrap();
    let runs = store.runs("probe-sweep", 5).unwrap();
    assert_eq!(runs.len(), 2);
    // One ran after the other: the store admits one process at a time.
    let (newer, older) = (&runs[0], &runs[1]);
    let older_end = older.started_at + chrono::Duration::milliseconds(older.duration_ms as i64);
    assert!(newer.started_at >= older_end, "{runs:?}");
}

async fn backend_down_at_start() {
    let n = node("down-at-start", "net-d", "sec-d", &["tcp"]).await;
    let entries = vec![peer_entry(
        json!(1),
        "tcp",
        n.port("tcp"),
        "net-d",
        Some("sec-d"),
    )];
    let (_first, first_url) = backend(entries.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let distributed = |c: &mut std::process::Command, url: &str| {
        c.env("DISTRIBUTED_MODE_ENABLED", "true")
            .env("BACKEND_BASE_URL", url)
            .env("NODE_TOKEN", "t")
            .env("DATA_DIR", &data);
    };
    let mut c = bin(dir.path());
    distributed(&mut c, &first_url);
    c.args(["run-job", "peer-fetch"]);
    assert_eq!(output(c).await.status.code(), Some(0));

    // The backend the node is configured for is not there yet.
    let port = easytier_probe::testkit::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut c = bin(dir.path());
    distributed(&mut c, &url);
    c.env("PEER_FETCH_INTERVAL", "1")
        .env("STATUS_REPORT_INTERVAL", "1")
        .env("HEALTH_CHECK_INTERVAL", "1");
    let serve = ServeProcess::start(c, dir.path()).await;
    let probing = wait_for(Duration::from_secs(15), || async {
        let (_, h) = serve.get("/health").await;
        h["data"]["jobs"]["probe-sweep"]["last_outcome"] == "ok"
            && h["data"]["jobs"]["status-report"]["last_outcome"] == "failed"
    })
    .await;
    assert!(probing, "{}", serve.log());
    let (_, nodes) = serve.get("/api/nodes").await;
    assert_eq!(
        nodes["data"]["items"][0]["up"], true,
        "the stored peer is probed"
    );
    let (_, h) = serve.get("/health").await;
    assert_eq!(h["data"]["status"], "degraded");

    // The backend comes (back): the next report goes out, the node is healthy again.
    let back = easytier_probe::testkit::DemoBackend::default();
    *back.peers.lock().unwrap() = entries;
    back.serve(
        tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    let delivered = wait_for(Duration::from_secs(15), || async {
        back.recorded()
            .iter()
            .any(|r| r.method == "PUT" && r.body.as_ref().is_some_and(|b| b["status"] == "Online"))
    })
    .await;
    assert!(delivered, "{}", serve.log());
    let healthy = wait_for(Duration::from_secs(10), || async {
        let (_, h) = serve.get("/health").await;
        h["data"]["status"] == "ok"
    })
    .await;
    assert!(healthy, "{}", serve.log());
    assert!(!serve.log().contains("panicked"));
    drop(serve);
    stop_node(n).await;
}

async fn backend_never_answers() {
    let (ports, _silent) = silent_listeners(1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = bin(dir.path());
    c.env("DISTRIBUTED_MODE_ENABLED", "true")
        .env("BACKEND_BASE_URL", format!("http://127.0.0.1:{}", ports[0]))
        .env("NODE_TOKEN", "t")
        .env("DATA_DIR", dir.path().join("data"))
        .args(["run-job", "peer-fetch", "--json"]);
    let start = Instant::now();
    let o = output(c).await;
    assert!(
        start.elapsed() < Duration::from_secs(25),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let j = stdout_json(&o);
    assert!(j["error"].as_str().unwrap().contains("timed out"), "{j}");
    assert_eq!(j["summary"]["source"], "cache");
}

async fn serve_waits_for_one_shot() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let holder = easytier_probe::store::Store::open(&data, "run-job probe-sweep").unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        drop(holder);
    });
    let mut c = bin(dir.path());
    c.env("DATA_DIR", &data).args(["serve", "--no-schedule"]);
    let start = Instant::now();
    let serve = ServeProcess::start(c, dir.path()).await;
    assert!(
        start.elapsed() >= Duration::from_millis(1400),
        "it did not wait"
    );
    release.await.unwrap();
    let (code, _) = serve.get("/health").await;
    assert_eq!(code, 200);
    assert!(
        serve.log().contains("waiting for it to finish"),
        "{}",
        serve.log()
    );
}

/// A peers file of `n` tcp entries (ids 0..n).
fn write_many_peers(n: usize, path: &std::path::Path) {
    let entries: Vec<Value> = (0..n)
        .map(|i| peer_entry(json!(i), "tcp", 1000 + (i % 60000) as u16, "n", None))
        .collect();
    std::fs::write(path, Value::Array(entries).to_string()).unwrap();
}

/// Mounts (or with `MS_REMOUNT`, remounts) a tmpfs at `target`. Needs the private mount
/// namespace the test binary's main sets up.
fn mount_tmpfs(target: &std::path::Path, flags: libc::c_ulong, opts: &str) {
    let target = std::ffi::CString::new(target.to_str().unwrap()).unwrap();
    let opts = std::ffi::CString::new(opts).unwrap();
    // SAFETY: mount(2) with NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            flags,
            opts.as_ptr().cast(),
        )
    };
    assert_eq!(rc, 0, "mount: {}", std::io::Error::last_os_error());
}

/// Needs the private mount namespace the test binary's main sets up.
/// A 3 MB tmpfs under `dir` and two peers files: 10 peers (fit), 50 000 (do not fit).
/// Returns (disk, data dir on it, small list, big list).
pub fn small_disk_and_lists(dir: &std::path::Path) -> [std::path::PathBuf; 4] {
    let disk = dir.join("disk");
    std::fs::create_dir(&disk).unwrap();
    mount_tmpfs(&disk, 0, "size=3m");
    let (small, big) = (dir.join("small.json"), dir.join("big.json"));
    write_many_peers(10, &small);
    write_many_peers(50_000, &big);
    [disk.clone(), disk.join("data"), small, big]
}

pub async fn full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let [disk, data, small, big] = small_disk_and_lists(dir.path());
    let fetch = |peers: &std::path::Path| {
        let mut c = bin(dir.path());
        c.env("DATA_DIR", &data)
            .env("PEERS_FILE", peers)
            .args(["run-job", "peer-fetch"]);
        c
    };
    assert_eq!(output(fetch(&small)).await.status.code(), Some(0));

    // The big list does not fit: a clear error naming the store, in bounded time.
    let start = Instant::now();
    let o = output(fetch(&big)).await;
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("disk full") && err.contains(data.to_str().unwrap()),
        "{err}"
    );

    // Space returns: the store opens, the last list that reached the disk is there, and the
    // big list now goes in.
    mount_tmpfs(&disk, libc::MS_REMOUNT, "size=256m");
    let mut c = bin(dir.path());
    c.env("DATA_DIR", &data)
        .env("PEERS_FILE", &small)
        .args(["run-job", "probe-sweep", "--json"]);
    let o = output(c).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout_json(&o)["summary"]["peers"], 10);
    let o = output(fetch(&big)).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Needs the private mount namespace the test binary's main sets up.
pub async fn full_disk_health() {
    let dir = tempfile::tempdir().unwrap();
    let [_disk, data, small, big] = small_disk_and_lists(dir.path());
    let mut c = bin(dir.path());
    c.env("DATA_DIR", &data)
        .env("PEERS_FILE", &small)
        .args(["run-job", "peer-fetch"]);
    assert_eq!(output(c).await.status.code(), Some(0));

    // serve's first peer-fetch takes the big list, which does not fit on the disk.
    let start = Instant::now();
    let mut c = bin(dir.path());
    c.env("DATA_DIR", &data)
        .env("PEERS_FILE", &big)
        .arg("serve");
    let serve = ServeProcess::start(c, dir.path()).await;
    let unhealthy = wait_for(Duration::from_secs(20), || async {
        let (code, h) = serve.get("/health").await;
        code == 503 && h["data"]["status"] == "store"
    })
    .await;
    let took = start.elapsed();
    let (_, h) = serve.get("/health").await;
    assert!(unhealthy, "after {took:?}: {h}\n{}", serve.log());
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert!(
        h["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("cannot be written"),
        "{h}"
    );
    eprintln!("full disk: /health 503 store after {took:?}");
    // Jobs now fail at once with a clear error instead of stalling another 15 s. (A scheduled
    // sweep that began its flush before the stall was known may still hold the job for its
    // own bound: meanwhile run-job is told so at once, exit 75.)
    let mut failed = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while failed.is_none() && Instant::now() < deadline {
        let start = Instant::now();
        let mut c = bin(dir.path());
        c.env("DATA_DIR", &data)
            .env("PEERS_FILE", &big)
            .args(["run-job", "probe-sweep"]);
        let o = output(c).await;
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        match o.status.code() {
            Some(1) => failed = Some(stderr(&o)),
            Some(75) => tokio::time::sleep(Duration::from_millis(500)).await,
            other => panic!("run-job exited {other:?}: {}", stderr(&o)),
        }
    }
    let err = failed.expect("run-job never failed on the full disk");
    assert!(err.contains("could not be written to disk"), "{err}");
    drop(serve);
}

async fn kill_9_during_peer_fetch_commits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (small, big) = (dir.path().join("small.json"), dir.path().join("big.json"));
    write_many_peers(7, &small);
    write_many_peers(30_000, &big);
    let fetch = |peers: &std::path::Path| {
        let mut c = bin(dir.path());
        c.env("DATA_DIR", &data)
            .env("PEERS_FILE", peers)
            .args(["run-job", "peer-fetch"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    for delay_ms in [5u64, 20, 40, 60, 80, 120, 200] {
        assert_eq!(output(fetch(&small)).await.status.code(), Some(0));
        let mut child = fetch(&big).spawn().unwrap();
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let _ = child.kill(); // SIGKILL, wherever it is
        let _ = child.wait();
        let store = easytier_probe::store::Store::open(&data, "test").unwrap();
        let n = store.peer_list().unwrap().unwrap().peers.len();
        assert!(
            n == 7 || n == 30_000,
            "after a kill at {delay_ms} ms the list has {n} peers"
        );
        drop(store);
    }
}

async fn ten_thousand_entries_some_bad() {
    let dir = tempfile::tempdir().unwrap();
    let entries: Vec<Value> = (0..10_000)
        .map(|i| {
            let mut e = peer_entry(json!(i), "tcp", 1 + (i % 60000) as u16, "n", None);
            match i % 10 {
                0 => e["port"] = json!(0),
                1 => e["host"] = json!(""),
                2 => e["name"] = json!("名前".repeat(400)),
                _ => {}
            }
            e
        })
        .collect();
    let path = dir.path().join("peers.json");
    std::fs::write(&path, Value::Array(entries).to_string()).unwrap();
    let mut c = bin(dir.path());
    c.env("DATA_DIR", dir.path().join("data"))
        .env("PEERS_FILE", &path)
        .args(["run-job", "peer-fetch", "--json"]);
    let o = output(c).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = stdout_json(&o)["summary"].clone();
    assert_eq!(s["peers"], 8000);
    assert_eq!(s["rejected"], 2000);
    assert_eq!(s["rejected_entries"].as_array().unwrap().len(), 20);
    let store = easytier_probe::store::Store::open(&dir.path().join("data"), "test").unwrap();
    let list = store.peer_list().unwrap().unwrap();
    let long = list.peers.iter().find(|p| p.id == "2").unwrap();
    assert_eq!(long.name.chars().count(), 200);
}

/// Needs the private mount namespace the test binary's main sets up.
pub async fn read_only_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    mount_tmpfs(&disk, 0, "size=64m");
    let data = disk.join("data");
    let peers = peers_file(dir.path(), &[1, 2]);
    let run = |job: &str| {
        let mut c = bin(dir.path());
        c.env("DATA_DIR", &data)
            .env("PEERS_FILE", &peers)
            .args(["run-job", job]);
        c
    };
    assert_eq!(output(run("peer-fetch")).await.status.code(), Some(0));
    mount_tmpfs(&disk, libc::MS_REMOUNT | libc::MS_RDONLY, "size=64m");
    let start = Instant::now();
    let o = output(run("probe-sweep")).await;
    assert!(start.elapsed() < Duration::from_secs(30));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(data.to_str().unwrap()) && err.contains("DATA_DIR"),
        "{err}"
    );
    assert!(err.to_lowercase().contains("read-only"), "{err}");
    // Writable again: nothing was lost.
    mount_tmpfs(&disk, libc::MS_REMOUNT, "size=64m");
    let store = easytier_probe::store::Store::open(&data, "test").unwrap();
    assert_eq!(store.peer_list().unwrap().unwrap().peers.len(), 2);
}

async fn backend_drops_mid_request() {
    // First a good fetch, then a backend that reads the request and hangs up without answering.
    let (_good, url) = backend(vec![peer_entry(json!(1), "tcp", 1, "n", None)]).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fetch = |url: &str| {
        let mut c = bin(dir.path());
        c.env("DISTRIBUTED_MODE_ENABLED", "true")
            .env("BACKEND_BASE_URL", url)
            .env("NODE_TOKEN", "t")
            .env("DATA_DIR", &data)
            .args(["run-job", "peer-fetch", "--json"]);
        c
    };
    assert_eq!(output(fetch(&url)).await.status.code(), Some(0));
    let rude = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rude_url = format!("http://{}", rude.local_addr().unwrap());
    let _rude = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        while let Ok((mut s, _)) = rude.accept().await {
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).await;
            drop(s);
        }
    });
    let o = output(fetch(&rude_url)).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let j = stdout_json(&o);
    assert_eq!(j["summary"]["source"], "cache");
    assert!(j["error"].as_str().unwrap().contains("unreachable"), "{j}");
    let store = easytier_probe::store::Store::open(&data, "test").unwrap();
    assert_eq!(store.peer_list().unwrap().unwrap().peers.len(), 1);
}
