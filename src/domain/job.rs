//! The jobs by name, their specs (`jobs/*.toml`, embedded), their runs, and whether the probe is
//! probing ([`Freshness`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::duration::parse_duration;

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
    Notify,
}

impl JobName {
    pub const ALL: [JobName; 4] = [
        JobName::PeerFetch,
        JobName::ProbeSweep,
        JobName::StatusReport,
        JobName::Notify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobName::PeerFetch => "peer-fetch",
            JobName::ProbeSweep => "probe-sweep",
            JobName::StatusReport => "status-report",
            JobName::Notify => "notify",
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
            JobName::Notify => include_str!("../../jobs/notify.toml"),
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
    pub fn period(&self, now: DateTime<Utc>) -> Duration {
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
            schedule,
            timeout: parse_duration(&raw.timeout)?,
            overlap: raw.overlap,
            interval_variable: raw.interval_variable,
        })
    }
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
        last_sweep_at: Option<DateTime<Utc>>,
        limit: Duration,
    },
}

impl Freshness {
    /// Judges the newest sweep at `last_sweep_at` at `now`, with sweeps every `period`; before
    /// the first sweep the age counts from `since` (the process's start).
    pub fn judge(
        last_sweep_at: Option<DateTime<Utc>>,
        has_peer_list: bool,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
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
                super::time::rfc3339(*at),
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

/// Sweeps in a row that overran their interval, or were skipped for it, before `/health`
/// says so.
pub const OVERRUN_SWEEPS: usize = 3;

/// Why sweeps do not keep to their interval `period`, from the newest runs of probe-sweep
/// (newest first; runs still going are passed over): the newest [`OVERRUN_SWEEPS`] each took
/// longer than the period or were skipped because the one before was still going. `None` when
/// they keep to it, or there are not yet that many runs.
pub fn overrun(runs: &[JobRun], period: Duration, now: DateTime<Utc>) -> Option<String> {
    let recent: Vec<&JobRun> = runs
        .iter()
        .filter(|r| r.outcome != Outcome::Running)
        .take(OVERRUN_SWEEPS)
        .collect();
    // A skip by the schedule is one for a sweep still going; one by hand says nothing.
    let late = |r: &&JobRun| match r.outcome {
        Outcome::Skipped => r.trigger == Trigger::Schedule,
        _ => Duration::from_millis(r.duration_ms) > period,
    };
    if recent.len() < OVERRUN_SWEEPS || !recent.iter().all(late) {
        return None;
    }
    let skipped = recent
        .iter()
        .filter(|r| r.outcome == Outcome::Skipped)
        .count();
    // A sweep still going (the skips after it are newer) counts with its time so far.
    let going = runs
        .iter()
        .filter(|r| r.outcome == Outcome::Running)
        .map(|r| (now - r.started_at).num_milliseconds().max(0) as u64);
    let slowest = recent
        .iter()
        .map(|r| r.duration_ms)
        .chain(going)
        .max()
        .unwrap_or(0);
    Some(format!(
        "the last {OVERRUN_SWEEPS} probe sweeps did not keep to their {}s interval ({skipped} \
         skipped because the one before was still going, the slowest took {:.1}s): peers are \
         checked less often than configured (see PROBE_TIMEOUT and PROBE_CONCURRENCY)",
        period.as_secs_f64(),
        slowest as f64 / 1000.0
    ))
}

/// Upper bounds (seconds) of the buckets of [`Durations`]; the last bucket is `+Inf`.
pub const DURATION_BOUNDS_S: [f64; 10] = [0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// How long a job's finished runs took, over the store's whole life (every process that ran
/// the job on it): the figures of a Prometheus histogram.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Durations {
    /// The bucket bounds these figures were counted in: [`DURATION_BOUNDS_S`] when they were
    /// written. Figures of other bounds start again (a counter reset, to Prometheus).
    #[serde(default)]
    pub bounds_s: Vec<f64>,
    /// Runs per bucket of `bounds_s` (not cumulative), then those over the last.
    pub buckets: Vec<u64>,
    pub sum_ms: u64,
    pub count: u64,
}

impl Durations {
    pub fn observe(&mut self, ms: u64) {
        if self.bounds_s != DURATION_BOUNDS_S || self.buckets.len() != DURATION_BOUNDS_S.len() + 1 {
            *self = Durations {
                bounds_s: DURATION_BOUNDS_S.to_vec(),
                buckets: vec![0; DURATION_BOUNDS_S.len() + 1],
                ..Durations::default()
            };
        }
        let s = ms as f64 / 1000.0;
        let i = DURATION_BOUNDS_S
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(DURATION_BOUNDS_S.len());
        self.buckets[i] += 1;
        self.sum_ms = self.sum_ms.saturating_add(ms);
        self.count += 1;
    }

    /// `(le, runs at most that long)` for every bound, then `(+Inf, all runs)`.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        let bounds: &[f64] = if self.bounds_s.is_empty() {
            &DURATION_BOUNDS_S
        } else {
            &self.bounds_s
        };
        bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .enumerate()
            .map(|(i, le)| {
                total += self.buckets.get(i).copied().unwrap_or(0);
                (le, total)
            })
            .collect()
    }
}

/// How a job run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The built-in scheduler of `serve`.
    Schedule,
    /// `run-job` on the command line (systemd timer, Nomad, by hand).
    Cli,
    /// `POST /api/jobs/{name}/run`.
    Api,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Cli => "cli",
            Trigger::Api => "api",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Recorded when a run starts; a run still `running` in a store nobody holds was interrupted.
    Running,
    Ok,
    Failed,
    /// Not run because the previous run of the same job was still going.
    Skipped,
    /// The process died during the run (found at the next open of the store).
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// The record of one run of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRun {
    pub id: u64,
    pub job: String,
    pub trigger: Trigger,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub outcome: Outcome,
    pub summary: Value,
    pub error: Option<String>,
}

impl JobRun {
    /// A record of a run of `job` with `outcome` and nothing yet to say: no id (the store gives
    /// it), no duration, an empty summary, no error.
    pub fn new(
        job: JobName,
        trigger: Trigger,
        started_at: DateTime<Utc>,
        outcome: Outcome,
    ) -> Self {
        JobRun {
            id: 0,
            job: job.as_str().into(),
            trigger,
            started_at,
            duration_ms: 0,
            outcome,
            summary: Value::Object(Default::default()),
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_that_overrun_or_skip_three_times_in_a_row_are_named() {
        let period = Duration::from_secs(5);
        let run = |outcome, ms| JobRun {
            duration_ms: ms,
            ..JobRun::new(JobName::ProbeSweep, Trigger::Schedule, Utc::now(), outcome)
        };
        let (ok, slow, skip, going) = (
            run(Outcome::Ok, 900),
            run(Outcome::Ok, 12_300),
            run(Outcome::Skipped, 0),
            run(Outcome::Running, 0),
        );
        let now = going.started_at;
        let why = overrun(
            &[
                going.clone(),
                skip.clone(),
                slow.clone(),
                skip.clone(),
                ok.clone(),
            ],
            period,
            now,
        )
        .expect("three late sweeps in a row");
        assert!(why.contains("2 skipped") && why.contains("12.3s"), "{why}");
        assert!(why.contains("5s interval"), "{why}");
        // Skipped for a sweep still going: its time so far is the slowest.
        let long = JobRun {
            started_at: now - chrono::Duration::seconds(40),
            ..going.clone()
        };
        let why = overrun(
            &[skip.clone(), skip.clone(), skip.clone(), long],
            period,
            now,
        );
        let why = why.expect("three skips in a row");
        assert!(why.contains("3 skipped") && why.contains("40.0s"), "{why}");
        // A run asked for by hand while one was going is no sign of a slow schedule.
        let by_hand = JobRun {
            trigger: Trigger::Cli,
            ..skip.clone()
        };
        assert_eq!(
            overrun(&[by_hand, skip.clone(), skip.clone()], period, now),
            None
        );
        // A failed sweep that took too long counts; a sweep on time breaks the run.
        let failed = run(Outcome::Failed, 6_000);
        assert!(overrun(&[failed, slow.clone(), slow.clone()], period, now).is_some());
        assert_eq!(
            overrun(&[slow.clone(), ok, slow.clone()], period, now),
            None
        );
        assert_eq!(
            overrun(&[slow.clone(), slow], period, now),
            None,
            "only two runs yet"
        );
        // Exactly the interval keeps to it.
        let on_time = run(Outcome::Ok, 5_000);
        assert_eq!(
            overrun(&[on_time.clone(), on_time.clone(), on_time], period, now),
            None
        );
    }

    #[test]
    fn durations_fill_their_buckets_cumulatively() {
        let mut d = Durations::default();
        for ms in [100, 250, 251, 4_000, 400_000] {
            d.observe(ms);
        }
        let c = d.cumulative();
        assert_eq!(c.len(), DURATION_BOUNDS_S.len() + 1);
        assert_eq!(c[0], (0.25, 2), "250 ms is in le=0.25");
        assert_eq!(c[1], (0.5, 3));
        assert_eq!(c[4], (5.0, 4));
        assert_eq!(c[9], (300.0, 4));
        assert_eq!(c[10], (f64::INFINITY, 5));
        assert_eq!((d.count, d.sum_ms), (5, 404_601));
        // Figures counted in other bounds start again rather than land in the wrong buckets.
        let mut old = Durations {
            bounds_s: vec![1.0, 10.0],
            ..d.clone()
        };
        old.observe(2_000);
        assert_eq!(
            (old.count, old.bounds_s.len()),
            (1, DURATION_BOUNDS_S.len())
        );
        assert_eq!(old.cumulative()[4], (5.0, 1));
    }

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
}
