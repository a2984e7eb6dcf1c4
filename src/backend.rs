//! The backend client: `GET /peers` and `PUT /nodes/status`. The only module that knows the
//! backend's JSON.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Backend;
use crate::model::{parse_peer_list, Peer, PeerEntryError, SweepSummary};

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
}

/// The peers of a valid `GET /peers` answer.
#[derive(Debug)]
pub struct FetchedPeers {
    pub peers: Vec<Peer>,
    pub rejected: Vec<PeerEntryError>,
    pub total_available: Option<u64>,
}

/// The `PUT /nodes/status` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub status: NodeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_time: Option<u64>,
    pub metadata: StatusMetadata,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeStatus {
    Online,
    Offline,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusMetadata {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub peers_count: usize,
    pub reachable_peers: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_peer_rtt: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_peer_rtt: Option<u64>,
}

impl StatusReport {
    /// A report from the latest sweep; RTTs in integer milliseconds (`rtt_us / 1000`).
    pub fn from_sweep(
        status: NodeStatus,
        sweep: Option<&SweepSummary>,
        peers_count: usize,
        region: Option<&str>,
    ) -> Self {
        let avg = sweep.and_then(|s| s.avg_rtt_us).map(|us| us / 1000);
        let max = sweep.and_then(|s| s.max_rtt_us).map(|us| us / 1000);
        StatusReport {
            status,
            response_time: avg,
            metadata: StatusMetadata {
                version: env!("CARGO_PKG_VERSION").to_string(),
                region: region.map(String::from),
                peers_count: sweep.map(|s| s.peers).unwrap_or(peers_count),
                reachable_peers: sweep.map(|s| s.reachable).unwrap_or(0),
                avg_peer_rtt: avg,
                max_peer_rtt: max,
            },
        }
    }
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
    pub async fn fetch_peers(&self, region: Option<&str>) -> Result<FetchedPeers, BackendError> {
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

/// Parses `{"code":200,"message":..,"data":{"peers":[..],"total_available":N,..}}`.
pub fn parse_peers_answer(body: &[u8]) -> Result<FetchedPeers, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    let obj = v.as_object().ok_or("the answer is not a JSON object")?;
    if let Some(code) = obj.get("code") {
        let code = code.as_u64().ok_or("code is not a number")?;
        if !(200..300).contains(&code) {
            let message = obj.get("message").and_then(Value::as_str).unwrap_or("");
            return Err(format!("code {code} ({message})"));
        }
    }
    let data = obj
        .get("data")
        .and_then(Value::as_object)
        .ok_or("data is missing or not an object")?;
    let entries = data
        .get("peers")
        .and_then(Value::as_array)
        .ok_or("data.peers is missing or not an array")?;
    let (peers, rejected) = parse_peer_list(entries)?;
    Ok(FetchedPeers {
        peers,
        rejected,
        total_available: data.get("total_available").and_then(Value::as_u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_parse_or_say_why_not() {
        let good = json!({"code": 200, "message": "ok", "data": {"peers": [
            {"id": 1, "name": "a", "host": "127.0.0.1", "port": 1, "protocol": "tcp",
             "network_name": "n", "status": "Online", "response_time": 50},
            {"id": 2, "host": "127.0.0.1", "port": 0, "protocol": "tcp", "network_name": "n"}
        ], "total_available": 100, "next_batch_available": true}});
        let f = parse_peers_answer(good.to_string().as_bytes()).unwrap();
        assert_eq!(f.peers.len(), 1);
        assert_eq!(f.rejected.len(), 1);
        assert_eq!(f.total_available, Some(100));

        for (body, needle) in [
            ("<html>", "not JSON"),
            ("[]", "not a JSON object"),
            (r#"{"code":500,"message":"db down"}"#, "code 500"),
            (r#"{"code":200,"data":{}}"#, "data.peers"),
            (
                r#"{"code":200,"data":{"peers":[{"id":1}]}}"#,
                "none of the 1",
            ),
        ] {
            let err = parse_peers_answer(body.as_bytes()).unwrap_err();
            assert!(err.contains(needle), "{body}: {err}");
        }
        let empty = parse_peers_answer(br#"{"code":200,"data":{"peers":[]}}"#).unwrap();
        assert!(empty.peers.is_empty());
    }

    #[test]
    fn report_is_in_integer_milliseconds() {
        let sweep = SweepSummary {
            at: chrono::Utc::now(),
            peers: 3,
            reachable: 2,
            avg_rtt_us: Some(45_678),
            max_rtt_us: Some(120_999),
        };
        let r = StatusReport::from_sweep(NodeStatus::Online, Some(&sweep), 3, Some("us-west"));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["status"], "Online");
        assert_eq!(v["response_time"], 45);
        assert_eq!(v["metadata"]["avg_peer_rtt"], 45);
        assert_eq!(v["metadata"]["max_peer_rtt"], 120);
        assert_eq!(v["metadata"]["reachable_peers"], 2);
        assert_eq!(v["metadata"]["region"], "us-west");

        let none = SweepSummary {
            reachable: 0,
            avg_rtt_us: None,
            max_rtt_us: None,
            ..sweep
        };
        let v = serde_json::to_value(StatusReport::from_sweep(
            NodeStatus::Offline,
            Some(&none),
            3,
            None,
        ))
        .unwrap();
        assert!(v.get("response_time").is_none());
        assert!(v["metadata"].get("avg_peer_rtt").is_none());
        assert!(v["metadata"].get("region").is_none());
        assert_eq!(v["status"], "Offline");
    }
}
