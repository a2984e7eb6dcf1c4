//! A receiver for notifications, for the demo and the tests: an HTTP server on loopback that
//! records every request (any method, any path) and answers with a status that can be changed
//! while it runs (a destination that fails, then recovers).

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use serde_json::Value;

/// A request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status it was answered with.
    pub answered: u16,
    /// When it arrived.
    pub at: chrono::DateTime<chrono::Utc>,
}

impl Received {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone)]
pub struct Receiver {
    pub received: Arc<Mutex<Vec<Received>>>,
    /// The status every request is answered with (200 unless set).
    pub status: Arc<Mutex<u16>>,
    /// The body of the answer.
    pub answer: Arc<Mutex<String>>,
}

impl Default for Receiver {
    fn default() -> Self {
        Self {
            received: Arc::default(),
            status: Arc::new(Mutex::new(200)),
            answer: Arc::new(Mutex::new("{\"ok\":true}".into())),
        }
    }
}

impl Receiver {
    /// Serves on a new port of 127.0.0.1 until the runtime ends; returns its base URL.
    pub async fn start(&self) -> std::io::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(record).with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(format!("http://{addr}"))
    }

    pub fn set_status(&self, status: u16) {
        if let Ok(mut s) = self.status.lock() {
            *s = status;
        }
    }

    pub fn all(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The requests answered with a 2xx (what was delivered).
    pub fn delivered(&self) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }
}

async fn record(
    State(r): State<Receiver>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let status = r.status.lock().map(|s| *s).unwrap_or(200);
    if let Ok(mut all) = r.received.lock() {
        all.push(Received {
            method,
            uri,
            headers,
            body,
            answered: status,
            at: chrono::Utc::now(),
        });
    }
    let answer = r.answer.lock().map(|a| a.clone()).unwrap_or_default();
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        [("content-type", "application/json")],
        answer,
    )
}
