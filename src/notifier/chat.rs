//! Chat and push services: ntfy (JSON publishing), Telegram (Bot API `sendMessage`), Discord
//! (webhook with an embed) and Slack (incoming webhook). Each takes the message's title and
//! plain text, cut to the service's limits.

use serde_json::json;

use super::{build, cap, join, DeliveryError};
use crate::domain::{Message, Secret, Status};

/// The one link of a message about one alert (else none: a list has one per paragraph).
fn single_link(message: &Message) -> Option<&str> {
    match message.notices.as_slice() {
        [one] => one.link.as_deref(),
        _ => None,
    }
}

/// `POST <base>/` with `{"topic", "title", "message", "priority", "tags", "click"}`: ntfy's
/// JSON publishing, so titles need no header encoding. Basic auth with user and password, a
/// bearer access token with a password alone.
pub fn ntfy(
    http: &reqwest::Client,
    base: &url::Url,
    topic: &str,
    user: Option<&str>,
    password: Option<&Secret>,
    message: &Message,
) -> Result<reqwest::Request, DeliveryError> {
    let firing = message.status() == Status::Firing;
    let mut body = json!({
        "topic": topic,
        "title": cap(&message.title(), 250),
        "message": cap(&message.text(), 4000),
        "priority": if firing { 4 } else { 3 },
        "tags": [if firing { "rotating_light" } else { "white_check_mark" }],
    });
    if let Some(link) = single_link(message) {
        body["click"] = json!(link);
    }
    let mut request = http.post(join(base, "")?).json(&body);
    request = match (user, password) {
        (Some(user), password) => request.basic_auth(user, password.map(Secret::expose)),
        (None, Some(token)) => request.bearer_auth(token.expose()),
        (None, None) => request,
    };
    build(request)
}

/// `POST <base>/bot<token>/sendMessage` with `{"chat_id", "text"}` (plain text: nothing to
/// escape), one request per chat.
pub fn telegram(
    http: &reqwest::Client,
    base: &url::Url,
    token: &Secret,
    chat: &str,
    message: &Message,
) -> Result<reqwest::Request, DeliveryError> {
    let url = join(base, &format!("bot{}/sendMessage", token.expose()))?;
    let text = format!("{}\n\n{}", message.title(), message.text());
    build(http.post(url).json(&json!({
        "chat_id": chat,
        "text": cap(&text, 4096),
        "disable_web_page_preview": true,
    })))
}

/// `POST <base>/api/webhooks/<id>/<token>` with one embed (red while firing, green resolved).
pub fn discord(
    http: &reqwest::Client,
    base: &url::Url,
    id: &str,
    token: &Secret,
    message: &Message,
) -> Result<reqwest::Request, DeliveryError> {
    let url = join(base, &format!("api/webhooks/{id}/{}", token.expose()))?;
    let mut embed = json!({
        "title": cap(&message.title(), 256),
        "description": cap(&message.text(), 4096),
        "color": if message.status() == Status::Firing { 0xd6_3b_3b } else { 0x2f_a8_4f },
    });
    if let Some(link) = single_link(message) {
        embed["url"] = json!(link);
    }
    build(http.post(url).json(&json!({
        "username": "easytier-probe",
        "embeds": [embed],
    })))
}

/// `POST <base>/services/<T>/<B>/<X>` with `{"text"}`.
pub fn slack(
    http: &reqwest::Client,
    base: &url::Url,
    path: &Secret,
    message: &Message,
) -> Result<reqwest::Request, DeliveryError> {
    let url = join(base, &format!("services/{}", path.expose()))?;
    let text = format!("*{}*\n{}", message.title(), message.text());
    build(http.post(url).json(&json!({ "text": cap(&text, 3900) })))
}
