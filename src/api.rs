//! The HTTP API (axum): health, nodes, history, jobs, metrics and a status page.
//! Every JSON answer, errors included, is the envelope `{"code", "message", "data"}`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::history::{Bucket, Level};
use crate::jobs::{effective_schedule, JobName};
use crate::model::{JobRun, Outcome, Trigger};
use crate::runner::Runner;
use crate::scheduler::Scheduler;

/// Request bodies larger than this get 413.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

#[derive(Clone)]
pub struct ApiState {
    pub runner: Runner,
    pub scheduler: Option<Arc<Scheduler>>,
    pub started: Instant,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/nodes", get(nodes))
        .route("/api/nodes/{id}/health", get(node_health))
        .route("/api/jobs", get(jobs))
        .route("/api/jobs/{name}/runs", get(job_runs))
        .route("/api/jobs/{name}/run", post(trigger_job))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .layer(middleware::from_fn(limit_body))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(120),
        ))
        .with_state(state)
}

/// A client has this long to send a request's headers (slow clients hold no connection open).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// At shutdown, requests in flight get this long to finish.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves the API on an already-bound listener until `shutdown` resolves.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let app = router(state);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!("API accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
    Ok(())
}

fn envelope(status: StatusCode, message: &str, data: Value) -> Response {
    (
        status,
        Json(json!({"code": status.as_u16(), "message": message, "data": data})),
    )
        .into_response()
}

fn ok(data: Value) -> Response {
    envelope(StatusCode::OK, "ok", data)
}

fn error(status: StatusCode, message: &str) -> Response {
    envelope(status, message, Value::Null)
}

/// Internal detail goes to the log; the answer says only that it failed.
fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!("API: {e}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the node's log",
    )
}

async fn limit_body(req: Request, next: Next) -> Response {
    let too_large = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES);
    if too_large {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body over {MAX_BODY_BYTES} bytes"),
        );
    }
    next.run(req).await
}

use crate::model::rfc3339;

fn run_json(run: &JobRun) -> Value {
    json!({
        "id": run.id,
        "job": run.job,
        "trigger": run.trigger,
        "started_at": rfc3339(run.started_at),
        "duration_ms": run.duration_ms,
        "outcome": run.outcome,
        "summary": run.summary,
        "error": run.error,
    })
}

/// `/health`: 200 `ok` or `degraded` (a job's last run failed, or no peer list yet, while
/// probing goes on), 503 `stale` (no sweep for 3 sweep intervals) or `store` (writes do not
/// reach the disk). The reason is in `data.reason`.
async fn health(State(s): State<ApiState>) -> Response {
    let ctx = s.runner.context();
    let store = &ctx.store;
    let list = match store.peer_list() {
        Ok(l) => l,
        Err(e) => return internal(e),
    };
    let peers = list.as_ref().map_or(0, |l| l.peers.len());
    let mut jobs = serde_json::Map::new();
    let mut failed_jobs = Vec::new();
    for job in JobName::ALL {
        let last = match store.runs(job.as_str(), 50) {
            // The last run that finished: a skip or a run still going says nothing about health.
            Ok(runs) => runs
                .into_iter()
                .find(|r| !matches!(r.outcome, Outcome::Skipped | Outcome::Running)),
            Err(e) => return internal(e),
        };
        if let Some(run) = &last {
            if matches!(run.outcome, Outcome::Failed | Outcome::Interrupted) {
                failed_jobs.push(format!("the last {job} run {}", run.outcome.as_str()));
            }
        }
        jobs.insert(
            job.as_str().into(),
            json!({
                "last_run_at": last.as_ref().map(|r| rfc3339(r.started_at)),
                "last_outcome": last.as_ref().map(|r| r.outcome),
            }),
        );
    }
    let freshness = match store.last_sweep() {
        Ok(sweep) => ctx.judge(sweep.map(|s| s.at), list.is_some()),
        Err(e) => return internal(e),
    };
    let (code, status, reason) = if !store.writable() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "store",
            Some(format!(
                "the store in {} cannot be written to disk (disk full or failing?); jobs fail until it can",
                store.path().display()
            )),
        )
    } else if let crate::jobs::Freshness::Stale { .. } = freshness {
        (StatusCode::SERVICE_UNAVAILABLE, "stale", freshness.reason())
    } else if let Some(why) = freshness.reason() {
        (StatusCode::OK, "degraded", Some(why))
    } else if !failed_jobs.is_empty() {
        (StatusCode::OK, "degraded", Some(failed_jobs.join("; ")))
    } else {
        (StatusCode::OK, "ok", None)
    };
    envelope(
        code,
        reason.as_deref().unwrap_or("ok"),
        json!({
            "status": status,
            "reason": reason,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": s.started.elapsed().as_secs(),
            "peers": peers,
            "jobs": jobs,
        }),
    )
}

/// Uptime percentage of a bucket, `None` when it has no checks.
fn uptime_pct(b: &Bucket) -> Option<f64> {
    (b.checks > 0).then(|| round2(b.up as f64 * 100.0 / b.checks as f64))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A window of `/api/nodes/{id}/health`: its length, the history level it is read from (the
/// window starts at the start of that level's bucket holding `now - length`) and the step of
/// its series.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub name: &'static str,
    pub length: chrono::Duration,
    pub level: Level,
    pub step: chrono::Duration,
}

pub const WINDOWS: [Window; 4] = [
    Window {
        name: "1h",
        length: chrono::Duration::hours(1),
        level: Level::Minute,
        step: chrono::Duration::minutes(1),
    },
    Window {
        name: "24h",
        length: chrono::Duration::hours(24),
        level: Level::Hour,
        step: chrono::Duration::hours(1),
    },
    Window {
        name: "7d",
        length: chrono::Duration::days(7),
        level: Level::Hour,
        step: chrono::Duration::hours(6),
    },
    Window {
        name: "30d",
        length: chrono::Duration::days(30),
        level: Level::Day,
        step: chrono::Duration::days(1),
    },
];

fn window(name: &str) -> Option<Window> {
    WINDOWS.into_iter().find(|w| w.name == name)
}

impl Window {
    /// Everything of this window per slot, one bucket each (or one per step with `series`).
    fn collect(
        &self,
        store: &crate::store::Store,
        now: DateTime<Utc>,
        only: Option<u32>,
        series: bool,
    ) -> Result<HashMap<u32, BTreeMap<i64, Bucket>>, crate::store::StoreError> {
        // Up to a second ahead: a sweep that just finished is in.
        let to = now + chrono::Duration::seconds(1);
        store.collect(
            self.level,
            now - self.length,
            to,
            series.then_some(self.step),
            only,
        )
    }

    fn start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        crate::store::from_millis(self.level.floor((now - self.length).timestamp_millis()))
    }
}

/// Checks, up, loss, uptime and RTT figures of a bucket.
pub fn stats(b: &Bucket) -> Value {
    let rtt = |us: Option<u64>| us.map(crate::jobs::ms);
    let has_rtt = b.rtt_n > 0;
    json!({
        "checks": b.checks,
        "up": b.up,
        "loss_pct": (b.checks > 0).then(|| round2((b.checks - b.up) as f64 * 100.0 / b.checks as f64)),
        "uptime_pct": uptime_pct(b),
        "rtt_ms": {
            "min": rtt(has_rtt.then_some(b.rtt_min_us)),
            "avg": rtt(b.avg_rtt_us()),
            "p95": rtt(b.rtt_quantile_us(0.95)),
            "max": rtt(has_rtt.then_some(b.rtt_max_us)),
        },
    })
}

fn merged<'a>(buckets: impl IntoIterator<Item = &'a Bucket>) -> Bucket {
    let mut all = Bucket::default();
    for b in buckets {
        all.merge(b);
    }
    all
}

/// The listed peers, their slots and their latest results: what every fleet view starts from.
struct Listed {
    peers: Vec<crate::model::Peer>,
    slots: HashMap<String, u32>,
    latest: HashMap<String, crate::model::ProbeResult>,
}

impl Listed {
    fn read(store: &crate::store::Store) -> Result<Listed, crate::store::StoreError> {
        Ok(Listed {
            peers: store.peer_list()?.map(|l| l.peers).unwrap_or_default(),
            slots: store.roster()?,
            latest: store.latest_results()?,
        })
    }
}

async fn nodes(State(s): State<ApiState>) -> Response {
    let store = &s.runner.context().store;
    let now = Utc::now();
    let gathered = (|| {
        let listed = Listed::read(store)?;
        let mut uptimes = Vec::new();
        for name in ["1h", "24h", "7d"] {
            let w = window(name).expect("a known window");
            uptimes.push((name, w.collect(store, now, None, false)?));
        }
        Ok::<_, crate::store::StoreError>((listed, uptimes))
    })();
    let (
        Listed {
            peers,
            slots: roster,
            latest,
        },
        uptimes,
    ) = match gathered {
        Ok(g) => g,
        Err(e) => return internal(e),
    };
    let items: Vec<Value> = peers
        .iter()
        .map(|peer| {
            let latest = latest.get(&peer.id);
            let slot = roster.get(&peer.id);
            let uptime: serde_json::Map<String, Value> = uptimes
                .iter()
                .map(|(name, per_slot)| {
                    let pct = slot
                        .and_then(|s| per_slot.get(s))
                        .and_then(|points| uptime_pct(&merged(points.values())));
                    ((*name).to_string(), json!(pct))
                })
                .collect();
            json!({
                "id": peer.id,
                "name": peer.name,
                "host": peer.host,
                "port": peer.port,
                "protocol": peer.protocol,
                "network_name": peer.network_name,
                "up": latest.map(|r| r.up),
                "rtt_ms": latest.and_then(|r| r.rtt_us).map(crate::jobs::ms),
                "error_kind": latest.and_then(|r| r.error_kind),
                "last_checked_at": latest.map(|r| rfc3339(r.checked_at)),
                "uptime": uptime,
            })
        })
        .collect();
    ok(json!({"total": items.len(), "items": items}))
}

#[derive(Deserialize)]
struct WindowQuery {
    window: Option<String>,
}

async fn node_health(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<WindowQuery>,
) -> Response {
    let name = q.window.as_deref().unwrap_or("1h");
    let Some(w) = window(name) else {
        return error(
            StatusCode::BAD_REQUEST,
            "window must be one of 1h, 24h, 7d, 30d",
        );
    };
    let store = &s.runner.context().store;
    // Peers that left the list keep their slot, and so their history, until it ages out.
    let slot = match store.slot(&id) {
        Ok(Some(slot)) => slot,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no node with this id"),
        Err(e) => return internal(e),
    };
    let now = Utc::now();
    let points = match w.collect(store, now, Some(slot), true) {
        Ok(mut per_slot) => per_slot.remove(&slot).unwrap_or_default(),
        Err(e) => return internal(e),
    };
    let series: Vec<Value> = points
        .iter()
        .map(|(start, b)| {
            json!({
                "at": rfc3339(crate::store::from_millis(*start)),
                "checks": b.checks,
                "up": b.up,
                "uptime_pct": uptime_pct(b),
                "rtt_ms": b.avg_rtt_us().map(crate::jobs::ms),
            })
        })
        .collect();
    ok(json!({
        "id": id,
        "window": name,
        "from": rfc3339(w.start(now)),
        "step_s": w.step.num_seconds(),
        "stats": stats(&merged(points.values())),
        "series": series,
    }))
}

async fn jobs(State(s): State<ApiState>) -> Response {
    let ctx = s.runner.context();
    let mut items = Vec::new();
    for job in JobName::ALL {
        let spec = job.spec();
        let last = match ctx.store.last_run(job.as_str()) {
            Ok(r) => r,
            Err(e) => return internal(e),
        };
        let next = match &s.scheduler {
            Some(sched) => sched.next_run(job).await,
            None => None,
        };
        items.push(json!({
            "name": job.as_str(),
            "schedule": effective_schedule(job, &ctx.settings).to_string(),
            "timeout_s": spec.timeout.as_secs(),
            "overlap": spec.overlap,
            "next_run_at": next.map(rfc3339),
            "last_run": last.as_ref().map(run_json),
        }));
    }
    ok(json!({"items": items}))
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<String>,
}

async fn job_runs(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Response {
    let Some(job) = JobName::parse(&name) else {
        return error(StatusCode::NOT_FOUND, "no job with this name");
    };
    let limit = match q.limit.as_deref().map(str::parse::<usize>) {
        None => 20,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "limit must be a number from 1 to 1000",
            )
        }
    };
    match s.runner.context().store.runs(job.as_str(), limit) {
        Ok(runs) => ok(json!({"items": runs.iter().map(run_json).collect::<Vec<_>>()})),
        Err(e) => internal(e),
    }
}

/// Compares in time independent of where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn trigger_job(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ctx = s.runner.context();
    let Some(expected) = &ctx.settings.admin_token else {
        return error(
            StatusCode::FORBIDDEN,
            "triggering jobs is disabled: no ADMIN_TOKEN is configured",
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(given.as_bytes(), expected.expose().as_bytes()) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let Some(job) = JobName::parse(&name) else {
        return error(StatusCode::NOT_FOUND, "no job with this name");
    };
    match s.runner.run(job, Trigger::Api).await {
        Ok(run) => ok(run_json(&run)),
        Err(e) => internal(e),
    }
}

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn metrics(State(s): State<ApiState>) -> Response {
    let ctx = s.runner.context();
    let store = &ctx.store;
    let Listed { peers, latest, .. } = match Listed::read(store) {
        Ok(listed) => listed,
        Err(e) => return internal(e),
    };
    let region = label(ctx.settings.region.as_deref().unwrap_or(""));
    let mut up = String::new();
    let mut rtt = String::new();
    for peer in &peers {
        let Some(latest) = latest.get(&peer.id) else {
            continue;
        };
        let labels = format!(
            "id=\"{}\",name=\"{}\",protocol=\"{}\",region=\"{}\"",
            label(&peer.id),
            label(&peer.name),
            label(&peer.protocol),
            region
        );
        let _ = writeln!(
            up,
            "easytier_probe_peer_up{{{labels}}} {}",
            u8::from(latest.up)
        );
        if let Some(us) = latest.rtt_us {
            let _ = writeln!(
                rtt,
                "easytier_probe_peer_rtt_seconds{{{labels}}} {}",
                us as f64 / 1e6
            );
        }
    }
    let mut runs = String::new();
    let mut success = String::new();
    for job in JobName::ALL {
        let counts = s.runner.counts(job);
        for (outcome, n) in counts {
            let _ = writeln!(
                runs,
                "easytier_probe_job_runs_total{{job=\"{job}\",outcome=\"{}\"}} {n}",
                outcome.as_str()
            );
        }
        if let Ok(Some(run)) = store.last_success(job.as_str()) {
            let _ = writeln!(
                success,
                "easytier_probe_job_last_success_timestamp_seconds{{job=\"{job}\"}} {}",
                run.started_at.timestamp_millis() as f64 / 1000.0
            );
        }
    }
    let body = format!(
        "# HELP easytier_probe_peer_up Whether the peer passed the last probe (1) or not (0).\n\
         # TYPE easytier_probe_peer_up gauge\n{up}\
         # HELP easytier_probe_peer_rtt_seconds EasyTier ping/pong round trip of the last probe.\n\
         # TYPE easytier_probe_peer_rtt_seconds gauge\n{rtt}\
         # HELP easytier_probe_job_runs_total Job runs by this process, by outcome.\n\
         # TYPE easytier_probe_job_runs_total counter\n{runs}\
         # HELP easytier_probe_job_last_success_timestamp_seconds Start of the last successful run.\n\
         # TYPE easytier_probe_job_last_success_timestamp_seconds gauge\n{success}"
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// 24 cells, one per clock hour (oldest first, the current hour last), coloured by that
/// hour's uptime; a title says it.
fn uptime_bar(hours: Option<&BTreeMap<i64, Bucket>>, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let this_hour = Level::Hour.floor(now.timestamp_millis());
    for h in (0..24).rev() {
        let start = this_hour - h * Level::Hour.span_ms();
        let bucket = hours.and_then(|m| m.get(&start));
        let (class, title) = match bucket.and_then(uptime_pct) {
            None => ("none", "no checks".to_string()),
            Some(p) if p >= 99.0 => ("good", format!("{p:.1} %")),
            Some(p) if p >= 90.0 => ("some", format!("{p:.1} %")),
            Some(p) => ("bad", format!("{p:.1} %")),
        };
        let _ = write!(
            out,
            "<i class=\"{class}\" title=\"{} UTC: {title}\"></i>",
            crate::store::from_millis(start).format("%H:00")
        );
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn status_page(State(s): State<ApiState>) -> Response {
    let store = &s.runner.context().store;
    let now = Utc::now();
    let day = window("24h").expect("a known window");
    let gathered = (|| {
        Ok::<_, crate::store::StoreError>((
            Listed::read(store)?,
            day.collect(store, now, None, true)?,
        ))
    })();
    let (
        Listed {
            peers,
            slots: roster,
            latest,
        },
        hours,
    ) = match gathered {
        Ok(g) => g,
        Err(e) => return internal(e),
    };
    let mut rows = String::new();
    let mut up_count = 0;
    for peer in &peers {
        let latest = latest.get(&peer.id);
        let hours = roster.get(&peer.id).and_then(|slot| hours.get(slot));
        let (state, class) = match &latest {
            Some(r) if r.up => {
                up_count += 1;
                ("up", "up")
            }
            Some(_) => ("down", "down"),
            None => ("unchecked", "unknown"),
        };
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}://{}:{}</td><td>{}</td><td class=\"{class}\">{state}</td>\
             <td>{}</td><td>{}<div class=\"bar\">{}</div></td><td>{}</td></tr>",
            html_escape(&peer.name),
            html_escape(&peer.protocol),
            html_escape(&peer.host),
            peer.port,
            html_escape(&peer.network_name),
            latest
                .as_ref()
                .and_then(|r| r.rtt_us)
                .map(|us| format!("{:.2} ms", us as f64 / 1000.0))
                .unwrap_or_else(|| "–".into()),
            hours
                .and_then(|h| uptime_pct(&merged(h.values())))
                .map(|p| format!("{p:.1} %"))
                .unwrap_or_else(|| "–".into()),
            uptime_bar(hours, now),
            latest
                .as_ref()
                .and_then(|r| r.error_kind)
                .map(|k| k.as_str())
                .unwrap_or(""),
        );
    }
    let mut runs = String::new();
    for job in JobName::ALL {
        for run in store.runs(job.as_str(), 3).unwrap_or_default() {
            let _ =
                write!(
                runs,
                "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{} ms</td><td>{}</td></tr>",
                job,
                rfc3339(run.started_at),
                if run.outcome == Outcome::Ok { "up" } else { "down" },
                run.outcome.as_str(),
                run.duration_ms,
                html_escape(run.error.as_deref().unwrap_or("")),
            );
        }
    }
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"10\"><title>easytier-probe</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:1rem;}}table{{border-collapse:collapse;width:100%;}}\
         td,th{{padding:.3rem .5rem;border-bottom:1px solid #ddd;text-align:left;font-size:.9rem;}}\
         .up{{color:#137333;font-weight:600}}.down{{color:#b3261e;font-weight:600}}.unknown{{color:#666}}\
         .wrap{{overflow-x:auto}}.bar{{display:flex;gap:1px;margin-top:2px}}\
         .bar i{{display:block;width:5px;height:14px;border-radius:1px;background:#ddd}}\
         .bar .good{{background:#34a853}}.bar .some{{background:#fbbc04}}.bar .bad{{background:#ea4335}}</style></head><body>\
         <h1>easytier-probe</h1><p>{up_count} of {} nodes up · version {}</p>\
         <h2>Nodes</h2><div class=\"wrap\"><table><tr><th>Name</th><th>Address</th><th>Network</th>\
         <th>State</th><th>RTT</th><th>24h uptime</th><th>Error</th></tr>{rows}</table></div>\
         <h2>Recent job runs</h2><div class=\"wrap\"><table><tr><th>Job</th><th>Started</th><th>Outcome</th>\
         <th>Duration</th><th>Error</th></tr>{runs}</table></div></body></html>",
        peers.len(),
        env!("CARGO_PKG_VERSION"),
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 19 up checks of 1..=19 ms, one of 100 ms, two down: split over two buckets, as rows
    /// of two minutes would be.
    fn fixture() -> (Bucket, Bucket) {
        let (mut a, mut b) = (Bucket::default(), Bucket::default());
        for i in 1..=19u64 {
            if i % 2 == 0 { &mut a } else { &mut b }.add(true, Some(i * 1000));
        }
        a.add(true, Some(100_000));
        a.add(false, None);
        b.add(false, None);
        (a, b)
    }

    #[test]
    fn stats_match_hand_computed_figures() {
        let (a, b) = fixture();
        let s = stats(&merged([&a, &b]));
        assert_eq!(s["checks"], 22);
        assert_eq!(s["up"], 20);
        // 2 of 22 down
        assert_eq!(s["loss_pct"], 9.09);
        assert_eq!(s["uptime_pct"], 90.91);
        assert_eq!(s["rtt_ms"]["min"], 1.0);
        assert_eq!(s["rtt_ms"]["max"], 100.0);
        // (1+..+19 + 100) / 20 = 14.5 ms
        assert_eq!(s["rtt_ms"]["avg"], 14.5);
        // nearest rank: ceil(0.95 * 20) = 19th smallest = 19 ms; the histogram keeps it to 2 %
        let p95 = s["rtt_ms"]["p95"].as_f64().unwrap();
        assert!((p95 - 19.0).abs() <= 19.0 * 0.02, "p95 {p95}");
        // Only the down checks: loss 100 %, no RTT at all.
        let mut down = Bucket::default();
        down.add(false, None);
        let s = stats(&down);
        assert_eq!(
            (s["loss_pct"].as_f64(), s["uptime_pct"].as_f64()),
            (Some(100.0), Some(0.0))
        );
        assert!(s["rtt_ms"]["min"].is_null() && s["rtt_ms"]["p95"].is_null());
        // An empty window: no checks, and every figure null rather than 0.
        let empty = stats(&Bucket::default());
        assert_eq!(empty["checks"], 0);
        assert!(empty["uptime_pct"].is_null() && empty["loss_pct"].is_null());
        assert!(empty["rtt_ms"]["avg"].is_null() && empty["rtt_ms"]["max"].is_null());
    }

    #[test]
    fn the_uptime_bar_has_a_clock_hour_per_cell_oldest_first() {
        let now = Utc::now();
        let hour = |ago: i64| Level::Hour.floor(now.timestamp_millis()) - ago * 3_600_000;
        let bucket = |up: u64, down: u64| {
            let mut b = Bucket::default();
            (0..up).for_each(|_| b.add(true, Some(1000)));
            (0..down).for_each(|_| b.add(false, None));
            b
        };
        // This hour all up; three hours ago half down; 30 hours ago (off the bar) down.
        let hours = BTreeMap::from([
            (hour(0), bucket(10, 0)),
            (hour(3), bucket(5, 5)),
            (hour(30), bucket(0, 5)),
        ]);
        let bar = uptime_bar(Some(&hours), now);
        let cells: Vec<&str> = bar
            .split("<i class=\"")
            .skip(1)
            .map(|c| &c[..c.find('"').unwrap()])
            .collect();
        assert_eq!(cells.len(), 24);
        assert_eq!(cells[23], "good");
        assert_eq!(cells[20], "bad");
        assert_eq!(cells.iter().filter(|c| **c == "none").count(), 22);
        assert!(bar.contains("50.0 %"), "{bar}");
        assert_eq!(uptime_bar(None, now).matches("none").count(), 24);
    }

    /// The windows of a real store behind a real server, against figures worked out by hand.
    #[tokio::test]
    async fn windows_over_every_level_match_hand_computed_figures() {
        use crate::config::{EmptyEnv, Options, Settings};
        use crate::model::{ListSource, Peer, PeerList, ProbeResult, SweepSummary};

        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            data_dir: Some(dir.path().to_path_buf()),
            ..Options::default()
        };
        let settings = std::sync::Arc::new(Settings::resolve(&options, &EmptyEnv).unwrap());
        let store = crate::store::Store::open(dir.path(), "test").unwrap();
        let peer = Peer::for_tests;
        let now = Utc::now();
        store
            .replace_peer_list(&PeerList {
                fetched_at: now,
                source: ListSource::File,
                peers: vec![peer("p"), peer("q"), peer("idle")],
            })
            .unwrap();
        let check = |at, rtt_ms: Option<u64>| ProbeResult {
            up: rtt_ms.is_some(),
            rtt_us: rtt_ms.map(|ms| ms * 1000),
            error_kind: None,
            error: None,
            checked_at: at,
        };
        let m = chrono::Duration::minutes;
        // (minutes ago, p's RTT, q's RTT); None is a down check.
        let sweeps = [
            (20 * 24 * 60, None, None),
            (3 * 24 * 60, Some(80), None),
            (3 * 60, Some(40), None),
            (30, Some(10), None),
            (20, Some(20), Some(5)),
            (10, None, Some(5)),
        ];
        for (ago, p, q) in sweeps {
            let at = now - m(ago);
            let results = vec![
                ("p".to_string(), check(at, p)),
                ("q".to_string(), check(at, q)),
            ];
            let summary = SweepSummary::from_results(at, results.iter().map(|(_, r)| r));
            store.record_sweep(&results, &summary).unwrap();
        }
        // Everything rolled up into minutes, hours and days, and pruned by the defaults.
        store
            .maintain(now, &settings.retention, chrono::Duration::hours(1))
            .unwrap();

        let state = ApiState {
            runner: Runner::new(crate::jobs::JobContext::new(store, settings)),
            scheduler: None,
            started: Instant::now(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(run(listener, state, async {
            let _ = stopped.await;
        }));
        let get = |path: String| async move {
            let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap()["data"].clone(),
            )
        };

        // p: (window, checks, up, loss %, uptime %, min, avg, p95, max)
        let expected = [
            ("1h", 3, 2, 33.33, 66.67, 10.0, 15.0, 20.0, 20.0),
            ("24h", 4, 3, 25.0, 75.0, 10.0, 23.333, 40.0, 40.0),
            ("7d", 5, 4, 20.0, 80.0, 10.0, 37.5, 80.0, 80.0),
            ("30d", 6, 4, 33.33, 66.67, 10.0, 37.5, 80.0, 80.0),
        ];
        for (w, checks, up, loss, uptime, min, avg, p95, max) in expected {
            let (code, d) = get(format!("/api/nodes/p/health?window={w}")).await;
            assert_eq!(code, 200, "{w}");
            let st = &d["stats"];
            assert_eq!(
                (st["checks"].as_u64(), st["up"].as_u64()),
                (Some(checks), Some(up)),
                "{w}: {d}"
            );
            assert_eq!(
                (st["loss_pct"].as_f64(), st["uptime_pct"].as_f64()),
                (Some(loss), Some(uptime)),
                "{w}"
            );
            let rtt = |k: &str| st["rtt_ms"][k].as_f64().unwrap();
            assert_eq!((rtt("min"), rtt("max")), (min, max), "{w}");
            assert!((rtt("avg") - avg).abs() < 0.001, "{w}: {}", rtt("avg"));
            assert!(
                (rtt("p95") - p95).abs() <= p95 * 0.02,
                "{w}: {}",
                rtt("p95")
            );
            let series = d["series"].as_array().unwrap();
            let in_series: u64 = series.iter().map(|p| p["checks"].as_u64().unwrap()).sum();
            assert_eq!(in_series, checks, "{w}: the series adds up to the stats");
        }
        // q: all its RTTs are 5 ms, so the p95 is exact.
        let (_, d) = get("/api/nodes/q/health?window=1h".into()).await;
        assert_eq!(
            d["stats"]["rtt_ms"],
            json!({"min": 5.0, "avg": 5.0, "p95": 5.0, "max": 5.0})
        );
        assert_eq!(d["stats"]["loss_pct"], 33.33);
        // A listed peer never checked: empty windows, nulls rather than zeros.
        let (code, d) = get("/api/nodes/idle/health?window=30d".into()).await;
        assert_eq!(code, 200);
        assert_eq!(d["stats"]["checks"], 0);
        assert!(d["stats"]["uptime_pct"].is_null() && d["stats"]["rtt_ms"]["p95"].is_null());
        assert_eq!(d["series"], json!([]));
        let (code, _) = get("/api/nodes/nobody/health".into()).await;
        assert_eq!(code, 404);

        let (_, d) = get("/api/nodes".into()).await;
        let item = |id: &str| {
            d["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["id"] == id)
                .unwrap()
                .clone()
        };
        assert_eq!(
            item("p")["uptime"],
            json!({"1h": 66.67, "24h": 75.0, "7d": 80.0})
        );
        assert_eq!(item("q")["uptime"]["24h"], 50.0);
        assert_eq!(item("p")["up"], false);
        assert_eq!(item("q")["rtt_ms"], 5.0);
        assert_eq!(
            item("idle")["uptime"],
            json!({"1h": null, "24h": null, "7d": null})
        );
        assert!(item("idle")["up"].is_null());

        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
