//! The three jobs, their specs (`jobs/*.toml`, embedded) and the context they run in.
//!
//! A job is a function from [`JobContext`] to a summary. It keeps no state between runs except
//! in the store, and does not know how it was triggered; the [`crate::runner`] owns timing,
//! overlap, timeouts, panics and recording.

pub mod peer_fetch;
pub mod probe_sweep;
pub mod status_report;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::BackendClient;
use crate::config::{parse_duration, Settings};
use crate::store::Store;

/// The jobs, by their external names.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum JobName {
    PeerFetch,
    ProbeSweep,
    StatusReport,
}

impl JobName {
    pub const ALL: [JobName; 3] = [
        JobName::PeerFetch,
        JobName::ProbeSweep,
        JobName::StatusReport,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobName::PeerFetch => "peer-fetch",
            JobName::ProbeSweep => "probe-sweep",
            JobName::StatusReport => "status-report",
        }
    }

    pub fn parse(s: &str) -> Option<JobName> {
        JobName::ALL.into_iter().find(|j| j.as_str() == s)
    }

    /// The job's spec file, as embedded in the binary.
    pub fn spec_source(self) -> &'static str {
        match self {
            JobName::PeerFetch => include_str!("../../jobs/peer-fetch.toml"),
            JobName::ProbeSweep => include_str!("../../jobs/probe-sweep.toml"),
            JobName::StatusReport => include_str!("../../jobs/status-report.toml"),
        }
    }

    pub fn spec(self) -> JobSpec {
        // The specs are part of the binary and checked by a unit test, so this cannot fail
        // at run time unless the build itself is broken.
        JobSpec::parse(self.spec_source())
            .unwrap_or_else(|e| panic!("jobs/{}.toml: {e}", self.as_str()))
    }
}

impl std::fmt::Display for JobName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Every(Duration),
    /// Six fields, with seconds.
    Cron(String),
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Every(d) => write!(f, "every {}s", d.as_secs()),
            Schedule::Cron(c) => write!(f, "cron {c}"),
        }
    }
}

/// A job's spec from `jobs/<name>.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub name: String,
    pub description: String,
    pub schedule: Schedule,
    pub timeout: Duration,
    /// Only "forbid" is supported: a run still going makes the next one a recorded skip.
    pub overlap: String,
    pub interval_variable: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: String,
    #[serde(default)]
    description: String,
    every: Option<String>,
    cron: Option<String>,
    timeout: String,
    overlap: String,
    interval_variable: Option<String>,
}

impl JobSpec {
    pub fn parse(text: &str) -> Result<JobSpec, String> {
        let raw: RawSpec = toml::from_str(text).map_err(|e| e.to_string())?;
        let schedule = match (raw.every, raw.cron) {
            (Some(every), None) => Schedule::Every(parse_duration(&every)?),
            (None, Some(cron)) => {
                if cron.split_whitespace().count() != 6 {
                    return Err(format!("cron {cron:?} must have 6 fields (with seconds)"));
                }
                Schedule::Cron(cron)
            }
            _ => return Err("exactly one of `every` and `cron` is required".into()),
        };
        if raw.overlap != "forbid" {
            return Err(format!(
                "overlap {:?} is not supported; use \"forbid\"",
                raw.overlap
            ));
        }
        Ok(JobSpec {
            name: raw.name,
            description: raw.description,
            schedule,
            timeout: parse_duration(&raw.timeout)?,
            overlap: raw.overlap,
            interval_variable: raw.interval_variable,
        })
    }
}

/// The schedule in force: the interval variable when set, else the spec's.
pub fn effective_schedule(job: JobName, settings: &Settings) -> Schedule {
    let spec = job.spec();
    let override_ = match job {
        JobName::PeerFetch => settings.peer_fetch_interval,
        JobName::ProbeSweep => settings.health_check_interval,
        JobName::StatusReport => settings.status_report_interval,
    };
    override_.map(Schedule::Every).unwrap_or(spec.schedule)
}

/// Everything a job may use. Cheap to clone.
#[derive(Clone)]
pub struct JobContext {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub backend: Option<BackendClient>,
}

impl JobContext {
    pub fn new(store: Store, settings: Arc<Settings>) -> Self {
        let backend = settings.backend.clone().map(BackendClient::new);
        Self {
            store,
            settings,
            backend,
        }
    }
}

/// A failed run: what went wrong, and the summary so far.
#[derive(Debug)]
pub struct JobFailure {
    pub error: String,
    pub summary: Value,
}

impl JobFailure {
    pub fn new(error: impl std::fmt::Display, summary: Value) -> Self {
        Self {
            error: error.to_string(),
            summary,
        }
    }
}

pub type JobResult = Result<Value, JobFailure>;

/// Runs `job` once in `ctx`.
pub async fn run(job: JobName, ctx: JobContext) -> JobResult {
    match job {
        JobName::PeerFetch => peer_fetch::run(&ctx).await,
        JobName::ProbeSweep => probe_sweep::run(&ctx).await,
        JobName::StatusReport => status_report::run(&ctx).await,
    }
}

/// Milliseconds (with the microseconds as decimals), from microseconds.
pub(crate) fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_specs_parse_and_match_their_names() {
        for job in JobName::ALL {
            let spec = job.spec();
            assert_eq!(spec.name, job.as_str());
            assert_eq!(spec.overlap, "forbid");
            assert!(spec.timeout > Duration::ZERO);
            assert!(spec.interval_variable.is_some());
        }
        assert_eq!(
            JobName::ProbeSweep.spec().schedule,
            Schedule::Every(Duration::from_secs(5))
        );
    }

    #[test]
    fn specs_reject_nonsense() {
        let base = "name='x'\ntimeout='5s'\noverlap='forbid'\n";
        assert!(JobSpec::parse(&format!("{base}every='10s'")).is_ok());
        let cron = JobSpec::parse(&format!("{base}cron='0 */5 * * * *'")).unwrap();
        assert_eq!(cron.schedule, Schedule::Cron("0 */5 * * * *".into()));
        assert!(JobSpec::parse(&format!("{base}cron='*/5 * * * *'")).is_err());
        assert!(JobSpec::parse(base).is_err());
        assert!(JobSpec::parse(&format!("{base}every='10s'\ncron='0 * * * * *'")).is_err());
        assert!(JobSpec::parse("name='x'\ntimeout='5s'\noverlap='allow'\nevery='1s'").is_err());
        assert!(JobSpec::parse(&format!("{base}every='10s'\nbogus=1")).is_err());
    }

    #[test]
    fn ms_rounds_to_microseconds() {
        assert_eq!(ms(123), 0.123);
        assert_eq!(ms(45_678), 45.678);
    }
}
