//! A current upstream EasyTier core for the tests: the 2.6.4 core that the PyPI wheel
//! `easytier-pyo3` embeds, run as a child process on loopback. The `easytier` crate (2.0.3)
//! cannot start a 2.6 node, nor one in secure mode.
//!
//! [`prepare`] installs the wheel once into a virtual environment under the build's `target/`
//! (it needs `python3` and PyPI, so it runs before a test process leaves the network);
//! [`UpstreamNode::start`] then runs a node with the listeners and network asked for. The child
//! stops when the node is dropped, or when the test process dies (it exits when its stdin closes).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

/// The wheel and the core version it embeds.
pub const WHEEL: &str = "easytier-pyo3==0.1.3";
pub const CORE_VERSION: &str = "2.6.4";

/// Runs one node from the JSON config in argv[1]; prints `ready <public key>` once it runs,
/// stops when stdin closes.
const RUNNER: &str = r#"
import json, sys
from easytier_pyo3 import Node
node = Node(json.loads(sys.argv[1]))
node.start()
if not node.is_ready():
    print("failed", node.latest_error(), flush=True)
    sys.exit(1)
print("ready", flush=True)
sys.stdin.read()
node.stop()
"#;

static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();

fn venv_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("easytier-core-2.6.4")
}

/// Installs the core (once; later runs find it in place) and returns the interpreter that has
/// it. An error says what is missing. Call it before leaving the network.
pub fn prepare() -> Result<PathBuf, String> {
    PYTHON.get_or_init(install).clone()
}

/// The interpreter [`prepare`] found, if it did.
pub fn python() -> Result<PathBuf, String> {
    PYTHON
        .get()
        .cloned()
        .unwrap_or_else(|| Err("testkit::upstream::prepare() was not called".into()))
}

fn install() -> Result<PathBuf, String> {
    let dir = venv_dir();
    let python = dir.join("bin/python");
    let works = |python: &Path| {
        Command::new(python)
            .args(["-c", "import easytier_pyo3"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if works(&python) {
        return Ok(python);
    }
    // Built beside, then moved in place: a run cut short leaves no half-made environment.
    let building = dir.with_extension(format!("building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
        let out = cmd
            .output()
            .map_err(|e| format!("{what}: cannot run: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{what} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    run(
        Command::new("python3").arg("-m").arg("venv").arg(&building),
        "python3 -m venv",
    )?;
    run(
        Command::new(building.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            WHEEL,
        ]),
        &format!("pip install {WHEEL}"),
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&building, &dir)
        .map_err(|e| format!("moving the environment in place: {e}"))?;
    // A venv's scripts name its directory; the interpreter itself does not, so it still works.
    if works(&python) {
        Ok(python)
    } else {
        Err(format!(
            "{WHEEL} installed, but {} cannot import it",
            python.display()
        ))
    }
}

/// A secure-mode key pair (X25519), as the core takes it.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub private: [u8; 32],
    pub public: [u8; 32],
}

impl KeyPair {
    pub fn generate() -> KeyPair {
        let params = "Noise_XX_25519_ChaChaPoly_SHA256"
            .parse()
            .expect("Noise parameters");
        let keys = snow::Builder::new(params)
            .generate_keypair()
            .expect("an X25519 key pair");
        KeyPair {
            private: keys.private.try_into().expect("32-byte private key"),
            public: keys.public.try_into().expect("32-byte public key"),
        }
    }

    /// The public key as EasyTier writes it (base64).
    pub fn public_base64(&self) -> String {
        BASE64.encode(self.public)
    }
}

/// What a node runs with.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub network_name: String,
    pub network_secret: String,
    pub hostname: String,
    /// Listener URLs, e.g. `tcp://127.0.0.1:11010`.
    pub listeners: Vec<String>,
    /// Secure mode on, with these keys.
    pub secure: Option<KeyPair>,
}

/// A running upstream node (a child process).
pub struct UpstreamNode {
    child: Child,
}

impl UpstreamNode {
    /// Starts a node and waits until it runs (at most 30 s).
    pub fn start(config: &UpstreamConfig) -> Result<UpstreamNode, String> {
        let python = python()?;
        let mut cfg = serde_json::json!({
            "instance_name": config.hostname,
            "hostname": config.hostname,
            "network_identity": {
                "network_name": config.network_name,
                "network_secret": config.network_secret,
            },
            "listeners": config.listeners,
            "flags": {"no_tun": true},
        });
        if let Some(keys) = &config.secure {
            cfg["secure_mode"] = serde_json::json!({
                "enabled": true,
                "local_private_key": BASE64.encode(keys.private),
                "local_public_key": keys.public_base64(),
            });
        }
        let mut child = Command::new(python)
            .args(["-c", RUNNER, &cfg.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the upstream core: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut node = UpstreamNode { child };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.trim() == "ready" => Ok(node),
            Ok(line) => Err(format!("the upstream core did not start: {}", line.trim())),
            Err(_) => {
                node.stop();
                Err("the upstream core did not start within 30 s".into())
            }
        }
    }

    /// Stops the node and waits for the process to end.
    pub fn stop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for UpstreamNode {
    fn drop(&mut self) {
        self.stop();
    }
}
