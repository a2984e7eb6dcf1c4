//! Secure mode (EasyTier 2.6 and later, opt-in per network): a node whose network is in secure
//! mode takes only a Noise handshake for that network, and rejects the legacy one. Foreign
//! network names still get the legacy handshake.
//!
//! The client side of EasyTier's `Noise_XX_25519_ChaChaPoly_SHA256` handshake (prologue
//! `easytier-peerconn-noise`), packets 13, 14 and 15 with the protobuf messages below in their
//! Noise payloads. Each side proves it knows the network secret with
//! HMAC-SHA256(secret, "easytier secret proof" ‖ handshake hash). The probe's static key is
//! fresh per attempt; the node's static key (sent in message 2) is its fingerprint.
//! Ping and pong are not session-encrypted, so the RTT is measured as after a legacy
//! handshake; the node's route sync is, so its info cannot be read from a secure session.
//!
//! Which handshake a peer needs is learnt and kept per address and network
//! ([`remembered_modes`], [`remember_modes`]), as the QUIC flavours are.

use std::net::SocketAddr;
use std::pin::Pin;

use easytier::tunnel::packet_def::ZCPacket;
use easytier::tunnel::{ZCPacketSink, ZCPacketStream};
use futures::SinkExt;
use prost::Message;
use ring::hmac;

use super::learnt::{Learnt, Named};
use super::session::{classify_open, next_packet_of, secret_digest};
use super::{fail, Failure, HANDSHAKE_VERSION};
use crate::domain::ErrorKind;

/// The packet types of the three Noise messages.
const MSG1: u8 = 13;
const MSG2: u8 = 14;
const MSG3: u8 = 15;
const PARAMS: &str = "Noise_XX_25519_ChaChaPoly_SHA256";
const PROLOGUE: &[u8] = b"easytier-peerconn-noise";
const PROOF_PREFIX: &[u8] = b"easytier secret proof";
/// The session cipher asked for: EasyTier's default.
const CIPHER: &str = "aes-gcm";
/// Largest Noise message (as EasyTier's own buffers).
const MAX_MESSAGE: usize = 4096;
/// `role_hint` of a node in the network named: it must prove the secret.
const SAME_NETWORK: u32 = 1;

/// Which handshake a peer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Legacy,
    Noise,
}

impl Mode {
    pub fn other(self) -> Mode {
        match self {
            Mode::Legacy => Mode::Noise,
            Mode::Noise => Mode::Legacy,
        }
    }
}

impl Named for Mode {
    const ALL: &'static [Mode] = &[Mode::Legacy, Mode::Noise];

    fn name(self) -> &'static str {
        match self {
            Mode::Legacy => "legacy",
            Mode::Noise => "noise",
        }
    }
}

#[derive(Clone, PartialEq, Message)]
struct Uuid {
    #[prost(uint32, tag = "1")]
    part1: u32,
    #[prost(uint32, tag = "2")]
    part2: u32,
    #[prost(uint32, tag = "3")]
    part3: u32,
    #[prost(uint32, tag = "4")]
    part4: u32,
}

impl Uuid {
    fn random() -> Uuid {
        Uuid {
            part1: rand::random(),
            part2: rand::random(),
            part3: rand::random(),
            part4: rand::random(),
        }
    }
}

#[derive(Clone, PartialEq, Message)]
struct Msg1 {
    #[prost(uint32, tag = "1")]
    version: u32,
    #[prost(string, tag = "2")]
    a_network_name: String,
    #[prost(uint32, optional, tag = "3")]
    a_session_generation: Option<u32>,
    #[prost(message, optional, tag = "4")]
    a_conn_id: Option<Uuid>,
    #[prost(string, tag = "5")]
    client_encryption_algorithm: String,
}

#[derive(Clone, PartialEq, Message)]
struct Msg2 {
    #[prost(string, tag = "1")]
    b_network_name: String,
    #[prost(uint32, tag = "2")]
    role_hint: u32,
    #[prost(message, optional, tag = "7")]
    b_conn_id: Option<Uuid>,
    #[prost(message, optional, tag = "8")]
    a_conn_id_echo: Option<Uuid>,
    #[prost(bytes = "vec", optional, tag = "9")]
    secret_proof_32: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct Msg3 {
    #[prost(message, optional, tag = "1")]
    a_conn_id_echo: Option<Uuid>,
    #[prost(message, optional, tag = "2")]
    b_conn_id_echo: Option<Uuid>,
    #[prost(bytes = "vec", optional, tag = "3")]
    secret_proof_32: Option<Vec<u8>>,
    #[prost(bytes = "vec", tag = "4")]
    secret_digest: Vec<u8>,
}

/// What the node proved in a Noise handshake.
#[derive(Debug, Clone, Copy)]
pub(super) struct Accepted {
    pub peer_id: u32,
    /// The node's static X25519 public key.
    pub node_key: [u8; 32],
}

fn noise_error(e: snow::Error) -> Failure {
    fail(ErrorKind::ProtocolError, format!("Noise handshake: {e}"))
}

fn proof(secret: &str, handshake_hash: &[u8]) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(PROOF_PREFIX);
    ctx.update(handshake_hash);
    ctx.sign()
}

/// Runs the Noise handshake as the client on an open tunnel: message 1, the node's message 2
/// (its proof of the secret checked when it is in the network named), message 3 with ours.
/// The node accepting our proof shows only in its answering our pings.
pub(super) async fn handshake(
    stream: &mut Pin<Box<dyn ZCPacketStream>>,
    sink: &mut Pin<Box<dyn ZCPacketSink>>,
    my_peer_id: u32,
    network_name: &str,
    network_secret: &str,
    progress: &mut super::Progress,
) -> Result<Accepted, Failure> {
    let mut hs = initiator()?;
    let a_conn_id = Uuid::random();
    let msg1 = Msg1 {
        version: HANDSHAKE_VERSION,
        a_network_name: network_name.to_string(),
        a_session_generation: None,
        a_conn_id: Some(a_conn_id.clone()),
        client_encryption_algorithm: CIPHER.to_string(),
    };
    send(sink, &mut hs, &msg1.encode_to_vec(), my_peer_id, 0, MSG1).await?;
    // The node proves the secret over the hash as it stood after message 1.
    let node_proof_over = hs.get_handshake_hash().to_vec();

    let (peer_id, payload) = match progress.noise_answer_within {
        Some(within) => tokio::time::timeout(within, next_message_2(stream))
            .await
            .map_err(|_| {
                fail(
                    ErrorKind::Timeout,
                    format!("no answer to the Noise handshake within {within:?}"),
                )
            })??,
        None => next_message_2(stream).await?,
    };
    let (msg2, node_key) = read_message_2(&mut hs, &payload, &a_conn_id)?;
    progress.noise_answered = true;
    if msg2.b_network_name == network_name || msg2.role_hint == SAME_NETWORK {
        check_node_proof(&msg2, network_secret, &node_proof_over)?;
    }
    let our_proof = proof(network_secret, hs.get_handshake_hash());
    let msg3 = Msg3 {
        a_conn_id_echo: Some(a_conn_id),
        b_conn_id_echo: msg2.b_conn_id,
        secret_proof_32: Some(our_proof.as_ref().to_vec()),
        secret_digest: secret_digest(network_name, network_secret),
    };
    let msg3 = msg3.encode_to_vec();
    send(sink, &mut hs, &msg3, my_peer_id, peer_id, MSG3).await?;
    Ok(Accepted { peer_id, node_key })
}

/// The initiator's handshake state, with a fresh static key of our own.
fn initiator() -> Result<snow::HandshakeState, Failure> {
    let keys = snow::Builder::new(PARAMS.parse().map_err(noise_error)?)
        .generate_keypair()
        .map_err(noise_error)?;
    snow::Builder::new(PARAMS.parse().map_err(noise_error)?)
        .prologue(PROLOGUE)
        .and_then(|b| b.local_private_key(&keys.private))
        .and_then(|b| b.build_initiator())
        .map_err(noise_error)
}

/// Decrypts and decodes the node's message 2, which must echo our connection id; with the
/// node's static key.
fn read_message_2(
    hs: &mut snow::HandshakeState,
    payload: &[u8],
    a_conn_id: &Uuid,
) -> Result<(Msg2, [u8; 32]), Failure> {
    let mut plain = vec![0u8; MAX_MESSAGE];
    let n = hs
        .read_message(payload, &mut plain)
        .map_err(|e| fail(ErrorKind::ProtocolError, format!("Noise message 2: {e}")))?;
    let msg2 = Msg2::decode(&plain[..n]).map_err(|e| {
        fail(
            ErrorKind::ProtocolError,
            format!("undecodable Noise message 2: {e}"),
        )
    })?;
    if msg2.a_conn_id_echo.as_ref() != Some(a_conn_id) {
        return Err(fail(
            ErrorKind::ProtocolError,
            "Noise message 2 echoes another connection id",
        ));
    }
    let node_key: [u8; 32] = hs
        .get_remote_static()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| {
            fail(
                ErrorKind::ProtocolError,
                "Noise message 2 without a static key",
            )
        })?;
    Ok((msg2, node_key))
}

/// A node in the network named proves it knows the secret (over the hash after message 1).
fn check_node_proof(msg2: &Msg2, network_secret: &str, over: &[u8]) -> Result<(), Failure> {
    let Some(theirs) = msg2.secret_proof_32.as_deref() else {
        return Err(fail(
            ErrorKind::HandshakeRejected,
            "the node is in this network but gave no proof of its secret",
        ));
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, network_secret.as_bytes());
    if hmac::verify(&key, &[PROOF_PREFIX, over].concat(), theirs).is_err() {
        return Err(fail(
            ErrorKind::HandshakeRejected,
            "the node's proof of the network secret does not match ours \
             (network secret not accepted?)",
        ));
    }
    Ok(())
}

async fn send(
    sink: &mut Pin<Box<dyn ZCPacketSink>>,
    hs: &mut snow::HandshakeState,
    payload: &[u8],
    from: u32,
    to: u32,
    packet_type: u8,
) -> Result<(), Failure> {
    let mut message = vec![0u8; MAX_MESSAGE];
    let n = hs
        .write_message(payload, &mut message)
        .map_err(noise_error)?;
    let mut packet = ZCPacket::new_with_payload(&message[..n]);
    packet.fill_peer_manager_hdr(from, to, packet_type);
    sink.send(packet)
        .await
        .map_err(|e| classify_open(e, "sending a Noise message"))
}

/// The node's message 2: its peer id and the Noise message.
async fn next_message_2(
    stream: &mut Pin<Box<dyn ZCPacketStream>>,
) -> Result<(u32, Vec<u8>), Failure> {
    let packet = next_packet_of(
        stream,
        MSG2,
        "Noise message 2",
        "the peer closed the connection without answering the Noise handshake \
         (not in secure mode?)",
    )
    .await?;
    let from = packet
        .peer_manager_header()
        .map(|h| h.from_peer_id.get())
        .unwrap_or_default();
    Ok((from, packet.payload().to_vec()))
}

/// The key that a handshake mode is learnt under: a node may be in secure mode for one network
/// and relay others with the legacy handshake.
type ModeKey = (SocketAddr, String);

static LEARNT: Learnt<ModeKey, Mode> = Learnt::new();

/// The handshake that last worked at `addr` for `network`.
pub(super) fn known_mode(addr: SocketAddr, network: &str) -> Option<Mode> {
    LEARNT.get(&(addr, network.to_string()))
}

/// Keeps the handshake that worked; only Noise is kept (legacy is what an unknown peer gets).
pub(super) fn learn(addr: SocketAddr, network: &str, mode: Mode) {
    LEARNT.set(
        (addr, network.to_string()),
        (mode == Mode::Noise).then_some(mode),
    );
}

/// The handshake that worked per `"address network"` (`"legacy"` / `"noise"`), for the store.
pub fn remembered_modes() -> Vec<(String, &'static str)> {
    LEARNT.dump(|(addr, network)| format!("{addr} {network}"))
}

/// Takes the modes kept from earlier sweeps; unknown names and bad keys are skipped.
pub fn remember_modes<'a>(kept: impl IntoIterator<Item = (&'a str, &'a str)>) {
    LEARNT.load(kept, |key| {
        let (addr, network) = key.split_once(' ')?;
        Some((addr.parse().ok()?, network.to_string()))
    });
}

#[cfg(test)]
mod tests {
    use easytier::tunnel::packet_def::PacketType;
    use easytier::tunnel::tcp::TcpTunnelListener;
    use easytier::tunnel::TunnelListener;
    use futures::StreamExt;

    use super::*;
    use crate::domain::ProbeResult;
    use crate::probe::{probe, Resolver, Target};

    /// What the scripted node puts in its message 2.
    #[derive(Clone, Copy, PartialEq)]
    enum Node {
        /// A node of the network that knows the secret.
        Honest,
        /// A node of the network with another secret.
        OtherSecret,
        /// A node of the network that gives no proof.
        NoProof,
        /// A node that echoes another connection id.
        OtherConnId,
    }

    /// A node in secure mode for network `n` (secret `s3cret` unless `OtherSecret`), scripted
    /// with snow's responder: message 1, message 2 as `node` says, then message 3 (whose proof
    /// it checks) and pongs. Returns the probe's verdict, whether message 3 came, and the
    /// node's public key.
    async fn probe_scripted(node: Node) -> (ProbeResult, bool, Vec<u8>) {
        let port = crate::testkit::free_port();
        let mut listener =
            TcpTunnelListener::new(format!("tcp://127.0.0.1:{port}").parse().unwrap());
        listener.listen().await.unwrap();
        let keys = snow::Builder::new(PARAMS.parse().unwrap())
            .generate_keypair()
            .unwrap();
        let public = keys.public.clone();
        let script = tokio::spawn(async move {
            let tunnel = listener.accept().await.unwrap();
            let (mut stream, mut sink) = tunnel.split();
            let mut hs = snow::Builder::new(PARAMS.parse().unwrap())
                .prologue(PROLOGUE)
                .unwrap()
                .local_private_key(&keys.private)
                .unwrap()
                .build_responder()
                .unwrap();
            let packet = stream.next().await.unwrap().unwrap();
            let probe_id = packet.peer_manager_header().unwrap().from_peer_id.get();
            let mut plain = vec![0u8; MAX_MESSAGE];
            let n = hs.read_message(packet.payload(), &mut plain).unwrap();
            let msg1 = Msg1::decode(&plain[..n]).unwrap();
            assert_eq!(msg1.a_network_name, "n");
            let secret = if node == Node::OtherSecret {
                "other"
            } else {
                "s3cret"
            };
            let msg2 = Msg2 {
                b_network_name: "n".into(),
                role_hint: SAME_NETWORK,
                b_conn_id: Some(Uuid::random()),
                a_conn_id_echo: match node {
                    Node::OtherConnId => Some(Uuid::random()),
                    _ => msg1.a_conn_id,
                },
                secret_proof_32: (node != Node::NoProof)
                    .then(|| proof(secret, hs.get_handshake_hash()).as_ref().to_vec()),
            };
            let mut message = vec![0u8; MAX_MESSAGE];
            let n = hs
                .write_message(&msg2.encode_to_vec(), &mut message)
                .unwrap();
            let mut packet = ZCPacket::new_with_payload(&message[..n]);
            packet.fill_peer_manager_hdr(77, probe_id, MSG2);
            sink.send(packet).await.unwrap();
            let mut got_msg3 = false;
            while let Some(Ok(mut p)) = stream.next().await {
                let header = p.mut_peer_manager_header().unwrap();
                if header.packet_type == MSG3 {
                    let proof_over = hs.get_handshake_hash().to_vec();
                    let n = hs.read_message(p.payload(), &mut plain).unwrap();
                    let msg3 = Msg3::decode(&plain[..n]).unwrap();
                    let ours = proof("s3cret", &proof_over);
                    assert_eq!(msg3.secret_proof_32.as_deref(), Some(ours.as_ref()));
                    got_msg3 = true;
                } else if header.packet_type == PacketType::Ping as u8 && got_msg3 {
                    header.packet_type = PacketType::Pong as u8;
                    sink.send(p).await.unwrap();
                }
            }
            got_msg3
        });
        let target = Target {
            protocol: "tcp".into(),
            host: "127.0.0.1".into(),
            port,
            network_name: "n".into(),
            network_secret: "s3cret".into(),
            timeout: None,
            secure: Some(true),
        };
        let r = probe(
            &target,
            std::time::Duration::from_secs(2),
            &Resolver::default(),
        )
        .await;
        // The probe's end closes the connection, which ends the script.
        let got_msg3 = script.await.unwrap();
        (r, got_msg3, public)
    }

    #[tokio::test]
    async fn a_node_of_the_network_is_up_only_with_its_proof_of_the_secret() {
        let (r, got_msg3, public) = probe_scripted(Node::Honest).await;
        assert!(r.up, "{:?} {:?}", r.error_kind, r.error);
        assert!(got_msg3);
        let key = r.node_key.expect("the node's key");
        assert_eq!(
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, key).unwrap(),
            public
        );
        for (node, kind, says) in [
            (
                Node::OtherSecret,
                ErrorKind::HandshakeRejected,
                "does not match",
            ),
            (Node::NoProof, ErrorKind::HandshakeRejected, "no proof"),
            (
                Node::OtherConnId,
                ErrorKind::ProtocolError,
                "another connection id",
            ),
        ] {
            let (r, got_msg3, _) = probe_scripted(node).await;
            assert!(!r.up);
            assert_eq!(r.error_kind, Some(kind), "{:?}", r.error);
            assert!(
                r.error.as_deref().unwrap_or("").contains(says),
                "{:?}",
                r.error
            );
            // The probe's own proof is never sent to a node that did not prove the secret.
            assert!(!got_msg3, "message 3 sent after {:?}", r.error);
        }
    }
}
