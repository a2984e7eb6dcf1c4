//! `/metrics` read back with a real Prometheus parser (and `promtool check metrics` where it
//! is installed), over a real store, the real jobs and runner and a manual clock.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::config::Options;
use crate::domain::{ManualClock, Trigger};

#[path = "../../../tests/support/prometheus.rs"]
mod conventions;

/// Parses `text` as Prometheus' text format after checking its conventions (the same checks as
/// the end-to-end tests').
fn parsed(text: &str) -> prometheus_parse::Scrape {
    conventions::prometheus_scrape(text)
}

fn value(v: &prometheus_parse::Value) -> f64 {
    use prometheus_parse::Value::*;
    match v {
        Counter(n) | Gauge(n) | Untyped(n) => *n,
        other => panic!("not a single value: {other:?}"),
    }
}

/// `(metric, id) → value` of the samples of `metric` with an `id` label.
fn by_id(
    scrape: &prometheus_parse::Scrape,
    metric: &str,
    more: &[(&str, &str)],
) -> BTreeMap<String, f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| more.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| (s.labels.get("id").unwrap().to_string(), value(&s.value)))
        .collect()
}

/// Two faketcp peers (judged unsupported at once: down, no I/O), one with a name that needs
/// escaping and a secret of its own, and a notification destination.
fn context(dir: &std::path::Path) -> crate::jobs::JobContext {
    let peers = dir.join("peers.json");
    std::fs::write(
        &peers,
        r#"[{"id": 1, "name": "q\"uo\\te", "host": "127.0.0.1", "port": 1, "protocol": "faketcp",
             "network_name": "n", "network_secret": "peer-secret-0451"},
            {"id": 2, "host": "127.0.0.2", "port": 2, "protocol": "faketcp", "network_name": "m"}]"#,
    )
    .unwrap();
    let options = Options {
        peers_file: Some(peers),
        notify_urls: Some("http://127.0.0.1:9/hook-secret-path".into()),
        ..Options::default()
    };
    crate::jobs::test_context(&dir.join("data"), options)
}

/// Before any run: every family declared in order, every counter there at zero (runs of
/// every job by outcome, the destination, each listed peer's checks), and the join.
#[tokio::test]
async fn every_family_is_declared_and_every_counter_is_there_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(context(dir.path()));
    let text = body(&runner).unwrap();
    let declared: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(declared, METRICS, "{text}");
    let scrape = parsed(&text);
    let runs: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "easytier_probe_job_runs_total")
        .map(|s| value(&s.value))
        .collect();
    assert_eq!(runs, [0.0; 16], "4 jobs × 4 outcomes\n{text}");
    for outcome in ["sent", "failed", "dropped"] {
        let line = format!(
            "easytier_probe_notifications_total{{destination=\"webhook#1\",outcome=\"{outcome}\"}} 0"
        );
        assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    }
    // No peer list yet: fetched, the peers are there with no check.
    runner.run(JobName::PeerFetch, Trigger::Cli).await.unwrap();
    let text = body(&runner).unwrap();
    let scrape = parsed(&text);
    for result in ["up", "down"] {
        let checks = by_id(
            &scrape,
            "easytier_probe_peer_checks_total",
            &[("result", result)],
        );
        assert_eq!(
            checks,
            BTreeMap::from([("1".into(), 0.0), ("2".into(), 0.0)]),
            "{text}"
        );
    }
    let info = scrape
        .samples
        .iter()
        .find(|s| s.metric == "easytier_probe_peer_info" && s.labels.get("id") == Some("1"))
        .unwrap();
    // prometheus-parse keeps a label value's escapes as written.
    assert_eq!(info.labels.get("name"), Some(r#"q\"uo\\te"#), "{text}");
    assert_eq!(info.labels.get("host"), Some("127.0.0.1"));
    assert_eq!(info.labels.get("port"), Some("1"));
    assert_eq!(info.labels.get("protocol"), Some("faketcp"));
    assert_eq!(info.labels.get("network_name"), Some("n"));
    let build = scrape
        .samples
        .iter()
        .find(|s| s.metric == "easytier_probe_build_info")
        .unwrap();
    assert_eq!(build.labels.get("version"), Some(env!("CARGO_PKG_VERSION")));
    for secret in ["peer-secret-0451", "hook-secret-path"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

/// Sweeps through the real job and runner, the clock stepping 15 minutes (so roll-ups and
/// pruning run), a restart, and the clock 30 days ahead and back (a raw row dropped): after
/// every sweep each peer's checks are its sweeps, never fewer than the scrape before; every
/// `peer_up` id has exactly one `peer_info`; the sweeps' durations are the store's.
#[tokio::test]
async fn checks_count_every_sweep_and_never_go_down_across_a_restart_and_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = chrono::DateTime::from_timestamp(1_760_000_000, 0).unwrap();
    let clock = ManualClock::new(t0);
    let step = Duration::from_secs(15 * 60);
    let mut seen = 0.0;
    let mut sweeps = 0.0;
    for life in 0..2 {
        let runner = Runner::new(context(dir.path()).with_clock(clock.shared()));
        runner.run(JobName::PeerFetch, Trigger::Cli).await.unwrap();
        for i in 0..100 {
            if life == 1 && i == 50 {
                clock.jump_wall(chrono::Duration::days(30));
            }
            if life == 1 && i == 51 {
                clock.jump_wall(chrono::Duration::days(-30));
            }
            clock.advance(step);
            let run = runner
                .run(JobName::ProbeSweep, Trigger::Schedule)
                .await
                .unwrap();
            assert_eq!(run.outcome, Outcome::Ok, "{run:?}");
            sweeps += 1.0;
            let text = body(&runner).unwrap();
            let scrape = parsed(&text);
            let down = by_id(
                &scrape,
                "easytier_probe_peer_checks_total",
                &[("result", "down")],
            );
            assert_eq!(down.len(), 2, "{text}");
            for (id, n) in &down {
                assert!(*n >= seen, "peer {id}: {n} checks after {seen}");
                assert_eq!(*n, sweeps, "peer {id}, sweep {sweeps}");
            }
            seen = sweeps;
            let up = by_id(&scrape, "easytier_probe_peer_up", &[]);
            let info = by_id(&scrape, "easytier_probe_peer_info", &[]);
            assert_eq!(
                up.keys().collect::<Vec<_>>(),
                info.keys().collect::<Vec<_>>()
            );
            let infos = |id: &str| {
                scrape
                    .samples
                    .iter()
                    .filter(|s| {
                        s.metric == "easytier_probe_peer_info" && s.labels.get("id") == Some(id)
                    })
                    .count()
            };
            assert!(up.keys().all(|id| infos(id) == 1), "{text}");
            let last = by_id(
                &scrape,
                "easytier_probe_peer_last_check_timestamp_seconds",
                &[],
            );
            assert_eq!(last.len(), 2, "{text}");
        }
        let text = body(&runner).unwrap();
        let line =
            format!("easytier_probe_job_duration_seconds_count{{job=\"probe-sweep\"}} {sweeps}");
        assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        let runs = "easytier_probe_job_runs_total{job=\"probe-sweep\",outcome=\"ok\"} 100";
        assert!(
            text.lines().any(|l| l == runs),
            "this process's runs\n{text}"
        );
    }
}
