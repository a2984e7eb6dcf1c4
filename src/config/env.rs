//! The environment as [`super::Settings::resolve`] reads it, and `.env`.

use super::ConfigError;

/// The environment as seen by [`super::Settings::resolve`], so tests need not touch the
/// process environment.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// No environment at all (for callers that build their settings entirely from options).
pub struct EmptyEnv;

impl Env for EmptyEnv {
    fn var(&self, _name: &str) -> Option<String> {
        None
    }
}

/// Loads `.env` from the working directory into the process environment without overriding
/// variables that are already set, which gives environment precedence over `.env`. Returns the
/// names of the variables it set.
pub fn load_dotenv() -> Result<Vec<String>, ConfigError> {
    let entries = match dotenvy::dotenv_iter() {
        Ok(entries) => entries,
        Err(e) if e.not_found() => return Ok(Vec::new()),
        Err(e) => return Err(ConfigError(format!("could not read .env: {e}"))),
    };
    let mut set = Vec::new();
    for entry in entries {
        let (name, value) = entry.map_err(|e| ConfigError(format!("could not read .env: {e}")))?;
        if std::env::var_os(&name).is_none() {
            // Before any thread is started: main calls this first.
            std::env::set_var(&name, value);
            set.push(name);
        }
    }
    Ok(set)
}
