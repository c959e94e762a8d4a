//! `tierguard crd`: the IsolationPolicy CustomResourceDefinition, generated
//! from the Rust types (`deploy/crd/` holds the same text, and a test keeps
//! them equal).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use kube::CustomResourceExt;

use crate::model::isolationpolicy::IsolationPolicyObject;

/// Arguments of `crd` (none).
#[derive(Debug, Args)]
pub struct CrdArgs {}

/// The CRD as YAML.
pub fn yaml() -> Result<String> {
    Ok(serde_yaml_ng::to_string(&IsolationPolicyObject::crd())?)
}

/// Prints the CRD.
pub fn run(_: CrdArgs) -> Result<ExitCode> {
    print!("{}", yaml()?);
    Ok(ExitCode::SUCCESS)
}
