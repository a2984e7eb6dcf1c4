//! `/api/alerts` (what fires, what changed, the outbox, each destination's last error) and
//! `/api/silences` (list; create and delete with the admin token).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::{envelope, ok, ApiError};
use super::jobs::require_admin;
use super::views::Items;
use super::ApiState;
use crate::domain::duration::parse_duration;
use crate::domain::time::rfc3339;
use crate::domain::{AlertName, Silence};
use crate::store::ChangeRecord;

/// Changes `/api/alerts` shows.
const RECENT: usize = 50;

#[derive(Serialize)]
struct FiringView {
    alertname: AlertName,
    peer_id: Option<String>,
    peer_name: Option<String>,
    /// When it fired.
    since: Option<String>,
    /// When the trouble began (the first down check).
    down_since: Option<String>,
    error_kind: Option<&'static str>,
    error: Option<String>,
}

#[derive(Serialize)]
struct ChangeView {
    alertname: AlertName,
    status: &'static str,
    peer_id: Option<String>,
    at: String,
    started_at: String,
    summary: String,
    fate: String,
    silence: Option<String>,
}

impl ChangeView {
    fn of(r: &ChangeRecord) -> Self {
        ChangeView {
            alertname: r.change.alert,
            status: r.change.status.as_str(),
            peer_id: r.change.peer_id.clone(),
            at: rfc3339(r.change.at),
            started_at: rfc3339(r.change.started_at),
            summary: r.notice.summary.clone(),
            fate: r.fate.clone(),
            silence: r.silence.clone(),
        }
    }
}

#[derive(Serialize)]
struct OutboxView {
    depth: usize,
    oldest_at: Option<String>,
    dropped: u64,
}

#[derive(Serialize)]
struct DestinationView {
    destination: String,
    kind: &'static str,
    sent: u64,
    failed: u64,
    dropped: u64,
    /// Messages this destination still lacks.
    pending: usize,
    last_ok_at: Option<String>,
    last_error: Option<String>,
    last_error_at: Option<String>,
}

#[derive(Serialize)]
struct AlertsView {
    firing: Vec<FiringView>,
    recent: Vec<ChangeView>,
    outbox: OutboxView,
    destinations: Vec<DestinationView>,
}

pub(super) async fn alerts(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let ctx = s.runner.context();
    let store = &ctx.store;
    let (book, _) = store.alert_book()?;
    let list = store.peer_list()?;
    let name_of = |id: &str| {
        list.as_ref()
            .and_then(|l| l.peers.iter().find(|p| p.id == id))
            .map(|p| p.name.clone())
    };
    let mut firing = Vec::new();
    if book.isolation.firing {
        firing.push(FiringView {
            alertname: AlertName::ProbeIsolated,
            peer_id: None,
            peer_name: None,
            since: book.isolation.since.map(rfc3339),
            down_since: book.isolation.since.map(rfc3339),
            error_kind: None,
            error: None,
        });
    }
    for (id, state) in book.firing() {
        firing.push(FiringView {
            alertname: AlertName::PeerDown,
            peer_id: Some(id.to_string()),
            peer_name: name_of(id),
            since: state.since.map(rfc3339),
            down_since: state.down_since.map(rfc3339),
            error_kind: state.error_kind.map(|k| k.as_str()),
            error: state.error.clone(),
        });
    }
    let outbox = store.outbox()?;
    let stats = store.destination_stats()?;
    let destinations = ctx
        .settings
        .notify
        .destinations
        .iter()
        .map(|d| {
            let st = stats.get(&d.label).cloned().unwrap_or_default();
            DestinationView {
                destination: d.label.clone(),
                kind: d.target.kind(),
                sent: st.sent,
                failed: st.failed,
                dropped: st.dropped,
                pending: outbox
                    .iter()
                    .filter(|e| !e.delivered.contains(&d.id))
                    .count(),
                last_ok_at: st.last_ok_at.map(rfc3339),
                last_error: st.last_error,
                last_error_at: st.last_error_at.map(rfc3339),
            }
        })
        .collect();
    Ok(ok(AlertsView {
        firing,
        recent: store
            .alert_changes(RECENT)?
            .iter()
            .map(ChangeView::of)
            .collect(),
        outbox: OutboxView {
            depth: outbox.len(),
            oldest_at: outbox.first().map(|e| rfc3339(e.message.created_at)),
            dropped: store.outbox_dropped()?,
        },
        destinations,
    }))
}

#[derive(Serialize)]
struct SilenceView {
    #[serde(flatten)]
    silence: Silence,
    active: bool,
}

pub(super) async fn silences(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let ctx = s.runner.context();
    let now = ctx.clock.now();
    let items = ctx
        .store
        .silences()?
        .into_iter()
        .map(|silence| SilenceView {
            active: silence.active_at(now),
            silence,
        })
        .collect();
    Ok(ok(Items { items }))
}

/// What `POST /api/silences` takes: matchers and either `ends_at` or `duration`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    matchers: std::collections::BTreeMap<String, String>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    /// e.g. "2h", "7d".
    duration: Option<String>,
    #[serde(default)]
    comment: String,
}

pub(super) async fn create_silence(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ctx = s.runner.context();
    require_admin(
        &ctx.settings,
        &headers,
        "silences are read-only: no ADMIN_TOKEN is configured",
    )?;
    let new: NewSilence = serde_json::from_slice(&body)
        .map_err(|e| ApiError::Invalid(format!("a silence is JSON like {{\"matchers\": {{\"peer_id\": \"7\"}}, \"duration\": \"2h\"}}: {e}")))?;
    let now = ctx.clock.now();
    let starts_at = new.starts_at.unwrap_or(now);
    let ends_at = match (new.ends_at, new.duration.as_deref()) {
        (Some(end), None) => end,
        (None, Some(d)) => {
            let d = parse_duration(d).map_err(|e| ApiError::Invalid(format!("duration: {e}")))?;
            starts_at + chrono::Duration::seconds(d.as_secs() as i64)
        }
        _ => {
            return Err(ApiError::Invalid(
                "give exactly one of ends_at and duration".into(),
            ))
        }
    };
    let silence = Silence {
        id: format!("{:016x}", rand::random::<u64>()),
        matchers: new.matchers,
        starts_at,
        ends_at,
        comment: new.comment,
        created_at: now,
    };
    silence.validate().map_err(ApiError::Invalid)?;
    ctx.store.put_silence(&silence)?;
    ctx.store.flush().await?;
    tracing::info!(silence = %silence.id, "silence created");
    Ok(envelope(
        StatusCode::CREATED,
        "created",
        SilenceView {
            active: silence.active_at(now),
            silence,
        },
    ))
}

pub(super) async fn delete_silence(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let ctx = s.runner.context();
    require_admin(
        &ctx.settings,
        &headers,
        "silences are read-only: no ADMIN_TOKEN is configured",
    )?;
    if !ctx.store.delete_silence(&id)? {
        return Err(ApiError::NotFound("no silence with this id"));
    }
    ctx.store.flush().await?;
    tracing::info!(silence = %id, "silence deleted");
    Ok(ok(serde_json::json!({ "id": id })))
}
