//! The deploy files agree with `jobs/` and with the binary.
//!
//! Every systemd unit in `deploy/systemd`, every Nomad file in `deploy/nomad` and the
//! `Dockerfile` are read here and checked against the job specs in `jobs/*.toml` (which jobs,
//! their schedules, timeouts and overlap policy) and against the binary itself: each command line
//! goes through the binary's own CLI parser, each environment variable must be one it reads, and
//! the settings a deployment hands it are resolved by its own code. Where systemd or Nomad cannot
//! say a schedule in the specs' terms, the functions under "Schedules" state the mapping once.
//!
//! `systemd-analyze verify` on the units is the other half (deploy/ci/verify-systemd.sh).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use easytier_probe::config::{Cli, Command, Env, ProbeSettings, Settings};
use easytier_probe::domain::{JobName, JobSpec, Schedule};

/// Where every deploy file installs the binary.
const BINARY: &str = "/usr/local/bin/easytier-probe";
/// What `run-job` gives a serve that runs the job for it, beyond the job's timeout, to answer
/// (src/cli.rs). A systemd start timeout must leave at least that.
const SERVE_ANSWER_MARGIN: Duration = Duration::from_secs(15);
/// How long serve may take to send `Offline` at shutdown (src/serve.rs), after the drain.
const OFFLINE_BOUND: Duration = Duration::from_secs(5);
/// Secrets: never a literal value in a deploy file, only their `_FILE` forms or credentials.
const SECRET_VARIABLES: [&str; 4] = ["NODE_TOKEN", "API_KEY", "ADMIN_TOKEN", "NETWORK_SECRET"];
/// The systemd credentials the binary reads from `$CREDENTIALS_DIRECTORY` (src/config.rs).
const CREDENTIALS: [&str; 3] = ["node_token", "api_key", "admin_token"];
/// The variables of the `docker run` example in spec/distributed-mode.md ("Docker Deployment").
const SPEC_DOCKER_RUN: [(&str, &str); 4] = [
    ("DISTRIBUTED_MODE_ENABLED", "true"),
    ("BACKEND_BASE_URL", "http://backend.example.com"),
    ("NODE_TOKEN", "your-secret-token"),
    ("REGION", "us-west"),
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The files directly in `dir` whose names end with `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file() && file_name(p).ends_with(suffix))
        .collect();
    out.sort();
    out
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

// ---- the jobs and the binary ------------------------------------------------------------------

/// The job specs as `jobs/*.toml` has them, parsed by the binary's own parser; one per job the
/// binary knows, each named for its file.
fn specs() -> BTreeMap<JobName, JobSpec> {
    let mut specs = BTreeMap::new();
    for path in files(&repo().join("jobs"), ".toml") {
        let stem = file_name(&path).trim_end_matches(".toml");
        let job = JobName::parse(stem)
            .unwrap_or_else(|| panic!("{}: the binary has no job {stem:?}", path.display()));
        let spec =
            JobSpec::parse(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            spec.name,
            stem,
            "{}: name must match the file",
            path.display()
        );
        specs.insert(job, spec);
    }
    assert_eq!(
        specs.keys().copied().collect::<Vec<_>>(),
        JobName::ALL.to_vec(),
        "jobs/ must hold one spec per job of the binary"
    );
    specs
}

/// A deploy file's command line, parsed by the binary's parser; a flag or command it does not
/// accept fails here with clap's message.
fn parse_cli(argv: &[String], origin: &str) -> Cli {
    assert_eq!(
        argv.first().map(String::as_str),
        Some(BINARY),
        "{origin}: runs {argv:?}"
    );
    <Cli as Parser>::try_parse_from(argv).unwrap_or_else(|e| {
        panic!(
            "{origin}: the binary does not accept `{}`:\n{e}",
            argv.join(" ")
        )
    })
}

/// The command a parsed command line runs (none means `serve`).
fn command(cli: &Cli) -> Command {
    cli.command
        .clone()
        .unwrap_or(Command::Serve { no_schedule: false })
}

/// Every environment variable the binary reads: the `env` of each CLI option, plus the ones read
/// outside clap (secret files, the data dir alias, logging).
fn known_variables() -> BTreeSet<String> {
    let mut vars: BTreeSet<String> = Cli::command()
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .collect();
    for var in [
        "NODE_TOKEN_FILE",
        "API_KEY_FILE",
        "ADMIN_TOKEN_FILE",
        "DATABASE_PATH",
        "RUST_LOG",
        "LOG_FORMAT",
    ] {
        vars.insert(var.to_string());
    }
    vars
}

fn check_variable(name: &str, origin: &str, known: &BTreeSet<String>) {
    assert!(
        known.contains(name),
        "{origin}: the binary reads no variable {name} (it reads {known:?})"
    );
}

/// The environment a deployment gives the binary, for [`Settings::resolve`].
struct MapEnv(BTreeMap<String, String>);

impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

/// The settings the binary makes of a command line and an environment, with nothing taken from
/// this test's own environment: clap sees the variables only as the flags they stand for.
fn resolve(argv: &[String], vars: &BTreeMap<String, String>) -> Result<Settings, String> {
    let mut args = vec![argv[0].clone()];
    for arg in Cli::command().get_arguments() {
        let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        if let Some(value) = vars.get(env.to_str().unwrap_or_default()) {
            args.push(format!("--{long}={value}"));
        }
    }
    args.extend(argv[1..].iter().cloned());
    let matches = Cli::command()
        .mut_args(|arg| arg.env(None::<&'static str>))
        .try_get_matches_from(&args)
        .map_err(|e| e.to_string())?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?;
    Settings::resolve(&cli.options, &MapEnv(vars.clone())).map_err(|e| e.to_string())
}

/// A directory holding every credential the binary reads, as systemd or Nomad would provide.
fn credentials_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in CREDENTIALS {
        std::fs::write(dir.path().join(name), format!("{name}-value\n")).expect("credential");
    }
    dir
}

/// Enough descriptors for a sweep's concurrent probes (a few each: socket, timers, QUIC
/// endpoint) beside the API's connections and the store.
fn needed_open_files() -> u64 {
    4 * ProbeSettings::default().concurrency as u64 + 1024
}

// ---- schedules ----------------------------------------------------------------------------------

/// A job's schedule as a Nomad periodic cron. Nomad's parser (cronexpr) reads seconds only in its
/// 7-field form `sec min hour dom month dow year`; a 6-field expression there means
/// `min hour dom month dow year`. The specs' cron is `sec min hour dom month dow`, so it gains
/// the year; an `every` becomes the cron that fires at exactly that interval, which exists when
/// the interval divides a minute, an hour or a day.
fn nomad_cron(schedule: &Schedule) -> Result<String, String> {
    let six = match schedule {
        Schedule::Cron(cron) => {
            let fields: Vec<&str> = cron.split_whitespace().collect();
            let restricted = |f: &str| f != "*" && f != "?";
            if restricted(fields[3]) && restricted(fields[5]) {
                return Err(format!(
                    "cron {cron:?} restricts both day of month and day of week, which the \
                     built-in scheduler reads as AND and Nomad as OR"
                ));
            }
            cron.clone()
        }
        Schedule::Every(every) => {
            let s = every.as_secs();
            if every.subsec_nanos() != 0 || s == 0 {
                return Err(format!("every {every:?} is not a whole number of seconds"));
            }
            let step = |n: u64| {
                if n == 1 {
                    "*".to_string()
                } else {
                    format!("*/{n}")
                }
            };
            match s {
                s if s < 60 && 60 % s == 0 => format!("{} * * * * *", step(s)),
                s if s % 60 == 0 && s < 3600 && 3600 % s == 0 => {
                    format!("0 {} * * * *", step(s / 60))
                }
                s if s % 3600 == 0 && s < 86_400 && 86_400 % s == 0 => {
                    format!("0 0 {} * * *", step(s / 3600))
                }
                86_400 => "0 0 0 * * *".to_string(),
                s => {
                    return Err(format!(
                        "every = \"{s}s\" divides no minute, hour or day, so no cron fires at \
                         exactly that interval: pick one that does, or give the job a `cron`"
                    ))
                }
            }
        }
    };
    Ok(format!("{six} *"))
}

/// A spec's 6-field cron (`sec min hour dom month dow`, UTC, as the built-in scheduler reads it)
/// as a systemd `OnCalendar=` value. Numbers, `*`, `*/n`, `a/n`, `a-b` and lists map one to one;
/// anything else (`L`, `W`, `#`, steps over ranges) is refused rather than guessed.
fn systemd_calendar(cron: &str) -> Result<String, String> {
    let fields: Vec<&str> = cron.split_whitespace().collect();
    let [sec, min, hour, dom, month, dow] = fields[..] else {
        return Err(format!("cron {cron:?} must have 6 fields"));
    };
    let refuse = || format!("cron {cron:?}: no exact OnCalendar= form for this; extend the map");
    let number = |v: &str, first: u32| -> Result<String, String> {
        match v {
            "*" => Ok(format!("{first:02}")),
            v => v
                .parse::<u32>()
                .map(|n| format!("{n:02}"))
                .map_err(|_| refuse()),
        }
    };
    // One field of the date or time; `first` is where `*/n` starts counting.
    let field = |f: &str, first: u32| -> Result<String, String> {
        if f == "*" {
            return Ok("*".into());
        }
        f.split(',')
            .map(|part| match part.split_once('/') {
                Some((start, n)) => {
                    let n: u32 = n.parse().map_err(|_| refuse())?;
                    Ok(format!("{}/{n}", number(start, first)?))
                }
                None => match part.split_once('-') {
                    Some((a, b)) => Ok(format!("{}..{}", number(a, first)?, number(b, first)?)),
                    None => number(part, first),
                },
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|parts| parts.join(","))
    };
    let weekday = |d: &str| -> Result<&'static str, String> {
        const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        match d.parse::<usize>() {
            Ok(n) if n <= 7 => Ok(DAYS[n % 7]),
            _ => DAYS
                .iter()
                .find(|day| day.eq_ignore_ascii_case(d))
                .copied()
                .ok_or_else(refuse),
        }
    };
    let days = match dow {
        "*" | "?" => String::new(),
        dow => {
            let parts = dow
                .split(',')
                .map(|part| match part.split_once('-') {
                    Some((a, b)) => Ok(format!("{}..{}", weekday(a)?, weekday(b)?)),
                    None => weekday(part).map(String::from),
                })
                .collect::<Result<Vec<_>, _>>()?;
            format!("{} ", parts.join(","))
        }
    };
    let dom = if dom == "?" { "*" } else { dom };
    Ok(format!(
        "{days}*-{}-{} {}:{}:{} UTC",
        field(month, 1)?,
        field(dom, 1)?,
        field(hour, 0)?,
        field(min, 0)?,
        field(sec, 0)?
    ))
}

#[test]
fn schedules_map_to_nomad_and_systemd() {
    let every = |s| Schedule::Every(Duration::from_secs(s));
    assert_eq!(nomad_cron(&every(5)).unwrap(), "*/5 * * * * * *");
    assert_eq!(nomad_cron(&every(1)).unwrap(), "* * * * * * *");
    assert_eq!(nomad_cron(&every(60)).unwrap(), "0 * * * * * *");
    assert_eq!(nomad_cron(&every(900)).unwrap(), "0 */15 * * * * *");
    assert_eq!(nomad_cron(&every(7200)).unwrap(), "0 0 */2 * * * *");
    assert_eq!(nomad_cron(&every(86_400)).unwrap(), "0 0 0 * * * *");
    assert!(nomad_cron(&every(45)).is_err());
    assert!(nomad_cron(&every(90)).is_err());
    let cron = |c: &str| Schedule::Cron(c.into());
    assert_eq!(
        nomad_cron(&cron("0 */5 * * * *")).unwrap(),
        "0 */5 * * * * *"
    );
    assert!(nomad_cron(&cron("0 0 12 1 * MON")).is_err());

    // Each of these was checked with `systemd-analyze calendar`.
    for (cron, calendar) in [
        ("0 */5 * * * *", "*-*-* *:00/5:00 UTC"),
        ("*/10 * * * * *", "*-*-* *:*:00/10 UTC"),
        ("30 0 3 * * MON-FRI", "Mon..Fri *-*-* 03:00:30 UTC"),
        ("0 15 10 * * 1,3,5", "Mon,Wed,Fri *-*-* 10:15:00 UTC"),
        ("0 0 12 * * 7", "Sun *-*-* 12:00:00 UTC"),
        ("0 0 0 1 */3 ?", "*-01/3-01 00:00:00 UTC"),
    ] {
        assert_eq!(systemd_calendar(cron).unwrap(), calendar, "{cron}");
    }
    assert!(systemd_calendar("0 0 0 L * *").is_err());
    assert!(systemd_calendar("0 0 0 * * 5#2").is_err());
}

/// A systemd time span as these units write them: `<n>s`, `<n>min`, `<n>h`, `<n>ms` or bare
/// seconds.
fn systemd_span(value: &str, origin: &str) -> Duration {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let n: u64 = number
        .parse()
        .unwrap_or_else(|_| panic!("{origin}: {value:?} is not a time span this test reads"));
    match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "min" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => panic!("{origin}: {value:?} is not a time span this test reads"),
    }
}

// ---- systemd ------------------------------------------------------------------------------------

fn systemd_dir() -> PathBuf {
    repo().join("deploy/systemd")
}

/// A unit file, read as ini: keys may repeat (systemd appends), and values stay raw.
struct Unit {
    name: String,
    ini: ini::Ini,
}

impl Unit {
    fn load(name: &str) -> Unit {
        let path = systemd_dir().join(name);
        let options = ini::ParseOption {
            enabled_quote: false,
            enabled_escape: false,
            ..Default::default()
        };
        let ini = ini::Ini::load_from_str_opt(&read(&path), options)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Unit {
            name: name.to_string(),
            ini,
        }
    }

    fn all(&self, section: &str, key: &str) -> Vec<&str> {
        self.ini
            .section(Some(section))
            .map(|s| s.get_all(key).collect())
            .unwrap_or_default()
    }

    fn get(&self, section: &str, key: &str) -> Option<&str> {
        let values = self.all(section, key);
        assert!(
            values.len() <= 1,
            "{}: [{section}] {key}= set twice",
            self.name
        );
        values.first().copied()
    }

    fn one(&self, section: &str, key: &str) -> &str {
        self.get(section, key)
            .unwrap_or_else(|| panic!("{}: [{section}] needs {key}=", self.name))
    }

    /// `[Service]` as (key, value) pairs, in order.
    fn service(&self) -> Vec<(&str, &str)> {
        self.ini
            .section(Some("Service"))
            .map(|s| s.iter().collect())
            .unwrap_or_default()
    }

    /// ExecStart= as argv. systemd also knows quotes, `$VAR` and `%` specifiers; these units use
    /// none of them, so a line with any is refused rather than split the wrong way.
    fn argv(&self) -> Vec<String> {
        let line = self.one("Service", "ExecStart");
        assert!(
            !line.contains(['"', '\'', '$', '%', '\\', ';']),
            "{}: ExecStart= must be plain words for this test to check it: {line}",
            self.name
        );
        line.split_whitespace().map(String::from).collect()
    }

    fn cli(&self) -> Cli {
        parse_cli(&self.argv(), &self.name)
    }

    fn span(&self, section: &str, key: &str) -> Duration {
        systemd_span(
            self.one(section, key),
            &format!("{} [{section}] {key}", self.name),
        )
    }
}

const SCHEDULER_UNIT: &str = "easytier-probe.service";
const API_UNIT: &str = "easytier-probe-api.service";
const TIMERS_TARGET: &str = "easytier-probe-timers.target";

fn job_service(job: JobName) -> String {
    format!("easytier-probe-{job}.service")
}

fn job_timer(job: JobName) -> String {
    format!("easytier-probe-{job}.timer")
}

/// Every service unit: the two serve modes, then one per job.
fn service_units() -> Vec<String> {
    [SCHEDULER_UNIT, API_UNIT]
        .into_iter()
        .map(String::from)
        .chain(JobName::ALL.iter().map(|j| job_service(*j)))
        .collect()
}

/// `[Service]` keys that say what a unit runs and how; every other key is the sandbox, which all
/// the probe's services share.
const PER_UNIT_KEYS: [&str; 9] = [
    "Type",
    "ExecStart",
    "Restart",
    "RestartSec",
    "RestartPreventExitStatus",
    "TimeoutStartSec",
    "TimeoutStopSec",
    "SuccessExitStatus",
    "LoadCredential",
];

#[test]
fn systemd_has_a_unit_per_job_and_nothing_else() {
    let mut expected: BTreeSet<String> = [SCHEDULER_UNIT, API_UNIT, TIMERS_TARGET]
        .map(String::from)
        .into();
    for job in specs().keys() {
        expected.insert(job_service(*job));
        expected.insert(job_timer(*job));
    }
    let present: BTreeSet<String> = files(&systemd_dir(), "")
        .iter()
        .map(|p| file_name(p).to_string())
        .filter(|n| n.ends_with(".service") || n.ends_with(".timer") || n.ends_with(".target"))
        .collect();
    assert_eq!(
        present, expected,
        "deploy/systemd must have exactly the units for the jobs in jobs/"
    );

    // The target starts timer mode: the API and every job's timer.
    let target = Unit::load(TIMERS_TARGET);
    let wants: BTreeSet<String> = target
        .all("Unit", "Wants")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .map(String::from)
        .collect();
    let mut expected_wants: BTreeSet<String> = JobName::ALL.iter().map(|j| job_timer(*j)).collect();
    expected_wants.insert(API_UNIT.to_string());
    assert_eq!(wants, expected_wants, "{TIMERS_TARGET}: Wants=");
    assert_eq!(target.one("Unit", "Conflicts"), SCHEDULER_UNIT);
}

#[test]
fn systemd_serve_units_run_serve() {
    let scheduler = Unit::load(SCHEDULER_UNIT);
    assert!(matches!(
        command(&scheduler.cli()),
        Command::Serve { no_schedule: false }
    ));
    let api = Unit::load(API_UNIT);
    assert!(matches!(
        command(&api.cli()),
        Command::Serve { no_schedule: true }
    ));
    assert_eq!(api.one("Unit", "Conflicts"), SCHEDULER_UNIT);
    assert_eq!(api.one("Unit", "PartOf"), TIMERS_TARGET);

    for unit in [&scheduler, &api] {
        // serve does not speak sd_notify: Type=notify would never become ready.
        assert_eq!(unit.one("Service", "Type"), "exec", "{}", unit.name);
        assert_eq!(
            unit.one("Service", "Restart"),
            "on-failure",
            "{}",
            unit.name
        );
        // Exit 2 is a configuration error; restarting cannot fix it.
        assert_eq!(
            unit.one("Service", "RestartPreventExitStatus"),
            "2",
            "{}",
            unit.name
        );
        let stop = unit.span("Service", "TimeoutStopSec");
        assert!(
            stop > easytier_probe::app::serve::DRAIN_BOUND + OFFLINE_BOUND,
            "{}: TimeoutStopSec={stop:?} cuts the graceful shutdown short",
            unit.name
        );
    }
}

#[test]
fn systemd_job_units_match_jobs() {
    for (job, spec) in specs() {
        let service = Unit::load(&job_service(job));
        let name = &service.name;
        let Command::RunJob {
            job: runs, wait, ..
        } = command(&service.cli())
        else {
            panic!("{name}: ExecStart= must be `run-job {job}`");
        };
        assert_eq!(runs, job, "{name}: runs the wrong job");
        assert_eq!(service.one("Service", "Type"), "oneshot", "{name}");
        let success: Vec<&str> = service
            .all("Service", "SuccessExitStatus")
            .iter()
            .flat_map(|v| v.split_whitespace())
            .collect();
        assert!(
            success.contains(&"75"),
            "{name}: exit 75 means \"try later\" and must not count as a failure"
        );
        assert_eq!(
            service.span("Service", "TimeoutStartSec"),
            wait + spec.timeout + SERVE_ANSWER_MARGIN,
            "{name}: TimeoutStartSec= must be --wait + the timeout in jobs/{job}.toml + {}s",
            SERVE_ANSWER_MARGIN.as_secs()
        );
        assert!(
            matches!(service.get("Service", "Restart"), None | Some("no")),
            "{name}: the timer is the retry"
        );

        let timer = Unit::load(&job_timer(job));
        let name = &timer.name;
        assert_eq!(timer.one("Timer", "Unit"), job_service(job), "{name}");
        assert_eq!(timer.one("Unit", "PartOf"), TIMERS_TARGET, "{name}");
        assert_eq!(
            timer.span("Timer", "AccuracySec"),
            Duration::from_secs(1),
            "{name}"
        );
        let delay = timer.span("Timer", "RandomizedDelaySec");
        assert!(delay > Duration::ZERO, "{name}: RandomizedDelaySec=");
        match &spec.schedule {
            Schedule::Every(every) => {
                assert_eq!(
                    timer.span("Timer", "OnUnitActiveSec"),
                    *every,
                    "{name}: OnUnitActiveSec= must be `every` of jobs/{job}.toml"
                );
                let first = timer.span("Timer", "OnActiveSec");
                assert!(
                    first > Duration::ZERO && first <= *every,
                    "{name}: the first run must come within one interval (OnActiveSec=)"
                );
                assert!(
                    delay <= *every / 5,
                    "{name}: RandomizedDelaySec= must stay small against the interval"
                );
                for key in ["OnCalendar", "Persistent"] {
                    assert!(
                        timer.get("Timer", key).is_none(),
                        "{name}: {key}= does not belong to an interval timer"
                    );
                }
            }
            Schedule::Cron(cron) => {
                let calendar = systemd_calendar(cron).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(timer.one("Timer", "OnCalendar"), calendar, "{name}");
                assert_eq!(timer.one("Timer", "Persistent"), "true", "{name}");
                for key in ["OnUnitActiveSec", "OnActiveSec"] {
                    assert!(timer.get("Timer", key).is_none(), "{name}: {key}=");
                }
            }
        }
    }
}

#[test]
fn systemd_services_share_one_hardened_sandbox() {
    let services: Vec<Unit> = service_units().iter().map(|n| Unit::load(n)).collect();
    let sandbox = |unit: &Unit| -> Vec<(String, String)> {
        unit.service()
            .into_iter()
            .filter(|(key, _)| !PER_UNIT_KEYS.contains(key))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let reference = sandbox(&services[0]);
    for unit in &services[1..] {
        assert_eq!(
            sandbox(unit),
            reference,
            "{}: [Service] must hold the same sandbox as {SCHEDULER_UNIT}",
            unit.name
        );
    }

    // What the sandbox must say (checked once: it is the same everywhere).
    let unit = &services[0];
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("User", "easytier-probe"),
        ("StateDirectory", "easytier-probe"),
        ("StateDirectoryMode", "0700"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("PrivateTmp", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
    ] {
        assert_eq!(unit.one("Service", key), value, "{}: {key}=", unit.name);
    }
    assert!(
        unit.all("Service", "SystemCallFilter")
            .contains(&"@system-service"),
        "{}: SystemCallFilter=@system-service",
        unit.name
    );
    let memory_max = unit.one("Service", "MemoryMax");
    assert!(
        memory_max.ends_with('M') || memory_max.ends_with('G'),
        "{}: MemoryMax= must be a size, got {memory_max}",
        unit.name
    );
    assert!(unit.get("Service", "MemoryHigh").is_some(), "{}", unit.name);
    let nofile: u64 = unit
        .one("Service", "LimitNOFILE")
        .parse()
        .expect("LimitNOFILE= is a number");
    assert!(
        nofile >= needed_open_files(),
        "LimitNOFILE={nofile} is too low"
    );
    for unit in &services {
        for value in unit.all("Service", "Environment") {
            for pair in value.split_whitespace() {
                let name = pair.split_once('=').map_or(pair, |(k, _)| k);
                assert!(
                    !SECRET_VARIABLES.contains(&name),
                    "{}: {name} is a secret; use a credential",
                    unit.name
                );
            }
        }
    }

    // Secrets come as credentials, by the names the binary reads; run-job serves no API and so
    // gets no admin_token.
    let credentials = |unit: &Unit| -> BTreeSet<String> {
        unit.all("Service", "LoadCredential")
            .iter()
            .map(|v| v.split_once(':').map_or(*v, |(id, _)| id).to_string())
            .collect()
    };
    let all: BTreeSet<String> = CREDENTIALS.map(String::from).into();
    let for_jobs: BTreeSet<String> = ["node_token", "api_key"].map(String::from).into();
    for unit in &services {
        let expected = if unit.name == SCHEDULER_UNIT || unit.name == API_UNIT {
            &all
        } else {
            &for_jobs
        };
        assert_eq!(
            &credentials(unit),
            expected,
            "{}: LoadCredential=",
            unit.name
        );
    }
}

/// `KEY=value` lines of an environment file; with `commented`, `#KEY=value` lines too.
fn env_file(text: &str, commented: bool) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter_map(|line| match line.strip_prefix('#') {
            Some(rest) if commented => Some(rest.trim()),
            Some(_) => None,
            None => Some(line),
        })
        .filter_map(|line| line.split_once('='))
        .filter(|(key, _)| {
            !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn systemd_environment_file_and_units_give_a_working_configuration() {
    let path = systemd_dir().join("easytier-probe.env");
    let text = read(&path);
    let known = known_variables();
    for name in env_file(&text, true).keys() {
        check_variable(name, "deploy/systemd/easytier-probe.env", &known);
    }
    let vars = env_file(&text, false);
    for secret in SECRET_VARIABLES {
        assert!(
            !vars.contains_key(secret),
            "easytier-probe.env sets {secret}: secrets are credentials"
        );
    }
    for key in ["DATA_DIR", "DATABASE_PATH"] {
        assert!(
            !vars.contains_key(key),
            "easytier-probe.env sets {key}: the units must share their state directory"
        );
    }

    // What each service makes of the example file, its state directory and its credentials.
    let scheduler = Unit::load(SCHEDULER_UNIT);
    assert_eq!(
        scheduler.one("Service", "EnvironmentFile"),
        "-/etc/easytier-probe/env"
    );
    let state_dir = format!("/var/lib/{}", scheduler.one("Service", "StateDirectory"));
    let credentials = credentials_dir();
    let mut env = vars.clone();
    env.insert("STATE_DIRECTORY".into(), state_dir.clone());
    env.insert(
        "CREDENTIALS_DIRECTORY".into(),
        credentials.path().display().to_string(),
    );
    for name in service_units() {
        let unit = Unit::load(&name);
        let settings = resolve(&unit.argv(), &env).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            settings.data_dir,
            PathBuf::from(&state_dir),
            "{name}: every unit must use the state directory, or timers and API hold two stores"
        );
        assert!(settings.backend.is_some(), "{name}: distributed mode");
        assert!(
            settings.listen.ip().is_loopback(),
            "{name}: API on loopback"
        );
    }
}

// ---- Dockerfile ---------------------------------------------------------------------------------

struct Stage {
    from: String,
    /// (INSTRUCTION, arguments), continuation lines joined.
    instructions: Vec<(String, String)>,
}

fn dockerfile() -> Vec<Stage> {
    let text = read(&repo().join("Dockerfile"));
    let mut stages: Vec<Stage> = Vec::new();
    let mut logical = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if logical.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            logical.push_str(head);
            logical.push(' ');
            continue;
        }
        logical.push_str(trimmed);
        let (word, args) = logical
            .split_once(char::is_whitespace)
            .unwrap_or((&logical, ""));
        let (word, args) = (word.to_ascii_uppercase(), args.trim().to_string());
        if word == "FROM" {
            stages.push(Stage {
                from: args,
                instructions: Vec::new(),
            });
        } else if word == "ARG" && stages.is_empty() {
            // A build argument for the FROM lines; nothing this test checks.
        } else {
            stages
                .last_mut()
                .expect("Dockerfile: an instruction before FROM")
                .instructions
                .push((word, args));
        }
        logical.clear();
    }
    stages
}

impl Stage {
    fn all(&self, instruction: &str) -> Vec<&str> {
        self.instructions
            .iter()
            .filter(|(i, _)| i == instruction)
            .map(|(_, a)| a.as_str())
            .collect()
    }

    fn last(&self, instruction: &str) -> &str {
        self.all(instruction)
            .last()
            .copied()
            .unwrap_or_else(|| panic!("Dockerfile: the runtime stage needs {instruction}"))
    }

    /// An exec-form (JSON array) argument list.
    fn exec_form(&self, instruction: &str) -> Vec<String> {
        let args = self.last(instruction);
        serde_json::from_str(args).unwrap_or_else(|e| {
            panic!("Dockerfile: {instruction} must be a JSON array (exec form): {e}: {args}")
        })
    }

    fn env(&self) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        for args in self.all("ENV") {
            assert!(
                !args.contains(['"', '\'']),
                "Dockerfile: ENV values are plain words here: {args}"
            );
            for pair in args.split_whitespace() {
                let (k, v) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("Dockerfile: ENV {pair} must be KEY=value"));
                vars.insert(k.to_string(), v.to_string());
            }
        }
        vars
    }
}

/// The image's ENTRYPOINT and CMD, and its runtime stage.
fn image() -> (Vec<String>, Vec<String>, Stage) {
    let runtime = dockerfile().pop().expect("Dockerfile: no FROM");
    let entrypoint = runtime.exec_form("ENTRYPOINT");
    let cmd = runtime.exec_form("CMD");
    (entrypoint, cmd, runtime)
}

/// The uid the image runs as.
fn image_uid(runtime: &Stage) -> u32 {
    let user = runtime.last("USER");
    let uid = user.split(':').next().unwrap_or(user);
    uid.parse()
        .unwrap_or_else(|_| panic!("Dockerfile: USER {user} must be numeric (uid:gid)"))
}

#[test]
fn dockerfile_runs_serve_as_non_root_with_a_health_check() {
    let stages = dockerfile();
    assert!(
        stages.len() >= 2,
        "Dockerfile: multi-stage (build, runtime)"
    );
    // The binary links against glibc: build on the Debian release the runtime image runs.
    let runtime_base = &stages[stages.len() - 1].from;
    let release = runtime_base
        .strip_prefix("debian:")
        .and_then(|tag| tag.split('-').next())
        .unwrap_or_else(|| {
            panic!("Dockerfile: runtime FROM {runtime_base}: expected debian:<release>-slim")
        });
    assert!(
        stages[0].from.contains(release),
        "Dockerfile: build stage FROM {} is not Debian {release}",
        stages[0].from
    );
    let (entrypoint, cmd, runtime) = image();
    let argv: Vec<String> = entrypoint.iter().chain(&cmd).cloned().collect();
    assert!(matches!(
        command(&parse_cli(&argv, "Dockerfile ENTRYPOINT + CMD")),
        Command::Serve { no_schedule: false }
    ));
    assert!(
        runtime.all("COPY").iter().any(|c| c.ends_with(BINARY)),
        "Dockerfile: the runtime stage must copy the binary to {BINARY}"
    );
    assert_ne!(
        image_uid(&runtime),
        0,
        "Dockerfile: the image must not run as root"
    );

    let healthcheck = runtime.last("HEALTHCHECK");
    assert!(
        healthcheck.contains("/health") && healthcheck.contains("LISTEN_ADDR"),
        "Dockerfile: HEALTHCHECK must GET /health on the port of LISTEN_ADDR: {healthcheck}"
    );

    let known = known_variables();
    let env = runtime.env();
    for name in env.keys() {
        check_variable(name, "Dockerfile ENV", &known);
        assert!(
            !SECRET_VARIABLES.contains(&name.as_str()),
            "Dockerfile: ENV {name} bakes a secret into the image"
        );
    }
    let volumes: Vec<String> = serde_json::from_str(runtime.last("VOLUME"))
        .expect("Dockerfile: VOLUME must be a JSON array");
    assert_eq!(
        env.get("DATA_DIR"),
        volumes.first(),
        "Dockerfile: the store (DATA_DIR) must be the volume"
    );
}

#[test]
fn dockerfile_builds_from_the_tree_without_secrets() {
    let stages = dockerfile();
    let build = &stages[0];
    assert!(
        build.all("COPY").iter().any(|c| c.trim() == ". ."),
        "Dockerfile: the build stage copies the tree (COPY . .); cargo needs every target of \
         Cargo.toml, and the vendored protoc comes through .cargo/config.toml and tools/"
    );
    let ignored: Vec<String> = read(&repo().join(".dockerignore"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_matches('/').to_string())
        .collect();
    let excluded = |path: &str| {
        ignored.iter().any(|pattern| {
            path.split('/')
                .any(|component| match pattern.split_once('*') {
                    Some((prefix, suffix)) => {
                        component.starts_with(prefix) && component.ends_with(suffix)
                    }
                    None => component == pattern,
                })
        })
    };
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        ".cargo/config.toml",
        "tools/protoc",
        "jobs/peer-fetch.toml",
        "src/main.rs",
        "benches/sweep.rs",
    ] {
        assert!(
            repo().join(needed).exists(),
            "{needed} is gone: update this list"
        );
        assert!(
            !excluded(needed),
            ".dockerignore excludes {needed}, which the build needs"
        );
    }
    for local in [".env", "target", ".git", "easytier-probe-data"] {
        assert!(excluded(local), ".dockerignore must exclude {local}");
    }
}

#[test]
fn container_works_with_the_spec_docker_run_example() {
    let (entrypoint, cmd, runtime) = image();
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    let mut env = runtime.env();
    env.extend(SPEC_DOCKER_RUN.map(|(k, v)| (k.to_string(), v.to_string())));
    let settings = resolve(&argv, &env).unwrap_or_else(|e| panic!("docker run example: {e}"));
    assert!(
        settings.listen.ip().is_unspecified(),
        "in a container the API must listen on all addresses, not {}",
        settings.listen
    );
    let expose: Vec<&str> = runtime.all("EXPOSE");
    assert!(
        expose.contains(&settings.listen.port().to_string().as_str()),
        "Dockerfile: EXPOSE {}",
        settings.listen.port()
    );
    let volumes: Vec<String> = serde_json::from_str(runtime.last("VOLUME")).expect("VOLUME");
    assert_eq!(
        Some(&settings.data_dir),
        volumes.first().map(PathBuf::from).as_ref()
    );
    assert!(settings.backend.is_some());
    assert_eq!(settings.region.as_deref(), Some("us-west"));
}

// ---- Nomad --------------------------------------------------------------------------------------

fn nomad_dir() -> PathBuf {
    repo().join("deploy/nomad")
}

const NOMAD_SERVE_JOB: &str = "easytier-probe";

fn nomad_job_id(job: JobName) -> String {
    format!("easytier-probe-{job}")
}

/// The `job` block of a Nomad job file, with its ID.
fn nomad_job(path: &Path) -> (String, hcl::Body) {
    let body = hcl::parse(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let jobs: Vec<&hcl::Block> = body
        .blocks()
        .filter(|b| b.identifier.as_str() == "job")
        .collect();
    assert_eq!(jobs.len(), 1, "{}: one job per file", path.display());
    let id = jobs[0]
        .labels
        .first()
        .map(|l| l.as_str().to_string())
        .unwrap_or_else(|| panic!("{}: job without an ID", path.display()));
    (id, jobs[0].body.clone())
}

fn blocks<'a>(body: &'a hcl::Body, identifier: &str) -> Vec<&'a hcl::Block> {
    body.blocks()
        .filter(|b| b.identifier.as_str() == identifier)
        .collect()
}

fn block<'a>(body: &'a hcl::Body, identifier: &str, origin: &str) -> &'a hcl::Body {
    let found = blocks(body, identifier);
    assert_eq!(found.len(), 1, "{origin}: needs one {identifier} block");
    &found[0].body
}

fn attr<'a>(body: &'a hcl::Body, key: &str) -> Option<&'a hcl::Expression> {
    body.attributes()
        .find(|a| a.key.as_str() == key)
        .map(|a| &a.expr)
}

/// A string attribute's text; a template (`"${...}"`, heredoc) as written.
fn text(expr: &hcl::Expression) -> Option<String> {
    match expr {
        hcl::Expression::String(s) => Some(s.clone()),
        hcl::Expression::TemplateExpr(t) => Some(t.to_string()),
        _ => None,
    }
}

fn string_attr(body: &hcl::Body, key: &str, origin: &str) -> String {
    attr(body, key)
        .and_then(text)
        .unwrap_or_else(|| panic!("{origin}: {key} must be a string"))
}

fn string_list(body: &hcl::Body, key: &str, origin: &str) -> Vec<String> {
    match attr(body, key) {
        Some(hcl::Expression::Array(items)) => items
            .iter()
            .map(|item| {
                text(item).unwrap_or_else(|| panic!("{origin}: {key} must hold plain strings"))
            })
            .collect(),
        None => Vec::new(),
        Some(other) => panic!("{origin}: {key} must be a list of strings, got {other:?}"),
    }
}

/// One Nomad job's single task, with where it comes from.
struct NomadTask {
    origin: String,
    job: hcl::Body,
    group: hcl::Body,
    task: hcl::Body,
}

impl NomadTask {
    fn load(id: &str) -> NomadTask {
        let path = nomad_dir().join(format!("{id}.nomad.hcl"));
        let (found, job) = nomad_job(&path);
        let origin = format!("deploy/nomad/{id}.nomad.hcl");
        assert_eq!(found, id, "{origin}: job ID must match the file name");
        let group = block(&job, "group", &origin).clone();
        let task = block(&group, "task", &origin).clone();
        NomadTask {
            origin,
            job,
            group,
            task,
        }
    }

    /// The task's command line: the image's ENTRYPOINT (or `entrypoint`), then `command` and
    /// `args`, or the image's CMD when neither is given (the docker driver's rules).
    fn argv(&self) -> Vec<String> {
        assert_eq!(string_attr(&self.task, "driver", &self.origin), "docker");
        let config = block(&self.task, "config", &self.origin);
        let (image_entrypoint, image_cmd, _) = image();
        let mut argv = match string_list(config, "entrypoint", &self.origin) {
            e if e.is_empty() => image_entrypoint,
            e => e,
        };
        let command = attr(config, "command").and_then(text);
        let args = string_list(config, "args", &self.origin);
        if command.is_none() && args.is_empty() {
            argv.extend(image_cmd);
        } else {
            argv.extend(command);
            argv.extend(args);
        }
        argv
    }

    fn cli(&self) -> Cli {
        parse_cli(&self.argv(), &self.origin)
    }

    fn env(&self) -> Vec<(String, hcl::Expression)> {
        block(&self.task, "env", &self.origin)
            .attributes()
            .map(|a| (a.key.as_str().to_string(), a.expr.clone()))
            .collect()
    }

    fn templates(&self) -> Vec<&hcl::Body> {
        blocks(&self.task, "template")
            .into_iter()
            .map(|b| &b.body)
            .collect()
    }
}

fn nomad_tasks() -> Vec<NomadTask> {
    std::iter::once(NOMAD_SERVE_JOB.to_string())
        .chain(JobName::ALL.iter().map(|j| nomad_job_id(*j)))
        .map(|id| NomadTask::load(&id))
        .collect()
}

#[test]
fn every_nomad_file_parses_and_each_job_has_one() {
    let mut ids = BTreeSet::new();
    for path in files(&nomad_dir(), ".hcl") {
        let body = hcl::parse(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if file_name(&path).ends_with(".nomad.hcl") {
            ids.insert(nomad_job(&path).0);
        } else {
            assert!(
                blocks(&body, "job").is_empty(),
                "{}: a job file must end in .nomad.hcl",
                path.display()
            );
        }
    }
    let expected: BTreeSet<String> = std::iter::once(NOMAD_SERVE_JOB.to_string())
        .chain(specs().keys().map(|j| nomad_job_id(*j)))
        .collect();
    assert_eq!(
        ids, expected,
        "deploy/nomad must have exactly one job per job in jobs/, and serve"
    );
}

#[test]
fn nomad_serve_job_runs_serve_with_a_health_check() {
    let serve = NomadTask::load(NOMAD_SERVE_JOB);
    let origin = &serve.origin;
    assert!(matches!(
        command(&serve.cli()),
        Command::Serve { no_schedule: true }
    ));
    assert_eq!(string_attr(&serve.job, "type", origin), "system");
    let service = block(&serve.group, "service", origin);
    let check = block(service, "check", origin);
    assert_eq!(string_attr(check, "type", origin), "http");
    assert_eq!(string_attr(check, "path", origin), "/health");
    let kill = parse_go_duration(&string_attr(&serve.task, "kill_timeout", origin));
    assert!(
        kill > easytier_probe::app::serve::DRAIN_BOUND + OFFLINE_BOUND,
        "{origin}: kill_timeout cuts the graceful shutdown short"
    );
    let listen: SocketAddr = env_text(&serve, "LISTEN_ADDR")
        .parse()
        .expect("LISTEN_ADDR is an address");
    assert!(
        listen.ip().is_unspecified(),
        "{origin}: LISTEN_ADDR must be reachable from outside"
    );
    let network = block(&serve.group, "network", origin);
    let port = block(network, "port", origin);
    assert_eq!(
        attr(port, "to"),
        Some(&hcl::Expression::from(listen.port() as u64)),
        "{origin}: the port maps to LISTEN_ADDR's"
    );
}

fn parse_go_duration(value: &str) -> Duration {
    easytier_probe::domain::duration::parse_duration(value).expect("a duration like 30s")
}

fn env_text(task: &NomadTask, key: &str) -> String {
    task.env()
        .into_iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| text(&v))
        .unwrap_or_else(|| panic!("{}: env needs {key}", task.origin))
}

#[test]
fn nomad_periodic_jobs_match_jobs() {
    for (job, spec) in specs() {
        let task = NomadTask::load(&nomad_job_id(job));
        let origin = &task.origin;
        let Command::RunJob { job: runs, .. } = command(&task.cli()) else {
            panic!("{origin}: args must be `run-job {job}`");
        };
        assert_eq!(runs, job, "{origin}: runs the wrong job");
        assert_eq!(
            string_attr(&task.job, "type", origin),
            "sysbatch",
            "{origin}: run on every probe node"
        );
        let periodic = block(&task.job, "periodic", origin);
        let cron = nomad_cron(&spec.schedule).unwrap_or_else(|e| panic!("jobs/{job}.toml: {e}"));
        assert_eq!(
            string_list(periodic, "crons", origin),
            vec![cron],
            "{origin}: crons must be the schedule of jobs/{job}.toml"
        );
        assert_eq!(
            attr(periodic, "prohibit_overlap"),
            Some(&hcl::Expression::Bool(true)),
            "{origin}: overlap = \"forbid\" in jobs/{job}.toml"
        );
        assert_eq!(string_attr(periodic, "time_zone", origin), "UTC");
    }
}

#[test]
fn nomad_jobs_share_the_data_dir_settings_and_secrets() {
    let tasks = nomad_tasks();
    let known = known_variables();
    let (_, _, runtime) = image();
    let uid = image_uid(&runtime) as u64;
    let reference_env = tasks[0].env();
    for task in &tasks {
        let origin = &task.origin;

        // One node, one volume, one store: run-job reaches serve over the control socket.
        let volume = block(&task.group, "volume", origin);
        assert_eq!(string_attr(volume, "type", origin), "host");
        assert_eq!(string_attr(volume, "source", origin), "easytier-probe");
        let mount = block(&task.task, "volume_mount", origin);
        assert_eq!(
            string_attr(mount, "destination", origin),
            env_text(task, "DATA_DIR"),
            "{origin}: the store must be in the volume"
        );
        let constraint = block(&task.job, "constraint", origin);
        assert_eq!(
            string_attr(constraint, "attribute", origin),
            "${meta.easytier_probe_region}"
        );
        assert_eq!(env_text(task, "REGION"), "${meta.easytier_probe_region}");

        // The same settings everywhere; no secret among them.
        assert_eq!(
            task.env(),
            reference_env,
            "{origin}: env must match {}",
            tasks[0].origin
        );
        for (name, _) in task.env() {
            check_variable(&name, origin, &known);
            assert!(
                !SECRET_VARIABLES.contains(&name.as_str()),
                "{origin}: {name} in the job file; secrets come from Nomad variables"
            );
        }

        // Secrets: files from the Nomad variable, owned by the image's user, passed by path.
        let mut files = BTreeSet::new();
        let mut file_vars = BTreeSet::new();
        for template in task.templates() {
            let data = string_attr(template, "data", origin);
            let destination = string_attr(template, "destination", origin);
            assert!(
                data.contains("nomadVar"),
                "{origin}: {destination} from a Nomad variable"
            );
            if attr(template, "env") == Some(&hcl::Expression::Bool(true)) {
                for (name, _) in env_file(&data, false) {
                    check_variable(&name, origin, &known);
                    file_vars.insert(name);
                }
            } else {
                assert!(
                    destination.starts_with("secrets/"),
                    "{origin}: {destination}"
                );
                assert_eq!(string_attr(template, "perms", origin), "0400", "{origin}");
                for key in ["uid", "gid"] {
                    assert_eq!(
                        attr(template, key),
                        Some(&hcl::Expression::from(uid)),
                        "{origin}: {destination} must belong to the image's user"
                    );
                }
                files.insert(destination.trim_start_matches("secrets/").to_string());
            }
        }
        let serves = task
            .origin
            .ends_with(&format!("/{NOMAD_SERVE_JOB}.nomad.hcl"));
        let expected: BTreeSet<String> = CREDENTIALS
            .iter()
            .filter(|c| serves || **c != "admin_token")
            .map(|c| c.to_string())
            .collect();
        assert_eq!(files, expected, "{origin}: secret files");
        for file in &files {
            let var = format!("{}_FILE", file.to_ascii_uppercase());
            assert!(
                file_vars.contains(&var),
                "{origin}: {var} must point at secrets/{file}"
            );
        }

        // Open files for the sweep's concurrent probes.
        let config = block(&task.task, "config", origin);
        let ulimit = block(config, "ulimit", origin);
        let nofile = string_attr(ulimit, "nofile", origin);
        let soft: u64 = nofile
            .split(':')
            .next()
            .and_then(|s| s.parse().ok())
            .expect("nofile = \"soft:hard\"");
        assert!(
            soft >= needed_open_files(),
            "{origin}: nofile {nofile} is too low"
        );
    }
}
