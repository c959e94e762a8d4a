//! The `tierguard` command line.
//!
//! ```text
//!  tierguard check    -f PATH... [--policy FILE] [--base PATH...] [-o text|json|openreports]
//!  tierguard check    --cluster [--kubeconfig FILE] [--policy FILE | --policy-object NAME] [-o ...]
//!  tierguard query    -f PATH... --from SRC --to DST --port PROTO/PORT [-o text|json] [--exit-code]
//!  tierguard connectivity -f PATH... [--port PROTO/PORT[-LAST],...] [-n NS...] [-o text|json|csv|md|dot] [--explain]
//!  tierguard baseline [--policy FILE] NAMESPACE...
//!  tierguard serve    --tls-cert FILE --tls-key FILE [--policy FILE] [--mode enforce|audit] ...
//!  tierguard certs    [--out DIR] [--host NAME...] ...
//!  tierguard crd      (the IsolationPolicy CustomResourceDefinition)
//! ```
//!
//! Exit codes: 0 success (for `check`: clean), 1 `check` found violations
//! (or, with `--exit-code`, `query`'s connection is denied), 2 errors (bad
//! input, unreadable files).

mod baseline;
mod certs;
mod check;
mod connectivity;
pub mod crd;
mod query;
pub mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
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
    /// Show every pod and workload (and the outside world) against every other on the ports that matter.
    Connectivity(connectivity::ConnectivityArgs),
    /// Print the baseline NetworkPolicies the isolation policy injects into tier namespaces.
    Baseline(baseline::BaselineArgs),
    /// Print the IsolationPolicy CustomResourceDefinition.
    Crd(crd::CrdArgs),
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
        Command::Connectivity(a) => connectivity::run(a),
        Command::Baseline(a) => baseline::run(a),
        Command::Serve(a) => serve::run(*a),
        Command::Certs(a) => certs::run(a),
        Command::Crd(a) => crd::run(a),
    }
}

/// Warns on stderr that `world`'s Calico policies are read but not part of
/// `command`'s verdicts (their rules are not judged yet).
fn warn_calico_not_judged(world: &crate::world::World, command: &str) {
    if let Some(first) = world.calico.first() {
        let n = world.calico.len();
        eprintln!(
            "warning: {command} does not judge Calico policies' rules yet (docs/calico.md): its \
             verdicts leave out {n} Calico polic{} ({}{}); `tierguard check` lists the ones that \
             may open a tier",
            if n == 1 { "y" } else { "ies" },
            first.object,
            if n > 1 { ", …" } else { "" }
        );
    }
}

/// The places an isolation policy is looked for when `--policy` (or
/// `TIERGUARD_POLICY`, which sets it) is not given, first found wins:
/// `./tierguard.yaml`, the repository's [`DEFAULT_POLICY`] (when run from
/// it), then `$XDG_CONFIG_HOME/tierguard/policy.yaml` (by default
/// `~/.config/tierguard/policy.yaml`).
pub fn policy_search_path() -> Vec<PathBuf> {
    let mut out = vec![
        PathBuf::from("tierguard.yaml"),
        PathBuf::from(DEFAULT_POLICY),
    ];
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(c) = config {
        out.push(c.join("tierguard").join("policy.yaml"));
    }
    out
}

/// Loads `--policy`, else the first file of [`policy_search_path`].
pub fn load_policy(path: Option<&Path>) -> Result<IsolationPolicy> {
    if let Some(p) = path {
        return isolationpolicy::load_file(p);
    }
    let candidates = policy_search_path();
    if let Some(p) = candidates.iter().find(|p| p.is_file()) {
        return isolationpolicy::load_file(p);
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    bail!(
        "no isolation policy: --policy not given, TIERGUARD_POLICY not set, and none of {} exists (pass --policy FILE)",
        looked.join(", ")
    )
}

/// A client for `kubeconfig` (default: $KUBECONFIG, ~/.kube/config, or
/// in-cluster) and `context`.
pub(crate) async fn client_for(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> Result<kube::Client> {
    let opts = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| anyhow!("{}: cannot read kubeconfig: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(|e| anyhow!("{}: {e}", path.display()))?
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&opts)
            .await
            .map_err(|e| anyhow!("kubeconfig: {e}"))?,
        None => kube::Config::infer()
            .await
            .map_err(|e| anyhow!("no cluster configuration: {e}"))?,
    };
    kube::Client::try_from(config).map_err(|e| anyhow!("kube client: {e}"))
}
