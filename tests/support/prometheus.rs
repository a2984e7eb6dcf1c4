//! The Prometheus conventions `/metrics` is held to, read with a real parser: one piece of test
//! code for the library's unit tests (`src/api/metrics/tests.rs`) and the end-to-end tests
//! (`tests/e2e.rs`), each of which includes this file with `#[path]`.

/// `/metrics` read by a real Prometheus parser, after checking the conventions: every
/// sample's family has HELP and TYPE, counters (and only they) end in `_total`, every
/// `easytier_probe_peer_up` id has exactly one `easytier_probe_peer_info`, and
/// `promtool check metrics` finds nothing (where promtool is on PATH; required under `CI`).
pub fn prometheus_scrape(text: &str) -> prometheus_parse::Scrape {
    use std::collections::HashMap;
    let mut types: HashMap<&str, &str> = HashMap::new();
    let mut helps = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(types.insert(name, kind).is_none(), "{name} typed twice");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            helps.push(rest.split_once(' ').unwrap().0);
        } else {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|s| name.strip_suffix(s))
                .find(|f| types.get(f) == Some(&"histogram"))
                .unwrap_or(name);
            assert!(types.contains_key(family), "{line}: no TYPE before it");
            assert!(helps.contains(&family), "{line}: no HELP before it");
        }
    }
    assert_eq!(helps.len(), types.len(), "a HELP for every TYPE");
    promtool_check_metrics(text);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("/metrics parses as Prometheus text format");
    let ids = |metric: &str| -> Vec<&str> {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .filter_map(|s| s.labels.get("id"))
            .collect()
    };
    let info = ids("easytier_probe_peer_info");
    for id in ids("easytier_probe_peer_up") {
        let n = info.iter().filter(|i| **i == id).count();
        assert_eq!(
            n, 1,
            "peer {id}: {n} easytier_probe_peer_info series\n{text}"
        );
    }
    scrape
}

/// `promtool check metrics` on `text` must say nothing. Without promtool it is skipped with a
/// loud message, unless `CI` is set.
pub fn promtool_check_metrics(text: &str) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("!!! promtool not runnable ({e}): `promtool check metrics` SKIPPED !!!");
            return;
        }
        Err(e) => panic!("CI is set but promtool cannot run: {e}"),
    };
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
}
