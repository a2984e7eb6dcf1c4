//! Nine simulated days of 1000 peers swept every 5 s, through the real store (sled in a temp
//! dir) with the default retentions: the history must reach a plateau on disk and stay small.
//! The hour level fills for 170 hours (day 8); the disk's figure follows with a lag and some
//! noise (sled writes its log and reclaims segments in the background), so the plateau is
//! judged on the day after: no day above the largest before it by more than 5 %.
//!
//! The clock is simulated: every sweep is recorded at its simulated time and the store's
//! maintenance (roll-ups and pruning) runs as of that time, as the probe-sweep job does; every
//! sweep also records its run, as the runner does. Size on disk is the data dir's files, read
//! after a flush at every simulated hour; a day's figure is its largest.

use chrono::{DateTime, Duration, TimeZone, Utc};
use easytier_probe::domain::{
    ErrorKind, JobRun, ListSource, Outcome, Peer, PeerList, ProbeResult, SweepSummary, Trigger,
};
use easytier_probe::domain::{Level, Retention, Window};
use easytier_probe::store::Store;

/// xorshift64: plenty for jitter, and cheap in a debug build.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const EVERY_S: i64 = 5;

/// `RETENTION_<name>` from the environment (to measure other sizes by hand), else `default`.
fn knob(name: &str, default: i64) -> i64 {
    std::env::var(format!("RETENTION_{name}"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peers(n: usize) -> PeerList {
    PeerList {
        fetched_at: Utc::now(),
        source: ListSource::Backend,
        peers: (0..n)
            .map(|i| Peer {
                id: format!("{}", 100_000 + i),
                name: format!("node-{i}.example.org"),
                host: format!("node-{i}.example.org"),
                port: 11010,
                protocol: ["tcp", "udp", "quic", "wg", "ws", "wss"][i % 6].into(),
                network_name: "public".into(),
                network_secret: None,
                timeout_ms: None,
                secure: None,
            })
            .collect(),
    }
}

/// One sweep: peers have their own base RTT (5–300 ms) with ±20 % jitter; 3 % of peers are
/// always down and the rest fail 1 % of their checks.
fn sweep(rng: &mut Rng, list: &PeerList, at: DateTime<Utc>) -> Vec<(String, ProbeResult)> {
    list.peers
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let base = 5_000 + (i as u64 * 7919) % 295_000;
            let down = i % 33 == 0 || rng.below(100) == 0;
            let r = if down {
                ProbeResult {
                    up: false,
                    rtt_us: None,
                    error_kind: Some(ErrorKind::Timeout),
                    error: Some("no EasyTier handshake within 3s".into()),
                    checked_at: at,
                    candidates: Vec::new(),
                    node: None,
                    node_key: None,
                }
            } else {
                ProbeResult {
                    up: true,
                    rtt_us: Some(base * (80 + rng.below(41)) / 100),
                    error_kind: None,
                    error: None,
                    checked_at: at,
                    candidates: Vec::new(),
                    node: None,
                    node_key: None,
                }
            };
            (p.id.clone(), r)
        })
        .collect()
}

/// Records the sweep's run as the runner does. The summary holds the down peers' results,
/// which is what the store keeps of a sweep's results (see `Store::put_run`).
fn record_run(
    store: &Store,
    at: DateTime<Utc>,
    results: &[(String, ProbeResult)],
    keep: &Retention,
) {
    let down: Vec<serde_json::Value> = results
        .iter()
        .filter(|(_, r)| !r.up)
        .map(|(id, r)| {
            serde_json::json!({"id": id, "up": false, "rtt_ms": null,
                "error_kind": r.error_kind.map(|k| k.as_str())})
        })
        .collect();
    let mut run = store
        .start_run(JobRun {
            id: 0,
            job: "probe-sweep".into(),
            trigger: Trigger::Schedule,
            started_at: at,
            duration_ms: 0,
            outcome: Outcome::Running,
            summary: serde_json::json!({}),
            error: None,
        })
        .unwrap();
    run.duration_ms = 183;
    run.outcome = Outcome::Ok;
    run.summary = serde_json::json!({
        "peers": results.len(),
        "reachable": results.len() - down.len(),
        "results": down,
        "results_omitted": results.len() - down.len(),
    });
    store.put_run(&run).unwrap();
    if run.id % 50 == 0 {
        store.prune_runs("probe-sweep", at, keep).unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn nine_days_of_1000_peers_every_5s_reach_a_plateau_under_256_mb() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(&data, "retention test").unwrap();
    // 1000 peers for 9 days unless RETENTION_PEERS / RETENTION_DAYS say otherwise.
    let peer_count = knob("PEERS", 1000).max(1) as usize;
    let days = knob("DAYS", 9).max(9);
    let list = peers(peer_count);
    store.replace_peer_list(&list).unwrap();
    let keep = Retention::default();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let sweeps_per_hour = 3600 / EVERY_S;
    let clock = std::time::Instant::now();
    let mut peak_per_day = Vec::new();
    let mut peak = 0u64;
    for hour in 0..days * 24 {
        for n in 0..sweeps_per_hour {
            let at = start + Duration::hours(hour) + Duration::seconds(n * EVERY_S);
            let results = sweep(&mut rng, &list, at);
            let summary = SweepSummary::from_results(at, results.iter().map(|(_, r)| r));
            store.record_sweep(&results, &summary).unwrap();
            let done = store
                .maintain(at, &keep, chrono::Duration::hours(1))
                .unwrap();
            assert_eq!(done.skipped, 0);
            record_run(&store, at, &results, &keep);
        }
        store.flush().await.unwrap();
        peak = peak.max(easytier_probe::store::disk_usage(&data));
        if (hour + 1) % 24 == 0 {
            let levels: Vec<String> = store
                .history_size()
                .iter()
                .map(|(l, rows, bytes)| {
                    format!("{} {rows} rows {:.1} MB", l.as_str(), *bytes as f64 / 1e6)
                })
                .collect();
            println!(
                "day {}: peak {:.1} MB on disk; {}; {} runs kept; {:.0} s so far",
                peak_per_day.len() + 1,
                peak as f64 / 1e6,
                levels.join(", "),
                store.runs("probe-sweep", usize::MAX).unwrap().len(),
                clock.elapsed().as_secs_f64()
            );
            peak_per_day.push(peak);
            peak = 0;
        }
    }

    // Every day once the history is full (from day 9) stays within 5 % of the largest before.
    for day in 8..peak_per_day.len() {
        let before = *peak_per_day[..day].iter().max().unwrap() as f64;
        let peak = peak_per_day[day] as f64;
        assert!(
            peak <= before * 1.05,
            "no plateau: day {} {peak} bytes, the largest before {before} ({peak_per_day:?})",
            day + 1
        );
    }
    let largest = *peak_per_day.iter().max().unwrap() as f64;
    // The budgets: 256 MB for 1000 peers, 1 GB for up to 10 000 (BENCHMARKS.md).
    let budget = if peer_count <= 1000 { 256e6 } else { 1e9 };
    assert!(largest < budget, "{largest} bytes on disk");

    // The history is all there, at every level, for the windows that read it.
    let end = start + Duration::days(days);
    let size = store.history_size();
    let rows = |l: Level| size.iter().find(|(x, _, _)| *x == l).unwrap().1;
    assert_eq!(rows(Level::Day), days as usize - 1);
    // 170 hours kept, each pruned once it has ended 170 hours ago.
    assert!((169..=170).contains(&rows(Level::Hour)), "{size:?}");
    assert!((120..=181).contains(&rows(Level::Minute)), "{size:?}");
    assert!((720..=735).contains(&rows(Level::Raw)), "{size:?}");
    let slot = store.roster().unwrap()["100001"];
    let week = store
        .collect(Level::Hour, end - Duration::days(7), end, None, Some(slot))
        .unwrap()
        .remove(&slot)
        .unwrap();
    let week = week.values().next().unwrap();
    // 7 days of checks every 5 s (the window starts at an hour boundary), ~1 % down.
    assert_eq!(week.checks, 7 * 24 * 720);
    assert!(
        week.up > week.checks * 97 / 100 && week.up < week.checks,
        "{week:?}"
    );
    // What the API's reads cost on this store (printed, not asserted: figures for BENCHMARKS.md).
    let clock = std::time::Instant::now();
    let mut window_reads = Vec::new();
    for name in ["1h", "24h", "7d"] {
        let all = store
            .window(&Window::named(name).unwrap(), end, None, false)
            .unwrap();
        assert_eq!(all.len(), peer_count);
        window_reads.push(all);
    }
    let fleet = clock.elapsed();
    let clock = std::time::Instant::now();
    for (level, length, step) in [
        (Level::Minute, Duration::hours(1), Duration::minutes(1)),
        (Level::Hour, Duration::hours(24), Duration::hours(1)),
        (Level::Hour, Duration::days(7), Duration::hours(6)),
        (Level::Day, Duration::days(30), Duration::days(1)),
    ] {
        store
            .collect(level, end - length, end, Some(step), Some(slot))
            .unwrap();
    }
    let one = clock.elapsed();
    // What /api/nodes reads: kept row counts, loaded on the first read.
    let windows: Vec<Window> = ["1h", "24h", "7d"]
        .iter()
        .map(|n| Window::named(n).unwrap())
        .collect();
    let clock = std::time::Instant::now();
    let cold = store.uptimes(&windows, end).unwrap();
    let first = clock.elapsed();
    let clock = std::time::Instant::now();
    let warm = store.uptimes(&windows, end).unwrap();
    let again = clock.elapsed();
    assert_eq!(cold, warm);
    for (i, by_window) in window_reads.iter().enumerate() {
        for (slot, points) in by_window {
            let (checks, up) = points
                .values()
                .fold((0, 0), |(c, u), b| (c + b.checks, u + b.up));
            assert_eq!(
                warm[i].of(*slot),
                Some((checks, up)),
                "window {i}, slot {slot}"
            );
        }
    }
    println!(
        "reads: the 1h, 24h and 7d uptime of all {peer_count} peers by window reads {:.0} ms, \
         from kept row counts {:.0} ms the first time ({} rows kept) and {:.1} ms after; \
         one peer's four windows with series {:.1} ms",
        fleet.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3,
        store.kept_row_counts(),
        again.as_secs_f64() * 1e3,
        one.as_secs_f64() * 1e3
    );
    let runs = store.runs("probe-sweep", usize::MAX).unwrap().len();
    assert!(runs <= keep.runs_keep + 50, "{runs} runs kept");
}
