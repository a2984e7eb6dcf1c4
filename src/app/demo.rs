//! `demo`: real EasyTier nodes on loopback, a small backend serving them as the peer list, and
//! `serve` in distributed mode against it, so a new user sees fetch, probe and report work.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::Method;
use serde_json::{json, Value};

use crate::config::{Options, ProcessEnv, Settings};
use crate::domain::time::ms;
use crate::store::Store;
use crate::testkit::{DemoBackend, LocalNode};

/// The terminal, kept aside: the demo's EasyTier nodes (2.0.3) print connection notices on
/// stdout, which the demo sends to /dev/null so the live summary stays readable.
static CONSOLE: std::sync::OnceLock<Mutex<std::fs::File>> = std::sync::OnceLock::new();

macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        match CONSOLE.get() {
            Some(c) => {
                if let Ok(mut c) = c.lock() {
                    let _ = writeln!(c, $($arg)*);
                }
            }
            None => println!($($arg)*),
        }
    }};
}

/// Moves fd 1 to /dev/null and keeps the terminal for `say!`.
fn quiet_stdout() {
    use std::os::fd::{AsRawFd, FromRawFd};
    let Ok(devnull) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return;
    };
    // SAFETY: dup/dup2 on the process's own descriptors; the duplicate is owned by the File.
    unsafe {
        let saved = libc::dup(1);
        if saved < 0 {
            return;
        }
        if libc::dup2(devnull.as_raw_fd(), 1) < 0 {
            libc::close(saved);
            return;
        }
        let _ = CONSOLE.set(Mutex::new(std::fs::File::from_raw_fd(saved)));
    }
}

fn peer(
    id: u32,
    name: &str,
    protocol: &str,
    port: u16,
    network: &str,
    secret: Option<&str>,
) -> Value {
    let mut v = json!({
        "id": id, "name": name, "host": "127.0.0.1", "port": port, "protocol": protocol,
        "network_name": network, "status": "Online", "response_time": 0,
    });
    if let Some(s) = secret {
        v["network_secret"] = json!(s);
    }
    v
}

/// Runs the demo until Ctrl-C.
pub fn run(mut options: Options) -> ExitCode {
    // The API socket is bound before the process moves into its private network namespace,
    // so a browser on this machine can reach it while the nodes cannot reach the internet.
    let listen: SocketAddr = crate::config::listen_addr(&options);
    let api = std::net::TcpListener::bind(listen)
        .or_else(|_| std::net::TcpListener::bind((listen.ip(), 0)));
    let api = match api {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return ExitCode::from(2);
        }
    };
    let isolated = crate::testkit::isolate_network();
    if let Err(e) = &isolated {
        eprintln!(
            "note: {e}.\n      The demo runs without isolation; its EasyTier nodes may query public STUN servers."
        );
    }
    let data = match tempfile::Builder::new()
        .prefix("easytier-probe-demo-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot create a temporary data dir: {e}");
            return ExitCode::from(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    options.data_dir = Some(data.path().to_path_buf());
    quiet_stdout();
    match rt.block_on(demo(options, api)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The demo's peer list: every protocol of node A, node B with the wrong secret, node C (which
/// stops), a port nobody listens on, an http peer (a page on `page_port` naming node A's tcp
/// listener) and a protocol the probe cannot speak.
fn demo_peers(a: &LocalNode, b: &LocalNode, c: &LocalNode, page_port: u16) -> Vec<Value> {
    let mut peers = Vec::new();
    for (i, p) in ["tcp", "udp", "ws", "wss", "quic", "wg"].iter().enumerate() {
        let name = format!("node-a {p}");
        let secret = Some("demo-secret");
        peers.push(peer(i as u32 + 1, &name, p, a.port(p), "demo-net", secret));
    }
    let wrong = Some("not-the-secret");
    peers.push(peer(
        7,
        "node-b (wrong secret)",
        "tcp",
        b.port("tcp"),
        "other-net",
        wrong,
    ));
    for (id, p) in [(8, "tcp"), (9, "udp")] {
        let name = format!("node-c {p} (stops at 40 s)");
        peers.push(peer(
            id,
            &name,
            p,
            c.port(p),
            "demo-net",
            Some("demo-secret"),
        ));
    }
    let dead = crate::testkit::free_port();
    peers.push(peer(
        10,
        "nobody listens here",
        "tcp",
        dead,
        "demo-net",
        None,
    ));
    let secret = Some("demo-secret");
    peers.push(peer(
        11,
        "an http:// peer",
        "http",
        page_port,
        "demo-net",
        secret,
    ));
    peers.push(peer(
        12,
        "a faketcp peer",
        "faketcp",
        a.port("tcp"),
        "demo-net",
        None,
    ));
    peers
}

/// A page on loopback naming peer URLs, one a line, as an http peer's page does. Its port.
async fn serve_page(body: String) -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let page = axum::Router::new().route("/", axum::routing::get(move || async move { body }));
    tokio::spawn(async move { axum::serve(listener, page).await });
    Ok(port)
}

/// Distributed mode against the demo backend, on short intervals (unless given).
fn demo_options(options: &mut Options, backend_url: &str) {
    options.distributed_mode = Some(true);
    options.backend_base_url = Some(backend_url.to_string());
    options.node_token = Some("demo-node-token".into());
    options.region = options.region.take().or(Some("demo".into()));
    let or = |v: &mut Option<Duration>, secs| *v = v.or(Some(Duration::from_secs(secs)));
    or(&mut options.peer_fetch_interval, 20);
    or(&mut options.status_report_interval, 10);
    or(&mut options.health_check_interval, 5);
}

fn banner(url: &str, backend_url: &str) {
    say!("\n  status page   {url}/");
    say!("  nodes         {url}/api/nodes");
    say!("  node page     {url}/nodes/1");
    say!("  node history  {url}/api/nodes/1/health?window=1h");
    say!("  jobs          {url}/api/jobs");
    say!("  metrics       {url}/metrics");
    say!("  demo backend  {backend_url}/peers (inside the demo's network namespace)\n");
    say!("Node C stops after 40 s to show a peer going down. Ctrl-C stops the demo.\n");
}

async fn demo(mut options: Options, api: std::net::TcpListener) -> anyhow::Result<()> {
    say!("Starting EasyTier {} nodes on loopback…", easytier::VERSION);
    let a = LocalNode::start(
        "node-a",
        "demo-net",
        "demo-secret",
        &["tcp", "udp", "ws", "wss", "quic", "wg"],
    )?;
    let b = LocalNode::start("node-b", "other-net", "other-secret", &["tcp"])?;
    let c = LocalNode::start("node-c", "demo-net", "demo-secret", &["tcp", "udp"])?;
    let page_port = serve_page(format!("tcp://127.0.0.1:{}\n", a.port("tcp"))).await?;
    let peers = demo_peers(&a, &b, &c, page_port);
    let backend = DemoBackend::default();
    *backend.peers.lock().map_err(|_| anyhow::anyhow!("lock"))? = peers;
    let backend_url = backend
        .serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?)
        .await?;

    demo_options(&mut options, &backend_url);
    let settings = Arc::new(Settings::resolve(&options, &ProcessEnv)?);
    let store = Store::open(&settings.data_dir, "demo")?;
    api.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(api)?;
    let url = format!("http://{}", listener.local_addr()?);

    banner(&url, &backend_url);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let summary = tokio::spawn(live_summary(store.clone(), backend.clone(), stop_rx));
    let mut c = Some(c);
    let stop_c = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(40)).await;
        if let Some(node) = c.take() {
            say!("-- stopping node C");
            tokio::task::spawn_blocking(move || drop(node)).await.ok();
        }
    });
    super::serve::run(settings, store, listener, false, super::serve::signal()).await?;
    let _ = stop_tx.send(true);
    stop_c.abort();
    let _ = summary.await;
    let offline = backend
        .recorded()
        .iter()
        .rev()
        .find_map(|r| r.body.as_ref().map(|b| b["status"] == "Offline"))
        .unwrap_or(false);
    say!(
        "\nStopped. The backend received {} requests; the last report was {}.",
        backend.recorded().len(),
        if offline {
            "Offline, as on every graceful shutdown"
        } else {
            "not Offline"
        }
    );
    tokio::task::spawn_blocking(move || drop((a, b))).await.ok();
    Ok(())
}

async fn live_summary(
    store: Store,
    backend: DemoBackend,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let Ok(Some(sweep)) = store.last_sweep() else {
            continue;
        };
        let list = store
            .peer_list()
            .ok()
            .flatten()
            .map(|l| l.peers)
            .unwrap_or_default();
        let mut cells = Vec::new();
        for p in &list {
            let cell = match store.latest_result(&p.id).ok().flatten() {
                Some(r) if r.up => {
                    format!("{}:up {:.2}ms", p.id, ms(r.rtt_us.unwrap_or(0)))
                }
                Some(r) => format!(
                    "{}:{}",
                    p.id,
                    r.error_kind.map(|k| k.as_str()).unwrap_or("down")
                ),
                None => format!("{}:?", p.id),
            };
            cells.push(cell);
        }
        let reports = backend
            .recorded()
            .iter()
            .filter(|r| r.method == Method::PUT)
            .count();
        say!(
            "{}  {}/{} up, avg {} · reports sent {}\n          {}",
            chrono::Local::now().format("%H:%M:%S"),
            sweep.reachable,
            sweep.peers,
            sweep
                .avg_rtt_us
                .map(|us| format!("{:.2} ms", ms(us)))
                .unwrap_or_else(|| "–".into()),
            reports,
            cells.join("  ")
        );
    }
}
