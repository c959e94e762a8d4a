//! The `tierguard` command line.
//!
//! ```text
//!  tierguard check    -f PATH... [--policy FILE] [--base PATH...] [-o text|json]
//!  tierguard query    -f PATH... --from SRC --to DST --port PROTO/PORT [-o text|json] [--exit-code]
//!  tierguard baseline [--policy FILE] NAMESPACE...
//!  tierguard serve    --tls-cert FILE --tls-key FILE [--policy FILE] [--mode enforce|audit] ...
//!  tierguard certs    [--out DIR] [--host NAME...] ...
//! ```
//!
//! Exit codes: 0 success (for `check`: clean), 1 `check` found violations
//! (or, with `--exit-code`, `query`'s connection is denied), 2 errors (bad
//! input, unreadable files).

mod baseline;
mod certs;
mod check;
mod query;
pub mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::engine::tiers::IsolationPolicy;
use crate::model::isolationpolicy;

/// The isolation policy used when `--policy` is not given and the command
/// runs from the repository.
pub const DEFAULT_POLICY: &str = "policies/three-tier.yaml";

/// tierguard: Kubernetes network isolation that cannot be broken by accident.
#[derive(Debug, Parser)]
#[command(name = "tierguard", version, about, propagate_version = true)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report the forbidden flows that manifests allow (or open, relative to --base).
    Check(check::CheckArgs),
    /// Ask whether one connection is allowed, and which policies and rules decide it.
    Query(query::QueryArgs),
    /// Print the baseline NetworkPolicies the isolation policy injects into tier namespaces.
    Baseline(baseline::BaselineArgs),
    /// Write a development CA, a serving certificate and a kustomization deploying tierguard with them.
    Certs(certs::CertsArgs),
    /// Run the admission webhook (TLS) for Namespaces, NetworkPolicies and Pods.
    Serve(Box<serve::ServeArgs>),
}

/// Output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    #[default]
    Text,
    /// One JSON object, for programs.
    Json,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Check(a) => check::run(a),
        Command::Query(a) => query::run(a),
        Command::Baseline(a) => baseline::run(a),
        Command::Serve(a) => serve::run(*a),
        Command::Certs(a) => certs::run(a),
    }
}

/// Loads `--policy`, or the repository's default when run from it.
pub fn load_policy(path: Option<&Path>) -> Result<IsolationPolicy> {
    match path {
        Some(p) => isolationpolicy::load_file(p),
        None => {
            let default = PathBuf::from(DEFAULT_POLICY);
            if default.is_file() {
                isolationpolicy::load_file(&default)
            } else {
                bail!(
                    "no --policy given, and {DEFAULT_POLICY} is not here (run from the repository or pass --policy FILE)"
                )
            }
        }
    }
}
