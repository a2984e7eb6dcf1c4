//! faketcp peers: EasyTier's faketcp is a user-space TCP stack over raw sockets (CAP_NET_RAW),
//! which the probe does not use. Its listener also binds a real TCP socket, so what can be known
//! honestly is whether that port is open: the verdict stays `unsupported_protocol`, with the
//! port's state in the detail, never a false `down` with `timeout`.

use std::time::Duration;

use super::{fail, Failure, Resolver};
use crate::domain::ErrorKind;

/// What can be known of a faketcp peer within `budget`: always `unsupported_protocol`.
pub(super) async fn check(host: &str, port: u16, budget: Duration, dns: &Resolver) -> Failure {
    let unsupported = |state: String| {
        fail(
            ErrorKind::UnsupportedProtocol,
            format!(
                "faketcp needs raw sockets, which the probe does not use; its tcp port {state}"
            ),
        )
    };
    // Inside the probe's own timeout, the lookup too, so that it is never what answers.
    let within = budget.mul_f64(0.75);
    let open = async {
        let addr = dns
            .addr(host, port)
            .await
            .map_err(|f| unsupported(format!("could not be looked up ({})", f.detail)))?;
        let connected = tokio::net::TcpStream::connect(addr).await;
        Ok::<_, Failure>((addr, connected))
    };
    match tokio::time::timeout(within, open).await {
        Ok(Err(f)) => f,
        Ok(Ok((addr, Ok(_)))) => unsupported(format!("{addr} is open")),
        Ok(Ok((addr, Err(e)))) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            unsupported(format!("{addr} is closed"))
        }
        Ok(Ok((addr, Err(e)))) => unsupported(format!("{addr} could not be reached: {e}")),
        Err(_) => unsupported(format!(
            "{} did not answer within {within:?}",
            crate::domain::peer::host_port(host, port)
        )),
    }
}
