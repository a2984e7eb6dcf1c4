//! `/api/nodes` and `/api/nodes/{id}/health`: the listed peers, and one peer's history.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::error::{ok, ApiError};
use super::fleet::{node_windows, select, NodesQuery, NODE_UPTIMES};
use super::jobs::require_admin;
use super::views::{
    merged, stats, uptime_pct, NodeHealthView, NodeKeyView, NodeView, NodesView, SeriesPoint,
};
use super::ApiState;
use crate::domain::time::{from_millis, ms, rfc3339};
use crate::domain::{NodeKey, Peer, ProbeResult, Window};
use crate::store::{KeyAccept, Store, StoreError};

/// The listed peers, their slots and their latest results: what every fleet view starts from.
pub(super) struct Listed {
    pub peers: Vec<Peer>,
    pub slots: HashMap<String, u32>,
    pub latest: HashMap<String, ProbeResult>,
    /// The static keys of the peers met in secure mode.
    pub keys: BTreeMap<String, NodeKey>,
}

impl Listed {
    pub fn read(store: &Store) -> Result<Listed, StoreError> {
        Ok(Listed {
            peers: store.peer_list()?.map(|l| l.peers).unwrap_or_default(),
            slots: store.roster()?,
            latest: store.latest_results()?,
            keys: store.node_keys(),
        })
    }
}

pub(super) async fn nodes(
    State(s): State<ApiState>,
    Query(query): Query<NodesQuery>,
) -> Result<Response, ApiError> {
    let selection = query.selection()?;
    let ctx = s.runner.context();
    let store = &ctx.store;
    let listed = Listed::read(store)?;
    let uptimes = store.uptimes(&node_windows(), ctx.clock.now())?;
    let (counts, rows) = select(&listed, &uptimes, &selection);
    let items = selection
        .page(&rows)
        .iter()
        .map(|r| {
            let uptime = NODE_UPTIMES.iter().copied().zip(r.uptime).collect();
            NodeView::new(r.peer, r.latest, listed.keys.get(&r.peer.id), uptime)
        })
        .collect();
    Ok(ok(NodesView {
        total: rows.len(),
        counts,
        items,
    }))
}

/// The optional body of a key accept: the key the operator saw.
#[derive(Deserialize)]
struct AcceptKey {
    key: Option<String>,
}

/// `POST /api/nodes/{id}/key/accept`: trusts the key a secure-mode node presents now, after a
/// change was flagged (as removing a line from SSH's known_hosts). A body `{"key": "…"}`
/// names the key the operator saw: when the node presents another by now, nothing is trusted
/// (409).
pub(super) async fn accept_key(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ctx = s.runner.context();
    require_admin(
        &ctx.settings,
        &headers,
        "accepting node keys is disabled: no ADMIN_TOKEN is configured",
    )?;
    let asked: AcceptKey = match body.iter().all(u8::is_ascii_whitespace) {
        true => AcceptKey { key: None },
        false => serde_json::from_slice(&body).map_err(|e| {
            ApiError::Invalid(format!(
                "the body is JSON like {{\"key\": \"<base64>\"}}: {e}"
            ))
        })?,
    };
    match ctx
        .store
        .accept_node_key(&id, asked.key.as_deref(), ctx.clock.now())?
    {
        KeyAccept::Unknown => Err(ApiError::NotFound("no node key is known for this id")),
        KeyAccept::NotPresented(now) => Err(ApiError::Conflict(format!(
            "the node presents another key now ({}); nothing was accepted",
            now.current
        ))),
        KeyAccept::Trusted(key) => {
            ctx.store.flush().await?;
            tracing::info!(peer = %id, key = %key.accepted, "node key trusted");
            Ok(ok(NodeKeyView::of(&key)))
        }
    }
}

#[derive(Deserialize)]
pub(super) struct WindowQuery {
    window: Option<String>,
}

/// The `window` query parameter, `default` when absent; an unknown one is a 400 naming them.
pub(super) fn window_param(given: Option<&str>, default: &str) -> Result<Window, ApiError> {
    Window::named(given.unwrap_or(default)).ok_or(ApiError::BadRequest(
        "window must be one of 1h, 24h, 7d, 30d",
    ))
}

pub(super) async fn node_health(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<WindowQuery>,
) -> Result<Response, ApiError> {
    let w = window_param(q.window.as_deref(), "1h")?;
    let ctx = s.runner.context();
    let store = &ctx.store;
    // Peers that left the list keep their slot, and so their history, until it ages out.
    let slot = store
        .slot(&id)?
        .ok_or(ApiError::NotFound("no node with this id"))?;
    let now = ctx.clock.now();
    let points = store
        .window(&w, now, Some(slot), true)?
        .remove(&slot)
        .unwrap_or_default();
    let series = points
        .iter()
        .map(|(start, b)| SeriesPoint {
            at: rfc3339(from_millis(*start)),
            checks: b.checks,
            up: b.up,
            uptime_pct: uptime_pct(b),
            rtt_ms: b.avg_rtt_us().map(ms),
        })
        .collect();
    Ok(ok(NodeHealthView {
        id,
        window: w.name,
        from: rfc3339(w.start(now)),
        step_s: w.step.num_seconds(),
        stats: stats(&merged(points.values())),
        series,
    }))
}
