//! Property tests of every parser of outside data: backend answers, peer entries, peers files,
//! job specs, durations and intervals. None may panic, whatever it is given, and what they
//! accept must be usable.

use easytier_probe::backend::parse_peers_answer;
use easytier_probe::backend::peers_file;
use easytier_probe::config::{Cli, EmptyEnv, Settings};
use easytier_probe::domain::duration::parse_duration;
use easytier_probe::domain::peer::parse_peer_entries;
use easytier_probe::domain::JobSpec;
use easytier_probe::domain::{ParsedList, Peer};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A field value that is often of the right type and often not.
fn field(good: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![3 => good, 1 => any_json()].boxed()
}

/// Peer entries close to valid ones, so the checks deep inside get exercised.
fn peer_entry() -> impl Strategy<Value = Value> {
    (
        field(
            prop_oneof![
                any::<u32>().prop_map(|n| json!(n)),
                "[a-z0-9-]{0,10}".prop_map(Value::String)
            ]
            .boxed(),
        ),
        field("\\PC{0,300}".prop_map(Value::String).boxed()),
        field(
            prop_oneof![
                "[a-z0-9.-]{0,30}".prop_map(Value::String),
                Just(json!("127.0.0.1")),
                Just(json!("[::1]"))
            ]
            .boxed(),
        ),
        field(
            prop_oneof![
                (0u64..70_000).prop_map(|n| json!(n)),
                "[0-9]{0,6}".prop_map(Value::String)
            ]
            .boxed(),
        ),
        field(
            prop_oneof![
                Just(json!("tcp")),
                Just(json!("UDP")),
                Just(json!("wss")),
                Just(json!("quic")),
                Just(json!("wg")),
                Just(json!("http")),
                "[a-z]{0,8}".prop_map(Value::String)
            ]
            .boxed(),
        ),
        field("\\PC{0,20}".prop_map(Value::String).boxed()),
        prop::option::of(field("\\PC{0,20}".prop_map(Value::String).boxed())),
    )
        .prop_map(|(id, name, host, port, protocol, network, secret)| {
            let mut v = json!({"id": id, "name": name, "host": host, "port": port,
                               "protocol": protocol, "network_name": network});
            if let Some(s) = secret {
                v["network_secret"] = s;
            }
            v
        })
}

fn check_peer(p: &Peer) {
    assert!(!p.id.is_empty());
    assert!(p.port != 0);
    assert!(!p.host.is_empty());
    assert!(!p.network_name.is_empty());
    assert_eq!(p.protocol, p.protocol.to_ascii_lowercase());
    assert!(p.name.chars().count() <= 200);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn peer_entries_never_panic_and_accepted_ones_are_usable(entries in prop::collection::vec(peer_entry(), 0..20)) {
        let ParsedList { peers, rejected } = parse_peer_entries(&entries);
        prop_assert_eq!(peers.len() + rejected.len(), entries.len());
        let mut ids = std::collections::HashSet::new();
        for p in &peers {
            check_peer(p);
            prop_assert!(ids.insert(p.id.clone()), "duplicate id kept");
        }
    }

    #[test]
    fn any_json_as_a_peer_entry_never_panics(v in any_json()) {
        if let Ok(p) = Peer::from_entry(0, &v) {
            check_peer(&p);
        }
    }

    #[test]
    fn backend_answers_never_panic(entries in prop::collection::vec(peer_entry(), 0..10), code in prop_oneof![Just(200u64), 0u64..1000], garbage in any_json()) {
        let body = json!({"code": code, "message": "m", "data": {"peers": entries, "total_available": 3}});
        if let Ok(f) = parse_peers_answer(body.to_string().as_bytes()) {
            prop_assert!((200..300).contains(&code));
            prop_assert!(!f.peers.is_empty() || f.rejected.is_empty());
            f.peers.iter().for_each(check_peer);
        }
        let _ = parse_peers_answer(garbage.to_string().as_bytes());
    }

    #[test]
    fn raw_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_peers_answer(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = peers_file::parse(&text, Some("toml"));
        let _ = peers_file::parse(&text, Some("json"));
        let _ = JobSpec::parse(&text);
        let _ = parse_duration(&text);
    }

    #[test]
    fn toml_peer_files_never_panic(entries in prop::collection::vec(peer_entry(), 0..10)) {
        // Through TOML where the value can be written as TOML at all.
        let doc = json!({"peers": entries});
        if let Ok(text) = toml::to_string(&doc) {
            if let Ok(loaded) = peers_file::parse(&text, Some("toml")) {
                loaded.peers.iter().for_each(check_peer);
            }
        }
    }

    #[test]
    fn durations_parse_what_they_say(n in 0u64..1_000_000, unit in prop_oneof![Just("ms"), Just("s"), Just("m"), Just("h"), Just("")]) {
        let d = parse_duration(&format!("{n}{unit}")).unwrap();
        let expected = match unit {
            "ms" => std::time::Duration::from_millis(n),
            "m" => std::time::Duration::from_secs(n * 60),
            "h" => std::time::Duration::from_secs(n * 3600),
            _ => std::time::Duration::from_secs(n),
        };
        prop_assert_eq!(d, expected);
    }

    #[test]
    fn job_specs_never_panic(every in ".{0,10}", timeout in ".{0,10}", overlap in prop_oneof![Just("forbid".to_string()), ".{0,8}"]) {
        let text = format!("name = \"x\"\nevery = {every:?}\ntimeout = {timeout:?}\noverlap = {overlap:?}\n");
        if let Ok(spec) = JobSpec::parse(&text) {
            prop_assert_eq!(spec.overlap, "forbid");
        }
    }

    #[test]
    fn bad_intervals_are_errors_naming_the_variable(value in "\\PC{0,12}") {
        use clap::Parser;
        let Ok(cli) = Cli::try_parse_from(["easytier-probe", "--health-check-interval", value.as_str()]) else {
            return Ok(());
        };
        match Settings::resolve(&cli.options, &EmptyEnv) {
            Ok(s) => {
                let secs = s.health_check_interval.map(|d| d.as_secs());
                prop_assert!(secs.is_none_or(|s| (1..=604_800).contains(&s)));
            }
            Err(e) => prop_assert!(e.0.contains("HEALTH_CHECK_INTERVAL"), "{}", e),
        }
    }
}
