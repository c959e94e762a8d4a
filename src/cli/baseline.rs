//! `tierguard baseline`: the NetworkPolicies injected into tier namespaces,
//! and with `via: clusterNetworkPolicy` the Admin-tier ClusterNetworkPolicies
//! tierguard keeps.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use crate::engine::names;
use crate::engine::tiers::Via;
use crate::model::baseline::baseline_policies;
use crate::model::clusterbaseline;

/// Arguments of `baseline`.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// The isolation policy (default: ./tierguard.yaml, policies/three-tier.yaml
    /// in the repository, then ~/.config/tierguard/policy.yaml).
    #[arg(long, env = "TIERGUARD_POLICY")]
    pub policy: Option<PathBuf>,
    /// Namespaces to generate the baseline for (none: only the
    /// ClusterNetworkPolicies of `via: clusterNetworkPolicy`).
    pub namespaces: Vec<String>,
}

/// Prints the baseline as multi-document YAML.
pub fn run(args: BaselineArgs) -> Result<ExitCode> {
    let iso = super::load_policy(args.policy.as_deref())?;
    let mut docs = Vec::new();
    if let Via::ClusterNetworkPolicy { priority, .. } = iso.baseline.via {
        for obj in clusterbaseline::objects(&iso, priority) {
            docs.push(serde_yaml_ng::to_string(&obj)?);
        }
    } else if args.namespaces.is_empty() {
        bail!(
            "name the tier namespaces to print the baseline for (the isolation policy {} keeps no ClusterNetworkPolicies: spec.baseline.via is networkPolicy)",
            iso.name
        );
    }
    for ns in &args.namespaces {
        let msgs = names::dns1123_label(ns);
        if !msgs.is_empty() {
            bail!("namespace {ns:?}: {}", msgs.join("; "));
        }
        for np in baseline_policies(&iso, ns) {
            docs.push(serde_yaml_ng::to_string(&np)?);
        }
    }
    print!("{}", docs.join("---\n"));
    Ok(ExitCode::SUCCESS)
}
