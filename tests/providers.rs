//! Each notification service gets the request a real service of its kind expects (path,
//! method, headers, body shape): a loopback server stands in for it, the destination's base
//! URL pointed at it (`Destination::with_base`, for tests only). Email goes to a small SMTP
//! server on loopback.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use easytier_probe::config::notify::parse_destinations;
use easytier_probe::config::Destination;
use easytier_probe::domain::{
    AlertName, Change, ErrorKind, Message, Notice, Peer, ProbeIdentity, Status,
};
use easytier_probe::notifier::Notifier;
use easytier_probe::testkit::{Received, Receiver};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn probe() -> ProbeIdentity {
    ProbeIdentity {
        name: "fra-1".into(),
        region: Some("eu-central".into()),
        public_url: Some("https://probe.example".into()),
    }
}

fn peer() -> Peer {
    Peer {
        id: "42".into(),
        name: "public-fra".into(),
        host: "203.0.113.7".into(),
        port: 11010,
        protocol: "tcp".into(),
        network_name: "public".into(),
        network_secret: None,
        timeout_ms: None,
        secure: None,
    }
}

fn change(status: Status) -> Change {
    let t = |s: i64| Utc.timestamp_opt(1_780_000_000 + s, 0).unwrap();
    Change {
        alert: AlertName::PeerDown,
        status,
        peer_id: Some("42".into()),
        at: if status == Status::Firing {
            t(15)
        } else {
            t(600)
        },
        started_at: t(0),
        error_kind: Some(ErrorKind::ConnectRefused),
        error: Some("connection refused".into()),
        down: None,
    }
}

fn message(statuses: &[Status]) -> Message {
    let notices: Vec<Notice> = statuses
        .iter()
        .map(|s| Notice::of(&change(*s), Some(&peer()), &probe()))
        .collect();
    Message::new(
        Utc.timestamp_opt(1_780_000_600, 0).unwrap(),
        probe(),
        notices,
    )
}

/// The one destination of `url`, its requests sent to a new receiver; and that receiver.
async fn aimed(url: &str) -> (Destination, Receiver) {
    let receiver = Receiver::default();
    let base = receiver.start().await.unwrap();
    let dest = parse_destinations(url).unwrap().remove(0);
    (dest.with_base(base.parse().unwrap()), receiver)
}

async fn send_one(url: &str, m: &Message) -> Vec<Received> {
    let (dest, receiver) = aimed(url).await;
    Notifier::new()
        .send(&dest, m, Utc::now())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", dest.label));
    receiver.all()
}

fn is_json(r: &Received) -> bool {
    r.header("content-type") == Some("application/json")
}

#[tokio::test]
async fn webhook_gets_alertmanagers_webhook_payload_version_4() {
    let m = message(&[Status::Firing, Status::Resolved]);
    let got = send_one("https://hooks.example/alerts?token=t0k3n", &m).await;
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert!(is_json(r));
    assert_eq!(r.header("idempotency-key"), Some(m.key.as_str()));
    let body = r.json();
    // Every field of Alertmanager's webhook payload (version 4), with its type.
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["receiver"], "easytier-probe");
    assert!(body["groupKey"].is_string());
    assert_eq!(body["truncatedAlerts"], 0);
    assert_eq!(body["groupLabels"]["probe"], "fra-1");
    assert_eq!(body["commonLabels"]["peer_id"], "42");
    assert_eq!(body["commonLabels"]["alertname"], "PeerDown");
    assert!(body["commonAnnotations"].is_object());
    assert_eq!(body["externalURL"], "https://probe.example");
    let alerts = body["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    for (alert, status) in alerts.iter().zip(["firing", "resolved"]) {
        assert_eq!(alert["status"], status);
        for label in [
            "alertname",
            "peer_id",
            "peer_name",
            "protocol",
            "network_name",
            "probe",
            "region",
            "severity",
        ] {
            assert!(alert["labels"][label].is_string(), "{label}");
        }
        assert_eq!(alert["labels"]["region"], "eu-central");
        assert!(alert["annotations"]["summary"].is_string());
        assert!(alert["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("tcp://203.0.113.7:11010"));
        assert_eq!(alert["generatorURL"], "https://probe.example/nodes/42");
        assert_eq!(alert["fingerprint"].as_str().unwrap().len(), 16);
        for time in ["startsAt", "endsAt"] {
            let t = alert[time].as_str().unwrap();
            chrono::DateTime::parse_from_rfc3339(t).unwrap_or_else(|e| panic!("{time} {t}: {e}"));
        }
    }
    assert_eq!(alerts[0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(alerts[0]["fingerprint"], alerts[1]["fingerprint"]);
}

#[tokio::test]
async fn alertmanager_gets_its_v2_alerts_api() {
    let m = message(&[Status::Firing]);
    let got = send_one("alertmanager://am.example:9093/?scheme=http", &m).await;
    let r = &got[0];
    assert_eq!(
        (r.method.as_str(), r.uri.path()),
        ("POST", "/api/v2/alerts")
    );
    assert!(is_json(r));
    let alerts = r.json();
    let alert = &alerts.as_array().unwrap()[0];
    assert_eq!(alert["labels"]["alertname"], "PeerDown");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert!(alert["annotations"]["description"].is_string());
    assert!(alert["startsAt"].is_string());
    // A firing alert ends a little ahead (it is pushed again while it fires).
    let ends = chrono::DateTime::parse_from_rfc3339(alert["endsAt"].as_str().unwrap()).unwrap();
    assert!(ends > Utc::now());
    assert_eq!(alert["generatorURL"], "https://probe.example/nodes/42");
}

#[tokio::test]
async fn ntfy_gets_a_json_publish_with_title_priority_and_click() {
    let m = message(&[Status::Firing]);
    let got = send_one(
        "ntfy://bob:p4ss@ntfy.example/easytier-alerts?scheme=http",
        &m,
    )
    .await;
    let r = &got[0];
    assert_eq!((r.method.as_str(), r.uri.path()), ("POST", "/"));
    assert!(is_json(r));
    use base64_check::basic;
    assert_eq!(
        r.header("authorization"),
        Some(basic("bob", "p4ss").as_str())
    );
    let body = r.json();
    assert_eq!(body["topic"], "easytier-alerts");
    assert!(body["title"].as_str().unwrap().starts_with("[FIRING]"));
    assert!(body["message"].as_str().unwrap().contains("public-fra"));
    assert_eq!(body["priority"], 4);
    assert_eq!(body["tags"][0], "rotating_light");
    assert_eq!(body["click"], "https://probe.example/nodes/42");
    // An access token alone goes as a bearer token.
    let got = send_one("ntfy://:tk_abc@ntfy.example/t?scheme=http", &m).await;
    assert_eq!(got[0].header("authorization"), Some("Bearer tk_abc"));
}

#[tokio::test]
async fn telegram_gets_send_message_per_chat() {
    let m = message(&[Status::Resolved]);
    let got = send_one(
        "telegram://110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw@telegram?chats=@ops,-1001234",
        &m,
    )
    .await;
    assert_eq!(got.len(), 2);
    for (r, chat) in got.iter().zip(["@ops", "-1001234"]) {
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.uri.path(),
            "/bot110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage"
        );
        assert!(is_json(r));
        let body = r.json();
        assert_eq!(body["chat_id"], chat);
        let text = body["text"].as_str().unwrap();
        assert!(
            text.starts_with("[RESOLVED] peer public-fra is up again"),
            "{text}"
        );
        assert!(text.contains("after 10m 0s down"), "{text}");
    }
}

#[tokio::test]
async fn discord_gets_a_webhook_with_an_embed() {
    let m = message(&[Status::Firing]);
    let got = send_one("discord://s3cr3t-token@123456789012345678", &m).await;
    let r = &got[0];
    assert_eq!(
        (r.method.as_str(), r.uri.path()),
        ("POST", "/api/webhooks/123456789012345678/s3cr3t-token")
    );
    assert!(is_json(r));
    let body = r.json();
    let embed = &body["embeds"][0];
    assert!(embed["title"].as_str().unwrap().contains("public-fra"));
    assert!(embed["description"]
        .as_str()
        .unwrap()
        .contains("connect_refused"));
    assert!(embed["color"].is_u64());
    assert_eq!(embed["url"], "https://probe.example/nodes/42");
}

#[tokio::test]
async fn slack_gets_an_incoming_webhook() {
    let m = message(&[Status::Firing, Status::Firing]);
    let got = send_one("slack://hook:T000-B000-XXXX@webhook", &m).await;
    let r = &got[0];
    assert_eq!(
        (r.method.as_str(), r.uri.path()),
        ("POST", "/services/T000/B000/XXXX")
    );
    assert!(is_json(r));
    let text = r.json()["text"].as_str().unwrap().to_string();
    assert!(
        text.starts_with("*[2 firing] easytier-probe fra-1*"),
        "{text}"
    );
}

#[tokio::test]
async fn a_failing_service_is_an_error_that_names_no_url_or_token() {
    let (dest, receiver) = aimed("telegram://123:SECRETTOKEN@telegram?chats=1").await;
    receiver.set_status(500);
    let e = Notifier::new()
        .send(&dest, &message(&[Status::Firing]), Utc::now())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("HTTP 500"), "{e}");
    assert!(
        !e.contains("SECRETTOKEN") && !e.contains("127.0.0.1"),
        "{e}"
    );
    // Nobody listening.
    let port = easytier_probe::testkit::free_port();
    let dest = parse_destinations("telegram://123:SECRETTOKEN@telegram?chats=1")
        .unwrap()
        .remove(0)
        .with_base(format!("http://127.0.0.1:{port}").parse().unwrap());
    let e = Notifier::new()
        .send(&dest, &message(&[Status::Firing]), Utc::now())
        .await
        .unwrap_err()
        .to_string();
    assert!(!e.contains("SECRETTOKEN"), "{e}");
}

/// A minimal SMTP server on loopback: accepts one message and returns its envelope and data.
async fn smtp_server() -> (u16, tokio::task::JoinHandle<(Vec<String>, String)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write
            .write_all(b"220 localhost ESMTP test\r\n")
            .await
            .unwrap();
        let mut commands = Vec::new();
        let mut data = String::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            let upper = line.to_ascii_uppercase();
            commands.push(line.clone());
            let answer: &[u8] = if upper.starts_with("EHLO") {
                b"250-localhost\r\n250 AUTH PLAIN LOGIN\r\n"
            } else if upper.starts_with("AUTH") {
                b"235 ok\r\n"
            } else if upper.starts_with("DATA") {
                write.write_all(b"354 go on\r\n").await.unwrap();
                while let Some(l) = lines.next_line().await.unwrap() {
                    if l == "." {
                        break;
                    }
                    data.push_str(&l);
                    data.push('\n');
                }
                b"250 queued\r\n"
            } else if upper.starts_with("QUIT") {
                write.write_all(b"221 bye\r\n").await.unwrap();
                break;
            } else {
                b"250 ok\r\n"
            };
            write.write_all(answer).await.unwrap();
        }
        (commands, data)
    });
    (port, task)
}

#[tokio::test]
async fn email_goes_over_smtp_to_every_recipient() {
    let (port, server) = smtp_server().await;
    let url = format!(
        "smtp://probe:m41lpass@127.0.0.1:{port}/?from=probe@example.org&to=ops@example.org,oncall@example.org&encryption=none"
    );
    let dest = parse_destinations(&url).unwrap().remove(0);
    Notifier::new()
        .send(&dest, &message(&[Status::Firing]), Utc::now())
        .await
        .unwrap();
    let (commands, data) = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
    let said = commands.join("\n");
    assert!(said.contains("MAIL FROM:<probe@example.org>"), "{said}");
    assert!(said.contains("RCPT TO:<ops@example.org>"), "{said}");
    assert!(said.contains("RCPT TO:<oncall@example.org>"), "{said}");
    assert!(said.contains("AUTH"), "{said}");
    assert!(
        data.contains("Subject: [FIRING] peer public-fra is down"),
        "{data}"
    );
    assert!(data.contains("public-fra"), "{data}");
}

/// Basic auth as a client sends it, written here rather than taken from the code under test.
mod base64_check {
    pub fn basic(user: &str, password: &str) -> String {
        const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let input = format!("{user}:{password}");
        let bytes = input.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        format!("Basic {out}")
    }

    #[test]
    fn encodes_like_rfc_4648() {
        assert_eq!(
            basic("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }
}
