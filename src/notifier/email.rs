//! Email over SMTP (lettre, TLS by rustls): the message's title as subject, its text as a
//! plain-text body, to every recipient of the URL.

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::DeliveryError;
use crate::config::notify::DELIVERY_TIMEOUT;
use crate::config::{SmtpTls, Target};
use crate::domain::Message;

pub async fn send(target: &Target, message: &Message) -> Result<(), DeliveryError> {
    let Target::Smtp {
        host,
        port,
        user,
        password,
        from,
        to,
        tls,
    } = target
    else {
        return Err(DeliveryError("not an SMTP destination".into()));
    };
    let failed = |what: &str, e: &dyn std::fmt::Display| DeliveryError(format!("{what}: {e}"));
    let mut email = lettre::Message::builder()
        .from(from.parse().map_err(|e| failed("sender", &e))?)
        .subject(message.title())
        .header(ContentType::TEXT_PLAIN);
    for address in to {
        email = email.to(address.parse().map_err(|e| failed("recipient", &e))?);
    }
    let email = email
        .body(message.text())
        .map_err(|e| failed("message", &e))?;
    let implicit = match tls {
        SmtpTls::Auto => *port == 465,
        SmtpTls::Implicit => true,
        _ => false,
    };
    let builder = match tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str()),
        _ if implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
            .map_err(|e| failed("TLS setup", &e))?,
        _ => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
            .map_err(|e| failed("TLS setup", &e))?,
    };
    let mut builder = builder.port(*port).timeout(Some(DELIVERY_TIMEOUT));
    if let Some(user) = user {
        let password = password.as_ref().map(|p| p.expose().to_string());
        builder = builder.credentials(Credentials::new(user.clone(), password.unwrap_or_default()));
    }
    builder
        .build()
        .send(email)
        .await
        .map(|_| ())
        .map_err(|e| failed("SMTP", &e))
}
