//! Alertmanager's formats: the webhook payload (version "4") that Alertmanager sends its
//! webhook receivers, so every bridge written for it takes our messages unchanged; and the
//! alerts Alertmanager itself takes on `POST /api/v2/alerts`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::{build, join, DeliveryError};
use crate::domain::time::rfc3339;
use crate::domain::{Message, Notice, Status};

/// How long a firing alert pushed to Alertmanager stays firing there without news: each notify
/// run that finds it still firing pushes it again (as Prometheus re-sends), so it only lapses
/// when this probe stops.
pub const PUSH_LIFETIME: chrono::Duration = chrono::Duration::minutes(5);

/// Alertmanager's "no end" time, which its webhook payloads give firing alerts.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookAlert<'a> {
    status: &'static str,
    labels: &'a BTreeMap<String, String>,
    annotations: BTreeMap<&'static str, String>,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: String,
    fingerprint: &'a str,
}

fn annotations(n: &Notice) -> BTreeMap<&'static str, String> {
    let mut a = BTreeMap::from([
        ("summary", n.summary.clone()),
        ("description", n.description.clone()),
    ]);
    if let Some(link) = &n.link {
        a.insert("link", link.clone());
    }
    a
}

/// The webhook body of `message`: Alertmanager's payload, version 4.
pub fn webhook_payload(message: &Message) -> serde_json::Value {
    let alerts: Vec<WebhookAlert> = message
        .notices
        .iter()
        .map(|n| WebhookAlert {
            status: n.status.as_str(),
            labels: &n.labels,
            annotations: annotations(n),
            starts_at: rfc3339(n.starts_at),
            ends_at: n.ends_at.map_or_else(|| ZERO_TIME.to_string(), rfc3339),
            generator_url: n.link.clone().unwrap_or_default(),
            fingerprint: &n.fingerprint,
        })
        .collect();
    let common = |of: &dyn Fn(&Notice) -> BTreeMap<String, String>| {
        let mut maps = message.notices.iter().map(of);
        let first = maps.next().unwrap_or_default();
        maps.fold(first, |acc, m| {
            acc.into_iter()
                .filter(|(k, v)| m.get(k) == Some(v))
                .collect()
        })
    };
    let common_labels = common(&|n| n.labels.clone());
    let common_annotations = common(&|n| {
        annotations(n)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    });
    let group_labels = BTreeMap::from([("probe", message.probe.name.clone())]);
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{probe={:?}}}", message.probe.name),
        "truncatedAlerts": 0,
        "status": message.status().as_str(),
        "receiver": "easytier-probe",
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": common_annotations,
        "externalURL": message.probe.public_url.clone().unwrap_or_default(),
        "alerts": alerts,
    })
}

/// `POST <url>` with the webhook payload; `Idempotency-Key` is the message's key.
pub fn webhook(
    http: &reqwest::Client,
    url: &url::Url,
    message: &Message,
) -> Result<reqwest::Request, DeliveryError> {
    build(
        http.post(url.clone())
            .header("Idempotency-Key", &message.key)
            .json(&webhook_payload(message)),
    )
}

/// The alerts of `notices` as Alertmanager's API takes them: firing ones end at
/// `now + PUSH_LIFETIME`, resolved ones at their end; empty labels are left out.
pub fn push_body<'a>(
    notices: impl IntoIterator<Item = &'a Notice>,
    now: DateTime<Utc>,
) -> serde_json::Value {
    let alerts: Vec<serde_json::Value> = notices
        .into_iter()
        .map(|n| {
            let labels: BTreeMap<&String, &String> =
                n.labels.iter().filter(|(_, v)| !v.is_empty()).collect();
            let ends_at = match n.status {
                Status::Firing => now + PUSH_LIFETIME,
                Status::Resolved => n.ends_at.unwrap_or(now),
            };
            json!({
                "labels": labels,
                "annotations": annotations(n),
                "startsAt": rfc3339(n.starts_at),
                "endsAt": rfc3339(ends_at),
                "generatorURL": n.link.clone().unwrap_or_default(),
            })
        })
        .collect();
    serde_json::Value::Array(alerts)
}

/// `POST <base>/api/v2/alerts` with the message's alerts.
pub fn push(
    http: &reqwest::Client,
    base: &url::Url,
    message: &Message,
    now: DateTime<Utc>,
) -> Result<reqwest::Request, DeliveryError> {
    build(
        http.post(join(base, "api/v2/alerts")?)
            .json(&push_body(&message.notices, now)),
    )
}
