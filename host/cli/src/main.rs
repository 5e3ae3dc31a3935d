//! The `canister-host` command line: run canisters from a state directory
//! with dfx-shaped commands, checkpoint and verify their history, and run
//! the demo. `canister-host --help` lists the commands; exit codes are in
//! [`exit`].

#![deny(unsafe_code)]

mod args;
mod candid_io;
mod commands;
mod demo;
mod exit;
mod progress;
mod state;

use std::process::ExitCode;

use clap::Parser;

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // clap prints help and version to stdout (success) and usage
            // errors to stderr (exit code 2).
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { exit::USAGE } else { exit::OK });
        }
    };
    init_logging(cli.global.verbose, cli.global.quiet);
    let json = cli.global.json;
    match commands::run(cli) {
        Ok(Some(report)) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&report.json).unwrap_or_default());
            } else if !report.text.is_empty() {
                println!("{}", report.text.trim_end());
            }
            ExitCode::from(report.code)
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(error) => {
            let code = exit::code_of(&error);
            if json {
                let out = serde_json::json!({ "error": format!("{error:#}"), "exit_code": code });
                println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            }
            eprintln!("error: {error:#}");
            ExitCode::from(code)
        }
    }
}
