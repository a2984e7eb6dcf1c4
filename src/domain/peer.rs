//! A peer to probe, and the parser of peer entries from outside (backend answers, peers files).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::secret::Secret;

/// The protocols the probe can speak.
pub const SUPPORTED_PROTOCOLS: [&str; 6] = ["tcp", "udp", "ws", "wss", "quic", "wg"];

/// The schemes of indirect peers: they name the real peer URL(s) (a page, a TXT record, SRV
/// records) rather than being a peer.
pub const INDIRECT_SCHEMES: [&str; 4] = ["http", "https", "txt", "srv"];

/// Indirect schemes whose entries need no port: the records carry the ports.
pub const PORTLESS_SCHEMES: [&str; 2] = ["txt", "srv"];

/// `host:port`, an IPv6 address in brackets (`[::1]:11010`), as in a URL.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Whether the probe can speak `protocol` (lower-case) directly.
pub fn is_supported(protocol: &str) -> bool {
    SUPPORTED_PROTOCOLS.contains(&protocol)
}

/// A peer to probe, as assigned by the backend or listed in the peers file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peer {
    pub id: String,
    pub name: String,
    pub host: String,
    /// 0 for a `txt` or `srv` peer given without one (its records carry the ports).
    pub port: u16,
    /// Lower-cased; may be a protocol we cannot speak (probed as `unsupported_protocol`).
    pub protocol: String,
    pub network_name: String,
    /// The peer's own secret; when absent the configured `NETWORK_SECRET` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_secret: Option<Secret>,
    /// The peer's own probe timeout (the entry's `timeout`); when absent `PROBE_TIMEOUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The entry's `secure`: `true` forces secure mode's Noise handshake, `false` the legacy
    /// one; when absent the probe learns which the node takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
}

/// The probe timeouts allowed, `PROBE_TIMEOUT`'s and a peer entry's own.
pub const TIMEOUT_RANGE: std::ops::RangeInclusive<std::time::Duration> =
    std::time::Duration::from_millis(100)..=std::time::Duration::from_secs(60);

/// Longest accepted fields of a peer entry (a longer `name` is cut to [`MAX_NAME_CHARS`]).
pub const MAX_PROTOCOL_BYTES: usize = 32;
pub const MAX_NETWORK_NAME_BYTES: usize = 256;
pub const MAX_SECRET_BYTES: usize = 1024;
pub const MAX_NAME_CHARS: usize = 200;

/// Why a peer entry from outside was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer entry {index}{id}: {reason}")]
pub struct PeerEntryError {
    pub index: usize,
    /// ` (id X)` when the entry had a usable id.
    pub id: String,
    pub reason: String,
}

impl Peer {
    /// A tcp peer on 127.0.0.1:1 in network "n", named as its id (unit tests).
    #[cfg(test)]
    pub(crate) fn for_tests(id: &str) -> Peer {
        Peer {
            id: id.into(),
            name: id.into(),
            host: "127.0.0.1".into(),
            port: 1,
            protocol: "tcp".into(),
            network_name: "n".into(),
            network_secret: None,
            timeout_ms: None,
            secure: None,
        }
    }

    /// The timeout this peer's entry sets for its probes, if it sets one.
    pub fn own_timeout(&self) -> Option<std::time::Duration> {
        self.timeout_ms.map(std::time::Duration::from_millis)
    }

    /// Builds a peer from one entry of a backend answer or a peers file.
    /// Unknown fields are ignored; `id` may be a number or a string.
    pub fn from_entry(index: usize, entry: &Value) -> Result<Peer, PeerEntryError> {
        let fail = |id: &str, reason: String| PeerEntryError {
            index,
            id: if id.is_empty() {
                String::new()
            } else {
                format!(" (id {id})")
            },
            reason,
        };
        let obj = entry
            .as_object()
            .ok_or_else(|| fail("", "is not an object".into()))?;
        let id = entry_id(obj.get("id")).map_err(|reason| fail("", reason.into()))?;
        let text = |key: &str| -> Result<Option<String>, PeerEntryError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(fail(&id, format!("{key} must be a string"))),
            }
        };
        let host = host(text("host")?).map_err(|reason| fail(&id, reason))?;
        let protocol = text("protocol")?
            .map(|p| p.trim().to_ascii_lowercase())
            .filter(|p| !p.is_empty())
            .ok_or_else(|| fail(&id, "protocol is missing".into()))?;
        let portless = PORTLESS_SCHEMES.contains(&protocol.as_str());
        let port = match obj.get("port") {
            None | Some(Value::Null) if portless => 0,
            Some(Value::Number(n)) if portless && n.as_u64() == Some(0) => 0,
            raw => port(raw).map_err(|reason| fail(&id, reason))?,
        };
        let network_name = text("network_name")?
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| fail(&id, "network_name is missing or empty".into()))?;
        for (field, value, max) in [
            ("protocol", &protocol, MAX_PROTOCOL_BYTES),
            ("network_name", &network_name, MAX_NETWORK_NAME_BYTES),
        ] {
            if value.len() > max {
                return Err(fail(&id, format!("{field} is longer than {max} bytes")));
            }
        }
        let name = text("name")?
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| match port {
                0 => format!("{protocol}://{host}"),
                _ => format!("{protocol}://{}", host_port(&host, port)),
            });
        let network_secret = text("network_secret")?
            .filter(|s| !s.is_empty())
            .map(Secret::new);
        if network_secret
            .as_ref()
            .is_some_and(|s| s.expose().len() > MAX_SECRET_BYTES)
        {
            return Err(fail(
                &id,
                format!("network_secret is longer than {MAX_SECRET_BYTES} bytes"),
            ));
        }
        let timeout_ms = timeout(obj.get("timeout")).map_err(|reason| fail(&id, reason))?;
        let secure = secure(obj.get("secure")).map_err(|reason| fail(&id, reason))?;
        Ok(Peer {
            id,
            name: truncate(&name, MAX_NAME_CHARS),
            host,
            port,
            protocol,
            network_name,
            network_secret,
            timeout_ms,
            secure,
        })
    }

    pub fn is_supported(&self) -> bool {
        is_supported(&self.protocol)
    }
}

/// A peer entry's host: trimmed, without the brackets of an IPv6 address.
fn host(raw: Option<String>) -> Result<String, String> {
    let host = raw
        .map(|h| {
            h.trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        })
        .filter(|h| !h.is_empty())
        .ok_or("host is missing or empty")?;
    if host.len() > 253 + 2 || host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err("host is not a valid host name or address".into());
    }
    Ok(host)
}

/// A peer entry's port: a number or a string of one, in 1..=65535.
fn port(raw: Option<&Value>) -> Result<u16, String> {
    let port = match raw {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .ok_or("port is missing or not a number")?;
    u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("port {port} is outside 1..=65535"))
}

/// A peer entry's `id`: a number, or a string of 1 to 128 bytes (trimmed).
fn entry_id(raw: Option<&Value>) -> Result<String, &'static str> {
    match raw {
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 128 => Ok(s.trim().into()),
        Some(Value::String(_)) => Err("id is empty or too long"),
        Some(_) => Err("id must be a number or a string"),
        None => Err("id is missing"),
    }
}

/// A peer entry's `secure`: which handshake to force; absent or null to learn it.
fn secure(raw: Option<&Value>) -> Result<Option<bool>, String> {
    match raw {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(on)) => Ok(Some(*on)),
        Some(_) => Err("secure must be true or false".into()),
    }
}

/// A peer entry's own probe timeout: seconds as a number, or a duration ("5s", "1500ms"), in
/// [`TIMEOUT_RANGE`]; absent or null for the configured one.
fn timeout(raw: Option<&Value>) -> Result<Option<u64>, String> {
    let timeout = match raw {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 1e6)
            .map(std::time::Duration::from_secs_f64),
        Some(Value::String(s)) => super::duration::parse_duration(s).ok(),
        Some(_) => None,
    };
    let range = format!(
        "from {}ms to {}s",
        TIMEOUT_RANGE.start().as_millis(),
        TIMEOUT_RANGE.end().as_secs()
    );
    let timeout =
        timeout.ok_or_else(|| format!("timeout must be seconds or a duration {range}, e.g. 5s"))?;
    if !TIMEOUT_RANGE.contains(&timeout) {
        return Err(format!(
            "timeout {}ms is outside {range}",
            timeout.as_millis()
        ));
    }
    Ok(Some(timeout.as_millis() as u64))
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// The peers of a list from outside, and the entries that were rejected.
#[derive(Debug, Default)]
pub struct ParsedList {
    pub peers: Vec<Peer>,
    pub rejected: Vec<PeerEntryError>,
}

/// At most this many peer entries in one answer or peers file; a longer list is refused whole.
pub const MAX_PEER_ENTRIES: usize = 100_000;

/// Parses peer entries one at a time: good entries are kept, bad ones reported, duplicate ids
/// after the first rejected. Holds only the peers, never the whole list of entries.
#[derive(Debug, Default)]
pub struct EntryParser {
    peers: Vec<Peer>,
    rejected: Vec<PeerEntryError>,
    seen: std::collections::HashSet<String>,
    index: usize,
}

impl EntryParser {
    /// Takes the next entry; an error once there are more than [`MAX_PEER_ENTRIES`].
    pub fn push(&mut self, entry: &Value) -> Result<(), String> {
        let index = self.index;
        if index >= MAX_PEER_ENTRIES {
            return Err(format!(
                "more than {MAX_PEER_ENTRIES} peer entries (the most one list may hold)"
            ));
        }
        self.index += 1;
        match Peer::from_entry(index, entry) {
            Ok(peer) if !self.seen.insert(peer.id.clone()) => self.rejected.push(PeerEntryError {
                index,
                id: format!(" (id {})", peer.id),
                reason: "duplicate id; the first entry with this id is kept".into(),
            }),
            Ok(peer) => self.peers.push(peer),
            Err(e) => self.rejected.push(e),
        }
        Ok(())
    }

    /// The good peers and the rejected entries.
    pub fn entries(self) -> ParsedList {
        ParsedList {
            peers: self.peers,
            rejected: self.rejected,
        }
    }

    /// Like [`EntryParser::entries`], but a list in which no entry is valid is refused as a
    /// whole: it would replace the stored list with nothing.
    pub fn list(self) -> Result<ParsedList, String> {
        if self.peers.is_empty() && !self.rejected.is_empty() {
            return Err(format!(
                "none of the {} peer entries is valid; first problem: {}",
                self.rejected.len(),
                self.rejected[0]
            ));
        }
        Ok(self.entries())
    }
}

/// Parses a list of peer entries (see [`EntryParser`]); entries past the limit are rejected.
pub fn parse_peer_entries(entries: &[Value]) -> ParsedList {
    let mut parser = EntryParser::default();
    for entry in entries {
        if parser.push(entry).is_err() {
            break;
        }
    }
    parser.entries()
}

/// A whole list of peer entries: refused when it is too long or no entry is valid.
pub fn parse_peer_list(entries: &[Value]) -> Result<ParsedList, String> {
    let mut parser = EntryParser::default();
    for entry in entries {
        parser.push(entry)?;
    }
    parser.list()
}

/// Where a stored peer list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListSource {
    Backend,
    File,
}

/// The stored peer list: replaced whole, only by a valid answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerList {
    pub fetched_at: DateTime<Utc>,
    pub source: ListSource,
    pub peers: Vec<Peer>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_accept_numbers_strings_and_unknown_fields() {
        let p = Peer::from_entry(
            0,
            &json!({"id": 7, "name": "n", "host": "127.0.0.1", "port": "11010",
                    "protocol": "TCP", "network_name": "main", "extra": [1],
                    "status": "Online", "response_time": 5}),
        )
        .unwrap();
        assert_eq!(p.id, "7");
        assert_eq!(p.port, 11010);
        assert_eq!(p.protocol, "tcp");
        assert!(p.is_supported());
        let p = Peer::from_entry(
            0,
            &json!({"id": "a", "host": "h", "port": 1, "protocol": "http", "network_name": "x"}),
        )
        .unwrap();
        assert!(!p.is_supported());
        assert_eq!(p.name, "http://h:1");
    }

    #[test]
    fn txt_and_srv_entries_need_no_port_and_others_do() {
        for (protocol, port) in [
            ("txt", None),
            ("srv", Some(json!(0))),
            ("txt", Some(json!(5))),
        ] {
            let mut e = json!({"id": 1, "host": "peers.example", "protocol": protocol,
                               "network_name": "x"});
            if let Some(port) = port {
                e["port"] = port;
            }
            let p = Peer::from_entry(0, &e).unwrap_or_else(|e| panic!("{protocol}: {e:?}"));
            if p.port == 0 {
                assert_eq!(p.name, format!("{protocol}://peers.example"));
            }
        }
        for protocol in ["http", "tcp"] {
            let e = json!({"id": 1, "host": "h", "protocol": protocol, "network_name": "x"});
            assert!(
                Peer::from_entry(0, &e).is_err(),
                "{protocol} without a port"
            );
        }
    }

    #[test]
    fn an_ipv6_host_is_bracketed_in_its_name() {
        let e = json!({"id": 1, "host": "[::1]", "port": 11010, "protocol": "tcp", "network_name": "x"});
        let p = Peer::from_entry(0, &e).unwrap();
        assert_eq!(p.host, "::1");
        assert_eq!(p.name, "tcp://[::1]:11010");
        assert_eq!(host_port("10.0.0.1", 1), "10.0.0.1:1");
    }

    #[test]
    fn an_entry_may_force_the_handshake() {
        let base = json!({"id": 1, "host": "h", "port": 1, "protocol": "tcp", "network_name": "x"});
        for (value, secure) in [
            (None, None),
            (Some(json!(null)), None),
            (Some(json!(true)), Some(true)),
            (Some(json!(false)), Some(false)),
        ] {
            let mut e = base.clone();
            if let Some(v) = value {
                e["secure"] = v;
            }
            assert_eq!(Peer::from_entry(0, &e).unwrap().secure, secure, "{e}");
        }
        for value in [json!("yes"), json!(1)] {
            let mut e = base.clone();
            e["secure"] = value.clone();
            let err = Peer::from_entry(2, &e).unwrap_err();
            assert!(
                err.reason.contains("secure must be true or false"),
                "{value}: {err}"
            );
        }
    }

    #[test]
    fn an_entry_may_set_its_own_timeout() {
        let base = json!({"id": 1, "host": "h", "port": 1, "protocol": "tcp", "network_name": "x"});
        let default = std::time::Duration::from_secs(3);
        assert_eq!(Peer::from_entry(0, &base).unwrap().own_timeout(), None);
        for (value, ms) in [
            (json!(5), 5000),
            (json!(0.25), 250),
            (json!("1500ms"), 1500),
            (json!("60s"), 60_000),
            (json!(null), 3000),
        ] {
            let mut e = base.clone();
            e["timeout"] = value.clone();
            let p = Peer::from_entry(0, &e).unwrap();
            let own = p.own_timeout().unwrap_or(default);
            assert_eq!(own.as_millis(), ms, "{value}");
        }
        for (value, needle) in [
            (json!(0.05), "50ms is outside from 100ms to 60s"),
            (json!("2m"), "outside"),
            (json!(-1), "timeout must be"),
            (json!("soon"), "timeout must be"),
            (json!([3]), "timeout must be"),
        ] {
            let mut e = base.clone();
            e["timeout"] = value.clone();
            let err = Peer::from_entry(2, &e).unwrap_err();
            assert!(err.reason.contains(needle), "{value}: {err}");
        }
    }

    #[test]
    fn over_long_fields_reject_the_entry() {
        let base = json!({"id": 1, "host": "h", "port": 1, "protocol": "tcp", "network_name": "x"});
        for (field, len, limit) in [
            ("protocol", MAX_PROTOCOL_BYTES + 1, MAX_PROTOCOL_BYTES),
            (
                "network_name",
                MAX_NETWORK_NAME_BYTES + 1,
                MAX_NETWORK_NAME_BYTES,
            ),
            ("network_secret", MAX_SECRET_BYTES + 1, MAX_SECRET_BYTES),
        ] {
            let mut e = base.clone();
            e[field] = json!("a".repeat(len));
            let err = Peer::from_entry(3, &e).unwrap_err();
            assert_eq!(err.index, 3);
            assert!(
                err.reason.contains(field) && err.reason.contains(&limit.to_string()),
                "{err}"
            );
            // At the limit it is accepted.
            e[field] = json!("a".repeat(limit));
            assert!(Peer::from_entry(3, &e).is_ok(), "{field} at its limit");
        }
    }

    #[test]
    fn a_list_over_the_entry_limit_is_refused_whole() {
        let entry =
            json!({"id": 1, "host": "h", "port": 1, "protocol": "tcp", "network_name": "x"});
        let mut parser = EntryParser::default();
        for _ in 0..MAX_PEER_ENTRIES {
            parser.push(&entry).unwrap();
        }
        let err = parser.push(&entry).unwrap_err();
        assert!(err.contains("more than 100000"), "{err}");
    }

    #[test]
    fn bad_entries_are_rejected_with_a_reason() {
        let base = json!({"id": 1, "host": "h", "port": 1, "protocol": "tcp", "network_name": "x"});
        for (field, value, needle) in [
            ("port", json!(0), "port 0"),
            ("port", json!(70000), "port 70000"),
            ("host", json!(""), "host"),
            ("id", json!(null), "id must be"),
            ("id", json!([1]), "id must be"),
            ("network_name", json!(3), "network_name"),
        ] {
            let mut entry = base.clone();
            entry[field] = value;
            let err = Peer::from_entry(4, &entry).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
            assert_eq!(err.index, 4);
        }
        let ParsedList {
            peers,
            rejected: errors,
        } = parse_peer_entries(&[base.clone(), json!("x"), base]);
        assert_eq!(peers.len(), 1);
        assert_eq!(errors.len(), 2);
        assert!(errors[1].reason.contains("duplicate"));
    }
}
