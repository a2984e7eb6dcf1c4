//! What a node says of itself: right after accepting a handshake an EasyTier node starts a route
//! sync with its new peer, an RPC request (`OspfRouteRpc.SyncRouteInfo`) whose peer infos hold
//! the node's own entry: its EasyTier version, host name and whether it is a public server. The
//! probe reads it from the packets it skips while waiting for its pongs.
//!
//! Within the node's own network the request is encrypted with AES-128-GCM under a key derived
//! from the network secret (as EasyTier 2.0–2.6 derive it); for a foreign network it is plain.

use std::hash::Hasher;

use easytier::proto::common::{RpcPacket, RpcRequest};
use easytier::proto::peer_rpc::SyncRouteInfoRequest;
use easytier::tunnel::packet_def::{PacketType, ZCPacket};
use prost::Message;
use ring::aead;

use crate::domain::NodeInfo;

/// The prefix a node puts before its host name in the route sync of a foreign network.
const PUBLIC_PREFIX: &str = "PublicServer_";
/// An AES-GCM tail: the 16-byte tag, then the 12-byte nonce.
const NONCE_LEN: usize = 12;

/// The key a network's packets are encrypted with: EasyTier's `get_128_key`, two rounds of
/// the standard library's `DefaultHasher` (SipHash-1-3 with zero keys) over the secret.
pub(super) fn key(secret: &str) -> [u8; 16] {
    let mut key = [0u8; 16];
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    hasher.write(secret.as_bytes());
    key[..8].copy_from_slice(&hasher.finish().to_be_bytes());
    hasher.write(&key[..8]);
    key[8..].copy_from_slice(&hasher.finish().to_be_bytes());
    key
}

/// The node's own info, when `packet` is a route sync from `node` (its peer id) that carries it.
pub(super) fn read(packet: &ZCPacket, node: u32, key: &[u8; 16]) -> Option<NodeInfo> {
    let header = packet.peer_manager_header()?;
    if header.packet_type != PacketType::RpcReq as u8 || header.from_peer_id.get() != node {
        return None;
    }
    let mut payload = packet.payload().to_vec();
    if header.is_encrypted() {
        payload = decrypt(payload, key)?;
    }
    let rpc = RpcPacket::decode(payload.as_slice()).ok()?;
    let descriptor = rpc.descriptor.as_ref()?;
    // A request in one piece (a longer one would need reassembly; the node's first sync is short).
    if descriptor.proto_name != "OspfRouteRpc" || rpc.total_pieces > 1 {
        return None;
    }
    let request = RpcRequest::decode(rpc.body.as_slice()).ok()?.request;
    let sync = SyncRouteInfoRequest::decode(request.as_slice()).ok()?;
    let own = sync
        .peer_infos?
        .items
        .into_iter()
        .find(|i| i.peer_id == node)?;
    if own.easytier_version.is_empty() {
        return None;
    }
    let public_server = own.feature_flag.is_some_and(|f| f.is_public_server);
    let hostname = own.hostname.map(|h| match h.strip_prefix(PUBLIC_PREFIX) {
        Some(bare) if public_server => bare.to_string(),
        _ => h,
    });
    Some(NodeInfo {
        version: own.easytier_version.chars().take(64).collect(),
        hostname: hostname.map(|h| h.chars().take(255).collect()),
        public_server,
    })
}

/// Opens an AES-128-GCM payload (ciphertext, tag, nonce; no associated data).
fn decrypt(mut payload: Vec<u8>, key: &[u8; 16]) -> Option<Vec<u8>> {
    let cipher = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, key).ok()?);
    let at = payload.len().checked_sub(NONCE_LEN)?;
    let nonce = aead::Nonce::try_assume_unique_for_key(&payload[at..]).ok()?;
    payload.truncate(at);
    let plain = cipher
        .open_in_place(nonce, aead::Aad::empty(), &mut payload)
        .ok()?
        .len();
    payload.truncate(plain);
    Some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_that_is_not_a_route_sync_says_nothing() {
        let mut ping = ZCPacket::new_with_payload(&[1, 2, 3, 4]);
        ping.fill_peer_manager_hdr(7, 9, PacketType::Ping as u8);
        assert_eq!(read(&ping, 7, &key("")), None);
        let mut garbage = ZCPacket::new_with_payload(&[0xff; 40]);
        garbage.fill_peer_manager_hdr(7, 9, PacketType::RpcReq as u8);
        assert_eq!(read(&garbage, 7, &key("")), None);
    }
}
