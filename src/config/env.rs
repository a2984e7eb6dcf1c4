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
/// variables that are already set, which gives environment precedence over `.env`.
pub fn load_dotenv() -> Result<(), ConfigError> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(ConfigError(format!("could not read .env: {e}"))),
    }
}
