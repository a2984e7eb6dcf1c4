use std::process::ExitCode;

use clap::Parser;
use easytier_probe::app::{cli, logging};
use easytier_probe::config::{load_dotenv, Cli, Command};

fn main() -> ExitCode {
    // Before parsing, so `.env` values feed clap's environment fallbacks (set variables win).
    if let Err(e) = load_dotenv() {
        eprintln!("error: {e}");
        return ExitCode::from(cli::exit::USAGE);
    }
    let args = Cli::parse();
    let quiet = matches!(
        args.command,
        Some(
            Command::Demo
                | Command::RunJob { .. }
                | Command::Jobs { .. }
                | Command::Completions { .. }
                | Command::Manpage
                | Command::Healthcheck
        )
    );
    logging::init(if quiet {
        "warn,easytier=off"
    } else {
        logging::DEFAULT_FILTER
    });
    cli::run(args)
}
