//! `GET /api/nodes/{id}/badge.svg?kind=status|uptime&window=1h|24h|7d|30d`: a flat badge in
//! the shields.io style (label | value) for a README or a wiki: the node's state, or its uptime
//! over a window coloured by the pages' thresholds.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::ApiError;
use super::html::{escape, uptime_class};
use super::nodes::window_param;
use super::views::{merged, uptime_pct};
use super::ApiState;

/// Badges are cheap to make and change with each sweep: caches may keep one this long.
pub(super) const CACHE_CONTROL: &str = "public, max-age=30";

const GREEN: &str = "#4c1";
const YELLOW: &str = "#dfb317";
const RED: &str = "#e05d44";
const GREY: &str = "#9f9f9f";

#[derive(Deserialize)]
pub(super) struct BadgeQuery {
    kind: Option<String>,
    window: Option<String>,
}

pub(super) async fn badge(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<BadgeQuery>,
) -> Result<Response, ApiError> {
    let uptime = match q.kind.as_deref().unwrap_or("status") {
        "status" => false,
        "uptime" => true,
        _ => return Err(ApiError::BadRequest("kind must be one of status, uptime")),
    };
    let w = window_param(q.window.as_deref(), "24h")?;
    let ctx = s.runner.context();
    let store = &ctx.store;
    let slot = store
        .slot(&id)?
        .ok_or(ApiError::NotFound("no node with this id"))?;
    let (label, value, colour) = if uptime {
        let bucket = store
            .window(&w, ctx.clock.now(), Some(slot), false)?
            .remove(&slot)
            .map(|points| merged(points.values()))
            .unwrap_or_default();
        let pct = uptime_pct(&bucket);
        let colour = match uptime_class(pct) {
            "good" => GREEN,
            "some" => YELLOW,
            "bad" => RED,
            _ => GREY,
        };
        let value = pct.map_or("no data".into(), |p| match p {
            100.0 => "100%".to_string(),
            p => format!("{p:.2}%"),
        });
        (format!("uptime {}", w.name), value, colour)
    } else {
        let (value, colour) = match store.latest_result(&id)? {
            Some(r) if r.up => ("up", GREEN),
            Some(_) => ("down", RED),
            None => ("unknown", GREY),
        };
        ("status".to_string(), value.to_string(), colour)
    };
    let mut r = (
        [(header::CONTENT_TYPE, "image/svg+xml")],
        flat(&label, &value, colour),
    )
        .into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    Ok(r)
}

/// About how wide `text` is in 11 px Verdana, the badges' font (shields.io measures it
/// exactly; within a pixel or two is enough for a label of a few words).
fn text_width(text: &str) -> f64 {
    text.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | ';' | '|' | '!' | '\'' | ' ' => 3.9,
            'f' | 'r' | 't' | 'I' | '(' | ')' | '[' | ']' | '-' => 4.9,
            'm' | 'w' | 'M' | 'W' | '%' => 10.5,
            'A'..='Z' => 7.6,
            _ => 7.0,
        })
        .sum()
}

/// A flat badge: `label` on grey, `value` on `colour`, white text with a faint shadow.
pub(super) fn flat(label: &str, value: &str, colour: &str) -> String {
    let lw = (text_width(label) + 10.0).round();
    let vw = (text_width(value) + 10.0).round();
    let total = lw + vw;
    let (label, value) = (escape(label), escape(value));
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{total}\" height=\"20\" role=\"img\" \
         aria-label=\"{label}: {value}\"><title>{label}: {value}</title>\
         <linearGradient id=\"s\" x2=\"0\" y2=\"100%\"><stop offset=\"0\" stop-color=\"#bbb\" \
         stop-opacity=\".1\"/><stop offset=\"1\" stop-opacity=\".1\"/></linearGradient>\
         <clipPath id=\"r\"><rect width=\"{total}\" height=\"20\" rx=\"3\" fill=\"#fff\"/></clipPath>\
         <g clip-path=\"url(#r)\"><rect width=\"{lw}\" height=\"20\" fill=\"#555\"/>\
         <rect x=\"{lw}\" width=\"{vw}\" height=\"20\" fill=\"{colour}\"/>\
         <rect width=\"{total}\" height=\"20\" fill=\"url(#s)\"/></g>\
         <g fill=\"#fff\" text-anchor=\"middle\" font-family=\"Verdana,Geneva,DejaVu Sans,sans-serif\" \
         font-size=\"11\"><text x=\"{lx}\" y=\"15\" fill=\"#010101\" fill-opacity=\".3\">{label}</text>\
         <text x=\"{lx}\" y=\"14\">{label}</text>\
         <text x=\"{vx}\" y=\"15\" fill=\"#010101\" fill-opacity=\".3\">{value}</text>\
         <text x=\"{vx}\" y=\"14\">{value}</text></g></svg>",
        lx = lw / 2.0,
        vx = lw + vw / 2.0,
    )
}
