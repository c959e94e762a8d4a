//! The `tierguard` binary: parses the command line and runs it.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc returns freed memory to the system promptly, where glibc's
/// per-thread arenas kept tens of MiB after a burst of large requests
/// (docs/limits.md, "Memory").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
