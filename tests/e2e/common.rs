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
        timeout: None,
        secure: None,
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

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use easytier_probe::testkit::DemoBackend;
use serde_json::Value;

/// The real binary, with a clean environment and a scratch working directory (so no `.env`
/// of the developer's leaks in).
pub fn bin(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_easytier-probe"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(cwd)
        .stdin(Stdio::null());
    c
}

/// Runs the command in a blocking thread and returns its output.
pub async fn output(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().expect("the binary runs"))
        .await
        .unwrap()
}

pub fn stdout_json(o: &Output) -> Value {
    let text = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}):\n{text}\nstderr:\n{}",
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A backend on 127.0.0.1:0 serving `peers`; returns it and its base URL.
pub async fn backend(peers: Vec<Value>) -> (DemoBackend, String) {
    let b = DemoBackend::default();
    *b.peers.lock().unwrap() = peers;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = b.serve(listener).await.unwrap();
    (b, url)
}

pub fn peer_entry(
    id: Value,
    protocol: &str,
    port: u16,
    network: &str,
    secret: Option<&str>,
) -> Value {
    let mut v = serde_json::json!({
        "id": id, "name": format!("peer {id}"), "host": "127.0.0.1", "port": port,
        "protocol": protocol, "network_name": network, "status": "Online", "response_time": 7,
        "some_future_field": {"x": 1},
    });
    if let Some(s) = secret {
        v["network_secret"] = serde_json::json!(s);
    }
    v
}

/// Starts a real EasyTier node off the async threads.
pub async fn node(
    name: &'static str,
    network: &'static str,
    secret: &'static str,
    protocols: &'static [&'static str],
) -> easytier_probe::testkit::LocalNode {
    tokio::task::spawn_blocking(move || {
        easytier_probe::testkit::LocalNode::start(name, network, secret, protocols)
    })
    .await
    .unwrap()
    .unwrap()
}

pub async fn stop_node(node: easytier_probe::testkit::LocalNode) {
    tokio::task::spawn_blocking(move || drop(node))
        .await
        .unwrap();
}

/// A `serve` process, killed on drop if still running.
pub struct ServeProcess {
    pub child: Option<Child>,
    pub base: String,
    pub stderr_path: PathBuf,
}

impl ServeProcess {
    /// Spawns `c` (a `serve` command) with LISTEN_ADDR on a free port and waits for /health.
    pub async fn start(mut c: Command, scratch: &Path) -> ServeProcess {
        let port = easytier_probe::testkit::free_port();
        let stderr_path = scratch.join(format!("serve-{port}.log"));
        let log = std::fs::File::create(&stderr_path).unwrap();
        c.env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log);
        let child = c.spawn().expect("serve starts");
        let p = ServeProcess {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            stderr_path,
        };
        let health = format!("{}/health", p.base);
        let up = wait_for(Duration::from_secs(20), || {
            let health = health.clone();
            async move { reqwest::get(&health).await.is_ok() }
        })
        .await;
        assert!(up, "serve did not answer /health; its log:\n{}", p.log());
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (at most `bound`) for the exit status.
    pub async fn terminate(&mut self, bound: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if start.elapsed() > bound {
                let _ = child.kill();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        http(reqwest::Client::new().get(format!("{}{path}", self.base))).await
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub async fn http(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Polls `check` every 100 ms until it holds or `bound` passes.
pub async fn wait_for<F, Fut>(bound: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < bound {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A udp relay in front of `node_port` that drops the client's datagrams numbered in
/// `drop_up` and the node's numbered in `drop_down` (1-based, over all clients), to simulate
/// packet loss. Like a NAT, it gives each client address its own upstream socket.
pub async fn lossy_udp_relay(
    node_port: u16,
    drop_up: &'static [usize],
    drop_down: &'static [usize],
) -> u16 {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let front = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let port = front.local_addr().unwrap().port();
    let down_count = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        let mut upstreams: HashMap<SocketAddr, Arc<tokio::net::UdpSocket>> = HashMap::new();
        let mut buf = vec![0u8; 65536];
        let mut n = 0;
        while let Ok((len, from)) = front.recv_from(&mut buf).await {
            n += 1;
            if drop_up.contains(&n) {
                continue;
            }
            let back = match upstreams.get(&from) {
                Some(b) => b.clone(),
                None => {
                    let back = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
                    back.connect(("127.0.0.1", node_port)).await.unwrap();
                    let (f, b, count) = (front.clone(), back.clone(), down_count.clone());
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 65536];
                        while let Ok(len) = b.recv(&mut buf).await {
                            let k = count.fetch_add(1, Ordering::SeqCst) + 1;
                            if !drop_down.contains(&k) {
                                let _ = f.send_to(&buf[..len], from).await;
                            }
                        }
                    });
                    upstreams.insert(from, back.clone());
                    back
                }
            };
            let _ = back.send(&buf[..len]).await;
        }
    });
    port
}

/// TCP listeners that accept and never answer: each probe of them takes the full timeout.
pub async fn silent_listeners(n: usize) -> (Vec<u16>, Vec<tokio::task::JoinHandle<()>>) {
    let mut ports = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..n {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        ports.push(l.local_addr().unwrap().port());
        tasks.push(tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        }));
    }
    (ports, tasks)
}

/// A peers file of tcp peers on these ports (ids 1.., network "n").
pub fn peers_file(dir: &std::path::Path, ports: &[u16]) -> std::path::PathBuf {
    let entries: Vec<Value> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| peer_entry(serde_json::json!(i + 1), "tcp", *p, "n", None))
        .collect();
    let path = dir.join("peers.json");
    std::fs::write(&path, Value::Array(entries).to_string()).unwrap();
    path
}
