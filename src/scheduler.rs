//! The built-in scheduler of `serve`: tokio-cron-scheduler fires each job on its schedule and
//! hands it to the [`Runner`], which records it (and skips it while the previous run goes on).
//!
//! Only job types that compute their next tick from the current time are used: its *repeated*
//! type computes "previous tick + interval", which after one missed tick (a stall, a suspend, a
//! clock step) never fires again (tokio-cron-scheduler issue #113). So:
//! - `every = "Ns"` is a one-shot re-armed at each fire, its delay taken from a [`Cadence`] on
//!   monotonic time: a stall gives one catch-up run, then the interval again;
//! - cron schedules are cron jobs (next tick from the wall clock, as cron users expect);
//! - a watch compares the wall clock with the monotonic one every second and re-arms every job
//!   when the wall clock jumped, since tokio-cron-scheduler keeps its next tick as a wall time
//!   (a clock set back would otherwise pause every job for the length of the jump).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_cron_scheduler::{Job, JobScheduler};
use uuid::Uuid;

use crate::domain::{JobName, Schedule, SharedClock, Trigger};
use crate::runner::Runner;

/// A fire this much ahead of the monotonic plan is the wall clock's doing: it is re-armed, not run.
/// (tokio-cron-scheduler keeps whole seconds and polls every 500 ms, so a fire on time may come
/// up to about a second early; that part is waited out.)
const EARLY_FIRE_TOLERANCE: Duration = Duration::from_millis(2500);
/// A wall clock that moved this much more (or less) than the monotonic one has jumped.
const JUMP_THRESHOLD: chrono::Duration = chrono::Duration::seconds(2);
/// How often the watch compares the two clocks.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The plan of an `every` schedule, on monotonic time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    every: Duration,
    next: Instant,
}

/// What to do when the scheduler fires an `every` job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fire {
    /// Not due on monotonic time (the wall clock jumped ahead): arm again, due in this long.
    Early(Duration),
    /// Due in `wait` (zero when late): run then; the plan has moved to the run after.
    Run { wait: Duration },
}

impl Cadence {
    /// A cadence whose first run is one interval after `now` (serve runs every job at start).
    pub fn new(every: Duration, now: Instant) -> Self {
        Self {
            every,
            next: now + every,
        }
    }

    /// When the next run is due.
    pub fn next(&self) -> Instant {
        self.next
    }

    /// The scheduler fired at `now`. A fire on time moves the plan one interval on; a late one
    /// (after a stall) runs once at once and restarts the interval from `now`, so missed runs
    /// are never made up in a burst.
    pub fn on_fire(&mut self, now: Instant) -> Fire {
        let wait = self.next.saturating_duration_since(now);
        if wait > EARLY_FIRE_TOLERANCE {
            return Fire::Early(wait);
        }
        let due = self.next.max(now);
        self.next += self.every;
        if self.next <= due {
            self.next = due + self.every;
        }
        Fire::Run { wait }
    }
}

/// How far the wall clock jumped between two readings of (wall, monotonic), if it did.
pub fn wall_jump(
    before: (DateTime<Utc>, Instant),
    after: (DateTime<Utc>, Instant),
) -> Option<chrono::Duration> {
    let wall = after.0 - before.0;
    let mono = chrono::Duration::from_std(after.1.saturating_duration_since(before.1))
        .unwrap_or(chrono::Duration::MAX);
    let drift = wall - mono;
    (drift.abs() > JUMP_THRESHOLD).then_some(drift)
}

type FireFn =
    Box<dyn FnMut(Uuid, JobScheduler) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A job as armed in tokio-cron-scheduler.
struct Armed {
    id: Uuid,
    plan: Plan,
}

#[derive(Clone)]
enum Plan {
    Every(Cadence),
    Cron(String),
}

/// How long a sweep's follow-up notify waits for a notify run still going.
const NOTIFY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

struct Shared {
    runner: Runner,
    clock: SharedClock,
    inner: JobScheduler,
    armed: Mutex<HashMap<JobName, Armed>>,
}

pub struct Scheduler {
    shared: Arc<Shared>,
    watch: tokio::task::JoinHandle<()>,
}

impl Scheduler {
    /// Schedules `jobs` (with their schedules) and starts ticking.
    pub async fn start(runner: Runner, jobs: &[(JobName, Schedule)]) -> anyhow::Result<Scheduler> {
        let clock = runner.context().clock.clone();
        let shared = Arc::new(Shared {
            runner,
            clock,
            inner: JobScheduler::new().await?,
            armed: Mutex::new(HashMap::new()),
        });
        let now = shared.clock.instant();
        for (job, schedule) in jobs {
            let plan = match schedule {
                Schedule::Every(every) => Plan::Every(Cadence::new(*every, now)),
                Schedule::Cron(cron) => Plan::Cron(cron.clone()),
            };
            shared.arm(*job, plan).await?;
        }
        shared.inner.start().await?;
        let watch = tokio::spawn(watch(Arc::downgrade(&shared)));
        Ok(Scheduler { shared, watch })
    }

    /// When `job` runs next, if it is scheduled.
    pub async fn next_run(&self, job: JobName) -> Option<DateTime<Utc>> {
        let (id, next) = {
            let armed = self.shared.armed.lock().ok()?;
            let a = armed.get(&job)?;
            let next = match &a.plan {
                Plan::Every(c) => Some(c.next()),
                Plan::Cron(_) => None,
            };
            (a.id, next)
        };
        match next {
            Some(at) => {
                let clock = &self.shared.clock;
                let ahead = at.saturating_duration_since(clock.instant());
                Some(clock.now() + chrono::Duration::from_std(ahead).ok()?)
            }
            None => self
                .shared
                .inner
                .clone()
                .next_tick_for_job(id)
                .await
                .ok()
                .flatten(),
        }
    }

    /// How far the scheduler is behind its plan: the longest any job is past its due time
    /// (zero while each fires on time). Each fire moves a job's plan on, so a scheduler that no
    /// longer fires falls further behind at every moment; `serve`'s watchdog reads this.
    pub async fn behind(&self) -> Duration {
        let (now, wall) = (self.shared.clock.instant(), self.shared.clock.now());
        let plans: Vec<(Uuid, Option<Instant>)> = match self.shared.armed.lock() {
            Ok(armed) => armed
                .values()
                .map(|a| match &a.plan {
                    Plan::Every(c) => (a.id, Some(c.next())),
                    Plan::Cron(_) => (a.id, None),
                })
                .collect(),
            // A thread panicked holding the plans: nothing is re-armed any more.
            Err(_) => return Duration::MAX,
        };
        let mut behind = Duration::ZERO;
        for (id, next) in plans {
            let late = match next {
                Some(at) => now.saturating_duration_since(at),
                None => match self.shared.inner.clone().next_tick_for_job(id).await {
                    Ok(Some(at)) => (wall - at).to_std().unwrap_or_default(),
                    _ => Duration::ZERO,
                },
            };
            behind = behind.max(late);
        }
        behind
    }

    /// Stops firing new runs; runs already going are left to the runner's drain.
    pub async fn shutdown(&self) {
        self.watch.abort();
        if let Err(e) = self.shared.inner.clone().shutdown().await {
            tracing::warn!("scheduler shutdown: {e}");
        }
    }
}

impl Shared {
    /// Adds `job` to tokio-cron-scheduler under `plan` (replacing what was armed for it).
    async fn arm(self: &Arc<Self>, job: JobName, plan: Plan) -> anyhow::Result<()> {
        let scheduled = match &plan {
            Plan::Every(cadence) => {
                let wait = cadence
                    .next()
                    .saturating_duration_since(self.clock.instant());
                Job::new_one_shot_async(wait, self.fire_every(job))?
            }
            Plan::Cron(cron) => Job::new_async(cron.as_str(), self.fire_cron(job))?,
        };
        let id = scheduled.guid();
        let old = self
            .armed
            .lock()
            .map_err(|_| anyhow::anyhow!("scheduler state poisoned"))?
            .insert(job, Armed { id, plan });
        if let Some(old) = old {
            // A one-shot that fired is gone already; an error here means just that.
            let _ = self.inner.remove(&old.id).await;
        }
        self.inner.add(scheduled).await?;
        Ok(())
    }

    fn fire_every(self: &Arc<Self>, job: JobName) -> FireFn {
        self.fire(move |shared| Box::pin(async move { shared.every_fired(job).await }))
    }

    fn fire_cron(self: &Arc<Self>, job: JobName) -> FireFn {
        self.fire(move |shared| Box::pin(async move { shared.start_run(job) }))
    }

    /// What tokio-cron-scheduler calls at a tick: `on_tick`, while the scheduler lives.
    fn fire(
        self: &Arc<Self>,
        on_tick: impl Fn(Arc<Shared>) -> Pin<Box<dyn Future<Output = ()> + Send>>
            + Send
            + Sync
            + 'static,
    ) -> FireFn {
        let shared = Arc::downgrade(self);
        let on_tick = Arc::new(on_tick);
        Box::new(move |_id, _scheduler| {
            let (shared, on_tick) = (shared.clone(), on_tick.clone());
            Box::pin(async move {
                if let Some(shared) = shared.upgrade() {
                    on_tick(shared).await;
                }
            })
        })
    }

    async fn every_fired(self: &Arc<Self>, job: JobName) {
        let fire = {
            let Ok(mut armed) = self.armed.lock() else {
                return;
            };
            match armed.get_mut(&job).map(|a| &mut a.plan) {
                Some(Plan::Every(cadence)) => (cadence.on_fire(self.clock.instant()), *cadence),
                _ => return,
            }
        };
        match fire {
            (Fire::Early(rest), cadence) => {
                tracing::debug!(job = %job, ?rest, "fired early (wall clock ahead); re-armed");
                self.rearm(job, Plan::Every(cadence)).await;
            }
            (Fire::Run { wait }, cadence) => {
                self.rearm(job, Plan::Every(cadence)).await;
                tokio::time::sleep(wait).await;
                self.start_run(job);
            }
        }
    }

    async fn rearm(self: &Arc<Self>, job: JobName, plan: Plan) {
        if let Err(e) = self.arm(job, plan).await {
            tracing::error!(job = %job, "could not schedule the next run: {e}");
        }
    }

    /// Hands a run to the runner, in its own task: the scheduler never waits for a job.
    /// A sweep is followed by a run of notify (when it is scheduled and not running), so an
    /// alert goes out as soon as the sweep that changed it is stored.
    fn start_run(&self, job: JobName) {
        let runner = self.runner.clone();
        let then_notify = job == JobName::ProbeSweep
            && self
                .armed
                .lock()
                .is_ok_and(|a| a.contains_key(&JobName::Notify));
        tokio::spawn(async move {
            if let Err(e) = runner.run(job, Trigger::Schedule).await {
                tracing::error!(job = %job, "could not record the run: {e}");
            }
            if then_notify {
                // A notify run going now may have read the store before this sweep was in it:
                // wait for it (briefly) rather than leave the sweep to the next tick.
                let waited = std::time::Instant::now();
                while runner.is_running(JobName::Notify) && waited.elapsed() < NOTIFY_WAIT {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                if !runner.is_running(JobName::Notify) {
                    if let Err(e) = runner.run(JobName::Notify, Trigger::Schedule).await {
                        tracing::error!(job = "notify", "could not record the run: {e}");
                    }
                }
            }
        });
    }

    /// Every job armed again from the current time (after a wall-clock jump).
    async fn rearm_all(self: &Arc<Self>) {
        let plans: Vec<(JobName, Plan)> = match self.armed.lock() {
            Ok(armed) => armed
                .iter()
                .map(|(job, a)| (*job, a.plan.clone()))
                .collect(),
            Err(_) => return,
        };
        for (job, plan) in plans {
            self.rearm(job, plan).await;
        }
    }
}

/// Re-arms every job when the wall clock jumps; ends with the scheduler.
async fn watch(shared: std::sync::Weak<Shared>) {
    let reading = |s: &Shared| (s.clock.now(), s.clock.instant());
    let Some(mut last) = shared.upgrade().map(|s| reading(&s)) else {
        return;
    };
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let Some(s) = shared.upgrade() else { return };
        let now = reading(&s);
        if let Some(jump) = wall_jump(last, now) {
            tracing::warn!(
                jump_s = jump.num_milliseconds() as f64 / 1000.0,
                "the wall clock jumped; schedules re-armed from the current time"
            );
            s.rearm_all().await;
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Clock, ManualClock};

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn on_time_fires_keep_the_grid() {
        let t0 = Instant::now();
        let mut c = Cadence::new(5 * S, t0);
        assert_eq!(c.next(), t0 + 5 * S);
        // Fired a little early (whole-second ticks): wait the rest, plan moves one interval.
        assert_eq!(c.on_fire(t0 + 4 * S + S / 2), Fire::Run { wait: S / 2 });
        assert_eq!(c.next(), t0 + 10 * S);
        // Fired a little late: no wait, and the grid does not drift.
        assert_eq!(
            c.on_fire(t0 + 10 * S + S / 2),
            Fire::Run {
                wait: Duration::ZERO
            }
        );
        assert_eq!(c.next(), t0 + 15 * S);
    }

    #[test]
    fn a_stall_gives_one_catch_up_then_the_interval() {
        let t0 = Instant::now();
        let mut c = Cadence::new(5 * S, t0);
        // Stopped for a minute: one run at once, the next one interval later, not a burst.
        let woke = t0 + 65 * S;
        assert_eq!(
            c.on_fire(woke),
            Fire::Run {
                wait: Duration::ZERO
            }
        );
        assert_eq!(c.next(), woke + 5 * S);
        assert_eq!(
            c.on_fire(woke + 5 * S),
            Fire::Run {
                wait: Duration::ZERO
            }
        );
        assert_eq!(c.next(), woke + 10 * S);
    }

    #[test]
    fn a_fire_from_a_wall_clock_ahead_is_not_a_run() {
        let t0 = Instant::now();
        let mut c = Cadence::new(60 * S, t0);
        // The wall clock jumped 50 s ahead: the one-shot fires at monotonic +10 s.
        assert_eq!(c.on_fire(t0 + 10 * S), Fire::Early(50 * S));
        assert_eq!(c.next(), t0 + 60 * S, "the plan is unchanged");
        assert_eq!(
            c.on_fire(t0 + 60 * S),
            Fire::Run {
                wait: Duration::ZERO
            }
        );
    }

    #[test]
    fn wall_jumps_are_seen_in_both_directions() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let clock = ManualClock::new(start);
        let read = || (clock.now(), clock.instant());
        let a = read();
        clock.advance(S);
        assert_eq!(wall_jump(a, read()), None, "time passing is no jump");
        let b = read();
        clock.advance(S);
        clock.jump_wall(chrono::Duration::hours(-1));
        let jump = wall_jump(b, read()).expect("a clock set back");
        assert_eq!(jump, chrono::Duration::hours(-1));
        let c = read();
        clock.advance(S);
        clock.jump_wall(chrono::Duration::days(30));
        assert_eq!(wall_jump(c, read()), Some(chrono::Duration::days(30)));
        // A stall (SIGSTOP) moves both clocks: no jump, and the cadence catches up once.
        let d = read();
        clock.advance(15 * S);
        assert_eq!(wall_jump(d, read()), None);
    }

    #[tokio::test]
    async fn a_scheduler_that_stops_firing_falls_behind() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = crate::jobs::test_context(dir.path(), Default::default());
        let scheduler = Scheduler::start(
            Runner::new(ctx),
            &[
                (JobName::Notify, Schedule::Every(S)),
                (JobName::PeerFetch, Schedule::Cron("* * * * * *".into())),
            ],
        )
        .await
        .unwrap();
        for _ in 0..6 {
            tokio::time::sleep(S / 2).await;
            let behind = scheduler.behind().await;
            assert!(behind < 2 * S, "behind {behind:?} while firing");
        }
        // tokio-cron-scheduler stops ticking: the plans stay where they were.
        scheduler.shared.inner.clone().shutdown().await.unwrap();
        tokio::time::sleep(3 * S).await;
        let behind = scheduler.behind().await;
        assert!(
            behind > S + S / 2,
            "behind only {behind:?} after 3 s unfired"
        );
        scheduler.shutdown().await;
    }

    #[tokio::test]
    async fn the_watch_rearms_every_job_when_the_wall_clock_jumps() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(Utc::now());
        let ctx =
            crate::jobs::test_context(dir.path(), Default::default()).with_clock(clock.shared());
        let scheduler = Scheduler::start(
            Runner::new(ctx),
            &[
                (JobName::ProbeSweep, Schedule::Every(60 * S)),
                (JobName::PeerFetch, Schedule::Cron("0 0 * * * *".into())),
            ],
        )
        .await
        .unwrap();
        let ids = || {
            let armed = scheduler.shared.armed.lock().unwrap();
            (
                armed[&JobName::ProbeSweep].id,
                armed[&JobName::PeerFetch].id,
            )
        };
        let before = ids();
        let next = scheduler.next_run(JobName::ProbeSweep).await.unwrap();
        assert_eq!(next, clock.now() + chrono::Duration::seconds(60));
        tokio::time::sleep(WATCH_EVERY * 2).await;
        assert_eq!(ids(), before, "nothing re-armed while the clocks agree");
        // The wall clock is set back an hour: tokio-cron-scheduler's wall-time ticks would be an
        // hour away, so both jobs are armed again from the current time.
        clock.jump_wall(chrono::Duration::hours(-1));
        tokio::time::sleep(WATCH_EVERY * 2).await;
        let after = ids();
        assert_ne!(after.0, before.0, "the every job was not re-armed");
        assert_ne!(after.1, before.1, "the cron job was not re-armed");
        // The monotonic plan is unchanged: still due a minute after start.
        let next = scheduler.next_run(JobName::ProbeSweep).await.unwrap();
        assert_eq!(next, clock.now() + chrono::Duration::seconds(60));
        scheduler.shutdown().await;
    }
}
