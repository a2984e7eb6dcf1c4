//! The command line with the config file under it: `--config FILE` / `CONFIG_FILE`, TOML, one key
//! per global option (its flag without the dashes, `-` as `_`).
//!
//! Precedence: flag > environment > `.env` > config file > default. The command line is parsed
//! once; each file key whose option was given by neither a flag nor the environment (nor one of
//! the environment's other forms: `DATABASE_PATH`, a secret's `*_FILE` or credential) is then
//! handed to clap as that flag, so a value from the file goes through the same parser, bounds
//! and messages as one from a flag.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use super::env::Env;
use super::secrets::SECRETS;
use super::{Cli, ConfigError};

/// Where an option's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Environment,
    DotEnv,
    ConfigFile,
    Default,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Environment => "environment",
            Source::DotEnv => ".env",
            Source::ConfigFile => "config file",
            Source::Default => "default",
        }
    }
}

/// The command line resolved with the config file, and where each given option came from.
#[derive(Debug)]
pub struct Parsed {
    pub cli: Cli,
    /// The config file read, if any.
    pub file: Option<PathBuf>,
    /// Option key → source, for the options that have a value (clap defaults included).
    pub sources: BTreeMap<String, Source>,
}

/// Why the command line could not be taken: clap's own error (help and version are errors too,
/// and exit as clap says), or a config file problem (exit 2).
#[derive(Debug)]
pub enum ParseError {
    Clap(clap::Error),
    Config(ConfigError),
}

/// Every key a config file may hold: the global options but `config` itself.
pub fn file_keys() -> Vec<String> {
    Cli::command()
        .get_arguments()
        .filter(|a| a.is_global_set() && a.get_long().is_some())
        .map(|a| a.get_id().to_string())
        .filter(|id| id != "config")
        .collect()
}

/// Parses `args` (the program name first) over `env`; `dotenv` names the variables `.env` set.
pub fn parse(args: Vec<OsString>, env: &dyn Env, dotenv: &[String]) -> Result<Parsed, ParseError> {
    let first = Cli::command()
        .try_get_matches_from(&args)
        .map_err(ParseError::Clap)?;
    let cli = Cli::from_arg_matches(&first).map_err(ParseError::Clap)?;
    let Some(path) = cli.options.config.clone() else {
        let sources = sources(&first, &[], dotenv);
        return Ok(Parsed {
            cli,
            file: None,
            sources,
        });
    };
    let from_file = read(&path)?;
    let mut injected = Vec::new();
    let mut flags = Vec::new();
    for (key, value) in from_file {
        let given = matches!(
            first.value_source(&key),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if !given && !other_forms_set(&key, env) {
            flags.push(OsString::from(format!(
                "--{}={value}",
                key.replace('_', "-")
            )));
            injected.push(key);
        }
    }
    let mut with_file = args;
    let at = with_file.len().min(1);
    with_file.splice(at..at, flags);
    let second = Cli::command()
        .try_get_matches_from(&with_file)
        .map_err(|e| ParseError::Config(file_value_error(&path, &e)))?;
    let cli = Cli::from_arg_matches(&second).map_err(ParseError::Clap)?;
    Ok(Parsed {
        cli,
        sources: sources(&second, &injected, dotenv),
        file: Some(path),
    })
}

/// Whether the environment gives `key` in a form clap does not read.
fn other_forms_set(key: &str, env: &dyn Env) -> bool {
    if key == "data_dir" {
        return env.var("DATABASE_PATH").is_some();
    }
    SECRETS
        .iter()
        .find(|s| s.flag.trim_start_matches('-').replace('-', "_") == key)
        .is_some_and(|s| {
            env.var(&s.file_variable()).is_some()
                || env
                    .var("CREDENTIALS_DIRECTORY")
                    .is_some_and(|dir| Path::new(&dir).join(s.credential).exists())
        })
}

/// The file's keys and values as flag values; an unknown key or a value of the wrong shape is
/// an error naming the file and the key (never the value: it may be a secret).
fn read(path: &Path) -> Result<Vec<(String, String)>, ParseError> {
    let fail = |what: String| {
        ParseError::Config(ConfigError(format!(
            "config file {} (CONFIG_FILE, --config): {what}",
            path.display()
        )))
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| fail(format!("not valid TOML: {}", e.message())))?;
    let known = file_keys();
    let mut out = Vec::new();
    for (key, value) in table {
        if !known.contains(&key) {
            return Err(fail(format!(
                "unknown key {key:?}; the keys are the options' flags without the dashes, \
                 `-` as `_`: {}",
                known.join(", ")
            )));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .into_iter()
                .map(|i| match i {
                    toml::Value::String(s) => Ok(s),
                    _ => Err(fail(format!("{key}: a list holds strings only"))),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            _ => {
                return Err(fail(format!(
                    "{key} must be a string, a whole number, true/false or a list of strings"
                )))
            }
        };
        out.push((key, text));
    }
    Ok(out)
}

/// A value from the file that the option's parser refused: clap's words, with the file.
fn file_value_error(path: &Path, e: &clap::Error) -> ConfigError {
    let rendered = e.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    ConfigError(format!(
        "config file {}: {}",
        path.display(),
        first.trim_start_matches("error: ")
    ))
}

fn sources(
    matches: &ArgMatches,
    injected: &[String],
    dotenv: &[String],
) -> BTreeMap<String, Source> {
    let command = Cli::command();
    let mut out = BTreeMap::new();
    for arg in command.get_arguments().filter(|a| a.is_global_set()) {
        let id = arg.get_id().as_str();
        let source = match matches.value_source(id) {
            None => continue,
            Some(_) if injected.iter().any(|k| k == id) => Source::ConfigFile,
            Some(ValueSource::CommandLine) => Source::Flag,
            Some(ValueSource::EnvVariable) => {
                let var = arg.get_env().and_then(|v| v.to_str()).unwrap_or_default();
                if dotenv.iter().any(|d| d == var) {
                    Source::DotEnv
                } else {
                    Source::Environment
                }
            }
            Some(_) => Source::Default,
        };
        out.insert(id.to_string(), source);
    }
    out
}
