//! `tierguard check`: the forbidden flows a set of manifests allows, or opens
//! relative to a base; with `--cluster`, those a live cluster allows now
//! (what `serve` publishes as OpenReports).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};

use crate::engine::calico::{Unjudged, unjudged};
use crate::engine::isolation::{Checker, diff, namespace_problems};
use crate::engine::tiers::IsolationPolicy;
use crate::model::isolationpolicy::{self, IsolationPolicyObject};
use crate::report::check::{Findings, json, text};
use crate::report::openreports;
use crate::world::World;

/// Arguments of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Manifests: files, directories (recursive) or - for stdin. Repeatable.
    #[arg(
        short = 'f',
        long = "filename",
        required_unless_present = "cluster",
        conflicts_with = "cluster"
    )]
    pub files: Vec<PathBuf>,
    /// Judge the cluster as it is now (namespaces, NetworkPolicies and the
    /// policy.networking.k8s.io kinds it serves), read through the kubeconfig.
    #[arg(long)]
    pub cluster: bool,
    /// Kubeconfig file for --cluster (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, env = "TIERGUARD_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context for --cluster.
    #[arg(long)]
    pub context: Option<String>,
    /// The isolation policy (default: ./tierguard.yaml, policies/three-tier.yaml
    /// in the repository, then ~/.config/tierguard/policy.yaml).
    #[arg(long, env = "TIERGUARD_POLICY")]
    pub policy: Option<PathBuf>,
    /// With --cluster: judge under the cluster's IsolationPolicy NAME instead of a file.
    #[arg(long, conflicts_with = "policy")]
    pub policy_object: Option<String>,
    /// Manifests of the base state: report only what -f opens relative to it.
    #[arg(long, conflicts_with = "cluster")]
    pub base: Vec<PathBuf>,
    /// Manifests of objects to remove from the -f state ("what if I delete these?").
    #[arg(long, conflicts_with = "cluster")]
    pub without: Vec<PathBuf>,
    /// Output format (`openreports`: the Report and ClusterReport objects
    /// `serve` would publish, as YAML).
    #[arg(short, long, value_enum, default_value_t)]
    pub output: CheckOutput,
    /// List the objects skipped because tierguard does not read their kind.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Output format of `check`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum CheckOutput {
    /// For people.
    #[default]
    Text,
    /// One JSON object, for programs.
    Json,
    /// OpenReports objects (YAML documents).
    Openreports,
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
    if args.cluster {
        return cluster(args);
    }
    if args.policy_object.is_some() || args.context.is_some() {
        bail!("--policy-object and --context read a cluster: they need --cluster");
    }
    if args.output == CheckOutput::Openreports && !(args.base.is_empty() && args.without.is_empty())
    {
        bail!(
            "-o openreports reports a whole state (what serve publishes), not what a change opens: drop --base and --without"
        );
    }
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
        CheckOutput::Json => println!("{}", json(&findings)?),
        CheckOutput::Text => print!("{}", text(&findings)),
        CheckOutput::Openreports => {
            let tiers = tier_namespace_names(&iso, &head.state);
            let report = crate::engine::isolation::Report {
                flows: flows.clone(),
                namespaces: namespaces.clone(),
            };
            print!("{}", openreports_yaml(&iso, &tiers, &report)?);
        }
    }
    Ok(exit(findings.is_clean()))
}

fn exit(clean: bool) -> ExitCode {
    match clean {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    }
}

fn tier_namespace_names(iso: &IsolationPolicy, state: &crate::engine::state::State) -> Vec<String> {
    Checker::new(iso, state)
        .tier_namespaces()
        .iter()
        .map(|n| n.name.clone())
        .collect()
}

/// The OpenReports objects of `report`, as YAML documents.
fn openreports_yaml(
    iso: &IsolationPolicy,
    tiers: &[String],
    report: &crate::engine::isolation::Report,
) -> Result<String> {
    let built = openreports::build(
        &iso.name,
        tiers,
        report,
        &openreports::Reports::default(),
        std::time::SystemTime::now(),
    );
    let mut out = String::new();
    for m in openreports::manifests(&built) {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&m)?);
    }
    Ok(out)
}

/// `check --cluster`: the cluster as it is now, under a policy file or
/// the cluster's IsolationPolicy object. Objects tierguard cannot read
/// are named on stderr and make the result unclean (exit 1): what they
/// allow is not known.
fn cluster(args: CheckArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (iso, index, unreadable) = rt.block_on(async {
        let client = super::client_for(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
        let iso = match &args.policy_object {
            Some(name) => policy_object(&client, name).await?,
            None => super::load_policy(args.policy.as_deref())?,
        };
        let (index, unreadable) = crate::index::snapshot(&client)
            .await
            .context("listing the cluster")?;
        Ok::<_, anyhow::Error>((iso, index, unreadable))
    })?;
    let report = Checker::new(&iso, index.state()).report()?;
    for u in &unreadable {
        eprintln!("warning: cannot read {u}: left out of the judgement");
    }
    let clean = report.is_clean() && unreadable.is_empty();
    match args.output {
        CheckOutput::Openreports => {
            let tiers = tier_namespace_names(&iso, index.state());
            print!("{}", openreports_yaml(&iso, &tiers, &report)?);
        }
        out => {
            let findings = Findings::of_report(&iso, &report);
            match out {
                CheckOutput::Json => println!("{}", json(&findings)?),
                _ => print!("{}", text(&findings)),
            }
        }
    }
    Ok(exit(clean))
}

/// The cluster's IsolationPolicy `name`, validated as `serve` validates it.
async fn policy_object(client: &kube::Client, name: &str) -> Result<IsolationPolicy> {
    let api: kube::Api<IsolationPolicyObject> = kube::Api::all(client.clone());
    let obj = api
        .get_opt(name)
        .await
        .with_context(|| format!("reading IsolationPolicy {name}"))?
        .ok_or_else(|| anyhow!("IsolationPolicy {name} not found (is its CRD installed?)"))?;
    isolationpolicy::from_object(&obj).map_err(|e| {
        let errs: Vec<String> = e.0.iter().map(ToString::to_string).collect();
        anyhow!(
            "IsolationPolicy {name} is invalid:\n  {}",
            errs.join("\n  ")
        )
    })
}
