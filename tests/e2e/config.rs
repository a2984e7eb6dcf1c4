//! The configuration as a user meets it, through the real binary: the config file under flags,
//! the environment and `.env`; `check-config`; one duration grammar.

use std::collections::BTreeMap;
use std::path::Path;

use libtest_mimic::Trial;

use crate::common::{bin, output, stderr};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "cli::config_file_sits_under_flags_environment_and_dotenv",
            precedence,
        ),
        trial(
            "cli::check_config_prints_a_config_file_that_reads_back",
            reads_back,
        ),
        trial("cli::check_config_exits_2_naming_the_problem", exit_codes),
        trial("cli::durations_take_one_grammar", durations),
        trial(
            "cli::the_example_config_file_holds_every_option",
            example_file,
        ),
        trial(
            "cli::logs_take_the_journal_form_when_stderr_is_the_journal",
            journal_form,
        ),
    ]
}

/// `check-config` in `dir` with `env` and `args`: (exit code, stdout, stderr).
async fn check(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
    let mut c = bin(dir);
    c.envs(env.iter().copied()).args(args).arg("check-config");
    let o = output(c).await;
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    (o.status.code(), out, stderr(&o))
}

/// The report's `key = value  # source` lines.
fn lines(report: &str) -> BTreeMap<String, (String, String)> {
    report
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, rest) = l.split_once(" = ")?;
            let (value, source) = rest.split_once("  # ")?;
            Some((key.into(), (value.into(), source.into())))
        })
        .collect()
}

/// Flag > environment > `.env` > config file > default, each layer winning where it is the
/// highest one given; a secret from the file is never printed.
async fn precedence() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("probe.toml"),
        "region = \"from-file\"\nlisten = \"127.0.0.1:9001\"\nprobe_name = \"file-name\"\n\
         probe_timeout = \"1500ms\"\nruns_keep = 7\nhealth_check_interval = 45\n\
         admin_token = \"adm-Secret-77\"\nnode_token = \"node-Secret-88\"\n\
         dns_servers = [\"127.0.0.1:5353\", \"::1\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "REGION=from-dotenv\nPROBE_NAME=dotenv-name\nPROBE_TIMEOUT=2s\n",
    )
    .unwrap();
    let env = [
        ("CONFIG_FILE", "probe.toml"),
        ("LISTEN_ADDR", "127.0.0.1:9002"),
        ("PROBE_NAME", "env-name"),
    ];
    let (code, out, err) = check(dir.path(), &env, &["--region", "from-flag"]).await;
    assert_eq!(code, Some(0), "{err}");
    let got = lines(&out);
    let want = [
        ("region", "\"from-flag\"", "flag"),
        ("listen", "\"127.0.0.1:9002\"", "environment"),
        ("probe_name", "\"env-name\"", "environment"),
        ("probe_timeout", "\"2s\"", ".env"),
        ("runs_keep", "7", "config file"),
        ("health_check_interval", "\"45s\"", "config file"),
        (
            "dns_servers",
            "[\"127.0.0.1:5353\", \"[::1]:53\"]",
            "config file",
        ),
        ("notify_failure_threshold", "3", "default"),
    ];
    for (key, value, source) in want {
        assert_eq!(
            got.get(key),
            Some(&(value.to_string(), source.to_string())),
            "{key}: {out}"
        );
    }
    assert!(
        out.contains("# admin_token = <set, not shown>  # config file"),
        "{out}"
    );
    assert!(
        out.contains("# node_token: given (config file) but unused"),
        "{out}"
    );
    for secret in ["adm-Secret-77", "node-Secret-88"] {
        assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
    }
    // Without the flag and the environment, `.env` and then the file show through.
    let (code, out, err) = check(dir.path(), &[("CONFIG_FILE", "probe.toml")], &[]).await;
    assert_eq!(code, Some(0), "{err}");
    let got = lines(&out);
    assert_eq!(got["region"], ("\"from-dotenv\"".into(), ".env".into()));
    assert_eq!(
        got["listen"],
        ("\"127.0.0.1:9001\"".into(), "config file".into())
    );
}

/// The report is a config file: read back alone, it gives the same settings.
async fn reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("REGION", "eu"),
        ("HEALTH_CHECK_INTERVAL", "2m"),
        ("HISTORY_DAY_RETENTION", "60d"),
        ("DNS_SERVERS", "127.0.0.1:53"),
        ("PROBE_CONCURRENCY", "64"),
        ("DATA_DIR", "/var/lib/probe"),
    ];
    let (code, first, err) = check(dir.path(), &env, &[]).await;
    assert_eq!(code, Some(0), "{err}");
    std::fs::write(dir.path().join("back.toml"), &first).unwrap();
    let (code, second, err) = check(dir.path(), &[], &["--config", "back.toml"]).await;
    assert_eq!(code, Some(0), "{err}");
    let values = |report: &str| -> BTreeMap<String, String> {
        lines(report)
            .into_iter()
            .map(|(k, (v, _))| (k, v))
            .collect()
    };
    assert_eq!(values(&first), values(&second), "{first}\n{second}");
    assert_eq!(values(&second)["health_check_interval"], "\"2m\"");
    assert!(lines(&second)
        .values()
        .all(|(_, source)| source == "config file" || source.starts_with("default")));
}

/// Every problem is exit 2 on stderr, naming what to fix; a good configuration is exit 0.
async fn exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "unknown.toml",
        "listen = \"127.0.0.1:1\"\nhealth_check_intreval = 5\n",
    );
    write("bad-value.toml", "runs_keep = 0\n");
    write("bad-toml.toml", "listen = \n");
    write("bad-type.toml", "probe_timeout = 1.5\n");
    write(
        "secret.toml",
        "node_token = { value = \"tok-Secret-99\" }\n",
    );
    for (env, args, names) in [
        (
            vec![],
            vec!["--config", "unknown.toml"],
            vec!["health_check_intreval", "unknown.toml"],
        ),
        (
            vec![],
            vec!["--config", "bad-value.toml"],
            vec!["RUNS_KEEP", "bad-value.toml"],
        ),
        (
            vec![],
            vec!["--config", "bad-toml.toml"],
            vec!["not valid TOML"],
        ),
        (
            vec![],
            vec!["--config", "bad-type.toml"],
            vec!["probe_timeout"],
        ),
        (vec![], vec!["--config", "secret.toml"], vec!["node_token"]),
        (
            vec![],
            vec!["--config", "missing.toml"],
            vec!["missing.toml", "cannot read"],
        ),
        (
            vec![("HEALTH_CHECK_INTERVAL", "0")],
            vec![],
            vec!["HEALTH_CHECK_INTERVAL"],
        ),
        (
            vec![("PROBE_TIMEOUT", "soon")],
            vec![],
            vec!["PROBE_TIMEOUT"],
        ),
        (
            vec![("DISTRIBUTED_MODE_ENABLED", "true")],
            vec![],
            vec!["BACKEND_BASE_URL"],
        ),
    ] {
        let (code, out, err) = check(dir.path(), &env, &args).await;
        assert_eq!(code, Some(2), "{env:?} {args:?}: {out}{err}");
        for name in names {
            assert!(err.contains(name), "{args:?}: no {name} in {err}");
        }
        assert!(!err.contains("tok-Secret-99"), "{err}");
    }
    let (code, out, err) = check(dir.path(), &[], &[]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("# config file: none"), "{out}");
}

/// Intervals, retentions, the probe timeout and `--wait` read the same grammar; a bare number
/// is seconds (the spec's `PEER_FETCH_INTERVAL=60`).
async fn durations() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("PEER_FETCH_INTERVAL", "60"),
        ("STATUS_REPORT_INTERVAL", "1m 30s"),
        ("HEALTH_CHECK_INTERVAL", "5s"),
        ("HISTORY_RETENTION", "90m"),
        ("HISTORY_HOUR_RETENTION", "2w"),
        ("RUNS_RETENTION", "36h"),
    ];
    let (code, out, err) = check(dir.path(), &env, &["--probe-timeout", "2500ms"]).await;
    assert_eq!(code, Some(0), "{err}");
    let got = lines(&out);
    for (key, value) in [
        ("peer_fetch_interval", "\"1m\""),
        ("status_report_interval", "\"90s\""),
        ("health_check_interval", "\"5s\""),
        ("history_retention", "\"90m\""),
        ("history_hour_retention", "\"14d\""),
        ("runs_retention", "\"36h\""),
        ("probe_timeout", "\"2500ms\""),
    ] {
        assert_eq!(got[key].0, value, "{key}: {out}");
    }
    // An interval is whole seconds; every bound says its range in the same grammar.
    let (code, _, err) = check(dir.path(), &[("NOTIFY_INTERVAL", "1500ms")], &[]).await;
    assert_eq!(code, Some(2));
    assert!(
        err.contains("NOTIFY_INTERVAL") && err.contains("from 1s to 7d"),
        "{err}"
    );
    let mut c = bin(dir.path());
    c.args(["run-job", "probe-sweep", "--wait", "soon"]);
    let o = output(c).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("90s"), "{}", stderr(&o));
}

/// deploy/easytier-probe.example.toml names every option (set or commented out) and is taken
/// as it stands.
async fn example_file() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/easytier-probe.example.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    for key in easytier_probe::config::file_keys() {
        let named = text.lines().any(|l| {
            let l = l.trim_start_matches("# ");
            l.starts_with(&format!("{key} =")) || l.starts_with(&format!("{key}="))
        });
        assert!(named, "the example does not name {key}");
    }
    // Each commented-out value is one the option takes.
    let dir = tempfile::tempdir().unwrap();
    for line in text.lines().filter_map(|l| l.strip_prefix("# ")) {
        let Some((key, value)) = line.split_once(" = ") else {
            continue;
        };
        let value = value.split("  ").next().unwrap_or(value).trim();
        if value == "\"...\"" || key.contains(' ') {
            continue;
        }
        std::fs::write(dir.path().join("one.toml"), format!("{key} = {value}\n")).unwrap();
        let env = [
            ("NODE_TOKEN", "t"),
            ("BACKEND_BASE_URL", "https://b.example"),
        ];
        let (code, out, err) = check(dir.path(), &env, &["--config", "one.toml"]).await;
        assert_eq!(code, Some(0), "{line}: {out}{err}");
    }
    let (code, out, err) = check(
        example.parent().unwrap(),
        &[],
        &["--config", example.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        lines(&out)["health_check_interval"].1,
        "config file",
        "{out}"
    );
}

/// With stderr the stream `JOURNAL_STREAM` names, log lines carry a syslog priority and no
/// timestamp or colour; another stream named, or `LOG_FORMAT` set, keeps the usual forms.
async fn journal_form() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let run = |stream: Option<&str>, format: Option<&str>| {
        let log = dir.path().join("stderr.log");
        let file = std::fs::File::create(&log).unwrap();
        let meta = file.metadata().unwrap();
        let mut c = bin(dir.path());
        c.env("RUST_LOG", "easytier_probe=debug")
            .arg("jobs")
            .stdout(std::process::Stdio::null())
            .stderr(file);
        let named = format!("{}:{}", meta.dev(), meta.ino());
        c.env("JOURNAL_STREAM", stream.unwrap_or(&named));
        if let Some(f) = format {
            c.env("LOG_FORMAT", f);
        }
        let status = c.status().unwrap();
        assert!(status.success());
        std::fs::read_to_string(&log).unwrap()
    };
    let journal = run(None, None);
    let line = journal
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no log line"));
    assert!(
        line.starts_with("<7>easytier_probe::app::cli: open-files limit"),
        "{journal}"
    );
    assert!(
        !journal.contains('\x1b') && !journal.contains("DEBUG"),
        "{journal}"
    );
    let elsewhere = run(Some("1:2"), None);
    assert!(
        elsewhere.contains(" DEBUG ") && !elsewhere.starts_with('<'),
        "{elsewhere}"
    );
    let json = run(None, Some("json"));
    assert!(json.starts_with('{'), "{json}");
}
