//! A DNS server on loopback for the tests: it answers A, AAAA, TXT and SRV queries for the
//! names it is given (UDP), NXDOMAIN for every other name (with an SOA, so a negative answer
//! is cached as a real zone's is), never answers a name set silent, and counts the queries for each name, so a test can see what a resolver's cache saved.
//!
//! No test resolves a name through any other server: the probe's resolver is pointed here
//! (`DNS_SERVERS`).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, SOA, SRV, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

/// How long a resolver may remember that a name or record does not exist, in seconds.
pub const NEGATIVE_TTL: u32 = 60;

/// The records a [`DnsServer`] serves, and what it has been asked.
#[derive(Default)]
struct Zone {
    records: HashMap<(String, RecordType), Vec<Record>>,
    silent: HashSet<String>,
    queries: HashMap<String, usize>,
}

/// A DNS server on `127.0.0.1`, stopped on drop.
pub struct DnsServer {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    task: tokio::task::JoinHandle<()>,
}

/// A name as the zone keys it: lower case, no final dot.
fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsServer {
    /// Binds `127.0.0.1:0` and answers until dropped.
    pub async fn start() -> std::io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = socket.local_addr()?;
        let zone = Arc::new(Mutex::new(Zone::default()));
        let served = zone.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let answer = served
                    .lock()
                    .ok()
                    .and_then(|mut z| answer(&mut z, &buf[..n]));
                if let Some(bytes) = answer {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
        });
        Ok(Self { addr, zone, task })
    }

    /// Where to send queries: the value for `DNS_SERVERS`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `ip` for `name` (A for IPv4, AAAA for IPv6), beside any it had.
    pub fn address(&self, name: &str, ip: IpAddr, ttl: u32) {
        let (kind, data) = match ip {
            IpAddr::V4(v4) => (RecordType::A, RData::A(A(v4))),
            IpAddr::V6(v6) => (RecordType::AAAA, RData::AAAA(AAAA(v6))),
        };
        self.add(name, kind, ttl, data);
    }

    /// Serves one TXT record of one string for `name`, beside any it had.
    pub fn txt(&self, name: &str, text: &str, ttl: u32) {
        let data = RData::TXT(TXT::new(vec![text.to_string()]));
        self.add(name, RecordType::TXT, ttl, data);
    }

    /// Serves an SRV record for `name` (e.g. `_easytier._tcp.example.test`), beside any it had.
    pub fn srv(&self, name: &str, priority: u16, port: u16, target: &str, ttl: u32) {
        let target = Name::from_str(&format!("{}.", key(target))).expect("a valid SRV target");
        let data = RData::SRV(SRV::new(priority, 0, port, target));
        self.add(name, RecordType::SRV, ttl, data);
    }

    /// Never answers queries for `name` or any name under it, as a zone whose servers are down.
    pub fn silence(&self, name: &str) {
        self.zone.lock().unwrap().silent.insert(key(name));
    }

    /// How many queries of any type came for `name`.
    pub fn queries(&self, name: &str) -> usize {
        let zone = self.zone.lock().unwrap();
        zone.queries.get(&key(name)).copied().unwrap_or(0)
    }

    fn add(&self, name: &str, kind: RecordType, ttl: u32, data: RData) {
        let owner = Name::from_str(&format!("{}.", key(name))).expect("a valid record name");
        let record = Record::from_rdata(owner, ttl, data);
        let mut zone = self.zone.lock().unwrap();
        zone.records
            .entry((key(name), kind))
            .or_default()
            .push(record);
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The zone's SOA record: negative answers are kept for [`NEGATIVE_TTL`] seconds.
fn soa() -> Record {
    let name = |n: &str| Name::from_str(n).expect("a valid name");
    let soa = SOA::new(
        name("ns.test."),
        name("hostmaster.test."),
        1,
        3600,
        600,
        86400,
        NEGATIVE_TTL,
    );
    Record::from_rdata(name("test."), NEGATIVE_TTL, RData::SOA(soa))
}

/// The answer to one datagram, or `None` for one that is not a query or names a silent name.
fn answer(zone: &mut Zone, datagram: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(datagram).ok()?;
    if query.metadata.message_type != MessageType::Query {
        return None;
    }
    let asked = query.queries.first()?;
    let name = key(&asked.name().to_ascii());
    *zone.queries.entry(name.clone()).or_default() += 1;
    let under = |s: &String| name == *s || name.ends_with(&format!(".{s}"));
    if zone.silent.iter().any(under) {
        return None;
    }
    let mut response = Message::response(query.metadata.id, query.metadata.op_code);
    response.metadata.recursion_desired = query.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.authoritative = true;
    response.add_queries(query.queries.clone());
    response.edns = query.edns.clone();
    match zone.records.get(&(name.clone(), asked.query_type())) {
        Some(records) => {
            response.add_answers(records.iter().cloned());
        }
        // A name with records of other types has no data of this one; any other does not exist.
        // Either way the SOA says how long to remember that, as a real zone's does.
        None => {
            if !zone.records.keys().any(|(n, _)| *n == name) {
                response.metadata.response_code = ResponseCode::NXDomain;
            }
            response.add_authority(soa());
        }
    }
    response.to_vec().ok()
}
