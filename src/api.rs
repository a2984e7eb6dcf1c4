//! The HTTP API (axum): health, nodes, history, jobs, metrics and a status page.
//! Every JSON answer, errors included, is the envelope `{"code", "message", "data"}`.

use std::collections::BTreeMap;
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

use crate::jobs::{effective_schedule, JobName};
use crate::model::{JobRun, Outcome, Peer, ProbeResult, Sample, Trigger};
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

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

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

async fn health(State(s): State<ApiState>) -> Response {
    let store = &s.runner.context().store;
    let peers = match store.peer_list() {
        Ok(l) => l.map_or(0, |l| l.peers.len()),
        Err(e) => return internal(e),
    };
    let mut jobs = serde_json::Map::new();
    let mut degraded = false;
    for job in JobName::ALL {
        let last = match store.runs(job.as_str(), 50) {
            // The last run that finished: a skip or a run still going says nothing about health.
            Ok(runs) => runs
                .into_iter()
                .find(|r| !matches!(r.outcome, Outcome::Skipped | Outcome::Running)),
            Err(e) => return internal(e),
        };
        if let Some(run) = &last {
            degraded |= matches!(run.outcome, Outcome::Failed | Outcome::Interrupted);
        }
        jobs.insert(
            job.as_str().into(),
            json!({
                "last_run_at": last.as_ref().map(|r| rfc3339(r.started_at)),
                "last_outcome": last.as_ref().map(|r| r.outcome),
            }),
        );
    }
    ok(json!({
        "status": if degraded { "degraded" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": s.started.elapsed().as_secs(),
        "peers": peers,
        "jobs": jobs,
    }))
}

/// Uptime percentage over samples, `None` when there are none.
fn uptime_pct(samples: &[Sample]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let up = samples.iter().filter(|s| s.up).count();
    Some(round2(up as f64 * 100.0 / samples.len() as f64))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn node_item(
    peer: &Peer,
    latest: Option<&ProbeResult>,
    history: &[Sample],
    now: DateTime<Utc>,
) -> Value {
    let since = |d: chrono::Duration| {
        let from = now - d;
        let start = history.partition_point(|s| s.at < from);
        &history[start..]
    };
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
        "uptime": {
            "1h": uptime_pct(since(chrono::Duration::hours(1))),
            "24h": uptime_pct(since(chrono::Duration::hours(24))),
            "7d": uptime_pct(since(chrono::Duration::days(7))),
        },
    })
}

async fn nodes(State(s): State<ApiState>) -> Response {
    let store = &s.runner.context().store;
    let peers = match store.peer_list() {
        Ok(l) => l.map(|l| l.peers).unwrap_or_default(),
        Err(e) => return internal(e),
    };
    let now = Utc::now();
    let mut items = Vec::with_capacity(peers.len());
    for peer in &peers {
        let latest = match store.latest_result(&peer.id) {
            Ok(l) => l,
            Err(e) => return internal(e),
        };
        let history = match store.history(&peer.id, now - chrono::Duration::days(7), now) {
            Ok(h) => h,
            Err(e) => return internal(e),
        };
        items.push(node_item(peer, latest.as_ref(), &history, now));
    }
    ok(json!({"total": items.len(), "items": items}))
}

#[derive(Deserialize)]
struct WindowQuery {
    window: Option<String>,
}

/// Window name → (length, series bucket).
fn window(name: &str) -> Option<(chrono::Duration, chrono::Duration)> {
    Some(match name {
        "1h" => (chrono::Duration::hours(1), chrono::Duration::minutes(1)),
        "24h" => (chrono::Duration::hours(24), chrono::Duration::minutes(15)),
        "7d" => (chrono::Duration::days(7), chrono::Duration::hours(2)),
        "30d" => (chrono::Duration::days(30), chrono::Duration::hours(6)),
        _ => return None,
    })
}

/// Checks, up, loss, uptime and RTT figures over `samples`.
pub fn stats(samples: &[Sample]) -> Value {
    let checks = samples.len();
    let up = samples.iter().filter(|s| s.up).count();
    let mut rtts: Vec<u64> = samples
        .iter()
        .filter(|s| s.up)
        .filter_map(|s| s.rtt_us)
        .collect();
    rtts.sort_unstable();
    let rtt = if rtts.is_empty() {
        json!({"min": null, "avg": null, "p95": null, "max": null})
    } else {
        // Nearest-rank p95.
        let rank = ((rtts.len() as f64) * 0.95).ceil() as usize;
        let p95 = rtts[rank.clamp(1, rtts.len()) - 1];
        let avg = rtts.iter().sum::<u64>() / rtts.len() as u64;
        json!({
            "min": crate::jobs::ms(rtts[0]),
            "avg": crate::jobs::ms(avg),
            "p95": crate::jobs::ms(p95),
            "max": crate::jobs::ms(rtts[rtts.len() - 1]),
        })
    };
    json!({
        "checks": checks,
        "up": up,
        "loss_pct": (checks > 0).then(|| round2((checks - up) as f64 * 100.0 / checks as f64)),
        "uptime_pct": (checks > 0).then(|| round2(up as f64 * 100.0 / checks as f64)),
        "rtt_ms": rtt,
    })
}

async fn node_health(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<WindowQuery>,
) -> Response {
    let name = q.window.as_deref().unwrap_or("1h");
    let Some((length, bucket)) = window(name) else {
        return error(
            StatusCode::BAD_REQUEST,
            "window must be one of 1h, 24h, 7d, 30d",
        );
    };
    let store = &s.runner.context().store;
    let known = match store.peer_list() {
        Ok(l) => l.is_some_and(|l| l.peers.iter().any(|p| p.id == id)),
        Err(e) => return internal(e),
    };
    let now = Utc::now();
    let samples = match store.history(&id, now - length, now + chrono::Duration::seconds(1)) {
        Ok(h) => h,
        Err(e) => return internal(e),
    };
    if !known && samples.is_empty() {
        return error(StatusCode::NOT_FOUND, "no node with this id");
    }
    let mut series: BTreeMap<i64, Vec<Sample>> = BTreeMap::new();
    let step = bucket.num_milliseconds();
    for s in &samples {
        let key = s.at.timestamp_millis().div_euclid(step) * step;
        series.entry(key).or_default().push(*s);
    }
    let series: Vec<Value> = series
        .into_iter()
        .map(|(start, bucket)| {
            let st = stats(&bucket);
            json!({
                "at": rfc3339(crate::store::from_millis(start)),
                "checks": st["checks"],
                "up": st["up"],
                "rtt_ms": st["rtt_ms"]["avg"],
            })
        })
        .collect();
    ok(json!({"id": id, "window": name, "stats": stats(&samples), "series": series}))
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
    let peers = match store.peer_list() {
        Ok(l) => l.map(|l| l.peers).unwrap_or_default(),
        Err(e) => return internal(e),
    };
    let region = label(ctx.settings.region.as_deref().unwrap_or(""));
    let mut up = String::new();
    let mut rtt = String::new();
    for peer in &peers {
        let Ok(Some(latest)) = store.latest_result(&peer.id) else {
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

/// 24 cells, one per hour (oldest first), coloured by that hour's uptime; a title says it.
fn uptime_bar(history: &[Sample], now: DateTime<Utc>) -> String {
    let mut out = String::new();
    for h in (0..24).rev() {
        let from = now - chrono::Duration::hours(h + 1);
        let to = now - chrono::Duration::hours(h);
        let start = history.partition_point(|s| s.at < from);
        let end = history.partition_point(|s| s.at < to);
        let (class, title) = match uptime_pct(&history[start..end]) {
            None => ("none", "no checks".to_string()),
            Some(p) if p >= 99.0 => ("good", format!("{p:.1} %")),
            Some(p) if p >= 90.0 => ("some", format!("{p:.1} %")),
            Some(p) => ("bad", format!("{p:.1} %")),
        };
        let _ = write!(
            out,
            "<i class=\"{class}\" title=\"{h}–{} h ago: {title}\"></i>",
            h + 1
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
    let peers = match store.peer_list() {
        Ok(l) => l.map(|l| l.peers).unwrap_or_default(),
        Err(e) => return internal(e),
    };
    let now = Utc::now();
    let mut rows = String::new();
    let mut up_count = 0;
    for peer in &peers {
        let latest = store.latest_result(&peer.id).ok().flatten();
        let history = store
            .history(&peer.id, now - chrono::Duration::hours(24), now)
            .unwrap_or_default();
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
            uptime_pct(&history)
                .map(|p| format!("{p:.1} %"))
                .unwrap_or_else(|| "–".into()),
            uptime_bar(&history, now),
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

    fn sample(up: bool, rtt_us: Option<u64>) -> Sample {
        Sample {
            at: Utc::now(),
            up,
            rtt_us,
            error_kind: None,
        }
    }

    #[test]
    fn stats_match_hand_computed_figures() {
        let mut samples: Vec<Sample> = (1..=19).map(|i| sample(true, Some(i * 1000))).collect();
        samples.push(sample(true, Some(100_000)));
        samples.push(sample(false, None));
        samples.push(sample(false, None));
        let s = stats(&samples);
        assert_eq!(s["checks"], 22);
        assert_eq!(s["up"], 20);
        assert_eq!(s["loss_pct"], 9.09);
        assert_eq!(s["uptime_pct"], 90.91);
        assert_eq!(s["rtt_ms"]["min"], 1.0);
        assert_eq!(s["rtt_ms"]["max"], 100.0);
        // nearest rank: ceil(0.95 * 20) = 19th smallest = 19 ms
        assert_eq!(s["rtt_ms"]["p95"], 19.0);
        // (1+..+19 + 100) / 20 = 14.5 ms
        assert_eq!(s["rtt_ms"]["avg"], 14.5);
        let empty = stats(&[]);
        assert_eq!(empty["checks"], 0);
        assert!(empty["uptime_pct"].is_null());
        assert!(empty["rtt_ms"]["p95"].is_null());
    }

    #[test]
    fn the_uptime_bar_has_an_hour_per_cell_oldest_first() {
        let now = Utc::now();
        let at = |mins: i64, up: bool| Sample {
            at: now - chrono::Duration::minutes(mins),
            up,
            rtt_us: None,
            error_kind: None,
        };
        // Last hour all up; 3–4 hours ago half down; nothing else.
        let history = vec![at(200, true), at(190, false), at(30, true), at(10, true)];
        let bar = uptime_bar(&history, now);
        let cells: Vec<&str> = bar
            .split("<i class=\"")
            .skip(1)
            .map(|c| &c[..c.find('"').unwrap()])
            .collect();
        assert_eq!(cells.len(), 24);
        assert_eq!(cells[23], "good");
        assert_eq!(cells[20], "bad");
        assert_eq!(cells.iter().filter(|c| **c == "none").count(), 22);
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
