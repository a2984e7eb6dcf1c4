//! faketcp peers: EasyTier's faketcp is a user-space TCP stack over raw sockets (CAP_NET_RAW),
//! which the probe does not use. Its listener also binds a real TCP socket, so what can be known
//! honestly is whether that port is open: the verdict stays `unsupported_protocol`, with the
//! port's state in the detail, never a false `down` with `timeout`.

use std::time::Duration;

use super::dns::resolve;
use super::{fail, Failure};
use crate::domain::ErrorKind;

/// What can be known of a faketcp peer within `budget`: always `unsupported_protocol`.
pub(super) async fn check(host: &str, port: u16, budget: Duration) -> Failure {
    let unsupported = |state: String| {
        fail(
            ErrorKind::UnsupportedProtocol,
            format!(
                "faketcp needs raw sockets, which the probe does not use; its tcp port {state}"
            ),
        )
    };
    let addr = match resolve(host, port).await {
        Ok(addr) => addr,
        Err(f) => return unsupported(format!("could not be looked up ({})", f.detail)),
    };
    // Inside the probe's own timeout, so that it is never what answers.
    let within = budget.mul_f64(0.75);
    match tokio::time::timeout(within, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => unsupported(format!("{addr} is open")),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            unsupported(format!("{addr} is closed"))
        }
        Ok(Err(e)) => unsupported(format!("{addr} could not be reached: {e}")),
        Err(_) => unsupported(format!("{addr} did not answer within {within:?}")),
    }
}
