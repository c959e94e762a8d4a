//! `tierguard connectivity`: the whole matrix in one call — every pod and
//! workload (and the outside world) to every other, on the ports that
//! matter, as a grid, json, csv, Markdown or dot.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};

use crate::engine::reach::Endpoint;
use crate::report::matrix::{Matrix, PortRegion, ports_that_matter};
use crate::world::World;

use super::query::{PortArg, parse_port};

/// Output formats of the matrix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum MatrixOutput {
    /// A grid per port, for people.
    #[default]
    Text,
    /// One JSON object, connections grouped by decision.
    Json,
    /// One row per connection.
    Csv,
    /// A Markdown table per port.
    Md,
    /// A Graphviz digraph of what is allowed.
    Dot,
}

/// Arguments of `connectivity`.
#[derive(Debug, Args)]
pub struct ConnectivityArgs {
    /// Manifests: files, directories (recursive) or - for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Ports to judge: PROTO/PORT or PROTO/FIRST-LAST, repeatable or
    /// comma-separated (default: the ports the policies name, cut at every
    /// container port).
    #[arg(long = "port", value_delimiter = ',')]
    pub ports: Vec<String>,
    /// Only these namespaces' pods and workloads (repeatable; default all).
    #[arg(short = 'n', long = "namespace")]
    pub namespaces: Vec<String>,
    /// Leave out the outside world (any host outside the cluster).
    #[arg(long)]
    pub no_outside: bool,
    /// Leave out the pods created later (`namespace/*`: any pod that may be
    /// created in a namespace of the matrix, with any labels).
    #[arg(long)]
    pub no_future: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: MatrixOutput,
    /// Add the policies and rules that decide each connection.
    #[arg(long)]
    pub explain: bool,
}

/// Parses `tcp/80` or `tcp/8000-8080` into a region.
fn parse_region(s: &str) -> Result<PortRegion> {
    if let Some((proto, range)) = s.split_once('/')
        && let Some((lo, hi)) = range.split_once('-')
    {
        let (p, PortArg::Number(lo)) = parse_port(&format!("{proto}/{lo}"))? else {
            bail!("--port {s:?}: a range must be two numbers, e.g. tcp/8000-8080");
        };
        let (_, PortArg::Number(hi)) = parse_port(&format!("{proto}/{hi}"))? else {
            bail!("--port {s:?}: a range must be two numbers, e.g. tcp/8000-8080");
        };
        if hi < lo {
            bail!("--port {s:?}: the range ends before it starts");
        }
        return Ok(PortRegion { proto: p, lo, hi });
    }
    match parse_port(s)? {
        (proto, PortArg::Number(n)) => Ok(PortRegion {
            proto,
            lo: n,
            hi: n,
        }),
        (_, PortArg::Name(name)) => bail!(
            "--port {s:?}: the matrix takes port numbers; the named port {name:?} is already judged on each destination's container ports (leave --port out)"
        ),
    }
}

/// Runs `connectivity`.
pub fn run(args: ConnectivityArgs) -> Result<ExitCode> {
    let regions = args
        .ports
        .iter()
        .map(|p| parse_region(p.trim()))
        .collect::<Result<Vec<_>>>()?;
    let world = World::load(&args.files)?;
    for w in &world.warnings {
        eprintln!("warning: {w}");
    }
    super::warn_calico_not_judged(&world, "connectivity");
    let mut pods: Vec<_> = world
        .pods
        .iter()
        .filter(|p| args.namespaces.is_empty() || args.namespaces.contains(&p.namespace))
        .collect();
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    for ns in &args.namespaces {
        if !pods.iter().any(|p| &p.namespace == ns) {
            bail!("--namespace {ns}: no Pod or workload in namespace {ns} in the manifests");
        }
    }
    let ports = if regions.is_empty() {
        ports_that_matter(&world.state, pods.iter().copied())
    } else {
        regions
    };
    if ports.is_empty() {
        bail!(
            "no ports to judge: the policies name no port numbers and the pods declare no container ports (give --port, e.g. --port tcp/80,udp/53)"
        );
    }
    let mut namespaces: Vec<&str> = pods.iter().map(|p| p.namespace.as_str()).collect();
    namespaces.dedup();
    let mut ends: Vec<Endpoint<'_>> = pods.into_iter().map(Endpoint::Pod).collect();
    if !args.no_future {
        // A pod created later is judged in a Namespace whose labels are known.
        ends.extend(
            namespaces
                .into_iter()
                .filter_map(|ns| world.state.namespace(ns))
                .map(|n| Endpoint::Future { namespace: &n.name }),
        );
    }
    if !args.no_outside {
        ends.push(Endpoint::Outside);
    }
    let m = Matrix::compute(&world.state, &world, ends, ports);
    match args.output {
        MatrixOutput::Text => print!("{}", m.text(args.explain)),
        MatrixOutput::Json => println!("{}", m.json(args.explain)?),
        MatrixOutput::Csv => print!("{}", m.csv(args.explain)),
        MatrixOutput::Md => print!("{}", m.md(args.explain)),
        MatrixOutput::Dot => print!("{}", m.dot()),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ports::Protocol;

    #[test]
    fn port_arguments() {
        let r = parse_region("udp/53").expect("number");
        assert_eq!((r.proto, r.lo, r.hi), (Protocol::Udp, 53, 53));
        let r = parse_region("tcp/8000-8080").expect("range");
        assert_eq!((r.lo, r.hi), (8000, 8080));
        for (bad, says) in [
            ("tcp/9-1", "ends before"),
            ("tcp/http", "takes port numbers"),
            ("tcp/0-3", "1 to 65535"),
            ("icmp/1", "protocol"),
        ] {
            let e = parse_region(bad).expect_err(bad).to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
