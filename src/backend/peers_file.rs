//! The peers file of standalone mode: JSON (a list of peer objects, `{"peers": [..]}` or a
//! whole backend answer) or TOML (`[[peers]]` tables), with the same fields as the backend's.

use std::path::Path;

use serde_json::Value;

use crate::domain::peer::parse_peer_list;
use crate::domain::ParsedList;

/// Files larger than this are refused.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PeersFileError {
    #[error("cannot read the peers file {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("the peers file {path} is malformed: {detail}")]
    Malformed { path: String, detail: String },
}

pub fn load(path: &Path) -> Result<ParsedList, PeersFileError> {
    let shown = path.display().to_string();
    let read_err = |detail: String| PeersFileError::Read {
        path: shown.clone(),
        detail,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| read_err(e.to_string()))?
        .len();
    if len > MAX_FILE_BYTES {
        return Err(read_err(format!(
            "{len} bytes is over the {MAX_FILE_BYTES} byte limit"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| read_err(e.to_string()))?;
    parse(&text, path.extension().and_then(|e| e.to_str())).map_err(|detail| {
        PeersFileError::Malformed {
            path: shown.clone(),
            detail,
        }
    })
}

/// Parses the text as TOML when the extension says so, else JSON.
pub fn parse(text: &str, extension: Option<&str>) -> Result<ParsedList, String> {
    let value: Value = if extension.is_some_and(|e| e.eq_ignore_ascii_case("toml")) {
        let t: toml::Value = toml::from_str(text).map_err(|e| format!("not valid TOML: {e}"))?;
        serde_json::to_value(t).map_err(|e| e.to_string())?
    } else {
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?
    };
    let entries = match &value {
        Value::Array(a) => a,
        Value::Object(o) => o
            .get("peers")
            .or_else(|| o.get("data").and_then(|d| d.get("peers")))
            .and_then(Value::as_array)
            .ok_or("expected a list of peers, a `peers` list, or a backend answer")?,
        _ => return Err("expected a list of peers".into()),
    };
    parse_peer_list(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_toml_forms() {
        let json =
            r#"[{"id":1,"host":"127.0.0.1","port":11010,"protocol":"tcp","network_name":"n"}]"#;
        assert_eq!(parse(json, Some("json")).unwrap().peers.len(), 1);
        let wrapped = format!(r#"{{"peers": {json}}}"#);
        assert_eq!(parse(&wrapped, None).unwrap().peers.len(), 1);
        let toml = r#"
            [[peers]]
            id = "a"
            host = "127.0.0.1"
            port = 11010
            protocol = "udp"
            network_name = "n"
            network_secret = "s"

            [[peers]]
            id = 2
            host = "localhost"
            port = 11011
            protocol = "wg"
            network_name = "n"
        "#;
        let loaded = parse(toml, Some("toml")).unwrap();
        assert_eq!(loaded.peers.len(), 2);
        assert_eq!(
            loaded.peers[0].network_secret.as_ref().unwrap().expose(),
            "s"
        );
        assert_eq!(loaded.peers[1].id, "2");
    }

    #[test]
    fn malformed_files_say_why() {
        assert!(parse("{", None).unwrap_err().contains("JSON"));
        assert!(parse("peers = [", Some("toml"))
            .unwrap_err()
            .contains("TOML"));
        assert!(parse(r#"{"x":1}"#, None)
            .unwrap_err()
            .contains("list of peers"));
        assert!(parse(r#"[{"id":1}]"#, None)
            .unwrap_err()
            .contains("none of the 1"));
        let err = load(Path::new("/nonexistent/peers.json")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/peers.json"));
    }
}
