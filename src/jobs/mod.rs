//! The jobs, and the context they run in: one module per job.
//!
//! A job is a function from [`JobContext`] to a summary. It keeps no state between runs except
//! in the store, and does not know how it was triggered; the runner owns timing, overlap,
//! timeouts, panics and recording.

pub mod notify;
mod peer_fetch;
mod probe_sweep;
pub mod status_report;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::backend::BackendClient;
use crate::config::Settings;
use crate::domain::{Freshness, JobName, Schedule, SharedClock};
use crate::notifier::Notifier;
use crate::probe::Resolver;
use crate::store::Store;

/// The schedule in force: the spec's, unless the variable its `interval_variable` names is set.
pub fn effective_schedule(job: JobName, settings: &Settings) -> Schedule {
    let spec = job.spec();
    spec.interval_variable
        .as_deref()
        .and_then(|variable| settings.interval(variable))
        .map(Schedule::Every)
        .unwrap_or(spec.schedule)
}

/// Everything a job may use. Cheap to clone.
#[derive(Clone)]
pub struct JobContext {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub backend: Option<BackendClient>,
    /// Sends alert messages (the notify job).
    pub notifier: Notifier,
    /// The one clock jobs, the runner, the scheduler and the API read.
    pub clock: SharedClock,
    /// Peers' names, one cache for every sweep of this process.
    pub dns: Resolver,
    /// When this process started (before its first sweep, staleness counts from here).
    pub started_at: DateTime<Utc>,
}

impl JobContext {
    pub fn new(store: Store, settings: Arc<Settings>) -> Self {
        let backend = settings.backend.clone().map(BackendClient::new);
        let dns = Resolver::new(&settings.probe.dns_servers);
        Self {
            store,
            settings,
            backend,
            notifier: Notifier::new(),
            clock: SharedClock::system(),
            dns,
            started_at: Utc::now(),
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
    pub fn judge(&self, last_sweep_at: Option<DateTime<Utc>>, has_list: bool) -> Freshness {
        let now = self.clock.now();
        Freshness::judge(
            last_sweep_at,
            has_list,
            self.started_at,
            now,
            self.sweep_period(now),
        )
    }

    /// The time between sweeps of the sweep schedule in force at `now`.
    pub fn sweep_period(&self, now: DateTime<Utc>) -> std::time::Duration {
        effective_schedule(JobName::ProbeSweep, &self.settings).period(now)
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
        JobName::Notify => notify::run(&ctx).await,
    }
}

/// A context on a new store in `dir`, with `options` (its data dir set to `dir`): for unit tests.
#[cfg(test)]
pub(crate) fn test_context(dir: &std::path::Path, options: crate::config::Options) -> JobContext {
    let options = crate::config::Options {
        data_dir: Some(dir.to_path_buf()),
        ..options
    };
    let settings = Settings::resolve(&options, &crate::config::EmptyEnv).expect("test settings");
    JobContext::new(
        Store::open(dir, "test").expect("a test store"),
        Arc::new(settings),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::INTERVAL_VARIABLES;

    /// Each spec's `interval_variable` is one the configuration sets, and setting it overrides
    /// that job's schedule and no other's.
    #[test]
    fn interval_variables_override_their_own_job() {
        use crate::config::{Cli, EmptyEnv};
        use clap::Parser;
        for job in JobName::ALL {
            let variable = job.spec().interval_variable.expect("every job has one");
            let (_, flag) = INTERVAL_VARIABLES
                .into_iter()
                .find(|(v, _)| *v == variable)
                .unwrap_or_else(|| panic!("{job}: {variable} is not an interval variable"));
            let cli = Cli::try_parse_from(["easytier-probe", flag, "4321"]).unwrap();
            let settings = Settings::resolve(&cli.options, &EmptyEnv).unwrap();
            for other in JobName::ALL {
                let expected = if other == job {
                    Schedule::Every(std::time::Duration::from_secs(4321))
                } else {
                    other.spec().schedule
                };
                assert_eq!(effective_schedule(other, &settings), expected, "{flag}");
            }
        }
    }
}
