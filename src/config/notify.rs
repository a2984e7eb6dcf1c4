//! Notification destinations as URLs (`NOTIFY_URLS`), after shoutrrr's URL convention, and the
//! rest of the alert settings. A URL carries its service's token, so a [`Destination`] never
//! prints it: it shows as its label, `<kind>#<position>`.
//!
//! | URL | service |
//! |---|---|
//! | `https://host/path`, `http://…`, `generic+https://…` | JSON webhook, Alertmanager's webhook payload (version 4) |
//! | `alertmanager://host[:port][/path]` | Alertmanager, `POST /api/v2/alerts` |
//! | `ntfy://[user:password@]host[:port]/topic` | ntfy (`:token@` for an access token) |
//! | `telegram://<bot token>@telegram?chats=<id>[,<id>]` | Telegram Bot API `sendMessage` |
//! | `discord://<token>@<webhook id>` | Discord webhook |
//! | `slack://hook:<T>-<B>-<X>@webhook` (or `slack://<T>/<B>/<X>`) | Slack incoming webhook |
//! | `smtp://[user:password@]host[:port]/?from=<addr>&to=<addr>[,<addr>]` | email over SMTP |
//!
//! Services with a host of their own take `?scheme=http` for plain HTTP (a local ntfy or
//! Alertmanager); SMTP takes `encryption=auto|implicittls|explicittls|none` (auto: implicit TLS
//! on port 465, else STARTTLS).

use std::time::Duration;

use sha2::{Digest, Sha256};
use url::Url;

use super::ConfigError;
use crate::domain::{ProbeIdentity, Secret, Thresholds};

/// The alert settings.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub destinations: Vec<Destination>,
    pub thresholds: Thresholds,
    pub probe: ProbeIdentity,
}

/// One notification destination.
#[derive(Clone)]
pub struct Destination {
    /// `<kind>#<position in NOTIFY_URLS>`, e.g. `telegram#2`: how logs, the API and metrics
    /// name it.
    pub label: String,
    /// A stable id of the URL (a hash), for the outbox's record of who has a message.
    pub id: String,
    pub target: Target,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

/// How SMTP is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Implicit TLS on port 465, else STARTTLS (required).
    Auto,
    Implicit,
    StartTls,
    /// Plain text (a local relay).
    None,
}

/// A destination's service and what it needs. Each `base` is where requests go (the
/// service's public API, or the URL's host).
#[derive(Clone)]
pub enum Target {
    Webhook {
        url: Url,
    },
    Alertmanager {
        base: Url,
    },
    Ntfy {
        base: Url,
        topic: String,
        user: Option<String>,
        password: Option<Secret>,
    },
    Telegram {
        base: Url,
        token: Secret,
        chats: Vec<String>,
    },
    Discord {
        base: Url,
        id: String,
        token: Secret,
    },
    Slack {
        base: Url,
        /// `T…/B…/X…`.
        path: Secret,
    },
    Smtp {
        host: String,
        port: u16,
        user: Option<String>,
        password: Option<Secret>,
        from: String,
        to: Vec<String>,
        tls: SmtpTls,
    },
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Webhook { .. } => "webhook",
            Target::Alertmanager { .. } => "alertmanager",
            Target::Ntfy { .. } => "ntfy",
            Target::Telegram { .. } => "telegram",
            Target::Discord { .. } => "discord",
            Target::Slack { .. } => "slack",
            Target::Smtp { .. } => "smtp",
        }
    }
}

impl Destination {
    /// Sends this destination's requests to `base` instead of the service's public API
    /// (Telegram, Discord, Slack), so tests can stand a loopback server in for it.
    #[cfg(any(test, feature = "testkit"))]
    pub fn with_base(mut self, new: Url) -> Destination {
        match &mut self.target {
            Target::Telegram { base, .. }
            | Target::Discord { base, .. }
            | Target::Slack { base, .. }
            | Target::Ntfy { base, .. }
            | Target::Alertmanager { base } => *base = new,
            Target::Webhook { url } => *url = new,
            Target::Smtp { host, port, .. } => {
                *host = new.host_str().unwrap_or("127.0.0.1").to_string();
                *port = new.port().unwrap_or(25);
            }
        }
        self
    }
}

/// The destinations in `raw` (comma- or newline-separated URLs).
pub fn parse_destinations(raw: &str) -> Result<Vec<Destination>, ConfigError> {
    split_urls(raw)
        .into_iter()
        .enumerate()
        .map(|(i, u)| {
            let target = parse_target(u).map_err(|why| {
                ConfigError(format!(
                    "NOTIFY_URLS (--notify-urls): URL {} ({}): {why}",
                    i + 1,
                    scheme_of(u)
                ))
            })?;
            Ok(Destination {
                label: format!("{}#{}", target.kind(), i + 1),
                id: Sha256::digest(u.as_bytes())
                    .iter()
                    .take(8)
                    .map(|b| format!("{b:02x}"))
                    .collect(),
                target,
            })
        })
        .collect()
}

/// The scheme of a URL, for error messages that must not show the rest (it holds tokens).
fn scheme_of(u: &str) -> String {
    match u.split_once("://") {
        Some((scheme, _)) if scheme.len() <= 24 => format!("{scheme}://…"),
        _ => "not a URL".into(),
    }
}

/// A parsed URL and the readings every service's parser makes of it.
struct Parts {
    url: Url,
}

impl Parts {
    fn query(&self, key: &str) -> Option<String> {
        self.url
            .query_pairs()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.into_owned())
    }

    /// A list in the query: `key=a,b` (or `a;b`).
    fn list(&self, key: &str) -> Vec<String> {
        self.query(key)
            .unwrap_or_default()
            .split([',', ';'])
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
            .collect()
    }

    fn user(&self) -> Option<String> {
        decode(self.url.username()).filter(|u| !u.is_empty())
    }

    fn password(&self) -> Option<Secret> {
        self.url.password().and_then(decode).map(Secret::new)
    }

    fn host(&self) -> Result<String, String> {
        self.url
            .host_str()
            .filter(|h| !h.is_empty())
            .map(String::from)
            .ok_or_else(|| "no host".to_string())
    }

    /// Where a service with a host of its own is reached: https unless `?scheme=http`.
    fn own_base(&self, path: &str) -> Result<Url, String> {
        let scheme = match self.query("scheme").as_deref() {
            None | Some("https") => "https",
            Some("http") => "http",
            Some(other) => return Err(format!("scheme must be http or https, not {other:?}")),
        };
        let port = self.url.port().map(|p| format!(":{p}")).unwrap_or_default();
        Url::parse(&format!("{scheme}://{}{port}{path}", self.host()?)).map_err(|e| e.to_string())
    }
}

fn fixed(base: &str) -> Result<Url, String> {
    Url::parse(base).map_err(|e| e.to_string())
}

fn parse_target(raw: &str) -> Result<Target, String> {
    let url = Url::parse(raw).map_err(|e| format!("not a valid URL ({e})"))?;
    let scheme = url.scheme().to_string();
    let parts = Parts { url };
    match scheme.as_str() {
        "http" | "https" => {
            parts.host()?;
            Ok(Target::Webhook { url: parts.url })
        }
        s if s.starts_with("generic+") => {
            let inner = Url::parse(raw.trim_start_matches("generic+"))
                .map_err(|e| format!("not a valid URL ({e})"))?;
            Ok(Target::Webhook { url: inner })
        }
        "alertmanager" => Ok(Target::Alertmanager {
            base: parts.own_base(parts.url.path().trim_end_matches('/'))?,
        }),
        "ntfy" => parse_ntfy(&parts),
        "telegram" => parse_telegram(&parts),
        "discord" => Ok(Target::Discord {
            base: fixed("https://discord.com")?,
            token: Secret::new(parts.user().ok_or("the webhook token goes before the @")?),
            id: parts.host()?,
        }),
        "slack" => parse_slack(&parts),
        "smtp" => parse_smtp(&parts),
        other => Err(format!(
            "unknown service {other:?}; use http(s), alertmanager, ntfy, telegram, discord, slack or smtp"
        )),
    }
}

fn parse_ntfy(parts: &Parts) -> Result<Target, String> {
    let topic = parts.url.path().trim_matches('/').to_string();
    if topic.is_empty() || topic.contains('/') {
        return Err("the path must be the topic: ntfy://host/topic".into());
    }
    Ok(Target::Ntfy {
        base: parts.own_base("")?,
        topic,
        user: parts.user(),
        password: parts.password(),
    })
}

fn parse_telegram(parts: &Parts) -> Result<Target, String> {
    let token = parts.user().ok_or("the bot token goes before the @")?;
    let token = match parts.password() {
        // A token is `<id>:<secret>`, which a URL reads as user and password.
        Some(rest) => format!("{token}:{}", rest.expose()),
        None => token,
    };
    let mut chats = parts.list("chats");
    chats.extend(parts.list("channels"));
    if chats.is_empty() {
        return Err("no chat: add ?chats=<chat id or @channel>".into());
    }
    Ok(Target::Telegram {
        base: fixed("https://api.telegram.org")?,
        token: Secret::new(token),
        chats,
    })
}

fn parse_slack(parts: &Parts) -> Result<Target, String> {
    let path = match (parts.user().as_deref(), parts.password()) {
        (Some("hook"), Some(tokens)) => tokens.expose().replace('-', "/"),
        _ => format!("{}{}", parts.host()?, parts.url.path()),
    };
    if path.split('/').filter(|p| !p.is_empty()).count() != 3 {
        return Err("expected slack://hook:<T>-<B>-<X>@webhook".into());
    }
    Ok(Target::Slack {
        base: fixed("https://hooks.slack.com")?,
        path: Secret::new(path),
    })
}

fn parse_smtp(parts: &Parts) -> Result<Target, String> {
    let host = parts.host()?;
    let tls = match parts
        .query("encryption")
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("auto") => SmtpTls::Auto,
        Some("implicittls") | Some("tls") => SmtpTls::Implicit,
        Some("explicittls") | Some("starttls") => SmtpTls::StartTls,
        Some("none") => SmtpTls::None,
        Some(other) => {
            return Err(format!(
                "encryption {other:?}: use auto, implicittls, explicittls or none"
            ))
        }
    };
    let from = parts
        .query("from")
        .ok_or("no sender: add ?from=<address>")?;
    let to = parts.list("to");
    if to.is_empty() {
        return Err("no recipient: add &to=<address>".into());
    }
    for address in std::iter::once(&from).chain(&to) {
        if address.parse::<lettre::Address>().is_err() {
            return Err(format!("{address:?} is not an email address"));
        }
    }
    let port = parts.url.port().unwrap_or(match tls {
        SmtpTls::Implicit => 465,
        SmtpTls::None => 25,
        _ => 587,
    });
    Ok(Target::Smtp {
        host,
        port,
        user: parts.user(),
        password: parts.password(),
        from,
        to,
        tls,
    })
}

/// Percent-decoding of a URL part (user names and passwords often hold `%40` and the like).
fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Splits `NOTIFY_URLS` at newlines and at the commas that start a new URL (`, scheme://`),
/// so a comma inside a URL's query (`chats=1,2`) stays in it.
fn split_urls(raw: &str) -> Vec<&str> {
    let starts_url = |rest: &str| {
        let rest = rest.trim_start();
        match rest.split_once("://") {
            Some((scheme, _)) => {
                !scheme.is_empty()
                    && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            }
            None => false,
        }
    };
    let mut out = Vec::new();
    for line in raw.lines() {
        let mut start = 0;
        for (i, _) in line.match_indices(',') {
            if starts_url(&line[i + 1..]) {
                out.push(&line[start..i]);
                start = i + 1;
            }
        }
        out.push(&line[start..]);
    }
    out.into_iter()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

/// `PROBE_NAME`'s default: the host name (else "easytier-probe").
pub fn default_probe_name() -> String {
    gethostname::gethostname()
        .into_string()
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "easytier-probe".into())
}

/// A delivery attempt's time limit (per request).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    fn one(url: &str) -> Target {
        let mut d = parse_destinations(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(d.len(), 1);
        d.remove(0).target
    }

    #[test]
    fn every_service_parses_from_its_url() {
        let Target::Webhook { url } = one("https://hooks.example/am?x=1") else {
            panic!()
        };
        assert_eq!(url.as_str(), "https://hooks.example/am?x=1");
        let Target::Alertmanager { base } = one("alertmanager://am.lan:9093/?scheme=http") else {
            panic!()
        };
        assert_eq!(base.as_str(), "http://am.lan:9093/");
        let Target::Ntfy {
            base,
            topic,
            user,
            password,
        } = one("ntfy://bob:p%40ss@ntfy.sh/alerts")
        else {
            panic!()
        };
        assert_eq!(
            (base.as_str(), topic.as_str()),
            ("https://ntfy.sh/", "alerts")
        );
        assert_eq!(user.as_deref(), Some("bob"));
        assert_eq!(password.unwrap().expose(), "p@ss");
        let Target::Telegram { token, chats, .. } = one(
            "telegram://110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw@telegram?chats=@ops;-1001",
        ) else {
            panic!()
        };
        assert_eq!(
            token.expose(),
            "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
        );
        assert_eq!(chats, ["@ops", "-1001"]);
        let Target::Discord { id, token, .. } = one("discord://tok@123456") else {
            panic!()
        };
        assert_eq!((id.as_str(), token.expose()), ("123456", "tok"));
        let Target::Slack { path, .. } = one("slack://hook:T0-B1-XYZ@webhook") else {
            panic!()
        };
        assert_eq!(path.expose(), "T0/B1/XYZ");
        let Target::Slack { path, .. } = one("slack://T0/B1/XYZ") else {
            panic!()
        };
        assert_eq!(path.expose(), "T0/B1/XYZ");
        let Target::Smtp { port, tls, to, .. } =
            one("smtp://u:p@mail.example/?from=probe@example.org&to=a@example.org;b@example.org")
        else {
            panic!()
        };
        assert_eq!((port, tls, to.len()), (587, SmtpTls::Auto, 2));
    }

    #[test]
    fn destinations_are_labelled_by_kind_and_place_and_never_print_their_url() {
        let d = parse_destinations("https://a.example/x?token=s3cret, ntfy://ntfy.sh/t\n").unwrap();
        assert_eq!(d[0].label, "webhook#1");
        assert_eq!(d[1].label, "ntfy#2");
        assert_ne!(d[0].id, d[1].id);
        assert_eq!(
            d[0].id,
            parse_destinations("https://a.example/x?token=s3cret").unwrap()[0].id
        );
        assert_eq!(format!("{:?}", d), "[webhook#1, ntfy#2]");
        let d =
            parse_destinations("telegram://1:t@telegram?chats=1,@two,https://b.example").unwrap();
        assert_eq!(format!("{:?}", d), "[telegram#1, webhook#2]");
        let Target::Telegram { chats, .. } = &d[0].target else {
            panic!()
        };
        assert_eq!(chats, &["1", "@two"]);
    }

    #[test]
    fn a_bad_url_is_named_by_place_and_scheme_only() {
        for (url, why) in [
            ("telegram://tok@telegram", "no chat"),
            ("ntfy://ntfy.sh/", "topic"),
            ("smtp://mail.example/?to=a@b.c", "no sender"),
            (
                "smtp://mail.example/?from=x&to=a@b.c",
                "not an email address",
            ),
            ("gopher://s3cret@x", "unknown service"),
            ("slack://hook:onlyone@webhook", "expected slack://"),
        ] {
            let e = parse_destinations(&format!("https://ok.example, {url}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("URL 2"), "{e}");
            assert!(e.contains(why), "{url}: {e}");
            assert!(!e.contains("s3cret") && !e.contains("tok@"), "{e}");
        }
    }
}
