//! Real EasyTier nodes on loopback, for the demo and the tests, and the private network
//! namespace they run in.
//!
//! An EasyTier node looks for public STUN servers as soon as it starts (DNS queries, then UDP
//! to the internet). The demo and the tests must not send such traffic, so they first move the
//! process into a new network namespace that has only a loopback interface: the nodes, the probe
//! and the test backend all live there, and nothing can leave the machine.

use std::time::{Duration, Instant};

use easytier::common::config::{ConfigLoader, Flags, NetworkIdentity, TomlConfigLoader};
use easytier::launcher::NetworkInstance;

/// Moves the calling process into a new network namespace with loopback up.
///
/// Must be called while the process is single-threaded (before any runtime starts): threads
/// and child processes created afterwards inherit the namespace. Sockets bound before the call
/// stay in the original namespace, which is how the demo keeps its API reachable.
pub fn isolate_network() -> Result<(), String> {
    // SAFETY: plain syscalls with no memory passed except the checked ifreq below.
    unsafe {
        let uid = libc::getuid();
        let gid = libc::getgid();
        let flags = if uid == 0 {
            libc::CLONE_NEWNET
        } else {
            libc::CLONE_NEWUSER | libc::CLONE_NEWNET
        };
        if libc::unshare(flags) != 0 {
            return Err(format!(
                "cannot create a private network namespace: {}",
                std::io::Error::last_os_error()
            ));
        }
        if uid != 0 {
            // Keep our own uid and gid inside the new user namespace.
            let _ = std::fs::write("/proc/self/setgroups", "deny");
            std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))
                .map_err(|e| format!("cannot map the uid in the new user namespace: {e}"))?;
            std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"))
                .map_err(|e| format!("cannot map the gid in the new user namespace: {e}"))?;
        }
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut rc = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr);
        if rc == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr);
        }
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if rc != 0 {
            return Err(format!(
                "cannot bring up loopback in the new namespace: {err}"
            ));
        }
    }
    Ok(())
}

/// Gives the process its own mount namespace (with private propagation), so tests can mount
/// small filesystems (a full disk) that nobody else sees. Call while single-threaded, after
/// [`isolate_network`] (which makes the user namespace when not root).
pub fn private_mounts() -> Result<(), String> {
    // SAFETY: plain syscalls with constant, NUL-terminated arguments.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(format!(
                "unshare(CLONE_NEWNS): {}",
                std::io::Error::last_os_error()
            ));
        }
        let root = b"/\0";
        let rc = libc::mount(
            std::ptr::null(),
            root.as_ptr().cast(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        );
        if rc != 0 {
            return Err(format!(
                "making mounts private: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// A free port on 127.0.0.1 for both tcp and udp at the time of asking.
///
/// Ports come from 20000–32767, below the kernel's ephemeral range (32768 and up by default),
/// each handed out once per process: a port asked for here is not also the one the kernel
/// gives the next `bind(":0")` elsewhere in the tests, which a node binding it a moment later
/// would collide with (easytier's quic listener panics on a taken port).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_768;
    let start = std::process::id() * 7919 % SPAN;
    loop {
        let port = (LOW + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
}

/// A running EasyTier node (easytier 2.0.3, in its own thread and runtime). Stops on drop.
pub struct LocalNode {
    pub name: String,
    /// (protocol, port) of each listener on 127.0.0.1 (or `::1`, see [`LocalNode::start_ipv6`]).
    pub listeners: Vec<(String, u16)>,
    instance: NetworkInstance,
}

impl LocalNode {
    /// Starts a node in `network_name` with `secret`, listening on 127.0.0.1 with a fresh
    /// port for each protocol, and waits until its listeners run.
    pub fn start(
        name: &str,
        network_name: &str,
        secret: &str,
        protocols: &[&str],
    ) -> anyhow::Result<LocalNode> {
        Self::start_at("127.0.0.1", name, network_name, secret, protocols)
    }

    /// As [`LocalNode::start`], listening on the IPv6 loopback `::1` instead.
    pub fn start_ipv6(
        name: &str,
        network_name: &str,
        secret: &str,
        protocols: &[&str],
    ) -> anyhow::Result<LocalNode> {
        Self::start_at("[::1]", name, network_name, secret, protocols)
    }

    fn start_at(
        host: &str,
        name: &str,
        network_name: &str,
        secret: &str,
        protocols: &[&str],
    ) -> anyhow::Result<LocalNode> {
        // A port free when asked can be taken by someone else before the node binds it (tests
        // run in parallel): then try again with fresh ports.
        let mut last = None;
        for _ in 0..5 {
            let listeners = protocols
                .iter()
                .map(|p| (p.to_string(), free_port()))
                .collect();
            match Self::start_once(host, name, network_name, secret, listeners) {
                Ok(node) => return Ok(node),
                Err(e) if e.to_string().contains("failed to add listener") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("EasyTier node {name} did not start")))
    }

    /// Starts a node again on the listeners a stopped one had (a peer that comes back); the
    /// ports may take a moment to be free again.
    pub fn start_on(
        name: &str,
        network_name: &str,
        secret: &str,
        listeners: &[(String, u16)],
    ) -> anyhow::Result<LocalNode> {
        let mut last = None;
        for _ in 0..50 {
            match Self::start_once("127.0.0.1", name, network_name, secret, listeners.to_vec()) {
                Ok(node) => return Ok(node),
                Err(e) if e.to_string().contains("failed to add listener") => last = Some(e),
                Err(e) => return Err(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("EasyTier node {name} did not start")))
    }

    fn start_once(
        host: &str,
        name: &str,
        network_name: &str,
        secret: &str,
        listeners: Vec<(String, u16)>,
    ) -> anyhow::Result<LocalNode> {
        let config = TomlConfigLoader::default();
        config.set_inst_name(name.to_string());
        config.set_hostname(Some(name.to_string()));
        config.set_id(uuid::Uuid::new_v4());
        config.set_network_identity(NetworkIdentity::new(network_name.into(), secret.into()));
        config.set_listeners(
            listeners
                .iter()
                .map(|(p, port)| format!("{p}://{host}:{port}").parse())
                .collect::<Result<_, _>>()?,
        );
        let flags = Flags {
            no_tun: true,
            enable_ipv6: false,
            disable_p2p: true,
            disable_udp_hole_punching: true,
            ..Flags::default()
        };
        config.set_flags(flags);
        let mut instance = NetworkInstance::new(config);
        instance.start()?;
        let node = LocalNode {
            name: name.into(),
            listeners,
            instance,
        };
        node.wait_ready(Duration::from_secs(15))?;
        Ok(node)
    }

    fn wait_ready(&self, bound: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if let Some(info) = self.instance.get_running_info() {
                if let Some(err) = info.error_msg {
                    anyhow::bail!("EasyTier node {} failed: {err}", self.name);
                }
                // Our listeners plus the in-memory ring listener every node has.
                if info.my_node_info.listeners.len() > self.listeners.len() {
                    return Ok(());
                }
            }
            if start.elapsed() > bound {
                anyhow::bail!(
                    "EasyTier node {} did not start its listeners within {bound:?}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self, protocol: &str) -> u16 {
        self.listeners
            .iter()
            .find(|(p, _)| p == protocol)
            .map(|(_, port)| *port)
            .unwrap_or_else(|| panic!("node {} has no {protocol} listener", self.name))
    }
}
