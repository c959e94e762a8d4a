//! The `tierguard` binary: parses the command line and runs it.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // One process-wide TLS provider (ring) for the webhook and the kube client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = tierguard::cli::Cli::parse();
    match tierguard::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
