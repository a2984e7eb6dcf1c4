//! QUIC for EasyTier: nodes before 2.6 speak QUIC over TLS, 2.6 and later over
//! `quinn-plaintext`. Inside, one bidirectional stream carries the same length-prefixed
//! packets as tcp.
//!
//! The flavours are tried one after the other, TLS first, never both at once: the QUIC
//! listener of older nodes (2.0.x) panics on a connection it cannot authenticate and stops
//! accepting QUIC for good, so a plaintext attempt must not reach a node that speaks TLS. The
//! flavour that worked is remembered per address and tried first next time; the sweep keeps
//! the remembered flavours in the store ([`remembered_flavours`], [`remember_flavours`]), so a
//! `run-job` per sweep (timer mode) does not start over.
//!
//! Falling back to plaintext needs evidence that TLS cannot work: a 2.6 node answers a TLS
//! Initial with nothing at all, so that evidence is no answer for the whole first attempt, which
//! is long enough for QUIC's own retransmission of a lost Initial (about 1 s), or a clear
//! rejection (the peer closing the connection).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use easytier::tunnel::common::{FramedReader, FramedWriter, TunnelWrapper};
use easytier::tunnel::Tunnel;
use quinn::{ClientConfig, ConnectionError, Endpoint};

use super::learnt::{Learnt, Named};
use super::{fail, Failure};
use crate::domain::ErrorKind;

/// The least time a first attempt of unknown flavour gets before the other is tried.
const FIRST_ATTEMPT_MIN: Duration = Duration::from_millis(1600);

/// Largest framed packet read from the stream (as EasyTier's own QUIC tunnel).
const MAX_PACKET: usize = 4500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Tls,
    Plaintext,
}

impl Flavour {
    fn other(self) -> Flavour {
        match self {
            Flavour::Tls => Flavour::Plaintext,
            Flavour::Plaintext => Flavour::Tls,
        }
    }
}

impl Named for Flavour {
    const ALL: &'static [Flavour] = &[Flavour::Tls, Flavour::Plaintext];

    fn name(self) -> &'static str {
        match self {
            Flavour::Tls => "tls",
            Flavour::Plaintext => "plaintext",
        }
    }
}

static LEARNT: Learnt<SocketAddr, Flavour> = Learnt::new();

/// Keeps the endpoint and connection alive as long as the tunnel halves live.
struct Keep {
    _endpoint: Endpoint,
    connection: quinn::Connection,
}

impl Drop for Keep {
    fn drop(&mut self) {
        self.connection.close(0u32.into(), b"probe done");
    }
}

/// Opens a QUIC tunnel to `addr` within `budget`, trying both flavours in turn.
pub(super) async fn connect(
    addr: SocketAddr,
    budget: Duration,
) -> Result<Box<dyn Tunnel>, Failure> {
    let known = LEARNT.get(&addr);
    let first = known.unwrap_or(Flavour::Tls);
    // Enough for a QUIC handshake over a slow path, and leaves time for the other flavour.
    let first_budget = if known.is_some() {
        budget.mul_f32(0.6)
    } else {
        // Past quinn's first probe timeout (333 ms initial RTT: about 1 s), so one lost
        // Initial is sent again within the attempt rather than taken for "no TLS here".
        (budget * 2 / 3).clamp(FIRST_ATTEMPT_MIN, Duration::from_millis(2500))
    };
    let first_error = match tokio::time::timeout(first_budget, connect_with(addr, first)).await {
        Ok(Ok(tunnel)) => return Ok(remember(addr, first, tunnel)),
        Ok(Err(f)) => f,
        Err(_) => fail(ErrorKind::Timeout, format!("QUIC ({first:?}): no answer")),
    };
    match connect_with(addr, first.other()).await {
        Ok(tunnel) => Ok(remember(addr, first.other(), tunnel)),
        // A timeout says less than a real error from the first attempt.
        Err(f) if f.kind == ErrorKind::Timeout => Err(first_error),
        Err(f) => Err(f),
    }
}

/// The flavour that worked, per address, as `"tls"` or `"plaintext"` (for the store).
pub fn remembered_flavours() -> Vec<(String, &'static str)> {
    LEARNT.dump(SocketAddr::to_string)
}

/// Takes flavours kept from earlier sweeps; unknown names and bad addresses are skipped.
pub fn remember_flavours<'a>(kept: impl IntoIterator<Item = (&'a str, &'a str)>) {
    LEARNT.load(kept, |addr| addr.parse().ok());
}

fn remember(addr: SocketAddr, flavour: Flavour, tunnel: Box<dyn Tunnel>) -> Box<dyn Tunnel> {
    LEARNT.set(addr, Some(flavour));
    tunnel
}

fn client_config(flavour: Flavour) -> Result<ClientConfig, Failure> {
    match flavour {
        Flavour::Plaintext => Ok(quinn_plaintext::client_config()),
        Flavour::Tls => {
            let rustls = easytier::tunnel::insecure_tls::get_insecure_tls_client_config();
            let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(rustls)
                .map_err(|e| fail(ErrorKind::ProtocolError, format!("QUIC TLS setup: {e}")))?;
            Ok(ClientConfig::new(Arc::new(crypto)))
        }
    }
}

async fn connect_with(addr: SocketAddr, flavour: Flavour) -> Result<Box<dyn Tunnel>, Failure> {
    let bind: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let mut endpoint = Endpoint::client(bind)
        .map_err(|e| fail(ErrorKind::ConnectRefused, format!("QUIC socket: {e}")))?;
    endpoint.set_default_client_config(client_config(flavour)?);
    let connection = endpoint
        .connect(addr, "localhost")
        .map_err(|e| fail(ErrorKind::ProtocolError, format!("QUIC connect: {e}")))?
        .await
        .map_err(|e| classify(e, flavour))?;
    let (send, recv) = connection
        .open_bi()
        .await
        .map_err(|e| classify(e, flavour))?;
    let keep = Arc::new(Keep {
        _endpoint: endpoint,
        connection,
    });
    Ok(Box::new(TunnelWrapper::new(
        FramedReader::new_with_associate_data(recv, MAX_PACKET, Some(Box::new(keep.clone()))),
        FramedWriter::new_with_associate_data(send, Some(Box::new(keep))),
        None,
    )))
}

fn classify(e: ConnectionError, flavour: Flavour) -> Failure {
    let kind = match e {
        ConnectionError::TimedOut => ErrorKind::Timeout,
        ConnectionError::ConnectionClosed(_) | ConnectionError::ApplicationClosed(_) => {
            ErrorKind::HandshakeRejected
        }
        ConnectionError::Reset | ConnectionError::LocallyClosed => ErrorKind::ConnectRefused,
        _ => ErrorKind::ProtocolError,
    };
    fail(kind, format!("QUIC ({flavour:?}): {e}"))
}
