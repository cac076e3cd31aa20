//! The `weir` binary: parses the command line, sets up logging, runs the
//! command and turns any failure into a one-line cause and a non-zero exit.

mod cli;

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    cli::allocator::tune();
    let args = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG").unwrap_or_else(|_| {
        // Weir's own progress at info; the libraries' chatter (deltalake's
        // kernel logs every snapshot at info) only when it is a warning.
        tracing_subscriber::EnvFilter::new(if args.verbose {
            "info,weir=debug,weir_runtime=debug"
        } else {
            "warn,weir=info,weir_runtime=info,deltalake_core=error"
        })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", cli::one_line(&error));
            ExitCode::FAILURE
        }
    }
}
