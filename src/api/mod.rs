//! The HTTP API (axum): health, nodes, history, jobs, metrics and a status page, served through
//! hyper-util (a header read timeout, a graceful drain).
//!
//! Every JSON answer, errors included, is the envelope `{"code", "message", "data"}`
//! ([`error`]); the answers are typed ([`views`]). One module per group of routes:
//! [`health`], [`nodes`], [`badge`], [`jobs`], [`alerts`], [`metrics`], and the HTML pages
//! [`status_page`] and [`node_page`] (sharing [`html`], drawing with [`chart`]).

mod alerts;
mod badge;
mod chart;
mod error;
mod fleet;
mod health;
mod html;
mod jobs;
pub mod metrics;
mod node_page;
mod nodes;
mod status_page;
pub mod views;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;

use crate::runner::Runner;
use crate::scheduler::Scheduler;
use error::ApiError;

/// Request bodies larger than this get 413.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// A client has this long to send a request's headers (slow clients hold no connection open).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// At shutdown, requests in flight get this long to finish.
const DRAIN: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct ApiState {
    pub runner: Runner,
    pub scheduler: Option<Arc<Scheduler>>,
    pub started: Instant,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(status_page::page))
        .route("/health", get(health::health))
        .route("/metrics", get(metrics::metrics))
        .route("/api/nodes", get(nodes::nodes))
        .route("/nodes/{id}", get(node_page::page))
        .route("/api/nodes/{id}/health", get(nodes::node_health))
        .route("/api/nodes/{id}/badge.svg", get(badge::badge))
        .route("/api/nodes/{id}/key/accept", post(nodes::accept_key))
        .route("/api/jobs", get(jobs::jobs))
        .route("/api/jobs/{name}/runs", get(jobs::job_runs))
        .route("/api/jobs/{name}/run", post(jobs::trigger_job))
        .route("/api/alerts", get(alerts::alerts))
        .route(
            "/api/silences",
            get(alerts::silences).post(alerts::create_silence),
        )
        .route("/api/silences/{id}", delete(alerts::delete_silence))
        .fallback(|| async { ApiError::NotFound("no such route") })
        .layer(middleware::from_fn(limit_body))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(120),
        ))
        .with_state(state)
}

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

async fn limit_body(req: Request, next: Next) -> Response {
    let too_large = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES);
    if too_large {
        return ApiError::TooLarge(MAX_BODY_BYTES).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod page_tests;
#[cfg(test)]
mod tests;
