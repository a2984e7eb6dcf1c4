//! Sessions: a tunnel opened over the peer's protocol and a handshake the node answered
//! (legacy, or secure mode's Noise one), raced on lossy transports; and how the transports'
//! errors are judged.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use easytier::common::config::NetworkIdentity;
use easytier::proto::peer_rpc::HandshakeRequest;
use easytier::tunnel::packet_def::{PacketType, ZCPacket};
use easytier::tunnel::{Tunnel, TunnelConnector, TunnelError, ZCPacketSink, ZCPacketStream};
use futures::{SinkExt, StreamExt};
use prost::Message;

use super::secure::{self, Mode};
use super::{fail, quic, Failure, Progress, Target, HANDSHAKE_VERSION, MAGIC, MAX_SKIPPED_PACKETS};
use crate::domain::ErrorKind;

/// An open tunnel on which the peer answered our handshake.
pub(super) struct Session {
    pub(super) stream: Pin<Box<dyn ZCPacketStream>>,
    pub(super) sink: Pin<Box<dyn ZCPacketSink>>,
    pub(super) my_peer_id: u32,
    pub(super) peer_id: u32,
    /// The node's static key, after a Noise handshake.
    pub(super) node_key: Option<[u8; 32]>,
    // The tunnel owns what its halves need (e.g. the wg peer's tasks).
    pub(super) _tunnel: Box<dyn Tunnel>,
}

/// Connects and exchanges handshakes, the `mode` way.
pub(super) async fn open_session(
    target: &Target,
    addr: SocketAddr,
    budget: Duration,
    mode: Mode,
    progress: &mut Progress,
) -> Result<Session, Failure> {
    progress.stage = "connecting";
    let tunnel = connect(target, addr, budget).await?;
    progress.stage = "waiting for the handshake answer";
    let (mut stream, mut sink) = tunnel.split();
    let my_peer_id = rand::random::<u32>().max(1);
    let (peer_id, node_key) = match mode {
        Mode::Legacy => (
            legacy_handshake(&mut stream, &mut sink, my_peer_id, target).await?,
            None,
        ),
        Mode::Noise => {
            let accepted = secure::handshake(
                &mut stream,
                &mut sink,
                my_peer_id,
                &target.network_name,
                &target.network_secret,
                progress,
            )
            .await?;
            (accepted.peer_id, Some(accepted.node_key))
        }
    };
    Ok(Session {
        stream,
        sink,
        my_peer_id,
        peer_id,
        node_key,
        _tunnel: tunnel,
    })
}

/// Sends our handshake and returns the peer id of the node's answer.
pub(super) async fn legacy_handshake(
    stream: &mut Pin<Box<dyn ZCPacketStream>>,
    sink: &mut Pin<Box<dyn ZCPacketSink>>,
    my_peer_id: u32,
    target: &Target,
) -> Result<u32, Failure> {
    let request = HandshakeRequest {
        magic: MAGIC,
        my_peer_id,
        version: HANDSHAKE_VERSION,
        features: Vec::new(),
        network_name: target.network_name.clone(),
        network_secret_digrest: secret_digest(&target.network_name, &target.network_secret),
    };
    let mut packet = ZCPacket::new_with_payload(&request.encode_to_vec());
    packet.fill_peer_manager_hdr(my_peer_id, 0, PacketType::HandShake as u8);
    sink.send(packet)
        .await
        .map_err(|e| classify_open(e, "sending the handshake"))?;

    let packet = next_packet_of(
        stream,
        PacketType::HandShake as u8,
        "handshake answer",
        "the peer closed the connection without a handshake answer",
    )
    .await?;
    let answer = HandshakeRequest::decode(packet.payload()).map_err(|e| {
        fail(
            ErrorKind::ProtocolError,
            format!("undecodable handshake answer: {e}"),
        )
    })?;
    if answer.magic != MAGIC {
        return Err(fail(
            ErrorKind::ProtocolError,
            format!(
                "handshake answer has magic {:#x}, not EasyTier's",
                answer.magic
            ),
        ));
    }
    Ok(answer.my_peer_id)
}

/// The peer's next packet of `packet_type` (its `what`), the others it sends first skipped (at
/// most [`MAX_SKIPPED_PACKETS`]); `closed` says what a connection closed before it means.
pub(super) async fn next_packet_of(
    stream: &mut Pin<Box<dyn ZCPacketStream>>,
    packet_type: u8,
    what: &str,
    closed: &str,
) -> Result<ZCPacket, Failure> {
    for _ in 0..=MAX_SKIPPED_PACKETS {
        let packet = match stream.next().await {
            Some(Ok(p)) => p,
            Some(Err(e)) => return Err(classify_open(e, &format!("reading the {what}"))),
            None => return Err(fail(ErrorKind::HandshakeRejected, closed)),
        };
        let Some(header) = packet.peer_manager_header() else {
            return Err(fail(
                ErrorKind::ProtocolError,
                "the answer is not an EasyTier packet",
            ));
        };
        if header.packet_type == packet_type {
            return Ok(packet);
        }
    }
    Err(fail(
        ErrorKind::ProtocolError,
        format!("no {what} among the peer's packets"),
    ))
}

/// The secret digest of a network, as both handshakes send it.
pub(super) fn secret_digest(network_name: &str, network_secret: &str) -> Vec<u8> {
    NetworkIdentity::new(network_name.to_string(), network_secret.to_string())
        .network_secret_digest
        .unwrap_or_default()
        .to_vec()
}

/// Transports that lose packets without telling us.
pub(super) fn is_lossy(protocol: &str) -> bool {
    matches!(protocol, "udp" | "wg")
}

/// How long to wait for an answer on a lossy transport before sending again.
pub(super) fn resend_interval(budget: Duration) -> Duration {
    (budget / 10).max(Duration::from_millis(250))
}

/// Sessions started at most per probe on a lossy transport.
pub(super) const MAX_SESSION_ATTEMPTS: usize = 4;

/// Opens a session on a lossy transport: a new attempt starts every [`resend_interval`] while
/// none has opened (earlier ones keep going, so a slow path is not cut short); the first
/// session to open wins.
pub(super) async fn open_session_racing(
    target: &Target,
    addr: SocketAddr,
    budget: Duration,
    mode: Mode,
    progress: &mut Progress,
) -> Result<Session, Failure> {
    let every = resend_interval(budget);
    let within = progress.noise_answer_within;
    let mut attempts = futures::stream::FuturesUnordered::new();
    let mut launched = 0;
    let mut last_error = None;
    loop {
        if launched < MAX_SESSION_ATTEMPTS {
            attempts.push(async move {
                let mut progress = Progress {
                    noise_answer_within: within,
                    ..Progress::default()
                };
                let opened = open_session(target, addr, budget, mode, &mut progress).await;
                (opened, progress.noise_answered)
            });
            launched += 1;
        } else if attempts.is_empty() {
            return Err(last_error.unwrap_or_else(|| fail(ErrorKind::Timeout, "no session opened")));
        }
        let next_launch = tokio::time::sleep(every);
        tokio::pin!(next_launch);
        loop {
            tokio::select! {
                Some((opened, noise_answered)) = attempts.next() => {
                    progress.noise_answered |= noise_answered;
                    match opened {
                        Ok(session) => return Ok(session),
                        Err(e) => last_error = Some(e),
                    }
                }
                _ = &mut next_launch, if launched < MAX_SESSION_ATTEMPTS => break,
                else => break,
            }
            if attempts.is_empty() && launched >= MAX_SESSION_ATTEMPTS {
                break;
            }
        }
    }
}

pub(super) enum Next {
    Packet(ZCPacket),
    Resend,
    Error(TunnelError),
    Closed,
}

/// The next packet, or `Resend` once `resend_at` passes.
pub(super) async fn next_or_resend(
    stream: &mut Pin<Box<dyn ZCPacketStream>>,
    resend_at: Option<Instant>,
) -> Next {
    let next = match resend_at {
        Some(at) => match tokio::time::timeout_at(at.into(), stream.next()).await {
            Ok(next) => next,
            Err(_) => return Next::Resend,
        },
        None => stream.next().await,
    };
    match next {
        Some(Ok(p)) => Next::Packet(p),
        Some(Err(e)) => Next::Error(e),
        None => Next::Closed,
    }
}

/// Opens the tunnel over the target's protocol.
pub(super) async fn connect(
    target: &Target,
    addr: SocketAddr,
    budget: Duration,
) -> Result<Box<dyn Tunnel>, Failure> {
    let scheme = target.protocol.as_str();
    if scheme == "quic" {
        return quic::connect(addr, budget).await;
    }
    let url: url::Url = format!("{scheme}://{addr}/").parse().map_err(|e| {
        fail(
            ErrorKind::ProtocolError,
            format!("cannot form a URL for {addr}: {e}"),
        )
    })?;
    let result = match scheme {
        "tcp" => {
            easytier::tunnel::tcp::TcpTunnelConnector::new(url)
                .connect()
                .await
        }
        "udp" => {
            easytier::tunnel::udp::UdpTunnelConnector::new(url)
                .connect()
                .await
        }
        "ws" | "wss" => {
            easytier::tunnel::websocket::WSTunnelConnector::new(url)
                .connect()
                .await
        }
        "wg" => {
            let config = easytier::tunnel::wireguard::WgConfig::new_from_network_identity(
                &target.network_name,
                &target.network_secret,
            );
            easytier::tunnel::wireguard::WgTunnelConnector::new(url, config)
                .connect()
                .await
        }
        other => {
            return Err(fail(
                ErrorKind::UnsupportedProtocol,
                format!("protocol {other:?} is not supported"),
            ))
        }
    };
    result.map_err(|e| classify(e, "connecting"))
}

/// Classifies an error once the tunnel is open: the peer dropping the connection (however the
/// transport reports it) is a rejection; only undecodable data is a protocol error.
pub(super) fn classify_open(e: TunnelError, during: &str) -> Failure {
    let kind = match &e {
        TunnelError::InvalidPacket(_)
        | TunnelError::ExceedMaxPacketSize(..)
        | TunnelError::InvalidProtocol(_) => ErrorKind::ProtocolError,
        TunnelError::Timeout(_) => ErrorKind::Timeout,
        _ => ErrorKind::HandshakeRejected,
    };
    fail(kind, format!("{during}: {e}"))
}

/// Classifies an error while connecting.
pub(super) fn classify(e: TunnelError, during: &str) -> Failure {
    use std::io::ErrorKind as Io;
    let kind = match &e {
        TunnelError::IOError(io) => match io.kind() {
            Io::ConnectionRefused
            | Io::ConnectionReset
            | Io::ConnectionAborted
            | Io::NotConnected
            | Io::AddrNotAvailable
            | Io::BrokenPipe => ErrorKind::ConnectRefused,
            Io::TimedOut | Io::WouldBlock => ErrorKind::Timeout,
            _ if io.raw_os_error().is_some() => ErrorKind::ConnectRefused,
            _ => ErrorKind::ProtocolError,
        },
        TunnelError::Timeout(_) => ErrorKind::Timeout,
        TunnelError::NoDnsRecordFound(_) => ErrorKind::Dns,
        TunnelError::Shutdown => ErrorKind::HandshakeRejected,
        _ => ErrorKind::ProtocolError,
    };
    fail(kind, format!("{during}: {e}"))
}
