//! Sweep benchmark: the real binary's `run-job probe-sweep` over N loopback peers served by
//! real EasyTier nodes, with wall time and peak RSS, plus a cold `run-job status-report`.
//!
//! Run with `cargo bench --bench sweep` (optionally `-- 100 1000 5000` for other sizes).
//! Like the end-to-end tests, it runs in a private network namespace it makes itself.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use easytier_probe::demo::DemoBackend;
use easytier_probe::localnet::LocalNode;
use serde_json::{json, Value};

const NODES: usize = 8;
const PROTOCOLS: [&str; 3] = ["tcp", "udp", "ws"];

struct Measured {
    wall: Duration,
    max_rss_kb: i64,
    stdout: String,
    code: i32,
}

/// Runs the command to completion, with its peak RSS from wait4.
// The child is reaped by wait4 below (which also gives its peak RSS), not by Child::wait.
#[allow(clippy::zombie_processes)]
fn measure(mut c: Command) -> Measured {
    let start = Instant::now();
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary runs");
    let pid = child.id() as i32;
    let mut stdout = child.stdout.expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let mut status = 0;
    // SAFETY: wait4 on our own child, with valid out-pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    Measured {
        wall: start.elapsed(),
        max_rss_kb: usage.ru_maxrss,
        stdout: reader.join().unwrap_or_default(),
        code: libc::WEXITSTATUS(status),
    }
}

fn main() {
    if let Err(e) = easytier_probe::localnet::isolate_network() {
        eprintln!("the benchmark needs a private network namespace: {e}");
        std::process::exit(1);
    }
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100, 1000]
    } else {
        sizes
    };
    let bin = env!("CARGO_BIN_EXE_easytier-probe");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let nodes: Vec<LocalNode> = (0..NODES)
        .map(|i| {
            LocalNode::start(
                &format!("bench-{i}"),
                "bench-home",
                "bench-secret",
                &PROTOCOLS,
            )
            .unwrap()
        })
        .collect();
    let scratch = tempfile::tempdir().unwrap();
    println!("| peers | sweep (job) | run-job wall | peak RSS | reachable |");
    println!("|---:|---:|---:|---:|---:|");
    for n in sizes {
        let peers: Vec<Value> = (0..n)
            .map(|i| {
                let node = &nodes[i % NODES];
                let protocol = PROTOCOLS[(i / NODES) % PROTOCOLS.len()];
                // Distinct network names: each probe is a separate foreign network to the node,
                // as distinct real peers would be (see NOTES-easytier.md).
                json!({"id": i, "name": format!("p{i}"), "host": "127.0.0.1", "port": node.port(protocol),
                       "protocol": protocol, "network_name": format!("bench-net-{i}")})
            })
            .collect();
        let file = scratch.path().join(format!("peers-{n}.json"));
        std::fs::File::create(&file)
            .unwrap()
            .write_all(Value::Array(peers).to_string().as_bytes())
            .unwrap();
        let data = scratch.path().join(format!("data-{n}"));
        let cmd = |job: &str| {
            let mut c = Command::new(bin);
            c.env_clear()
                .current_dir(scratch.path())
                .env("PEERS_FILE", &file)
                .env("DATA_DIR", &data)
                .args(["run-job", job, "--json"]);
            c
        };
        let fetch = measure(cmd("peer-fetch"));
        assert_eq!(fetch.code, 0, "peer-fetch failed: {}", fetch.stdout);
        let sweep = measure(cmd("probe-sweep"));
        let j: Value = serde_json::from_str(sweep.stdout.trim()).unwrap_or(Value::Null);
        println!(
            "| {n} | {} ms | {} ms | {:.1} MB | {}/{n} |",
            j["duration_ms"],
            sweep.wall.as_millis(),
            sweep.max_rss_kb as f64 / 1024.0,
            j["summary"]["reachable"],
        );
    }

    // Cold run-job status-report: a fresh process, a real backend, one PUT.
    let backend = DemoBackend::default();
    let url = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        backend.serve(l).await.unwrap()
    });
    let data = scratch.path().join("data-report");
    let mut walls = Vec::new();
    for _ in 0..5 {
        let mut c = Command::new(bin);
        c.env_clear()
            .current_dir(scratch.path())
            .env("DISTRIBUTED_MODE_ENABLED", "true")
            .env("BACKEND_BASE_URL", &url)
            .env("NODE_TOKEN", "bench")
            .env("DATA_DIR", &data)
            .args(["run-job", "status-report"]);
        let m = measure(c);
        assert_eq!(m.code, 0);
        walls.push(m.wall.as_millis());
    }
    walls.sort();
    println!(
        "\ncold `run-job status-report`: median {} ms (min {}, max {}) over {} runs",
        walls[walls.len() / 2],
        walls[0],
        walls[walls.len() - 1],
        walls.len()
    );
    drop(nodes);
}
