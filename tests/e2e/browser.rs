//! The pages as a person sees them: the real binary serves real EasyTier nodes (one up, one
//! down) and a real headless Chromium loads `/`, a node page and a badge. What is checked is
//! the DOM the browser built (`--dump-dom`), its console (every console message is logged to
//! stderr with `--enable-logging=stderr`; the pages run no script, so any message is a fault:
//! a CSP breach, a failed load) and, for dark mode, the colour of a screenshot's first pixel.
//! The browser runs inside this binary's network namespace: only loopback exists.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use libtest_mimic::Trial;
use serde_json::json;

use crate::common::{bin, node, stop_node, wait_for, ServeProcess};
use crate::trial;

pub fn trials(no_browser: bool) -> Vec<Trial> {
    vec![trial(
        "browser::chromium_sees_nodes_chart_uptimes_and_badge",
        chromium_sees_the_pages,
    )
    .with_ignored_flag(no_browser)]
}

/// The Chromium to test with: `$CHROMIUM`, else the first of the usual names on `PATH`.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// Chromium headless with nothing of its own going on (no background networking, updates,
/// sync, crash reports), its profile in `profile`, its console on stderr.
fn browser(profile: &Path) -> Command {
    let mut c = Command::new(chromium().expect("checked before the trial"));
    c.env("HOME", profile).args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-breakpad",
        "--no-first-run",
        "--no-default-browser-check",
        "--metrics-recording-only",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=420,900",
    ]);
    c.arg(format!(
        "--user-data-dir={}",
        profile.join("chromium").display()
    ));
    c
}

/// The DOM Chromium built from `url`, and its console messages.
async fn load(profile: &Path, url: &str, extra: &[&str]) -> (String, Vec<String>) {
    let mut c = browser(profile);
    c.args(extra).arg("--dump-dom").arg(url);
    let o = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || c.output().expect("chromium runs")),
    )
    .await
    .expect("chromium answers within 60 s")
    .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect();
    assert!(o.status.success(), "chromium failed on {url}:\n{stderr}");
    (String::from_utf8_lossy(&o.stdout).into_owned(), console)
}

/// The first pixel (r, g, b) of a screenshot of `url`: the page's background.
async fn first_pixel(profile: &Path, url: &str, extra: &[&str]) -> [u8; 3] {
    let shot = profile.join("shot.png");
    let _ = std::fs::remove_file(&shot);
    let mut c = browser(profile);
    c.args(extra)
        .arg(format!("--screenshot={}", shot.display()))
        .arg(url);
    let o = tokio::task::spawn_blocking(move || c.output().expect("chromium runs"))
        .await
        .unwrap();
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}):\n{}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    // The IDAT chunks, inflated: row 0 starts with its filter byte, then the first pixel, which
    // no PNG filter changes (it has no left or upper neighbour).
    let (mut at, mut idat) = (8, Vec::new());
    let mut colour_type = 0;
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind = &png[at + 4..at + 8];
        let data = &png[at + 8..at + 8 + len];
        if kind == b"IHDR" {
            colour_type = data[9];
        }
        if kind == b"IDAT" {
            idat.extend_from_slice(data);
        }
        at += 12 + len;
    }
    assert!(colour_type == 2 || colour_type == 6, "an RGB(A) screenshot");
    let mut raw = Vec::new();
    use std::io::Read;
    flate2::read::ZlibDecoder::new(&idat[..])
        .take(8)
        .read_to_end(&mut raw)
        .unwrap();
    [raw[1], raw[2], raw[3]]
}

async fn chromium_sees_the_pages() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile");
    std::fs::create_dir_all(&profile).unwrap();

    // The console check can fail: a page that logs an error shows up in it.
    let (_, console) = load(
        &profile,
        "data:text/html,<script>console.error('control')</script>",
        &[],
    )
    .await;
    assert!(
        console.iter().any(|l| l.contains("control")),
        "chromium's console is not read: {console:?}"
    );

    let n = node("browser", "net-p", "sec-p", &["tcp"]).await;
    let dead = easytier_probe::testkit::free_port();
    let peers = dir.path().join("peers.json");
    let entry = |id: &str, name: &str, port: u16| {
        json!({"id": id, "name": name, "host": "127.0.0.1", "port": port, "protocol": "tcp",
               "network_name": "net-p", "network_secret": "sec-p"})
    };
    let list = json!([
        entry("up-1", "Edge <b>one</b> & co", n.port("tcp")),
        entry("down 2", "Gone node", dead),
    ]);
    std::fs::write(&peers, list.to_string()).unwrap();
    let mut c = bin(dir.path());
    c.env("DATA_DIR", dir.path().join("data"))
        .env("PEERS_FILE", &peers)
        .env("HEALTH_CHECK_INTERVAL", "1")
        .arg("serve");
    let serve = ServeProcess::start(c, dir.path()).await;
    let swept = wait_for(Duration::from_secs(30), || async {
        let (_, runs) = serve.get("/api/jobs/probe-sweep/runs?limit=5").await;
        runs["data"]["items"]
            .as_array()
            .is_some_and(|r| r.len() >= 3)
    })
    .await;
    assert!(swept, "no three sweeps; the log:\n{}", serve.log());
    let base = serve.base.clone();

    let (index, console) = load(&profile, &format!("{base}/"), &[]).await;
    assert!(console.is_empty(), "console on /: {console:?}");
    assert!(index.contains("1 of 2 nodes up"), "{index}");
    // The name is text, not markup.
    assert!(
        index.contains("Edge &lt;b&gt;one&lt;/b&gt; &amp; co"),
        "{index}"
    );
    assert!(!index.contains("<b>one</b>"));
    assert!(
        index.contains("<a href=\"/nodes/down%202\">Gone node</a>"),
        "{index}"
    );
    assert!(index.contains("class=\"up\">up<") && index.contains("class=\"down\">down<"));

    let (page, console) = load(&profile, &format!("{base}/nodes/up-1?window=1h"), &[]).await;
    assert!(console.is_empty(), "console on the node page: {console:?}");
    assert!(page.contains("<dd class=\"up\">up</dd>"), "{page}");
    assert!(page.contains("<svg class=\"chart\""), "{page}");
    let dots = page.matches("<circle ").count();
    assert!(dots >= 1, "the chart has no points: {page}");
    assert_eq!(page.matches("<svg class=\"uptime\"").count(), 4);
    assert!(page.contains("1h · <b>100.00 %</b>"), "{page}");
    assert!(page.contains("<img src=\"/api/nodes/up-1/badge.svg\""));

    let (page, console) = load(&profile, &format!("{base}/nodes/down%202"), &[]).await;
    assert!(
        console.is_empty(),
        "console on the down node's page: {console:?}"
    );
    assert!(page.contains("down · connect_refused"), "{page}");
    assert!(
        page.matches("<td class=\"down\">connect_refused</td>")
            .count()
            >= 3
    );
    assert!(page.contains("<rect class=\"downs\""), "{page}");

    let (svg, console) = load(&profile, &format!("{base}/api/nodes/up-1/badge.svg"), &[]).await;
    assert!(console.is_empty(), "console on the badge: {console:?}");
    assert!(svg.contains("<title>status: up</title>"), "{svg}");
    let (svg, _) = load(
        &profile,
        &format!("{base}/api/nodes/down%202/badge.svg?kind=uptime&window=1h"),
        &[],
    )
    .await;
    assert!(svg.contains("<title>uptime 1h: 0.00%</title>"), "{svg}");

    // Light by default, dark when the reader prefers it.
    let light = first_pixel(&profile, &format!("{base}/"), &[]).await;
    let dark = first_pixel(
        &profile,
        &format!("{base}/nodes/up-1"),
        &["--blink-settings=preferredColorScheme=0"],
    )
    .await;
    assert_eq!(light, [255, 255, 255]);
    assert_eq!(dark, [0x13, 0x13, 0x14]);
    drop(serve);
    stop_node(n).await;
}
