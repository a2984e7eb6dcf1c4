//! A backend for the demo, the tests and the benchmark: it serves a peer list on `GET /peers`,
//! answers `PUT /nodes/status` as the spec's backend does, and records every request.

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Value};

/// A request the backend received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Option<Value>,
}

/// A backend that serves a peer list on `GET /peers` and records every request, for the demo
/// and the tests. `PUT /nodes/status` answers as the spec's backend does.
#[derive(Clone, Default)]
pub struct DemoBackend {
    pub peers: Arc<Mutex<Vec<Value>>>,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    /// When set, every answer is this status with this raw body.
    pub fault: Arc<Mutex<Option<(u16, String)>>>,
}

impl DemoBackend {
    /// Serves on `listener` until the task is dropped; returns the base URL.
    pub async fn serve(&self, listener: tokio::net::TcpListener) -> std::io::Result<String> {
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/peers", get(peers))
            .route("/nodes/status", put(status))
            .with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(format!("http://{addr}"))
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn record(&self, method: Method, uri: Uri, headers: HeaderMap, body: Option<Value>) {
        if let Ok(mut r) = self.requests.lock() {
            r.push(Recorded {
                method,
                uri,
                headers,
                body,
            });
        }
    }

    fn faulty(&self) -> Option<axum::response::Response> {
        use axum::response::IntoResponse;
        let fault = self.fault.lock().ok()?.clone()?;
        let status = axum::http::StatusCode::from_u16(fault.0).ok()?;
        Some((status, fault.1).into_response())
    }
}

async fn peers(
    State(b): State<DemoBackend>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(_q): Query<Vec<(String, String)>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    b.record(method, uri, headers, None);
    if let Some(r) = b.faulty() {
        return r;
    }
    let peers = b.peers.lock().map(|p| p.clone()).unwrap_or_default();
    Json(json!({
        "code": 200,
        "message": "Peer 节点列表获取成功",
        "data": {"peers": peers, "total_available": peers.len(), "next_batch_available": false}
    }))
    .into_response()
}

async fn status(
    State(b): State<DemoBackend>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let parsed = serde_json::from_slice(&body).ok();
    b.record(method, uri, headers, parsed);
    if let Some(r) = b.faulty() {
        return r;
    }
    Json(json!({"code": 200, "message": "节点状态更新成功", "data": null})).into_response()
}
