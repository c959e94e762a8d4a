//! `tierguard check`: the forbidden flows a set of manifests allows, or opens
//! relative to a base.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::Output;
use crate::engine::calico::{Unjudged, unjudged};
use crate::engine::isolation::{Checker, diff, namespace_problems};
use crate::engine::tiers::IsolationPolicy;
use crate::report::check::{Findings, json, text};
use crate::world::World;

/// Arguments of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Manifests: files, directories (recursive) or - for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// The isolation policy (default: ./tierguard.yaml, policies/three-tier.yaml
    /// in the repository, then ~/.config/tierguard/policy.yaml).
    #[arg(long, env = "TIERGUARD_POLICY")]
    pub policy: Option<PathBuf>,
    /// Manifests of the base state: report only what -f opens relative to it.
    #[arg(long)]
    pub base: Vec<PathBuf>,
    /// Manifests of objects to remove from the -f state ("what if I delete these?").
    #[arg(long)]
    pub without: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
    /// List the objects skipped because tierguard does not read their kind.
    #[arg(short, long)]
    pub verbose: bool,
}

/// The Calico policies of `world` tierguard cannot judge.
fn unjudged_calico(iso: &IsolationPolicy, world: &World) -> Vec<Unjudged> {
    let checker = Checker::new(iso, &world.state);
    world
        .calico
        .iter()
        .filter_map(|c| {
            let tier_namespace = c.namespace.as_deref().filter(|ns| {
                world
                    .state
                    .namespace(ns)
                    .is_some_and(|n| checker.tier_of(n).is_some())
            });
            unjudged(&checker, &c.object, &c.policy.to_engine(), tier_namespace)
        })
        .collect()
}

/// Runs `check`: exit 0 clean, 1 violations (or Calico policies it cannot
/// judge).
pub fn run(args: CheckArgs) -> Result<ExitCode> {
    let iso = super::load_policy(args.policy.as_deref())?;
    let mut head = World::load(&args.files)?;
    if !args.without.is_empty() {
        head.remove(&World::load(&args.without)?);
    }
    let base = match args.base.is_empty() {
        true => None,
        false => Some(World::load(&args.base)?),
    };
    let mut unjudged = unjudged_calico(&iso, &head);
    let (flows, namespaces) = match &base {
        None => {
            let report = Checker::new(&iso, &head.state).report()?;
            (report.flows, report.namespaces)
        }
        Some(base) => {
            let flows = diff(&iso, &base.state, &head.state)?;
            // Namespace problems the head adds.
            let before = namespace_problems(&iso, base.state.namespaces());
            let nss = namespace_problems(&iso, head.state.namespaces())
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            // Calico policies the head adds: one the base has already stands.
            let before = unjudged_calico(&iso, base);
            unjudged.retain(|u| !before.contains(u));
            (flows, nss)
        }
    };
    for w in &head.warnings {
        eprintln!("warning: {w}");
    }
    if args.verbose {
        for s in &head.skipped {
            eprintln!("skipped: {s}");
        }
    }
    let findings = Findings {
        policy: &iso.name,
        mode: iso.mode,
        judge: iso.judge,
        relative: !args.base.is_empty(),
        flows: &flows,
        namespaces: &namespaces,
        unjudged: &unjudged,
        skipped: head.skipped.len(),
    };
    match args.output {
        Output::Json => println!("{}", json(&findings)?),
        Output::Text => print!("{}", text(&findings)),
    }
    Ok(if findings.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
