use super::*;
use crate::domain::Retention;
use clap::Parser;
use std::collections::HashMap;

struct MapEnv(HashMap<String, String>);

impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

fn env(pairs: &[(&str, &str)]) -> MapEnv {
    MapEnv(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("easytier-probe").chain(args.iter().copied()))
        .expect("arguments parse")
}

/// The problem with `args`: clap's (a value its parser refuses) or resolve's.
fn problem(args: &[&str]) -> String {
    match Cli::try_parse_from(std::iter::once("easytier-probe").chain(args.iter().copied())) {
        Err(e) => e.to_string(),
        Ok(cli) => match Settings::resolve(&cli.options, &env(&[])) {
            Err(e) => e.0,
            Ok(_) => panic!("{args:?} was taken"),
        },
    }
}

#[test]
fn distributed_mode_names_the_missing_setting() {
    let cli = parse(&["--distributed-mode", "--node-token", "t"]);
    let err = Settings::resolve(&cli.options, &env(&[])).unwrap_err();
    assert!(err.0.contains("BACKEND_BASE_URL"), "{err}");

    let cli = parse(&["--distributed-mode", "--backend-base-url", "http://b.test"]);
    let err = Settings::resolve(&cli.options, &env(&[])).unwrap_err();
    assert!(err.0.contains("NODE_TOKEN"), "{err}");
}

#[test]
fn flags_work_after_the_command_and_secrets_are_redacted() {
    let cli = parse(&[
        "run-job",
        "peer-fetch",
        "--distributed-mode",
        "--backend-base-url",
        "http://b.test/api",
        "--node-token",
        "tok-123",
        "--region",
        "us-west",
    ]);
    let s = Settings::resolve(&cli.options, &env(&[])).unwrap();
    let backend = s.backend.as_ref().unwrap();
    assert_eq!(backend.node_token.expose(), "tok-123");
    assert_eq!(s.region.as_deref(), Some("us-west"));
    assert_eq!(s.peer_source, PeerSource::Backend);
    let debug = format!("{s:?}");
    assert!(!debug.contains("tok-123"), "{debug}");
}

#[test]
fn secret_files_and_credentials() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "from-file\n").unwrap();
    std::fs::write(dir.path().join("api_key"), "from-credential").unwrap();
    let e = env(&[
        (
            "NODE_TOKEN_FILE",
            dir.path().join("token").to_str().unwrap(),
        ),
        ("CREDENTIALS_DIRECTORY", dir.path().to_str().unwrap()),
    ]);
    let cli = parse(&["--distributed-mode", "--backend-base-url", "http://b.test"]);
    let s = Settings::resolve(&cli.options, &e).unwrap();
    let b = s.backend.unwrap();
    assert_eq!(b.node_token.expose(), "from-file");
    assert_eq!(b.api_key.unwrap().expose(), "from-credential");

    std::fs::write(dir.path().join("network_secret"), "net-from-credential\n").unwrap();
    let s = Settings::resolve(&parse(&[]).options, &e).unwrap();
    assert_eq!(s.network_secret.expose(), "net-from-credential");

    let e = env(&[("NODE_TOKEN_FILE", "/nonexistent/secret")]);
    let err = Settings::resolve(&cli.options, &e).unwrap_err();
    assert!(err.0.contains("NODE_TOKEN_FILE"), "{err}");
}

#[test]
fn bad_values_name_their_setting() {
    for (args, name) in [
        (
            vec!["--health-check-interval", "0"],
            "HEALTH_CHECK_INTERVAL",
        ),
        (vec!["--peer-fetch-interval", "abc"], "PEER_FETCH_INTERVAL"),
        (vec!["--listen", "nowhere"], "LISTEN_ADDR"),
    ] {
        let err = problem(&args);
        assert!(err.contains(name), "{err}");
    }
    let cli = parse(&[
        "--distributed-mode",
        "--backend-base-url",
        "ftp://x",
        "--node-token",
        "t",
    ]);
    let err = Settings::resolve(&cli.options, &env(&[])).unwrap_err();
    assert!(err.0.contains("BACKEND_BASE_URL"), "{err}");
}

#[test]
fn data_dir_falls_back_to_alias_then_state_directory() {
    let cli = parse(&[]);
    let s = Settings::resolve(&cli.options, &env(&[("STATE_DIRECTORY", "/var/lib/p:/x")])).unwrap();
    assert_eq!(s.data_dir, PathBuf::from("/var/lib/p"));
    let s = Settings::resolve(
        &cli.options,
        &env(&[("DATABASE_PATH", "/db"), ("STATE_DIRECTORY", "/s")]),
    )
    .unwrap();
    assert_eq!(s.data_dir, PathBuf::from("/db"));
    let s = Settings::resolve(&cli.options, &env(&[])).unwrap();
    assert_eq!(s.data_dir, PathBuf::from("./easytier-probe-data"));
    assert_eq!(s.listen, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
}

#[test]
fn retentions_default_parse_and_bound() {
    let s = Settings::resolve(&parse(&[]).options, &env(&[])).unwrap();
    assert_eq!(s.retention, Retention::default());
    let s = Settings::resolve(
        &parse(&[
            "--history-retention",
            "2h",
            "--history-minute-retention",
            "3d",
            "--history-hour-retention",
            "40d",
            "--history-day-retention",
            "3650d",
            "--runs-keep",
            "10",
            "--runs-retention",
            "36h",
        ])
        .options,
        &env(&[]),
    )
    .unwrap();
    let r = s.retention;
    assert_eq!(r.raw, chrono::Duration::hours(2));
    assert_eq!(r.minute, chrono::Duration::days(3));
    assert_eq!(r.hour, chrono::Duration::days(40));
    assert_eq!(r.day, chrono::Duration::days(3650));
    assert_eq!((r.runs_keep, r.runs_age), (10, chrono::Duration::hours(36)));
    for (flag, var, bad) in [
        ("--history-retention", "HISTORY_RETENTION", "5m"),
        ("--history-retention", "HISTORY_RETENTION", "31d"),
        (
            "--history-minute-retention",
            "HISTORY_MINUTE_RETENTION",
            "soon",
        ),
        ("--history-hour-retention", "HISTORY_HOUR_RETENTION", "d"),
        ("--history-day-retention", "HISTORY_DAY_RETENTION", "30d"),
        (
            "--history-minute-retention",
            "HISTORY_MINUTE_RETENTION",
            "1h",
        ),
        ("--history-hour-retention", "HISTORY_HOUR_RETENTION", "7d"),
        ("--runs-keep", "RUNS_KEEP", "0"),
        ("--runs-retention", "RUNS_RETENTION", "1x"),
    ] {
        let err = problem(&[flag, bad]);
        assert!(err.contains(var), "{var}={bad}: {err}");
    }
}

/// The tables of names agree with the clap definitions: a secret's flag reads its variable
/// and hides its value in `--help`; an interval flag reads its variable.
#[test]
fn name_tables_match_the_flags() {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let arg = |flag: &str| {
        cmd.get_arguments()
            .find(|a| a.get_long().is_some_and(|l| format!("--{l}") == flag))
            .unwrap_or_else(|| panic!("{flag} is a flag"))
    };
    for s in secrets::SECRETS {
        let a = arg(s.flag);
        assert_eq!(a.get_env().and_then(|e| e.to_str()), Some(s.variable));
        assert!(a.is_hide_env_values_set(), "{} shows its value", s.flag);
    }
    for (variable, flag) in INTERVAL_VARIABLES {
        assert_eq!(arg(flag).get_env().and_then(|e| e.to_str()), Some(variable));
    }
}

#[test]
fn interval_variables_name_their_settings() {
    let cli = Cli::try_parse_from([
        "easytier-probe",
        "--peer-fetch-interval",
        "7",
        "--status-report-interval",
        "8",
        "--health-check-interval",
        "9",
        "--notify-interval",
        "10",
    ])
    .unwrap();
    let s = Settings::resolve(&cli.options, &env(&[])).unwrap();
    let got: Vec<_> = INTERVAL_VARIABLES
        .iter()
        .map(|(v, _)| s.interval(v).map(|d| d.as_secs()))
        .collect();
    assert_eq!(got, [Some(7), Some(8), Some(9), Some(10)]);
    assert_eq!(s.interval("NO_SUCH_INTERVAL"), None);
}

/// With several bad settings the first one named is the same as it always was: the listen
/// address before the intervals.
#[test]
fn the_listen_address_is_checked_before_the_intervals() {
    let err = problem(&["--listen", "nowhere", "--health-check-interval", "0"]);
    assert!(err.contains("LISTEN_ADDR"), "{err}");
}

#[test]
fn alerts_are_configured_by_urls_thresholds_and_a_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("urls");
    std::fs::write(&file, "ntfy://ntfy.sh/ops\nhttps://hooks.example/am\n").unwrap();
    let file_var = file.to_str().unwrap();
    let cli = parse(&[
        "--notify-failure-threshold",
        "2",
        "--probe-name",
        "fra-1",
        "--public-url",
        "https://probe.example/",
        "--region",
        "eu",
    ]);
    let s = Settings::resolve(&cli.options, &env(&[("NOTIFY_URLS_FILE", file_var)])).unwrap();
    let n = &s.notify;
    assert_eq!(format!("{:?}", n.destinations), "[ntfy#1, webhook#2]");
    assert_eq!((n.thresholds.failure, n.thresholds.success), (2, 2));
    assert_eq!(n.probe.name, "fra-1");
    assert_eq!(n.probe.region.as_deref(), Some("eu"));
    assert_eq!(n.probe.public_url.as_deref(), Some("https://probe.example"));
    // The default name is the host's.
    let s = Settings::resolve(&parse(&[]).options, &env(&[])).unwrap();
    assert!(!s.notify.probe.name.is_empty());
    assert!(s.notify.destinations.is_empty());
}

#[test]
fn bad_alert_settings_name_the_variable_and_never_the_url() {
    for (args, names) in [
        (
            &["--notify-failure-threshold", "0"][..],
            "NOTIFY_FAILURE_THRESHOLD",
        ),
        (
            &["--notify-success-threshold", "x"][..],
            "NOTIFY_SUCCESS_THRESHOLD",
        ),
        (&["--public-url", "probe.example"][..], "PUBLIC_URL"),
        (
            &["--notify-urls", "telegram://123:s3cret@telegram"][..],
            "NOTIFY_URLS",
        ),
    ] {
        let err = problem(args);
        assert!(err.contains(names), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}

#[test]
fn probe_timeout_and_concurrency_are_honoured_and_checked() {
    let s = Settings::resolve(&parse(&[]).options, &env(&[])).unwrap();
    assert_eq!(s.probe.timeout, Duration::from_secs(3));
    assert_eq!(s.probe.concurrency, None);

    let cli = parse(&["--probe-timeout", "1500ms", "--probe-concurrency", "40"]);
    let s = Settings::resolve(&cli.options, &env(&[])).unwrap();
    assert_eq!(s.probe.timeout, Duration::from_millis(1500));
    assert_eq!(s.probe.concurrency, Some(40));
    // A configured cap wins over the open-files limit, whatever it is.
    assert_eq!(s.probe.in_flight(64), (40, false));
    // A bare number is seconds, as everywhere.
    let s = Settings::resolve(&parse(&["--probe-timeout", "5"]).options, &env(&[])).unwrap();
    assert_eq!(s.probe.timeout, Duration::from_secs(5));

    for (flag, bad, names) in [
        ("--probe-timeout", "0s", "PROBE_TIMEOUT"),
        ("--probe-timeout", "2m", "PROBE_TIMEOUT"),
        ("--probe-timeout", "soon", "PROBE_TIMEOUT"),
        ("--probe-concurrency", "0", "PROBE_CONCURRENCY"),
        ("--probe-concurrency", "many", "PROBE_CONCURRENCY"),
    ] {
        let err = problem(&[flag, bad]);
        assert!(err.contains(names), "{flag} {bad}: {err}");
    }
}

#[test]
fn derived_concurrency_follows_the_open_files_limit() {
    let probe = ProbeSettings::default();
    // Plenty of descriptors: the derived maximum.
    assert_eq!(
        probe.in_flight(1 << 20),
        (ProbeSettings::MAX_DERIVED_CONCURRENCY, false)
    );
    // 20 000 (this machine's limit): (20 000 − 1 024) / 4 = 4 744, past the maximum.
    assert_eq!(probe.in_flight(20_000), (4096, false));
    // The common default of 1 024: half kept back, 4 a probe; and the limit is said to bind.
    assert_eq!(probe.in_flight(1024), (128, true));
    assert_eq!(probe.in_flight(4096), (768, true));
    assert_eq!(probe.in_flight(0), (1, true));
}

#[test]
fn peers_down_last_time_get_a_lane_beside_the_others() {
    let derived = ProbeSettings::default();
    // 10 000 peers, 2 000 down last time, at 20 000 descriptors: all 2 000 wait out their
    // timeout beside 1 024 answering ones, within the 4 096 bound.
    assert_eq!(derived.lanes(20_000, 2000, 8000), (2000, 1024));
    // No peer down: the others' lane alone, up to its own maximum.
    assert_eq!(derived.lanes(20_000, 0, 10_000).1, 1024);
    // More down than the bound leaves: the others keep their share.
    assert_eq!(derived.lanes(20_000, 5000, 5000), (3072, 1024));
    // All down: the waiting lane takes what the bound allows.
    assert_eq!(derived.lanes(20_000, 1000, 0).0, 1000);
    assert_eq!(derived.lanes(1 << 20, 9000, 0).0, 4096);
    // A tight limit (128 in flight): each lane gets half, never more than the bound together.
    assert_eq!(derived.lanes(1024, 2000, 8000), (64, 64));
    // A configured cap is the bound for both lanes together.
    let capped = ProbeSettings {
        concurrency: Some(256),
        ..ProbeSettings::default()
    };
    assert_eq!(capped.lanes(20_000, 0, 10_000), (0, 256));
    // A bound of 1: one lane, never two probes at once.
    let one = ProbeSettings {
        concurrency: Some(1),
        ..ProbeSettings::default()
    };
    assert_eq!(one.lanes(20_000, 5, 5), (0, 1));
    for (waiting, others) in [(0, 10), (3, 0), (2000, 8000), (10, 8000), (2000, 10)] {
        let (a, b) = capped.lanes(20_000, waiting, others);
        assert!(a + b <= 256, "{waiting} {others}: {a} + {b}");
    }
    assert_eq!(capped.lanes(20_000, 2000, 8000), (128, 128));
    assert_eq!(capped.lanes(20_000, 10, 8000), (10, 246));
    assert_eq!(capped.lanes(20_000, 2000, 10), (246, 10));
}

#[test]
fn distributed_mode_is_a_switch_that_never_takes_the_command() {
    // The spec's form, flag before the command: the command is not taken as its value.
    let cli = parse(&[
        "--distributed-mode",
        "run-job",
        "peer-fetch",
        "--backend-base-url",
        "http://b.test",
        "--node-token",
        "t",
    ]);
    assert!(
        matches!(
            cli.command,
            Some(Command::RunJob {
                job: crate::domain::JobName::PeerFetch,
                ..
            })
        ),
        "{:?}",
        cli.command
    );
    assert_eq!(cli.options.distributed_mode, Some(true));
    assert!(Settings::resolve(&cli.options, &env(&[]))
        .unwrap()
        .backend
        .is_some());
    // A value only with `=`, to turn it off over DISTRIBUTED_MODE_ENABLED.
    let cli = parse(&["--distributed-mode=false", "serve"]);
    assert_eq!(cli.options.distributed_mode, Some(false));
    assert!(matches!(cli.command, Some(Command::Serve { .. })));
}

#[test]
fn dns_servers_take_addresses_with_optional_ports() {
    let s = Settings::resolve(&parse(&[]).options, &env(&[])).unwrap();
    assert!(s.probe.dns_servers.is_empty(), "none given: the system's");

    let cli = parse(&["--dns-servers", "127.0.0.1:5353, 10.0.0.1 [::1]:53,::2"]);
    let s = Settings::resolve(&cli.options, &env(&[])).unwrap();
    let want: Vec<std::net::SocketAddr> = ["127.0.0.1:5353", "10.0.0.1:53", "[::1]:53", "[::2]:53"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(s.probe.dns_servers, want);

    for bad in ["dns.google", "1.1.1.1:port", "300.1.1.1"] {
        let cli = parse(&["--dns-servers", bad]);
        let err = Settings::resolve(&cli.options, &env(&[])).unwrap_err();
        assert!(err.0.contains("DNS_SERVERS"), "{bad}: {err}");
        assert!(err.0.contains(bad), "{bad}: {err}");
    }
}

/// The defaults `--help` shows (clap's) are the defaults the code applies when no option was
/// parsed at all (tests and the demo build their options in code).
#[test]
fn the_defaults_shown_are_the_defaults_applied() {
    let shown = Settings::resolve(&parse(&[]).options, &env(&[])).unwrap();
    let applied = Settings::resolve(&Options::default(), &env(&[])).unwrap();
    assert_eq!(format!("{shown:?}"), format!("{applied:?}"));
    assert_eq!(
        parse(&[]).options.probe_timeout,
        Some(ProbeSettings::DEFAULT_TIMEOUT)
    );
}
