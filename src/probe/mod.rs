//! The probe: a real EasyTier handshake over the peer's protocol, then ping/pong for the RTT.
//! **The only module that uses the `easytier` crate** (with `testkit`, which runs nodes for the
//! demo and the tests).
//!
//! A peer is up only when it answered our handshake *and* a ping: a node that does not accept
//! our network secret still sends its handshake answer before it closes the connection.

mod dns;
mod faketcp;
pub mod indirect;
mod learnt;
pub mod limits;
mod node_info;
mod quic;
mod secure;
mod session;
mod sweep;

pub use dns::Resolver;
pub use quic::{remember_flavours as remember_quic_flavours, remembered_flavours as quic_flavours};
pub use secure::{remember_modes as remember_handshakes, remembered_modes as handshakes};
pub use sweep::{probe_all, Lanes};

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::Utc;
use easytier::tunnel::packet_def::{PacketType, ZCPacket};
use easytier::tunnel::{ZCPacketSink, ZCPacketStream};
use futures::{SinkExt, StreamExt};

use crate::domain::{ErrorKind, Peer, ProbeResult};
use secure::Mode;
use session::{
    classify_open, is_lossy, next_or_resend, open_session, open_session_racing, resend_interval,
    Next, Session,
};

/// How long a session is held before the node's pings are answered.
const ANSWER_PINGS_AFTER: Duration = Duration::from_secs(1);

/// The EasyTier handshake magic and version (unchanged from 2.0 to 2.6).
const MAGIC: u32 = 0xd1e1a5e1;
const HANDSHAKE_VERSION: u32 = 1;
/// Pings after the handshake; the smallest RTT is kept (the first may include the peer's setup).
const PINGS: u32 = 2;
/// How long the node's route sync is waited for after the last pong, when it has not come yet:
/// it mostly comes with the first packets after the handshake, or within 2 ms of the last pong.
/// A busy node sends it later or not at all; waiting for that would cost every sweep (300 ms of
/// grace made a 1000-peer sweep 3.5 times slower), so the last info read is kept instead.
const NODE_INFO_GRACE: Duration = Duration::from_millis(5);
/// Non-handshake packets tolerated before the handshake answer.
const MAX_SKIPPED_PACKETS: usize = 16;

/// What a probe of one peer needs.
#[derive(Debug, Clone)]
pub struct Target {
    pub protocol: String,
    pub host: String,
    pub port: u16,
    pub network_name: String,
    pub network_secret: String,
    /// The peer's own timeout; `None`: the sweep's.
    pub timeout: Option<Duration>,
    /// The handshake the peer entry forces: `Some(true)` Noise (secure mode), `Some(false)`
    /// legacy; `None`: learnt.
    pub secure: Option<bool>,
}

impl Target {
    pub fn for_peer(peer: &Peer, default_secret: &str) -> Self {
        Target {
            protocol: peer.protocol.clone(),
            host: peer.host.clone(),
            port: peer.port,
            network_name: peer.network_name.clone(),
            network_secret: peer
                .network_secret
                .as_ref()
                .map(|s| s.expose().to_string())
                .unwrap_or_else(|| default_secret.to_string()),
            timeout: peer.own_timeout(),
            secure: peer.secure,
        }
    }
}

/// A failed probe: its class and what happened.
#[derive(Debug, Clone)]
struct Failure {
    kind: ErrorKind,
    detail: String,
}

fn fail(kind: ErrorKind, detail: impl Into<String>) -> Failure {
    Failure {
        kind,
        detail: detail.into(),
    }
}

/// How far a probe got, read after a timeout to say where it stopped.
#[derive(Debug, Default)]
struct Progress {
    stage: &'static str,
    rtt_us: Option<u64>,
    /// What the node said of itself, once read.
    node: Option<crate::domain::NodeInfo>,
    /// The node's static key, when the handshake was a Noise one.
    node_key: Option<[u8; 32]>,
    /// Whether a node answered our Noise handshake (so it speaks secure mode).
    noise_answered: bool,
    /// How long a Noise handshake waits for the node's answer (`None`: as long as the probe).
    noise_answer_within: Option<Duration>,
}

/// Probes one peer within `timeout`, its names resolved through `dns`. Never panics the
/// caller: see [`probe_all`].
pub async fn probe(target: &Target, timeout: Duration, dns: &Resolver) -> ProbeResult {
    if indirect::is_indirect(&target.protocol) {
        return indirect::probe(target, timeout, dns).await;
    }
    let checked_at = Utc::now();
    let mut progress = Progress {
        stage: "resolving the host",
        ..Progress::default()
    };
    let outcome = tokio::time::timeout(timeout, attempt(target, timeout, dns, &mut progress)).await;
    let verdict = match outcome {
        Ok(Ok(rtt_us)) => Ok(rtt_us),
        // The peer answered a ping already; a later ping running out of time does not undo that.
        Ok(Err(_)) | Err(_) if progress.rtt_us.is_some() => Ok(progress.rtt_us.unwrap_or(1)),
        Ok(Err(f)) => Err(f),
        Err(_) => Err(fail(
            ErrorKind::Timeout,
            format!("timed out after {timeout:?} {}", progress.stage),
        )),
    };
    match verdict {
        Ok(rtt_us) => ProbeResult {
            up: true,
            rtt_us: Some(rtt_us),
            error_kind: None,
            error: None,
            checked_at,
            candidates: Vec::new(),
            node: progress.node,
            node_key: progress.node_key.map(|k| BASE64.encode(k)),
        },
        Err(f) => ProbeResult {
            up: false,
            rtt_us: None,
            error_kind: Some(f.kind),
            error: Some(f.detail),
            checked_at,
            candidates: Vec::new(),
            node: None,
            node_key: None,
        },
    }
}

async fn attempt(
    target: &Target,
    budget: Duration,
    dns: &Resolver,
    progress: &mut Progress,
) -> Result<u64, Failure> {
    let protocol = target.protocol.as_str();
    if protocol == "faketcp" {
        return Err(faketcp::check(&target.host, target.port, budget, dns).await);
    }
    if !crate::domain::peer::is_supported(protocol) {
        return Err(fail(
            ErrorKind::UnsupportedProtocol,
            format!("protocol {protocol:?} is not one of tcp, udp, ws, wss, quic, wg"),
        ));
    }
    // A name server that never answers is a `dns` failure, not the peer's `timeout`.
    let addr = tokio::time::timeout(budget * 3 / 4, dns.addr(&target.host, target.port))
        .await
        .map_err(|_| {
            fail(
                ErrorKind::Dns,
                format!(
                    "no DNS answer for {:?} within {:?}",
                    target.host,
                    budget * 3 / 4
                ),
            )
        })??;
    let forced = target
        .secure
        .map(|on| if on { Mode::Noise } else { Mode::Legacy });
    let first = forced
        .or_else(|| secure::known_mode(addr, &target.network_name))
        .unwrap_or(Mode::Legacy);
    if forced.is_none() && first == Mode::Legacy && is_lossy(&target.protocol) {
        // Over udp and wg a node that rejects the handshake cannot say so: see `check`.
        return check(target, addr, budget, Mode::Legacy, true, progress).await;
    }
    let started = Instant::now();
    let learnt_noise = forced.is_none() && first == Mode::Noise;
    if learnt_noise {
        // A node learnt as secure may have left secure mode (or another node may have taken
        // its address), and sit silent on a Noise message 1: the legacy one must get its turn.
        progress.noise_answer_within = Some(noise_answer_wait(budget, budget));
    }
    let first_failure = match check(target, addr, budget, first, false, progress).await {
        Ok(rtt_us) => {
            secure::learn(addr, &target.network_name, first);
            return Ok(rtt_us);
        }
        // A node that answered Noise is in secure mode: its verdict on Noise is final.
        Err(f) if forced.is_none() && !progress.noise_answered && falls_back(first, f.kind) => f,
        Err(f) => return Err(f),
    };
    // A node in secure mode rejects the legacy handshake for its own network, and a node no
    // longer in it does not answer the Noise one: the other is tried in the time left.
    // A node without secure mode may sit silent on a Noise message 1 (2.0.3 does) until its
    // own handshake timeout: a node in it answers at once, so the answer is waited for briefly.
    let other = first.other();
    let left = budget.saturating_sub(started.elapsed());
    progress.noise_answer_within = Some(noise_answer_wait(budget, left));
    match check(target, addr, left, other, false, progress).await {
        Ok(rtt_us) => {
            secure::learn(addr, &target.network_name, other);
            Ok(rtt_us)
        }
        // The failure of the handshake the node speaks says more.
        Err(f) if progress.noise_answered == (other == Mode::Noise) => Err(f),
        Err(_) => Err(first_failure),
    }
}

/// Whether a failure of the `tried` handshake (by a node that did not answer Noise) leaves the
/// other handshake worth trying: a rejected legacy one (secure mode), or a Noise one that got
/// no answer (secure mode left). A peer that cannot be reached takes neither.
fn falls_back(tried: Mode, kind: ErrorKind) -> bool {
    match tried {
        Mode::Legacy => kind == ErrorKind::HandshakeRejected,
        Mode::Noise => !matches!(kind, ErrorKind::ConnectRefused | ErrorKind::Dns),
    }
}

/// How long a Noise handshake waits for the node's answer when the node may not speak it:
/// a third of the probe's timeout, at least 500 ms, and never past 9/10 of the time `left`
/// (so the failure is the node's, not the probe's own timeout).
fn noise_answer_wait(budget: Duration, left: Duration) -> Duration {
    (budget / 3)
        .max(Duration::from_millis(500))
        .min(left * 9 / 10)
}

/// Opens a session with the `mode` handshake and pings the peer.
///
/// With `noise_on_silence` (a legacy handshake over udp or wg to a peer of unknown mode): a node
/// in secure mode answers the legacy handshake for its own network, then drops the session
/// without a word, which over udp looks like lost pongs. So when no pong has come for
/// [`silence_before_noise`], a Noise check starts beside the pings; the first to succeed wins.
async fn check(
    target: &Target,
    addr: SocketAddr,
    budget: Duration,
    mode: Mode,
    noise_on_silence: bool,
    progress: &mut Progress,
) -> Result<u64, Failure> {
    let started = Instant::now();
    // udp and wg carry our packets without retransmission, and their connectors wait forever
    // for an answer to their one opening packet: while a session has not opened, another is
    // started beside it every little while, and a ping without pong is sent again.
    let lossy = is_lossy(&target.protocol);
    let session = if lossy {
        progress.stage = "opening a session (connect and handshake)";
        open_session_racing(target, addr, budget, mode, progress).await?
    } else {
        open_session(target, addr, budget, mode, progress).await?
    };
    progress.node_key = session.node_key;
    let resend = lossy.then(|| resend_interval(budget));
    progress.stage = "waiting for the pong after the handshake";
    let key = node_info::key(&target.network_secret);
    if !noise_on_silence {
        return ping_pong(session, resend, &key, progress).await;
    }
    let silence = silence_before_noise(budget);
    let (pongs, noise) = {
        let pings = ping_pong(session, resend, &key, progress);
        let noise = async {
            tokio::time::sleep(silence).await;
            let left = budget.saturating_sub(started.elapsed());
            let mut beside = Progress::default();
            let checked =
                Box::pin(check(target, addr, left, Mode::Noise, false, &mut beside)).await;
            (checked, beside)
        };
        // A node that answered Noise speaks secure mode: its verdict on Noise is the verdict.
        first_decisive(pings, noise, |(r, beside)| {
            r.is_ok() || beside.noise_answered
        })
        .await
    };
    match (pongs, noise) {
        (Some(Ok(rtt_us)), _) => Ok(rtt_us),
        (_, Some((Ok(rtt_us), beside))) => {
            secure::learn(addr, &target.network_name, Mode::Noise);
            progress.node_key = beside.node_key;
            progress.rtt_us = Some(rtt_us);
            Ok(rtt_us)
        }
        (_, Some((Err(f), beside))) if beside.noise_answered => Err(f),
        (Some(Err(f)), _) => Err(f),
        (None, _) => Err(fail(ErrorKind::Timeout, "no pong")),
    }
}

/// How long a legacy session over udp or wg may go without a pong before Noise is tried.
fn silence_before_noise(budget: Duration) -> Duration {
    resend_interval(budget) * 2
}

/// Runs `a` and `b` until `a` succeeds, `b` ends in a way `decides` says settles it, or both
/// have ended.
async fn first_decisive<B, T>(
    a: impl std::future::Future<Output = Result<T, Failure>>,
    b: impl std::future::Future<Output = B>,
    decides: impl Fn(&B) -> bool,
) -> (Option<Result<T, Failure>>, Option<B>) {
    tokio::pin!(a, b);
    let (mut a_out, mut b_out) = (None, None);
    while a_out.is_none() || b_out.is_none() {
        tokio::select! {
            out = &mut a, if a_out.is_none() => {
                let won = out.is_ok();
                a_out = Some(out);
                if won { break; }
            }
            out = &mut b, if b_out.is_none() => {
                let settled = decides(&out);
                b_out = Some(out);
                if settled { break; }
            }
        }
    }
    (a_out, b_out)
}

/// Pings the peer [`PINGS`] times on `session` (resending a ping every `resend` while its pong
/// is missing) and returns the smallest round trip, microseconds.
/// The node's route sync, read on the way with `key`, goes into `progress`; when it has not come
/// by the last pong, it is waited for [`NODE_INFO_GRACE`] more.
async fn ping_pong(
    session: Session,
    resend: Option<Duration>,
    key: &[u8; 16],
    progress: &mut Progress,
) -> Result<u64, Failure> {
    let Session {
        mut stream,
        mut sink,
        my_peer_id,
        peer_id,
        _tunnel,
        ..
    } = session;
    let opened = Instant::now();
    let mut best: Option<u64> = None;
    // Every ping gets its own sequence number; a pong is timed from the ping it answers.
    let mut sent: Vec<(u32, Instant)> = Vec::new();
    for _ in 0..PINGS {
        let mut seq = sent.len() as u32;
        let ping = |seq: u32| {
            let mut ping = ZCPacket::new_with_payload(&seq.to_le_bytes());
            ping.fill_peer_manager_hdr(my_peer_id, peer_id, PacketType::Ping as u8);
            ping
        };
        sink.send(ping(seq))
            .await
            .map_err(|e| classify_open(e, "sending a ping"))?;
        sent.push((seq, Instant::now()));
        let mut resend_at = resend.map(|r| Instant::now() + r);
        loop {
            let packet = match next_or_resend(&mut stream, resend_at).await {
                Next::Packet(p) => p,
                Next::Resend => {
                    seq = sent.len() as u32;
                    sink.send(ping(seq))
                        .await
                        .map_err(|e| classify_open(e, "sending a ping"))?;
                    sent.push((seq, Instant::now()));
                    resend_at = resend.map(|r| Instant::now() + r);
                    continue;
                }
                Next::Error(e) => return Err(classify_open(e, "waiting for the pong")),
                Next::Closed => {
                    return Err(fail(
                        ErrorKind::HandshakeRejected,
                        "the peer answered the handshake, then closed the connection \
                         (network secret not accepted?)",
                    ))
                }
            };
            let packet_type = packet.peer_manager_header().map(|h| h.packet_type);
            if packet_type == Some(PacketType::Ping as u8) {
                // A node drops a peer that leaves its pings unanswered (upstream: 5 in a row, 2 s
                // apart). A session held that long gets them answered as a node answers them;
                // a quick one does not need it, and answering every first ping cost a 1000-peer
                // sweep half its time again (175 → 257 ms, the nodes' CPU 272 → 425 ms).
                if opened.elapsed() >= ANSWER_PINGS_AFTER {
                    answer_ping(&mut sink, packet).await;
                }
                continue;
            }
            if packet_type != Some(PacketType::Pong as u8) {
                if progress.node.is_none() {
                    progress.node = node_info::read(&packet, peer_id, key);
                }
                continue;
            }
            if let Some(at) = answered_ping(&packet, &sent) {
                let rtt = (at.elapsed().as_micros() as u64).max(1);
                best = Some(best.map_or(rtt, |b| b.min(rtt)));
                progress.rtt_us = best;
                break;
            }
        }
    }
    let best = best.ok_or_else(|| fail(ErrorKind::Timeout, "no pong"))?;
    await_node_info(&mut stream, peer_id, key, progress).await;
    Ok(best)
}

/// When the ping that `pong` answers was sent (its sequence number is the payload).
fn answered_ping(pong: &ZCPacket, sent: &[(u32, Instant)]) -> Option<Instant> {
    let seq = pong
        .payload()
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)?;
    sent.iter().find(|(q, _)| *q == seq).map(|(_, at)| *at)
}

/// Sends the node's ping back as its pong, as EasyTier does: the same packet, its type changed.
async fn answer_ping(sink: &mut Pin<Box<dyn ZCPacketSink>>, mut ping: ZCPacket) {
    if let Some(header) = ping.mut_peer_manager_header() {
        header.packet_type = PacketType::Pong as u8;
        // A lost pong costs the node nothing it does not have already: our verdict stands.
        let _ = sink.send(ping).await;
    }
}

/// Reads the node's route sync for at most [`NODE_INFO_GRACE`], unless it came already.
async fn await_node_info(
    stream: &mut Pin<Box<dyn ZCPacketStream>>,
    peer_id: u32,
    key: &[u8; 16],
    progress: &mut Progress,
) {
    let grace = tokio::time::Instant::now() + NODE_INFO_GRACE;
    while progress.node.is_none() {
        match tokio::time::timeout_at(grace, stream.next()).await {
            Ok(Some(Ok(packet))) => progress.node = node_info::read(&packet, peer_id, key),
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The system resolver: every test here names hosts as IP literals or `localhost`.
    async fn probe(target: &Target, timeout: Duration) -> ProbeResult {
        super::probe(target, timeout, &Resolver::default()).await
    }

    async fn probe_all(
        targets: Vec<Target>,
        timeout: Duration,
        lanes: Lanes,
        deadline: Option<tokio::time::Instant>,
    ) -> Vec<ProbeResult> {
        super::probe_all(targets, timeout, lanes, deadline, &Resolver::default()).await
    }

    fn target(protocol: &str, host: &str, port: u16) -> Target {
        Target {
            protocol: protocol.into(),
            host: host.into(),
            port,
            network_name: "n".into(),
            network_secret: String::new(),
            timeout: None,
            secure: None,
        }
    }

    #[tokio::test]
    async fn unknown_protocols_are_unsupported() {
        for p in ["gopher", "faketcp6", ""] {
            let r = probe(&target(p, "127.0.0.1", 1), Duration::from_secs(1)).await;
            assert!(!r.up);
            assert_eq!(r.error_kind, Some(ErrorKind::UnsupportedProtocol), "{p}");
        }
    }

    #[tokio::test]
    async fn txt_and_srv_peers_fail_on_names_no_server_could_hold_without_a_query() {
        let long = format!("{}.example", "a".repeat(64));
        for p in ["txt", "srv"] {
            for (host, says) in [
                ("127.0.0.1", "is an IP address"),
                ("[::1]", "is an IP address"),
                (long.as_str(), "label"),
            ] {
                let r = probe(&target(p, host, 0), Duration::from_secs(1)).await;
                assert!(!r.up);
                assert_eq!(r.error_kind, Some(ErrorKind::ResolveFailed), "{p} {host}");
                assert!(
                    r.error.as_deref().unwrap().contains(says),
                    "{p}: {:?}",
                    r.error
                );
            }
        }
    }

    #[tokio::test]
    async fn faketcp_says_only_what_its_tcp_port_shows() {
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        for (port, state) in [
            (open.local_addr().unwrap().port(), "is open"),
            (closed_port, "is closed"),
        ] {
            let r = probe(
                &target("faketcp", "127.0.0.1", port),
                Duration::from_secs(2),
            )
            .await;
            assert!(!r.up);
            assert_eq!(
                r.error_kind,
                Some(ErrorKind::UnsupportedProtocol),
                "{:?}",
                r.error
            );
            let error = r.error.unwrap_or_default();
            assert!(
                error.contains("raw sockets") && error.contains(state),
                "{error}"
            );
        }
    }

    #[tokio::test]
    async fn impossible_names_fail_as_dns_before_any_query() {
        let long = "a".repeat(254);
        let label = format!("{}.example", "b".repeat(64));
        for host in [long.as_str(), label.as_str(), "bad host", "a..b"] {
            let r = probe(&target("tcp", host, 1), Duration::from_secs(1)).await;
            assert_eq!(r.error_kind, Some(ErrorKind::Dns), "{host}: {:?}", r.error);
        }
    }

    #[tokio::test]
    async fn more_unresponsive_peers_than_the_concurrency_all_get_a_verdict() {
        // Listeners that accept and never speak: each probe holds its slot for the timeout.
        let mut listeners = Vec::new();
        for _ in 0..6 {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            listeners.push(l);
        }
        let targets: Vec<Target> = listeners
            .iter()
            .map(|l| target("tcp", "127.0.0.1", l.local_addr().unwrap().port()))
            .collect();
        let started = Instant::now();
        let results = probe_all(targets, Duration::from_millis(300), Lanes::one(2), None).await;
        assert_eq!(results.len(), 6);
        for r in &results {
            assert_eq!(r.error_kind, Some(ErrorKind::Timeout), "{:?}", r.error);
        }
        // Two at a time, three rounds of the 300 ms timeout: the bound was kept.
        assert!(
            started.elapsed() >= Duration::from_millis(850),
            "{:?}",
            started.elapsed()
        );
        drop(listeners);
    }

    #[tokio::test]
    async fn peers_waiting_out_their_timeout_do_not_hold_up_the_others() {
        // Four silent listeners (down last time, probed first) in a lane of 3, and six closed
        // ports, answered at once, in a lane of 1. In one lane the four would take every slot
        // for the whole timeout and the others would start only after it.
        let mut listeners = Vec::new();
        for _ in 0..4 {
            listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let mut targets: Vec<Target> = listeners
            .iter()
            .map(|l| target("tcp", "127.0.0.1", l.local_addr().unwrap().port()))
            .collect();
        for _ in 0..6 {
            let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            targets.push(target(
                "tcp",
                "127.0.0.1",
                closed.local_addr().unwrap().port(),
            ));
        }
        let lanes = Lanes {
            waiting: 4,
            waiting_width: 3,
            width: 1,
        };
        let results = probe_all(targets, Duration::from_secs(1), lanes, None).await;
        let (waiting, others) = results.split_at(4);
        let first = waiting.iter().map(|r| r.checked_at).min().unwrap();
        for r in waiting {
            assert_eq!(r.error_kind, Some(ErrorKind::Timeout), "{:?}", r.error);
        }
        for r in others {
            assert_eq!(
                r.error_kind,
                Some(ErrorKind::ConnectRefused),
                "{:?}",
                r.error
            );
            let after = r.checked_at - first;
            assert!(after < chrono::Duration::milliseconds(500), "{after}");
        }
        drop(listeners);
    }

    #[tokio::test]
    async fn a_target_with_its_own_timeout_is_held_to_it() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let mut own = target("tcp", "127.0.0.1", port);
        own.timeout = Some(Duration::from_millis(200));
        let sweeps = target("tcp", "127.0.0.1", port);
        let results = probe_all(
            vec![own, sweeps],
            Duration::from_millis(700),
            Lanes::one(2),
            None,
        )
        .await;
        for (r, after) in results.iter().zip(["200ms", "700ms"]) {
            assert_eq!(r.error_kind, Some(ErrorKind::Timeout), "{:?}", r.error);
            let error = r.error.as_deref().unwrap_or_default();
            assert!(error.contains(&format!("after {after}")), "{error}");
        }
        drop(l);
    }

    #[tokio::test]
    async fn a_closed_tcp_port_is_refused() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let r = probe(&target("tcp", "127.0.0.1", port), Duration::from_secs(2)).await;
        assert_eq!(
            r.error_kind,
            Some(ErrorKind::ConnectRefused),
            "{:?}",
            r.error
        );
        let r = probe(&target("tcp", "localhost", port), Duration::from_secs(2)).await;
        assert_eq!(
            r.error_kind,
            Some(ErrorKind::ConnectRefused),
            "{:?}",
            r.error
        );
    }

    #[tokio::test]
    async fn a_silent_service_times_out_and_a_chatty_one_is_a_protocol_error() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let _keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        let r = probe(
            &target("tcp", "127.0.0.1", port),
            Duration::from_millis(500),
        )
        .await;
        assert_eq!(r.error_kind, Some(ErrorKind::Timeout), "{:?}", r.error);
        assert!(r.error.unwrap().contains("handshake"));

        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = http.local_addr().unwrap().port();
        let _serve = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Ok((mut s, _)) = http.accept().await {
                let _ = s.write_all(&[0xff; 64]).await;
            }
        });
        let r = probe(&target("tcp", "127.0.0.1", port), Duration::from_secs(2)).await;
        assert!(!r.up);
        assert!(
            matches!(
                r.error_kind,
                Some(ErrorKind::ProtocolError | ErrorKind::HandshakeRejected)
            ),
            "{:?} {:?}",
            r.error_kind,
            r.error
        );
    }

    /// A node pings its peers too, and drops one that leaves its pings unanswered: the probe
    /// answers them as a node does once it has held the session a while. This node pings at
    /// once (too early to need an answer) and again after 1.2 s, and answers the probe's pings
    /// only once a ping of its own came back as a pong with its payload.
    #[tokio::test]
    async fn the_nodes_pings_are_answered_on_a_session_held_long() {
        use easytier::proto::peer_rpc::HandshakeRequest;
        use easytier::tunnel::tcp::TcpTunnelListener;
        use easytier::tunnel::TunnelListener;
        use prost::Message;
        let port = crate::testkit::free_port();
        let mut listener =
            TcpTunnelListener::new(format!("tcp://127.0.0.1:{port}").parse().unwrap());
        listener.listen().await.unwrap();
        let node = tokio::spawn(async move {
            let tunnel = listener.accept().await.unwrap();
            let (mut stream, sink) = tunnel.split();
            let sink = std::sync::Arc::new(tokio::sync::Mutex::new(sink));
            let request = stream.next().await.unwrap().unwrap();
            let probe_id = request.peer_manager_header().unwrap().from_peer_id.get();
            let answer = HandshakeRequest {
                magic: MAGIC,
                my_peer_id: 77,
                version: HANDSHAKE_VERSION,
                network_name: "n".into(),
                ..Default::default()
            };
            let mut packet = ZCPacket::new_with_payload(&answer.encode_to_vec());
            packet.fill_peer_manager_hdr(77, 0, PacketType::HandShake as u8);
            sink.lock().await.send(packet).await.unwrap();
            let ping = move |payload: &'static [u8]| {
                let mut ping = ZCPacket::new_with_payload(payload);
                ping.fill_peer_manager_hdr(77, probe_id, PacketType::Ping as u8);
                ping
            };
            sink.lock().await.send(ping(b"early")).await.unwrap();
            let later = sink.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1200)).await;
                let _ = later.lock().await.send(ping(b"later")).await;
            });
            // The probe's pings, held until the node's own ping has come back.
            let (mut answered, mut held) = (Vec::new(), Vec::new());
            while let Some(Ok(mut p)) = stream.next().await {
                let header = p.mut_peer_manager_header().unwrap();
                if header.packet_type == PacketType::Pong as u8 {
                    answered.push(p.payload().to_vec());
                } else if header.packet_type == PacketType::Ping as u8 {
                    header.packet_type = PacketType::Pong as u8;
                    held.push(p);
                }
                if !answered.is_empty() {
                    for pong in held.drain(..) {
                        sink.lock().await.send(pong).await.unwrap();
                    }
                }
            }
            answered
        });
        let r = probe(&target("tcp", "127.0.0.1", port), Duration::from_secs(3)).await;
        assert!(r.up, "{:?} {:?}", r.error_kind, r.error);
        assert_eq!(
            node.await.unwrap(),
            vec![b"later".to_vec()],
            "pongs the node got"
        );
    }

    /// A peer that answers the handshake and then goes quiet (or hangs up), as a node does that
    /// does not accept our secret: never up. The rule "up only after a pong" is what holds here.
    #[tokio::test]
    async fn a_handshake_answer_without_a_pong_is_never_up() {
        use easytier::proto::peer_rpc::HandshakeRequest;
        use easytier::tunnel::tcp::TcpTunnelListener;
        use easytier::tunnel::TunnelListener;
        use prost::Message;
        for close_after in [false, true] {
            let port = crate::testkit::free_port();
            let mut listener =
                TcpTunnelListener::new(format!("tcp://127.0.0.1:{port}").parse().unwrap());
            listener.listen().await.unwrap();
            let script = tokio::spawn(async move {
                let Ok(tunnel) = listener.accept().await else {
                    return;
                };
                let (mut stream, mut sink) = tunnel.split();
                let Some(Ok(_request)) = stream.next().await else {
                    return;
                };
                let answer = HandshakeRequest {
                    magic: MAGIC,
                    my_peer_id: 77,
                    version: HANDSHAKE_VERSION,
                    features: Vec::new(),
                    network_name: "n".into(),
                    network_secret_digrest: vec![0; 32],
                };
                let mut packet = ZCPacket::new_with_payload(&answer.encode_to_vec());
                packet.fill_peer_manager_hdr(77, 0, PacketType::HandShake as u8);
                let _ = sink.send(packet).await;
                if close_after {
                    drop(sink);
                    drop(stream);
                    return;
                }
                // Silent: reads whatever comes (pings) and answers nothing.
                while let Some(Ok(_)) = stream.next().await {}
            });
            let r = probe(&target("tcp", "127.0.0.1", port), Duration::from_secs(1)).await;
            assert!(
                !r.up,
                "close_after {close_after}: up on a handshake answer alone"
            );
            script.abort();
        }
    }
}
