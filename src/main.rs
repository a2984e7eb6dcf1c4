use std::process::ExitCode;

use easytier_probe::app::{cli, logging};
use easytier_probe::config::{load_dotenv, Command, ParseError, ProcessEnv};

fn main() -> ExitCode {
    // Before parsing, so `.env` values feed clap's environment fallbacks (set variables win).
    let dotenv = match load_dotenv() {
        Ok(set) => set,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(cli::exit::USAGE);
        }
    };
    let args =
        match easytier_probe::config::parse(std::env::args_os().collect(), &ProcessEnv, &dotenv) {
            Ok(parsed) => parsed,
            Err(ParseError::Clap(e)) => e.exit(),
            Err(ParseError::Config(e)) => {
                eprintln!("error: {e}");
                return ExitCode::from(cli::exit::USAGE);
            }
        };
    let quiet = matches!(
        args.cli.command,
        Some(
            Command::Demo
                | Command::RunJob { .. }
                | Command::Jobs { .. }
                | Command::Completions { .. }
                | Command::Manpage
                | Command::Healthcheck
                | Command::CheckConfig
        )
    );
    logging::init(if quiet {
        "warn,easytier=off"
    } else {
        logging::DEFAULT_FILTER
    });
    cli::run(args)
}
