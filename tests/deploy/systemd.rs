//! The systemd units and their environment file.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use super::common::*;
use super::schedules::{systemd_calendar, systemd_span};
use easytier_probe::app::{cli, notify};
use easytier_probe::config::{Cli, Command};
use easytier_probe::domain::{JobName, Schedule};

pub(crate) fn systemd_dir() -> PathBuf {
    repo().join("deploy/systemd")
}

/// A unit file, read as ini: keys may repeat (systemd appends), and values stay raw.
pub(crate) struct Unit {
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

pub(crate) const SCHEDULER_UNIT: &str = "easytier-probe.service";
pub(crate) const API_UNIT: &str = "easytier-probe-api.service";
pub(crate) const TIMERS_TARGET: &str = "easytier-probe-timers.target";

pub(crate) fn job_service(job: JobName) -> String {
    format!("easytier-probe-{job}.service")
}

pub(crate) fn job_timer(job: JobName) -> String {
    format!("easytier-probe-{job}.timer")
}

/// Every service unit: the two serve modes, then one per job.
pub(crate) fn service_units() -> Vec<String> {
    [SCHEDULER_UNIT, API_UNIT]
        .into_iter()
        .map(String::from)
        .chain(JobName::ALL.iter().map(|j| job_service(*j)))
        .collect()
}

/// `[Service]` keys that say what a unit runs and how; every other key is the sandbox, which all
/// the probe's services share.
pub(crate) const PER_UNIT_KEYS: [&str; 11] = [
    "Type",
    "NotifyAccess",
    "WatchdogSec",
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
        // serve speaks sd_notify (READY=1, STOPPING=1, the watchdog pings from its main pid).
        assert_eq!(unit.one("Service", "Type"), "notify", "{}", unit.name);
        assert_eq!(unit.one("Service", "NotifyAccess"), "main", "{}", unit.name);
        // Pings every WatchdogSec/2, each after a store write and flush of at most STORE_BOUND.
        let watchdog = unit.span("Service", "WatchdogSec");
        assert!(
            watchdog >= 2 * notify::STORE_BOUND && watchdog >= notify::SCHEDULER_SLACK,
            "{}: WatchdogSec={watchdog:?} is shorter than the checks its pings wait for",
            unit.name
        );
        // READY=1 comes only once the store is open, and serve waits for a one-shot holding it.
        let start = unit.span("Service", "TimeoutStartSec");
        assert!(
            start > cli::SERVE_WAITS_FOR_ONE_SHOT,
            "{}: TimeoutStartSec={start:?} kills a serve waiting for a run-job to finish",
            unit.name
        );
        // Backoff between restarts needs systemd 254: a drop-in, verified by verify-systemd.sh.
        let backoff = Unit::load(&format!("{}.d/restart-backoff.conf", unit.name));
        let steps: u32 = backoff.one("Service", "RestartSteps").parse().unwrap();
        assert!(steps > 0, "{}: RestartSteps", backoff.name);
        assert!(
            backoff.span("Service", "RestartMaxDelaySec") > unit.span("Service", "RestartSec"),
            "{}: RestartMaxDelaySec must exceed RestartSec",
            backoff.name
        );
        assert_eq!(
            backoff.service().len(),
            2,
            "{}: only the keys systemd 252 does not know belong in the drop-in",
            backoff.name
        );
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
                    !secret_variables().contains(&name),
                    "{}: {name} is a secret; use a credential",
                    unit.name
                );
            }
        }
    }

    // Secrets come as credentials, by the names the binary reads; run-job serves no API and so
    // gets no admin_token, only the units that probe get the network secret, and only those
    // that notify get the notification URLs.
    let loaded = |unit: &Unit| -> BTreeSet<String> {
        unit.all("Service", "LoadCredential")
            .iter()
            .map(|v| v.split_once(':').map_or(*v, |(id, _)| id).to_string())
            .collect()
    };
    for unit in &services {
        let serves = unit.name == SCHEDULER_UNIT || unit.name == API_UNIT;
        let probes = serves || unit.name == job_service(JobName::ProbeSweep);
        let expected: BTreeSet<String> = credentials()
            .into_iter()
            .filter(|c| match *c {
                "admin_token" => serves,
                "network_secret" => probes,
                "notify_urls" => serves || unit.name == job_service(JobName::Notify),
                _ => true,
            })
            .map(String::from)
            .collect();
        assert_eq!(loaded(unit), expected, "{}: LoadCredential=", unit.name);
    }
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
    for secret in secret_variables() {
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
