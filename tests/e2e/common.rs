//! Helpers shared by the end-to-end tests.

#![allow(dead_code)]

use std::net::SocketAddr;

use easytier_probe::probe::Target;

pub fn target(protocol: &str, port: u16, network: &str, secret: &str) -> Target {
    Target {
        protocol: protocol.into(),
        host: "127.0.0.1".into(),
        port,
        network_name: network.into(),
        network_secret: secret.into(),
    }
}

/// A QUIC endpoint as EasyTier 2.6+ runs it (quinn-plaintext, no TLS) in front of a real node:
/// each QUIC stream is piped to the node's tcp listener. Inside, QUIC and tcp carry the same
/// length-prefixed EasyTier packets, so the node answers as it would over its own QUIC.
pub async fn plaintext_quic_bridge(
    node_tcp_port: u16,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let server_config = quinn_plaintext::server_config();
    let endpoint = quinn::Endpoint::server(server_config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        let Ok(tcp) =
                            tokio::net::TcpStream::connect(("127.0.0.1", node_tcp_port)).await
                        else {
                            return;
                        };
                        let (mut r, mut w) = tcp.into_split();
                        let up = tokio::spawn(async move {
                            let _ = tokio::io::copy(&mut recv, &mut w).await;
                        });
                        // When the node closes, close the QUIC stream as its own QUIC would.
                        let _ = tokio::io::copy(&mut r, &mut send).await;
                        let _ = send.finish();
                        up.abort();
                    });
                }
            });
        }
    });
    (addr, task)
}
