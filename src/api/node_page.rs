//! `GET /nodes/{id}`: one node's page — what it is and how it is now, an RTT chart over a
//! window (`?window=1h|24h|7d|30d`, 24h by default), its uptime over every window, its latest
//! down checks, the recent job runs and its badges. Server-rendered HTML and SVG
//! (`node_page.html`, [`super::chart`]), no script.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::chart::{rtt_chart, step_name, uptime_strip};
use super::error::ApiError;
use super::html::{answer, escape, fill, key_line, node_href, runs_rows, CSS};
use super::views::{merged, uptime_pct};
use super::ApiState;
use crate::domain::notice::{encode_segment, human};
use crate::domain::peer::host_port;
use crate::domain::time::{ms, rfc3339};
use crate::domain::{JobName, NodeKey, Peer, ProbeResult, Window, WINDOWS};
use crate::store::Store;

const PAGE: &str = include_str!("node_page.html");

/// Down checks listed under "Recent errors", at most.
pub(super) const RECENT_ERRORS: usize = 10;

#[derive(Deserialize)]
pub(super) struct PageQuery {
    window: Option<String>,
}

pub(super) async fn page(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let ctx = s.runner.context();
    let store = &ctx.store;
    let now = ctx.clock.now();
    // Peers that left the list keep their slot, and so their page, until their history ages out.
    let Some(slot) = store.slot(&id)? else {
        return Ok(not_found(&id));
    };
    let shown = q
        .window
        .as_deref()
        .and_then(Window::named)
        .unwrap_or(Window::named("24h").expect("a known window"));
    let peer = store
        .peer_list()?
        .and_then(|l| l.peers.into_iter().find(|p| p.id == id));
    let latest = store.latest_result(&id)?;
    let key = store.node_keys().remove(&id);
    let (book, _) = store.alert_book()?;
    let firing = book.firing().any(|(p, _)| p == id);
    let mut chart = String::new();
    let mut uptimes = String::new();
    for w in WINDOWS {
        let points = store
            .window(&w, now, Some(slot), true)?
            .remove(&slot)
            .unwrap_or_default();
        if w.name == shown.name {
            chart = rtt_chart(&w, now, &points);
        }
        let pct = uptime_pct(&merged(points.values()));
        let _ = write!(
            uptimes,
            "<dt>{} · <b>{}</b> <span class=\"unknown\">(per {})</span></dt><dd>{}</dd>",
            w.name,
            pct.map_or("no checks".into(), |p| format!("{p:.2} %")),
            step_name(&w),
            uptime_strip(&w, now, &points)
        );
    }
    let name = peer.as_ref().map_or(id.as_str(), |p| p.name.as_str());
    let errors = recent_errors(store, slot, ctx.settings.retention.raw)?;
    let public_url = ctx.settings.notify.probe.public_url.as_deref();
    let html = fill(
        PAGE,
        &[
            ("css", CSS),
            ("name", &escape(name)),
            (
                "facts",
                &facts(&id, peer.as_ref(), latest.as_ref(), key.as_ref(), firing),
            ),
            ("windows", &window_links(&id, &shown)),
            ("chart", &chart),
            ("uptimes", &uptimes),
            ("errors", &errors),
            ("runs", &runs_rows(store, &JobName::ALL.map(runs_kept))),
            ("badges", &badges(&id, public_url)),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
    );
    Ok(answer(StatusCode::OK, html))
}

/// How many runs of `job` the page lists: probe-sweep's ten, three of the others.
fn runs_kept(job: JobName) -> (JobName, usize) {
    (job, if job == JobName::ProbeSweep { 10 } else { 3 })
}

/// An HTML 404 for an id with no history here (the API's routes answer 404 in the envelope).
fn not_found(id: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>No such node · easytier-probe</title><link rel=\"icon\" href=\"data:,\">\
         <style>{CSS}</style></head><body><h1>No such node</h1><p>No node with the id \
         <code>{}</code> is in this probe's list or history. <a href=\"/\">All nodes</a></p>\
         </body></html>",
        escape(id)
    );
    answer(StatusCode::NOT_FOUND, html)
}

/// The node's name aside: its state, address, network, RTT, last check, id, what it said of
/// itself and its key.
fn facts(
    id: &str,
    peer: Option<&Peer>,
    latest: Option<&ProbeResult>,
    key: Option<&NodeKey>,
    firing: bool,
) -> String {
    let (class, state) = match latest {
        Some(r) if r.up => ("up", "up".to_string()),
        Some(r) => (
            "down",
            format!("down · {}", r.error_kind.map_or("error", |k| k.as_str())),
        ),
        None if peer.is_none() => ("unknown", "no longer in the peer list".to_string()),
        None => ("unknown", "not checked yet".to_string()),
    };
    let alert = if firing {
        "<span class=\"alert\" title=\"an alert is firing for this peer\">alert</span>"
    } else {
        ""
    };
    let mut out =
        format!("<dl class=\"facts\"><dt>State</dt><dd class=\"{class}\">{state}{alert}</dd>");
    if let Some(p) = peer {
        let _ = write!(
            out,
            "<dt>Address</dt><dd>{}://{}</dd><dt>Network</dt><dd>{}</dd>",
            escape(&p.protocol),
            escape(&host_port(&p.host, p.port)),
            escape(&p.network_name)
        );
    }
    if let Some(r) = latest {
        let rtt = r
            .rtt_us
            .map_or("–".into(), |us| format!("{:.2} ms", ms(us)));
        let _ = write!(
            out,
            "<dt>RTT</dt><dd>{rtt}</dd><dt>Checked</dt><dd>{}</dd>",
            rfc3339(r.checked_at)
        );
    }
    let _ = write!(out, "<dt>Id</dt><dd><code>{}</code></dd>", escape(id));
    if let Some(n) = latest.and_then(|r| r.node.as_ref()) {
        let host = n.hostname.as_deref().map(|h| format!(" · {}", escape(h)));
        let _ = write!(
            out,
            "<dt>Node</dt><dd>EasyTier {}{}</dd>",
            escape(&n.version),
            host.unwrap_or_default()
        );
    }
    if let Some(k) = key {
        let _ = write!(out, "<dt>Key</dt><dd>{}</dd>", key_line(k));
    }
    out.push_str("</dl>");
    out
}

/// Links to the page over each window, the one shown marked.
fn window_links(id: &str, shown: &Window) -> String {
    let mut out = String::new();
    for w in WINDOWS {
        let current = if w.name == shown.name {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<a href=\"{}?window={}\"{current}>{}</a> ",
            escape(&node_href(id)),
            w.name,
            w.name
        );
    }
    out
}

/// The newest down checks kept in the raw history, newest first.
fn recent_errors(store: &Store, slot: u32, raw: chrono::Duration) -> Result<String, ApiError> {
    let down = store.recent_down(slot, RECENT_ERRORS)?;
    if down.is_empty() {
        return Ok(format!(
            "<p>No down check among the raw checks kept (the last {}).</p>",
            human(raw)
        ));
    }
    let mut out = String::from(
        "<div class=\"wrap\"><table><tr><th>Checked</th><th>Error</th><th>Detail</th></tr>",
    );
    for r in down {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"down\">{}</td><td>{}</td></tr>",
            rfc3339(r.checked_at),
            r.error_kind.map_or("error", |k| k.as_str()),
            escape(r.error.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</table></div>");
    Ok(out)
}

/// The node's two badges, and the Markdown that embeds them (under `PUBLIC_URL` when it is set).
fn badges(id: &str, public_url: Option<&str>) -> String {
    let path = format!("/api/nodes/{}/badge.svg", encode_segment(id));
    let base = public_url.map_or("http://PROBE", |u| u.trim_end_matches('/'));
    let page = format!("{base}{}", node_href(id));
    format!(
        "<p><img src=\"{p}\" alt=\"status\"> <img src=\"{p}?kind=uptime&amp;window=30d\" \
         alt=\"uptime 30d\"></p><code class=\"embed\">[![status]({b}{p})]({page})\n\
         [![uptime 30d]({b}{p}?kind=uptime&amp;window=30d)]({page})</code>",
        p = escape(&path),
        b = escape(base),
        page = escape(&page),
    )
}
