//! The secrets: one table of their names (flag, variable, `<VARIABLE>_FILE`, systemd
//! credential), and how each is sourced.

use std::path::Path;

use super::env::Env;
use super::ConfigError;
use crate::domain::Secret;

/// The names of one secret setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretName {
    /// The command-line flag, e.g. `--node-token`.
    pub flag: &'static str,
    /// The environment variable; `<variable>_FILE` names a file holding it.
    pub variable: &'static str,
    /// The systemd credential (a file in `$CREDENTIALS_DIRECTORY`).
    pub credential: &'static str,
}

impl SecretName {
    /// The variable naming a file that holds the secret.
    pub fn file_variable(&self) -> String {
        format!("{}_FILE", self.variable)
    }
}

pub const NODE_TOKEN: SecretName = SecretName {
    flag: "--node-token",
    variable: "NODE_TOKEN",
    credential: "node_token",
};
pub const API_KEY: SecretName = SecretName {
    flag: "--api-key",
    variable: "API_KEY",
    credential: "api_key",
};
pub const ADMIN_TOKEN: SecretName = SecretName {
    flag: "--admin-token",
    variable: "ADMIN_TOKEN",
    credential: "admin_token",
};
pub const NETWORK_SECRET: SecretName = SecretName {
    flag: "--network-secret",
    variable: "NETWORK_SECRET",
    credential: "network_secret",
};

pub const NOTIFY_URLS: SecretName = SecretName {
    flag: "--notify-urls",
    variable: "NOTIFY_URLS",
    credential: "notify_urls",
};

/// Every secret setting.
pub const SECRETS: [SecretName; 5] = [
    NODE_TOKEN,
    API_KEY,
    ADMIN_TOKEN,
    NETWORK_SECRET,
    NOTIFY_URLS,
];

/// A secret from the flag/variable (`direct`), else `<VARIABLE>_FILE`, else
/// `$CREDENTIALS_DIRECTORY/<credential>`.
pub(super) fn secret(
    name: SecretName,
    direct: Option<&str>,
    env: &dyn Env,
) -> Result<Option<Secret>, ConfigError> {
    if let Some(v) = direct.filter(|v| !v.is_empty()) {
        return Ok(Some(Secret::new(v.trim_end_matches(['\r', '\n']))));
    }
    let file_variable = name.file_variable();
    if let Some(path) = env.var(&file_variable) {
        return read_secret_file(Path::new(&path), &file_variable).map(Some);
    }
    if let Some(dir) = env.var("CREDENTIALS_DIRECTORY") {
        let path = Path::new(&dir).join(name.credential);
        if path.exists() {
            return read_secret_file(&path, &format!("credential {}", name.credential)).map(Some);
        }
    }
    Ok(None)
}

fn read_secret_file(path: &Path, what: &str) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "{what}: cannot read secret file {}: {e}",
            path.display()
        ))
    })?;
    let value = text.trim_end_matches(['\r', '\n']);
    if value.is_empty() {
        return Err(ConfigError(format!(
            "{what}: secret file {} is empty",
            path.display()
        )));
    }
    Ok(Secret::new(value))
}
