//! `deploy/prometheus/alerts.yml` names only metrics that `/metrics` serves (promtool checks the
//! rules themselves: deploy/ci/check-prometheus-rules.sh).

use easytier_probe::api::metrics::METRICS;

use crate::common::{read, repo};

#[test]
fn prometheus_rules_name_only_served_metrics() {
    let path = repo().join("deploy/prometheus/alerts.yml");
    let text = read(&path);
    let mut named = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("easytier_probe_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        named.push(&tail[..end]);
        rest = &tail[end..];
    }
    assert!(named.len() >= 5, "the rules name our metrics: {named:?}");
    for metric in named {
        assert!(
            METRICS.contains(&metric),
            "alerts.yml names {metric}, which /metrics does not serve ({METRICS:?})"
        );
    }
    for alert in [
        "EasyTierPeerDown",
        "EasyTierProbeIsolated",
        "EasyTierProbeNotSweeping",
    ] {
        assert!(text.contains(&format!("alert: {alert}")), "{alert}");
    }
}
