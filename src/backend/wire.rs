//! The backend's JSON: the `GET /peers` answer, parsed entry by entry, and the
//! `PUT /nodes/status` body.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::peer::EntryParser;
use crate::domain::time::whole_ms;
use crate::domain::{ParsedList, SweepSummary};

/// The `PUT /nodes/status` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub status: NodeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_time: Option<u64>,
    pub metadata: StatusMetadata,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeStatus {
    Online,
    Offline,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusMetadata {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub peers_count: usize,
    pub reachable_peers: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_peer_rtt: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_peer_rtt: Option<u64>,
}

impl StatusReport {
    /// A report from the latest sweep; RTTs in integer milliseconds (`rtt_us / 1000`).
    pub fn from_sweep(
        status: NodeStatus,
        sweep: Option<&SweepSummary>,
        peers_count: usize,
        region: Option<&str>,
    ) -> Self {
        let avg = sweep.and_then(|s| s.avg_rtt_us).map(whole_ms);
        let max = sweep.and_then(|s| s.max_rtt_us).map(whole_ms);
        StatusReport {
            status,
            response_time: avg,
            metadata: StatusMetadata {
                version: env!("CARGO_PKG_VERSION").to_string(),
                region: region.map(String::from),
                peers_count: sweep.map(|s| s.peers).unwrap_or(peers_count),
                reachable_peers: sweep.map(|s| s.reachable).unwrap_or(0),
                avg_peer_rtt: avg,
                max_peer_rtt: max,
            },
        }
    }
}

/// Parses `{"code":200,"message":..,"data":{"peers":[..],..}}` with typed serde, one peer
/// entry at a time: no generic JSON tree of the answer is built, unknown fields are skipped
/// unread, and a list over [`MAX_PEER_ENTRIES`](crate::domain::peer::MAX_PEER_ENTRIES) entries is refused as soon as it is seen.
pub fn parse_peers_answer(body: &[u8]) -> Result<ParsedList, String> {
    let starts_as_object = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if !starts_as_object {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => "the answer is not a JSON object".into(),
                Err(e) => format!("not JSON ({e})"),
            },
        );
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            format!("not JSON ({e})")
        } else {
            e.to_string()
        }
    })?;
    if let Some(code) = answer.code {
        let code = code.as_u64().ok_or("code is not a number")?;
        if !(200..300).contains(&code) {
            let message = answer
                .message
                .as_ref()
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(format!("code {code} ({message})"));
        }
    }
    let Some(Lenient::Is(data)) = answer.data else {
        return Err("data is missing or not an object".into());
    };
    let Some(Lenient::Is(entries)) = data.peers else {
        return Err("data.peers is missing or not an array".into());
    };
    entries.0.list()
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    data: Option<Lenient<Data, true>>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    peers: Option<Lenient<Entries, false>>,
}

/// A field of the expected kind (an object when `OBJECT`, else an array), or of another kind
/// (skipped unread, and named in the error).
enum Lenient<T, const OBJECT: bool> {
    Is(T),
    Other,
}

impl<'de, T: Deserialize<'de>, const OBJECT: bool> Deserialize<'de> for Lenient<T, OBJECT> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
        use serde::de::{Error, IgnoredAny, MapAccess, SeqAccess, Visitor};
        struct V<T, const OBJECT: bool>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const OBJECT: bool> Visitor<'de> for V<T, OBJECT> {
            type Value = Lenient<T, OBJECT>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                if OBJECT {
                    return T::deserialize(MapAccessDeserializer::new(map)).map(Lenient::Is);
                }
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Lenient::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                if !OBJECT {
                    return T::deserialize(SeqAccessDeserializer::new(seq)).map(Lenient::Is);
                }
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Lenient::Other)
            }
            fn visit_bool<E: Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Lenient::Other)
            }
            fn visit_i64<E: Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Lenient::Other)
            }
            fn visit_u64<E: Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Lenient::Other)
            }
            fn visit_f64<E: Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Lenient::Other)
            }
            fn visit_str<E: Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Lenient::Other)
            }
            fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
                Ok(Lenient::Other)
            }
        }
        d.deserialize_any(V::<T, OBJECT>(std::marker::PhantomData))
    }
}

/// `data.peers`, parsed entry by entry into peers.
struct Entries(EntryParser);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of peer entries")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Entries, A::Error> {
                let mut parser = EntryParser::default();
                // One entry's small tree at a time; it is dropped once the peer is built.
                while let Some(entry) = seq.next_element::<Value>()? {
                    parser.push(&entry).map_err(serde::de::Error::custom)?;
                }
                Ok(Entries(parser))
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_parse_or_say_why_not() {
        let good = json!({"code": 200, "message": "ok", "data": {"peers": [
            {"id": 1, "name": "a", "host": "127.0.0.1", "port": 1, "protocol": "tcp",
             "network_name": "n", "status": "Online", "response_time": 50},
            {"id": 2, "host": "127.0.0.1", "port": 0, "protocol": "tcp", "network_name": "n"}
        ], "total_available": 100, "next_batch_available": true}});
        let f = parse_peers_answer(good.to_string().as_bytes()).unwrap();
        assert_eq!(f.peers.len(), 1);
        assert_eq!(f.rejected.len(), 1);

        for (body, needle) in [
            ("<html>", "not JSON"),
            ("[]", "not a JSON object"),
            (r#"{"code":500,"message":"db down"}"#, "code 500"),
            (r#"{"code":200,"data":{}}"#, "data.peers"),
            (
                r#"{"code":200,"data":{"peers":[{"id":1}]}}"#,
                "none of the 1",
            ),
        ] {
            let err = parse_peers_answer(body.as_bytes()).unwrap_err();
            assert!(err.contains(needle), "{body}: {err}");
        }
        // Every other kind where an object or an array belongs is named, not a serde error.
        for (body, needle) in [
            (
                r#"{"code":200,"data":[1,2]}"#,
                "data is missing or not an object",
            ),
            (
                r#"{"code":200,"data":"x"}"#,
                "data is missing or not an object",
            ),
            (
                r#"{"code":200,"data":null}"#,
                "data is missing or not an object",
            ),
            (
                r#"{"code":200,"data":{"peers":{"a":1}}}"#,
                "data.peers is missing",
            ),
            (
                r#"{"code":200,"data":{"peers":7}}"#,
                "data.peers is missing",
            ),
            (
                r#"{"code":"200","data":{"peers":[]}}"#,
                "code is not a number",
            ),
            (r#"{"code":200,"data":{"peers":[0,"#, "not JSON"),
        ] {
            let err = parse_peers_answer(body.as_bytes()).unwrap_err();
            assert!(err.contains(needle), "{body}: {err}");
        }
        // Unknown fields of any shape are skipped.
        let odd = br#"{"code":200,"extra":{"deep":[1,{"x":null}]},"data":{"total_available":3,"peers":[{"id":1,"host":"h","port":1,"protocol":"tcp","network_name":"n"}]}}"#;
        assert_eq!(parse_peers_answer(odd).unwrap().peers.len(), 1);
        let empty = parse_peers_answer(br#"{"code":200,"data":{"peers":[]}}"#).unwrap();
        assert!(empty.peers.is_empty());
    }

    #[test]
    fn report_is_in_integer_milliseconds() {
        let sweep = SweepSummary {
            at: chrono::Utc::now(),
            peers: 3,
            reachable: 2,
            avg_rtt_us: Some(45_678),
            max_rtt_us: Some(120_999),
        };
        let r = StatusReport::from_sweep(NodeStatus::Online, Some(&sweep), 3, Some("us-west"));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["status"], "Online");
        assert_eq!(v["response_time"], 45);
        assert_eq!(v["metadata"]["avg_peer_rtt"], 45);
        assert_eq!(v["metadata"]["max_peer_rtt"], 120);
        assert_eq!(v["metadata"]["reachable_peers"], 2);
        assert_eq!(v["metadata"]["region"], "us-west");

        let none = SweepSummary {
            reachable: 0,
            avg_rtt_us: None,
            max_rtt_us: None,
            ..sweep
        };
        let v = serde_json::to_value(StatusReport::from_sweep(
            NodeStatus::Offline,
            Some(&none),
            3,
            None,
        ))
        .unwrap();
        assert!(v.get("response_time").is_none());
        assert!(v["metadata"].get("avg_peer_rtt").is_none());
        assert!(v["metadata"].get("region").is_none());
        assert_eq!(v["status"], "Offline");
    }
}
