//! `tierguard check`: the forbidden flows a set of manifests allows, or opens
//! relative to a base.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::Output;
use crate::engine::isolation::{Checker, Finding, NamespaceFinding, diff, namespace_findings};
use crate::guardpolicy::{Judge, Mode};
use crate::world::World;

/// Arguments of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Manifests: files, directories (recursive) or - for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// The isolation policy (default: policies/three-tier.yaml in the repository).
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonReport<'a> {
    policy: &'a str,
    mode: Mode,
    judge: Judge,
    relative_to_base: bool,
    clean: bool,
    flows: &'a [Finding],
    namespaces: &'a [NamespaceFinding],
    skipped: usize,
}

/// Runs `check`: exit 0 clean, 1 violations.
pub fn run(args: CheckArgs) -> Result<ExitCode> {
    let iso = super::load_policy(args.policy.as_deref())?;
    let mut head = World::load(&args.files)?;
    if !args.without.is_empty() {
        head.remove(&World::load(&args.without)?);
    }
    let (flows, namespaces) = if args.base.is_empty() {
        let report = Checker::new(&iso, &head.state).report();
        (report.flows, report.namespaces)
    } else {
        let base = World::load(&args.base)?;
        let flows = diff(&iso, &base.state, &head.state);
        // Namespace problems the head adds.
        let before = namespace_findings(&iso, base.state.namespaces());
        let nss = namespace_findings(&iso, head.state.namespaces())
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        (flows, nss)
    };
    if args.verbose {
        for s in &head.skipped {
            eprintln!("skipped: {s}");
        }
    }
    let clean = flows.is_empty() && namespaces.is_empty();
    match args.output {
        Output::Json => {
            let r = JsonReport {
                policy: &iso.name,
                mode: iso.mode,
                judge: iso.judge,
                relative_to_base: !args.base.is_empty(),
                clean,
                flows: &flows,
                namespaces: &namespaces,
                skipped: head.skipped.len(),
            };
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        Output::Text => print!(
            "{}",
            render_text(
                &iso.name,
                !args.base.is_empty(),
                &flows,
                &namespaces,
                head.skipped.len()
            )
        ),
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The human report.
pub fn render_text(
    policy: &str,
    relative: bool,
    flows: &[Finding],
    namespaces: &[NamespaceFinding],
    skipped: usize,
) -> String {
    let mut out = String::new();
    let verb = if relative {
        "opened by the change"
    } else {
        "allowed"
    };
    if flows.is_empty() && namespaces.is_empty() {
        out.push_str(&format!(
            "ok: no forbidden flow {} (isolation policy {policy})\n",
            if relative { "opened" } else { "allowed" }
        ));
    } else {
        out.push_str(&format!(
            "{} forbidden flow(s) {verb}; {} namespace problem(s) (isolation policy {policy})\n",
            flows.len(),
            namespaces.len()
        ));
    }
    for f in flows {
        out.push('\n');
        out.push_str(&f.to_string());
    }
    if !namespaces.is_empty() {
        out.push('\n');
    }
    for n in namespaces {
        out.push_str(&format!("namespace: {}\n", n.message));
    }
    if skipped > 0 {
        out.push_str(&format!(
            "\n({skipped} object(s) of other kinds skipped; -v lists them)\n"
        ));
    }
    out
}
