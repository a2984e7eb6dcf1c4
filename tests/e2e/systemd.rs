//! `serve` under systemd's notify protocol: a unix datagram socket stands in for the service
//! manager (`NOTIFY_SOCKET`, `WATCHDOG_USEC`), as systemd hands them to a `Type=notify` unit.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use libtest_mimic::Trial;

use crate::common::{bin, output, peers_file, stderr, wait_for, ServeProcess};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![trial(
        "systemd::notify_ready_watchdog_and_stopping",
        ready_watchdog_stopping,
    )]
}

/// The service manager's end: every datagram, with when it came.
struct Manager {
    rx: mpsc::Receiver<(Instant, String)>,
}

impl Manager {
    fn bind(dir: &Path) -> (Manager, std::path::PathBuf) {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if tx.send((Instant::now(), text)).is_err() {
                    return;
                }
            }
        });
        (Manager { rx }, path)
    }

    /// The next message within `bound`.
    fn next(&self, bound: Duration) -> Option<(Instant, String)> {
        self.rx.recv_timeout(bound).ok()
    }

    /// Every message that comes within `bound`.
    fn during(&self, bound: Duration) -> Vec<(Instant, String)> {
        let end = Instant::now() + bound;
        let mut got = Vec::new();
        while let Some(m) = self.next(end.saturating_duration_since(Instant::now())) {
            got.push(m);
        }
        got
    }
}

fn pings(messages: &[(Instant, String)]) -> usize {
    messages
        .iter()
        .filter(|(_, m)| m.lines().any(|l| l == "WATCHDOG=1"))
        .count()
}

/// Spawns `serve` (like [`ServeProcess::start`]) and returns as soon as it says READY=1.
async fn serve_until_ready(
    mut c: std::process::Command,
    dir: &Path,
    manager: &Manager,
) -> ServeProcess {
    let port = easytier_probe::testkit::free_port();
    let stderr_path = dir.join("serve.log");
    c.env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    let serve = ServeProcess {
        child: Some(c.spawn().expect("serve starts")),
        base: format!("http://127.0.0.1:{port}"),
        stderr_path,
    };
    let first = manager.next(Duration::from_secs(20));
    let Some((_, first)) = first else {
        panic!("no READY=1 within 20 s; log:\n{}", serve.log());
    };
    assert!(
        first.lines().any(|l| l == "READY=1"),
        "the first message is not READY=1: {first:?}"
    );
    serve
}

async fn ready_watchdog_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let (manager, socket) = Manager::bind(dir.path());
    let peers = peers_file(dir.path(), &[easytier_probe::testkit::free_port()]);
    let mut c = bin(dir.path());
    c.env("DATA_DIR", dir.path().join("data"))
        .env("PEERS_FILE", &peers)
        .env("NOTIFY_SOCKET", &socket)
        .env("WATCHDOG_USEC", "1000000")
        .arg("serve");
    let mut serve = serve_until_ready(c, dir.path(), &manager).await;
    // READY=1 means the API answers: the first request, no retry.
    let (code, health) = serve.get("/health").await;
    assert!(code == 200 || code == 503, "{code} {health}");

    // WATCHDOG_USEC=1 s: a ping every half second.
    let messages = manager.during(Duration::from_secs(3));
    let n = pings(&messages);
    assert!((4..=8).contains(&n), "{n} pings in 3 s: {messages:?}");

    let status = serve.terminate(Duration::from_secs(30)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", serve.log());
    let rest: Vec<String> = manager
        .during(Duration::from_millis(200))
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    let stopping = rest
        .iter()
        .position(|m| m.lines().any(|l| l == "STOPPING=1"))
        .unwrap_or_else(|| panic!("no STOPPING=1 on SIGTERM: {rest:?}"));
    assert!(
        !rest[stopping..].iter().any(|m| m.contains("WATCHDOG=1")),
        "a ping after STOPPING=1: {rest:?}"
    );
}

/// A full disk (a 3 MB tmpfs in the test's private mount namespace): the store's flush fails,
/// and the pings stop while `/health` says `store`. Needs the private mount namespace.
pub async fn full_disk_stops_the_pings() {
    let dir = tempfile::tempdir().unwrap();
    let [_disk, data, small, big] = crate::faults::small_disk_and_lists(dir.path());
    let list = dir.path().join("list.json");
    std::fs::copy(&small, &list).unwrap();
    let (manager, socket) = Manager::bind(dir.path());
    let mut c = bin(dir.path());
    c.env("DATA_DIR", &data)
        .env("PEERS_FILE", &list)
        .env("NOTIFY_SOCKET", &socket)
        .env("WATCHDOG_USEC", "1000000")
        .arg("serve");
    let serve = serve_until_ready(c, dir.path(), &manager).await;
    let before = manager.during(Duration::from_secs(2));
    assert!(pings(&before) >= 3, "pings while healthy: {before:?}");

    // The next list does not fit on the disk: serve's peer-fetch (asked through run-job) fills it.
    std::fs::copy(&big, &list).unwrap();
    let mut fetch = bin(dir.path());
    fetch
        .env("DATA_DIR", &data)
        .env("PEERS_FILE", &list)
        .args(["run-job", "peer-fetch"]);
    let o = output(fetch).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let unhealthy = wait_for(Duration::from_secs(20), || async {
        let (code, h) = serve.get("/health").await;
        code == 503 && h["data"]["status"] == "store"
    })
    .await;
    assert!(unhealthy, "{}", serve.log());
    // A ping already on its way may still come; then none.
    manager.during(Duration::from_secs(1));
    let after = manager.during(Duration::from_secs(3));
    assert_eq!(
        pings(&after),
        0,
        "pings from a store that cannot write: {after:?}"
    );
    let log = serve.log();
    assert!(log.contains("watchdog pings withheld"), "{log}");
    assert_eq!(
        log.matches("watchdog pings withheld").count(),
        1,
        "said once, not at every tick: {log}"
    );
    drop(serve);
}
