use std::process::ExitCode;

use clap::Parser;
use easytier_probe::config::{load_dotenv, Cli, Command};
use easytier_probe::logging;

fn main() -> ExitCode {
    // Before parsing, so `.env` values feed clap's environment fallbacks (set variables win).
    if let Err(e) = load_dotenv() {
        eprintln!("error: {e}");
        return ExitCode::from(easytier_probe::cli::exit::USAGE);
    }
    let cli = Cli::parse();
    let quiet = matches!(
        cli.command,
        Some(Command::Demo | Command::RunJob { .. } | Command::Jobs)
    );
    logging::init(if quiet {
        "warn,easytier=off"
    } else {
        logging::DEFAULT_FILTER
    });
    easytier_probe::cli::run(cli)
}
