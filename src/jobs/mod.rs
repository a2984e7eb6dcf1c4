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
use crate::clock::SharedClock;
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

impl Schedule {
    /// The time between runs: the interval, or for a cron schedule the gap between its next two
    /// ticks after `now`.
    pub fn period(&self, now: chrono::DateTime<chrono::Utc>) -> Duration {
        match self {
            Schedule::Every(d) => *d,
            Schedule::Cron(cron) => {
                let parsed = croner::parser::CronParser::builder()
                    .seconds(croner::parser::Seconds::Required)
                    .dom_and_dow(true)
                    .build()
                    .parse(cron);
                let mut ticks = match &parsed {
                    Ok(c) => c.iter_after(now),
                    Err(_) => return Duration::from_secs(60),
                };
                match (ticks.next(), ticks.next()) {
                    (Some(a), Some(b)) => (b - a).to_std().unwrap_or(Duration::from_secs(60)),
                    _ => Duration::from_secs(60),
                }
            }
        }
    }
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

/// Sweeps missed in a row after which the probe is stale: `/health` 503, reports `Offline`.
pub const STALE_AFTER_SWEEPS: u32 = 3;

/// Whether the probe is probing, judged from its newest sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// The newest sweep is within [`STALE_AFTER_SWEEPS`] sweep intervals.
    Fresh,
    /// No peer list yet (first start with the backend down): nothing to probe, and a restart
    /// would not help.
    NoPeerList,
    /// No sweep for longer than the limit (counted from `since` before the first sweep).
    Stale {
        last_sweep_at: Option<chrono::DateTime<chrono::Utc>>,
        limit: Duration,
    },
}

impl Freshness {
    /// Judges the newest sweep at `last_sweep_at` at `now`, with sweeps every `period`; before
    /// the first sweep the age counts from `since` (the process's start).
    pub fn judge(
        last_sweep_at: Option<chrono::DateTime<chrono::Utc>>,
        has_peer_list: bool,
        since: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
        period: Duration,
    ) -> Freshness {
        if last_sweep_at.is_none() && !has_peer_list {
            return Freshness::NoPeerList;
        }
        let limit = period * STALE_AFTER_SWEEPS;
        let age = now - last_sweep_at.unwrap_or(since);
        if age > chrono::Duration::from_std(limit).unwrap_or(chrono::Duration::MAX) {
            Freshness::Stale {
                last_sweep_at,
                limit,
            }
        } else {
            Freshness::Fresh
        }
    }

    /// What is wrong, for `/health` and the log; `None` when fresh.
    pub fn reason(&self) -> Option<String> {
        match self {
            Freshness::Fresh => None,
            Freshness::NoPeerList => Some(
                "no peer list yet: peer-fetch has not succeeded, so there is nothing to probe"
                    .into(),
            ),
            Freshness::Stale {
                last_sweep_at: Some(at),
                limit,
            } => Some(format!(
                "no probe sweep since {} (more than {}s, {STALE_AFTER_SWEEPS} sweep intervals): \
                 the probe is not probing",
                crate::model::rfc3339(*at),
                limit.as_secs()
            )),
            Freshness::Stale {
                last_sweep_at: None,
                limit,
            } => Some(format!(
                "no probe sweep in the {}s ({STALE_AFTER_SWEEPS} sweep intervals) since start: \
                 the probe is not probing",
                limit.as_secs()
            )),
        }
    }
}

/// Everything a job may use. Cheap to clone.
#[derive(Clone)]
pub struct JobContext {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub backend: Option<BackendClient>,
    /// The one clock jobs, the runner, the scheduler and the API read.
    pub clock: SharedClock,
    /// When this process started (before its first sweep, staleness counts from here).
    pub started_at: chrono::DateTime<chrono::Utc>,
}

impl JobContext {
    pub fn new(store: Store, settings: Arc<Settings>) -> Self {
        let backend = settings.backend.clone().map(BackendClient::new);
        Self {
            store,
            settings,
            backend,
            clock: SharedClock::system(),
            started_at: chrono::Utc::now(),
        }
    }

    /// The same context on another clock (tests jump it).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.started_at = clock.now();
        self.clock = clock;
        self
    }

    /// Whether the probe is probing: [`Freshness::judge`] of the newest sweep (as read by the
    /// caller), on this context's clock and the sweep schedule in force.
    pub fn judge(
        &self,
        last_sweep_at: Option<chrono::DateTime<chrono::Utc>>,
        has_list: bool,
    ) -> Freshness {
        let now = self.clock.now();
        let period = effective_schedule(JobName::ProbeSweep, &self.settings).period(now);
        Freshness::judge(last_sweep_at, has_list, self.started_at, now, period)
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

/// Runs `job` once in `ctx`; the runner stops it at `deadline`.
pub async fn run(job: JobName, ctx: JobContext, deadline: tokio::time::Instant) -> JobResult {
    match job {
        JobName::PeerFetch => peer_fetch::run(&ctx).await,
        JobName::ProbeSweep => probe_sweep::run(&ctx, deadline).await,
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
    fn a_probe_is_stale_after_three_missed_sweeps() {
        let t0 = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        let five = Duration::from_secs(5);
        let judge = |last, list, now| Freshness::judge(last, list, t0, at(now), five);
        assert_eq!(judge(Some(at(0)), true, 15), Freshness::Fresh);
        assert!(matches!(
            judge(Some(at(0)), true, 16),
            Freshness::Stale { .. }
        ));
        // Before the first sweep the age counts from start-up.
        assert_eq!(judge(None, true, 14), Freshness::Fresh);
        assert!(matches!(
            judge(None, true, 16),
            Freshness::Stale {
                last_sweep_at: None,
                ..
            }
        ));
        // No peer list yet: not stale, however long.
        assert_eq!(judge(None, false, 3600), Freshness::NoPeerList);
        assert!(judge(Some(at(0)), true, 16)
            .reason()
            .unwrap()
            .contains("not probing"));
    }

    #[test]
    fn a_schedule_has_a_period() {
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(
            Schedule::Every(Duration::from_secs(7)).period(now),
            Duration::from_secs(7)
        );
        assert_eq!(
            Schedule::Cron("0 */5 * * * *".into()).period(now),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn ms_rounds_to_microseconds() {
        assert_eq!(ms(123), 0.123);
        assert_eq!(ms(45_678), 45.678);
    }
}
