//! The backend protocol and `run-job` as CONTRACT.md states them, checked against a real
//! backend that records every request, with the real binary.

use std::time::Duration;

use easytier_probe::store::Store;
use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::common::{backend, bin, node, output, peer_entry, stderr, stdout_json, stop_node};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "contract::jobs_make_exactly_the_contract_requests",
            jobs_make_the_contract_requests,
        ),
        trial(
            "contract::no_key_no_region_means_no_header_no_query",
            no_key_no_region,
        ),
        trial(
            "contract::stored_peers_survive_backend_failures",
            stored_peers_survive_backend_failures,
        ),
        trial(
            "cli::completions_and_the_man_page_come_from_the_command_line",
            completions_and_man_page,
        ),
        trial("cli::help_is_grouped_by_concern", help_is_grouped),
    ]
}

fn distributed(c: &mut std::process::Command, url: &str, data: &std::path::Path) {
    c.env("DISTRIBUTED_MODE_ENABLED", "true")
        .env("BACKEND_BASE_URL", url)
        .env("NODE_TOKEN", "node-tok-1")
        .env("DATA_DIR", data);
}

async fn jobs_make_the_contract_requests() {
    let n = node("contract", "net-a", "secret-a", &["tcp", "udp"]).await;
    let (b, url) = backend(vec![
        peer_entry(json!(1), "tcp", n.port("tcp"), "net-a", Some("secret-a")),
        // No secret in the entry: NETWORK_SECRET applies.
        peer_entry(json!("two"), "udp", n.port("udp"), "net-a", None),
        peer_entry(json!(3), "faketcp", 80, "net-a", None),
        // A bad entry: skipped with a reason, the good ones are used.
        peer_entry(json!(4), "tcp", 0, "net-a", None),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let run = |job: &str| {
        let mut c = bin(dir.path());
        distributed(&mut c, &url, &dir.path().join("data"));
        c.env("API_KEY", "api-key-1")
            .env("REGION", "us west/1")
            .env("NETWORK_SECRET", "secret-a")
            .args(["run-job", job, "--json"]);
        c
    };

    let o = output(run("peer-fetch")).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = stdout_json(&o);
    assert_eq!(j["job"], "peer-fetch");
    assert_eq!(j["outcome"], "ok");
    assert_eq!(j["trigger"], "cli");
    assert!(chrono::DateTime::parse_from_rfc3339(j["started_at"].as_str().unwrap()).is_ok());
    assert!(j["duration_ms"].is_u64());
    assert_eq!(j["error"], Value::Null);
    assert_eq!(j["summary"]["peers"], 3);
    assert_eq!(j["summary"]["added"], 3);
    assert_eq!(j["summary"]["removed"], 0);
    assert_eq!(j["summary"]["source"], "backend");
    assert_eq!(j["summary"]["rejected"], 1);
    let problem = &j["summary"]["rejected_entries"][0];
    assert_eq!(problem["index"], 3);
    assert!(
        problem["reason"].as_str().unwrap().contains("port 0"),
        "{problem}"
    );

    let reqs = b.recorded();
    assert_eq!(reqs.len(), 1);
    let get = &reqs[0];
    assert_eq!(get.method, "GET");
    assert_eq!(get.uri.path(), "/peers");
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(get.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    assert_eq!(query, [("region".to_string(), "us west/1".to_string())]);
    assert_eq!(get.headers["authorization"], "Bearer api-key-1");
    assert!(get.headers.get("x-node-token").is_none());

    let o = output(run("probe-sweep")).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = stdout_json(&o)["summary"].clone();
    assert_eq!(s["peers"], 3);
    assert_eq!(s["reachable"], 2);
    assert!(s["avg_rtt_ms"].as_f64().unwrap() > 0.0);
    assert!(s["max_rtt_ms"].as_f64().unwrap() >= s["avg_rtt_ms"].as_f64().unwrap());
    let results = s["results"].as_array().unwrap();
    let by_id = |id: &str| results.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(by_id("1")["up"], true);
    assert!(by_id("1")["rtt_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(by_id("two")["up"], true);
    assert_eq!(by_id("3")["up"], false);
    assert_eq!(by_id("3")["error_kind"], "unsupported_protocol");
    assert_eq!(by_id("3")["rtt_ms"], Value::Null);
    assert_eq!(b.recorded().len(), 1, "a sweep talks to no backend");

    let o = output(run("status-report")).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = stdout_json(&o);
    assert_eq!(j["summary"]["status"], "Online");
    assert_eq!(j["summary"]["delivered"], true);

    let reqs = b.recorded();
    assert_eq!(reqs.len(), 2);
    let put = &reqs[1];
    assert_eq!(put.method, "PUT");
    assert_eq!(put.uri.path(), "/nodes/status");
    assert_eq!(put.uri.query(), None);
    assert_eq!(put.headers["x-node-token"], "node-tok-1");
    assert!(put.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body = put.body.clone().expect("a JSON body");
    assert_eq!(body["status"], "Online");
    let meta = &body["metadata"];
    assert_eq!(meta["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(meta["region"], "us west/1");
    assert_eq!(meta["peers_count"], 3);
    assert_eq!(meta["reachable_peers"], 2);
    // Integer milliseconds (rtt_us / 1000): on loopback that is a small integer, often 0.
    assert!(body["response_time"].is_u64(), "{body}");
    assert!(meta["avg_peer_rtt"].is_u64(), "{body}");
    assert!(meta["max_peer_rtt"].is_u64(), "{body}");
    assert_eq!(body["response_time"], meta["avg_peer_rtt"]);
    assert!(meta["max_peer_rtt"].as_u64() >= meta["avg_peer_rtt"].as_u64());
    let avg_ms = s["avg_rtt_ms"].as_f64().unwrap();
    assert!(meta["avg_peer_rtt"].as_u64().unwrap() as f64 <= avg_ms.max(1.0) * 10.0);
    stop_node(n).await;

    // A log read from a pipe carries no colour codes.
    let mut verbose = run("peer-fetch");
    verbose.env("RUST_LOG", "easytier_probe=debug");
    let logged = stderr(&output(verbose).await);
    assert!(logged.contains("DEBUG"), "{logged}");
    assert!(!logged.contains('\u{1b}'), "{logged:?}");
}

async fn no_key_no_region() {
    let (b, url) = backend(vec![peer_entry(json!(1), "tcp", 1, "n", None)]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = bin(dir.path());
    distributed(&mut c, &url, &dir.path().join("data"));
    c.args(["run-job", "peer-fetch"]);
    let o = output(c).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let reqs = b.recorded();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].uri.query(), None);
    assert!(reqs[0].headers.get("authorization").is_none());
}

/// An answer over the client's size cap.
static HUGE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("[{}]", "1,".repeat(9_000_000) + "1"));

async fn stored_peers_survive_backend_failures() {
    let n = node("survive", "net-s", "sec", &["tcp", "ws"]).await;
    let (b, url) = backend(vec![
        peer_entry(json!(10), "tcp", n.port("tcp"), "net-s", Some("sec")),
        peer_entry(json!(11), "ws", n.port("ws"), "net-s", Some("sec")),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fetch = |url: &str| {
        let mut c = bin(dir.path());
        distributed(&mut c, url, &data);
        c.args(["run-job", "peer-fetch", "--json"]);
        c
    };
    let o = output(fetch(&url)).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let dead = format!("http://127.0.0.1:{}", easytier_probe::testkit::free_port());
    // (fault the backend answers with, backend URL, what the error must say)
    type Case<'a> = (Option<(u16, &'a str)>, &'a str, &'a str);
    let faults: Vec<Case> = vec![
        (Some((500, "oops")), url.as_str(), "HTTP 500"),
        (Some((200, "garbage{")), url.as_str(), "not JSON"),
        (
            Some((200, r#"{"code":200,"data":{"peers":"x"}}"#)),
            url.as_str(),
            "data.peers",
        ),
        (
            Some((200, r#"{"code":200,"data":{"peers":[{"id":1}]}}"#)),
            url.as_str(),
            "none of the 1",
        ),
        (Some((200, HUGE.as_str())), url.as_str(), "larger than"),
        (None, dead.as_str(), "unreachable"),
    ];
    for (fault, target, needle) in faults {
        *b.fault.lock().unwrap() = fault.map(|(s, body)| (s, body.to_string()));
        let o = output(fetch(target)).await;
        assert_eq!(o.status.code(), Some(1), "{needle}: {}", stderr(&o));
        let j = stdout_json(&o);
        assert_eq!(j["outcome"], "failed");
        assert_eq!(j["summary"]["source"], "cache");
        assert_eq!(j["summary"]["peers"], 2);
        let error = j["error"].as_str().unwrap();
        assert!(error.contains(needle), "{error}");
        assert!(
            error.contains("keeping the stored list of 2 peers"),
            "{error}"
        );
        assert!(stderr(&o).contains(needle));
    }

    // A new process still probes the stored peers, with the backend gone.
    let mut c = bin(dir.path());
    distributed(&mut c, &dead, &data);
    c.args(["run-job", "probe-sweep", "--json"]);
    let o = output(c).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout_json(&o)["summary"]["reachable"], 2);

    let store = Store::open(&data, "test").unwrap();
    let ids: Vec<String> = store
        .peer_list()
        .unwrap()
        .unwrap()
        .peers
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids, ["10", "11"]);
    let outcomes: Vec<&str> = store
        .runs("peer-fetch", 10)
        .unwrap()
        .iter()
        .map(|r| r.outcome.as_str())
        .collect();
    assert_eq!(
        outcomes,
        ["failed", "failed", "failed", "failed", "failed", "failed", "ok"]
    );
    drop(store);
    tokio::time::sleep(Duration::from_millis(10)).await;
    stop_node(n).await;
}

/// `completions <shell>` prints a script the shell takes, for every shell clap_complete knows;
/// a shell it does not know is a usage error (2) naming the ones it does; `manpage` prints
/// easytier-probe(1). Both need no configuration and show no secret from the environment.
async fn completions_and_man_page() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut c = bin(dir.path());
        c.env("NODE_TOKEN", "token-in-env-Zq93").args(args);
        c
    };
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = output(run(&["completions", shell])).await;
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", stderr(&o));
        let script = String::from_utf8_lossy(&o.stdout).to_string();
        for word in ["run-job", "probe-timeout"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
        // bash and zsh also complete a command's values (the job names).
        if matches!(shell, "bash" | "zsh") {
            assert!(script.contains("probe-sweep"), "{shell}: no job names");
        }
        assert!(!script.contains("token-in-env-Zq93"), "{shell}");
    }
    // bash takes the script: the command completes through it.
    let o = output(run(&["completions", "bash"])).await;
    let script = dir.path().join("completion.bash");
    std::fs::write(&script, &o.stdout).unwrap();
    let mut bash = std::process::Command::new("bash");
    bash.arg("-c").arg(format!(
        "source {} && complete -p easytier-probe",
        script.display()
    ));
    let registered = output(bash).await;
    assert_eq!(registered.status.code(), Some(0), "{}", stderr(&registered));
    assert!(
        String::from_utf8_lossy(&registered.stdout).contains("easytier-probe"),
        "{registered:?}"
    );

    let o = output(run(&["completions", "tcsh"])).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bash"), "{}", stderr(&o));

    let o = output(run(&["manpage"])).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let man = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(man.contains(".TH easytier-probe 1"), "{man}");
    assert!(man.contains("run\\-job"), "{man}");
    assert!(!man.contains("token-in-env-Zq93"));
}

/// `--help` lists the options under one heading per concern, in that order, each option under
/// its own, and names the logging variables that are environment only.
async fn help_is_grouped() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = bin(dir.path());
    c.arg("--help");
    let o = output(c).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let help = String::from_utf8_lossy(&o.stdout).to_string();
    let section = |name: &str| {
        help.find(&format!("\n{name}:\n"))
            .unwrap_or_else(|| panic!("no {name}: {help}"))
    };
    let order = [
        "Configuration",
        "Backend",
        "Schedule",
        "Storage",
        "API and status page",
        "Probe",
        "Alerts",
    ];
    let at: Vec<usize> = order.iter().map(|h| section(h)).collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "headings out of order: {help}"
    );
    // Each option sits under its heading (after it, before the next).
    for (option, heading) in [
        ("--config", "Configuration"),
        ("--node-token", "Backend"),
        ("--probe-timeout", "Probe"),
        ("--dns-servers", "Probe"),
        ("--admin-token", "API and status page"),
        ("--notify-urls", "Alerts"),
        ("--history-retention", "Storage"),
    ] {
        let i = order.iter().position(|h| *h == heading).unwrap();
        let pos = help.find(option).unwrap_or_else(|| panic!("no {option}"));
        let end = at.get(i + 1).copied().unwrap_or(help.len());
        assert!(
            at[i] < pos && pos < end,
            "{option} not under {heading}: {help}"
        );
    }
    // Typed values: their kind and their default as clap shows them.
    for shown in [
        "--probe-timeout <DURATION>",
        "[default: 3s]",
        "--runs-keep <N>",
        "[default: 1000]",
        "[env: CONFIG_FILE=]",
    ] {
        assert!(help.contains(shown), "no {shown}: {help}");
    }
    for var in ["LOG_FORMAT", "RUST_LOG", "NO_COLOR"] {
        assert!(help.contains(var), "no {var}: {help}");
    }
}
