//! The built-in scheduler of `serve`: tokio-cron-scheduler fires each job on its schedule and
//! hands it to the [`Runner`], which records it (and skips it while the previous run goes on).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio_cron_scheduler::{Job, JobScheduler};
use uuid::Uuid;

use crate::jobs::{JobName, Schedule};
use crate::model::Trigger;
use crate::runner::Runner;

pub struct Scheduler {
    inner: JobScheduler,
    ids: HashMap<JobName, Uuid>,
}

impl Scheduler {
    /// Schedules `jobs` (with their schedules) and starts ticking.
    pub async fn start(runner: Runner, jobs: &[(JobName, Schedule)]) -> anyhow::Result<Scheduler> {
        let inner = JobScheduler::new().await?;
        let mut ids = HashMap::new();
        for (job, schedule) in jobs {
            let job = *job;
            let runner = runner.clone();
            let fire = move |_id, _lock| {
                let runner = runner.clone();
                Box::pin(async move {
                    if let Err(e) = runner.run(job, Trigger::Schedule).await {
                        tracing::error!(job = %job, "could not record the run: {e}");
                    }
                })
                    as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
            };
            let scheduled = match schedule {
                Schedule::Every(every) => Job::new_repeated_async(*every, fire)?,
                Schedule::Cron(cron) => Job::new_async(cron.as_str(), fire)?,
            };
            ids.insert(job, inner.add(scheduled).await?);
        }
        inner.start().await?;
        Ok(Scheduler { inner, ids })
    }

    pub async fn next_run(&self, job: JobName) -> Option<DateTime<Utc>> {
        let id = self.ids.get(&job)?;
        self.inner
            .clone()
            .next_tick_for_job(*id)
            .await
            .ok()
            .flatten()
    }

    /// Stops firing new runs; runs already going are left to the runner's drain.
    pub async fn shutdown(&self) {
        if let Err(e) = self.inner.clone().shutdown().await {
            tracing::warn!("scheduler shutdown: {e}");
        }
    }
}
