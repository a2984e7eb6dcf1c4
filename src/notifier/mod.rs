//! Delivery of alert messages to their destinations: one request (or one email) per message
//! and destination, in the shape the service expects. **The only code that knows the
//! services' wire formats**: [`alertmanager`] (Alertmanager's webhook payload, version 4, and
//! its `POST /api/v2/alerts`), [`chat`] (ntfy, Telegram, Discord, Slack), [`email`] (SMTP).
//!
//! No error from here names a URL or a token: the URLs carry them. Errors say which
//! destination (its label) and what happened.

pub mod alertmanager;
pub mod chat;
mod email;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::notify::DELIVERY_TIMEOUT;
use crate::config::{Destination, Target};
use crate::domain::Message;

/// Why a delivery failed; never holds a URL or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeliveryError(pub String);

/// Sends messages; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    http: reqwest::Client,
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Notifier {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(DELIVERY_TIMEOUT)
            .user_agent(concat!("easytier-probe/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the body (and for some services the token) elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { http }
    }

    /// Delivers `message` to `dest`; `now` dates what the message does not (Alertmanager's
    /// `endsAt` of firing alerts).
    pub async fn send(
        &self,
        dest: &Destination,
        message: &Message,
        now: DateTime<Utc>,
    ) -> Result<(), DeliveryError> {
        let request = match &dest.target {
            Target::Webhook { url } => alertmanager::webhook(&self.http, url, message),
            Target::Alertmanager { base } => alertmanager::push(&self.http, base, message, now),
            Target::Ntfy {
                base,
                topic,
                user,
                password,
            } => chat::ntfy(
                &self.http,
                base,
                topic,
                user.as_deref(),
                password.as_ref(),
                message,
            ),
            Target::Telegram { base, token, chats } => {
                for chat in chats {
                    let request = chat::telegram(&self.http, base, token, chat, message);
                    send_http(&self.http, request?).await?;
                }
                return Ok(());
            }
            Target::Discord { base, id, token } => {
                chat::discord(&self.http, base, id, token, message)
            }
            Target::Slack { base, path } => chat::slack(&self.http, base, path, message),
            Target::Smtp { .. } => return email::send(&dest.target, message).await,
        };
        send_http(&self.http, request?).await
    }
}

/// Sends a built request; any 2xx is delivered.
async fn send_http(http: &reqwest::Client, request: reqwest::Request) -> Result<(), DeliveryError> {
    let answer = http
        .execute(request)
        .await
        .map_err(|e| DeliveryError(describe(e)))?;
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    // A little of the body helps (a service's own error text), but never the whole of it.
    let body = answer.text().await.unwrap_or_default();
    let body: String = body.chars().take(200).collect();
    Err(DeliveryError(format!(
        "answered HTTP {}{}",
        status.as_u16(),
        if body.trim().is_empty() {
            String::new()
        } else {
            format!(": {}", body.trim())
        }
    )))
}

/// A reqwest error without its URL.
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        format!("no answer within {}s", DELIVERY_TIMEOUT.as_secs())
    } else if e.is_connect() {
        "could not connect".to_string()
    } else if e.is_redirect() || e.status().is_some_and(|s| s.is_redirection()) {
        "redirected (not followed)".to_string()
    } else if e.is_builder() {
        "the request could not be built".to_string()
    } else {
        e.without_url().to_string()
    }
}

/// A request built with `builder`, or an error without URL.
fn build(builder: reqwest::RequestBuilder) -> Result<reqwest::Request, DeliveryError> {
    builder.build().map_err(|e| DeliveryError(describe(e)))
}

/// `base` with `path` appended (`base` may have a path of its own).
fn join(base: &url::Url, path: &str) -> Result<url::Url, DeliveryError> {
    let mut url = base.clone();
    let joined = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url.set_path(&joined);
    Ok(url)
}

/// At most `max` characters of `s`, with "…" when cut.
fn cap(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
