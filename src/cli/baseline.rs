//! `tierguard baseline`: the NetworkPolicies injected into tier namespaces.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use crate::engine::names;
use crate::model::baseline::baseline_policies;

/// Arguments of `baseline`.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// The isolation policy (default: ./tierguard.yaml, policies/three-tier.yaml
    /// in the repository, then ~/.config/tierguard/policy.yaml).
    #[arg(long, env = "TIERGUARD_POLICY")]
    pub policy: Option<PathBuf>,
    /// Namespaces to generate the baseline for.
    #[arg(required = true)]
    pub namespaces: Vec<String>,
}

/// Prints the baseline as multi-document YAML.
pub fn run(args: BaselineArgs) -> Result<ExitCode> {
    let iso = super::load_policy(args.policy.as_deref())?;
    let mut docs = Vec::new();
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
