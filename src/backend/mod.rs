//! The backend: its client (`GET /peers`, `PUT /nodes/status`) and, in [`wire`], its JSON.
//! **The only module that knows the backend's JSON**; the standalone peers file, which has the
//! same entries, is read beside it ([`peers_file`]).

pub mod peers_file;
mod wire;

use std::time::Duration;

pub use wire::{parse_peers_answer, NodeStatus, StatusMetadata, StatusReport};

use crate::config::Backend;
use crate::domain::ParsedList;

/// Answers larger than this are refused rather than read into memory.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("backend unreachable at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("backend timed out at {url}")]
    Timeout { url: String },
    #[error("backend answered HTTP {status} at {url}{body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("backend answer from {url} is malformed: {detail}")]
    Malformed { url: String, detail: String },
    #[error("backend answer from {url} is larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge { url: String },
    #[error(
        "backend at {url} redirected to {target}, another origin: not followed, so the node token \
         and API key go only to BACKEND_BASE_URL (set it to the address that answers)"
    )]
    Redirect { url: String, target: String },
}

/// A redirect to another origin, refused by the client's redirect policy.
#[derive(Debug, thiserror::Error)]
#[error("redirect to another origin: {0}")]
struct CrossOrigin(String);

/// Redirects within the backend's own origin are followed (at most 5); one to another origin
/// is an error, since 307/308 would resend `x-node-token` (and the body) to it.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if !same_origin {
            let target = attempt.url().to_string();
            attempt.error(CrossOrigin(target))
        } else if attempt.previous().len() > 5 {
            attempt.error("more than 5 redirects")
        } else {
            attempt.follow()
        }
    })
}

/// A client for one backend; cheap to clone.
#[derive(Clone)]
pub struct BackendClient {
    http: reqwest::Client,
    backend: Backend,
}

impl BackendClient {
    pub fn new(backend: Backend) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("easytier-probe/", env!("CARGO_PKG_VERSION")))
            .redirect(redirect_policy())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { http, backend }
    }

    fn endpoint(&self, path: &str) -> url::Url {
        let mut url = self.backend.base_url.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}{path}"));
        url.set_query(None);
        url
    }

    /// `GET /peers?region=`: the peers assigned to this node.
    pub async fn fetch_peers(&self, region: Option<&str>) -> Result<ParsedList, BackendError> {
        let mut url = self.endpoint("/peers");
        if let Some(region) = region {
            url.query_pairs_mut().append_pair("region", region);
        }
        let shown = url.to_string();
        let mut req = self.http.get(url);
        if let Some(key) = &self.backend.api_key {
            req = req.bearer_auth(key.expose());
        }
        let body = self.send(req, &shown).await?;
        parse_peers_answer(&body).map_err(|detail| BackendError::Malformed { url: shown, detail })
    }

    /// `PUT /nodes/status` with the node token.
    pub async fn put_status(&self, report: &StatusReport) -> Result<(), BackendError> {
        let url = self.endpoint("/nodes/status");
        let shown = url.to_string();
        let req = self
            .http
            .put(url)
            .header("x-node-token", self.backend.node_token.expose())
            .json(report);
        self.send(req, &shown).await.map(|_| ())
    }

    async fn send(&self, req: reqwest::RequestBuilder, url: &str) -> Result<Vec<u8>, BackendError> {
        let mut resp = req.send().await.map_err(|e| classify(e, url))?;
        let status = resp.status();
        if resp.content_length().unwrap_or(0) > MAX_ANSWER_BYTES as u64 {
            return Err(BackendError::TooLarge { url: url.into() });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| classify(e, url))? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(BackendError::TooLarge { url: url.into() });
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).to_string();
            let text = text.trim();
            return Err(BackendError::Status {
                url: url.into(),
                status: status.as_u16(),
                body: if text.is_empty() {
                    String::new()
                } else {
                    format!(": {text}")
                },
            });
        }
        Ok(body)
    }
}

fn classify(e: reqwest::Error, url: &str) -> BackendError {
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(CrossOrigin(target)) = s.downcast_ref::<CrossOrigin>() {
            return BackendError::Redirect {
                url: url.into(),
                target: target.clone(),
            };
        }
        source = s.source();
    }
    if e.is_timeout() {
        BackendError::Timeout { url: url.into() }
    } else {
        // reqwest's Display omits the cause chain; it carries the useful part.
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail = format!("{detail}: {s}");
            source = s.source();
        }
        BackendError::Unreachable {
            url: url.into(),
            detail,
        }
    }
}
