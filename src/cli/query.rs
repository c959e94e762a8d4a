//! `tierguard query`: may SRC connect to DST on PROTO/PORT, and why?

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use clap::Args;
use serde::Serialize;

use super::Output;
use crate::engine::ports::Protocol;
use crate::engine::reach::{Endpoint, SideVerdict, Verdict, evaluate};
use crate::world::World;

/// Arguments of `query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Manifests: files, directories (recursive) or - for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Source: namespace/name (a Pod, else a workload) or an IP outside the cluster.
    #[arg(long)]
    pub from: String,
    /// Destination: namespace/name (a Pod, else a workload) or an IP outside the cluster.
    #[arg(long)]
    pub to: String,
    /// PROTO/PORT, e.g. tcp/5432 or tcp/http (PROTO: tcp, udp, sctp; a named
    /// port resolves on the destination pod's container ports).
    #[arg(long)]
    pub port: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
    /// Exit 1 when the connection is denied (as `check` exits 1 on
    /// violations); without it, exit 0 whenever the connection was evaluated.
    #[arg(long)]
    pub exit_code: bool,
}

#[derive(Serialize)]
struct JsonVerdict<'a> {
    from: String,
    to: String,
    port: String,
    /// How the question was read (a named port resolved, an IP that is a
    /// pod's) and the exceptions that decided it.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notes: &'a [String],
    #[serde(flatten)]
    verdict: &'a Verdict,
}

fn endpoint<'w>(world: &'w World, s: &str, flag: &str) -> Result<Endpoint<'w>> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Endpoint::External(ip));
    }
    let (ns, name) = s
        .split_once('/')
        .ok_or_else(|| anyhow!("--{flag} {s:?}: expected namespace/name or an IP address"))?;
    world.find_pod(ns, name).map(Endpoint::Pod).ok_or_else(|| {
        anyhow!("--{flag} {s:?}: no Pod or workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob) named {name} in namespace {ns} in the manifests")
    })
}

/// A `--port` value: a number, or a container port's name to resolve on
/// the destination pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortArg {
    /// `tcp/5432`.
    Number(u16),
    /// `tcp/http`.
    Name(String),
}

/// Parses `tcp/80` or `tcp/http` (a named port, an IANA_SVC_NAME as the
/// API server validates container port names).
pub fn parse_port(s: &str) -> Result<(Protocol, PortArg)> {
    let Some((p, n)) = s.split_once('/') else {
        bail!("--port {s:?}: expected PROTO/PORT, e.g. tcp/80 or tcp/http");
    };
    let proto = Protocol::parse_loose(p)
        .ok_or_else(|| anyhow!("--port {s:?}: protocol must be tcp, udp or sctp"))?;
    if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
        let port = n
            .parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| anyhow!("--port {s:?}: port must be a number from 1 to 65535"))?;
        return Ok((proto, PortArg::Number(port)));
    }
    let problems = crate::engine::names::port_name(n);
    if !problems.is_empty() {
        bail!(
            "--port {s:?}: port must be a number from 1 to 65535 or a container port name ({})",
            problems.join("; ")
        );
    }
    Ok((proto, PortArg::Name(n.to_string())))
}

/// Resolves a named `--port` on the destination pod's container ports (the
/// same lookup as a NetworkPolicy's named port: name and protocol).
fn resolve_port(proto: Protocol, arg: &PortArg, dst: &Endpoint<'_>, raw: &str) -> Result<u16> {
    let name = match arg {
        PortArg::Number(n) => return Ok(*n),
        PortArg::Name(name) => name,
    };
    let Endpoint::Pod(pod) = dst else {
        bail!(
            "--port {raw:?}: the named port {name:?} can only be resolved on a destination pod, and the destination is not one; give the number"
        );
    };
    pod.ports
        .iter()
        .find(|c| c.name.as_deref() == Some(name.as_str()) && c.protocol == proto)
        .map(|c| c.port)
        .ok_or_else(|| {
            let named: Vec<String> = pod
                .ports
                .iter()
                .filter_map(|c| c.name.as_ref().map(|n| format!("{}/{n}", c.protocol)))
                .collect();
            anyhow!(
                "--port {raw:?}: {dst} has no {proto} container port named {name:?} (its named ports: {})",
                if named.is_empty() { "none".to_string() } else { named.join(", ") }
            )
        })
}

/// Runs `query`: exit 0 whenever the connection was evaluated; with
/// `--exit-code`, 0 allowed and 1 denied. Errors exit 2 (in `main`).
pub fn run(args: QueryArgs) -> Result<ExitCode> {
    let (proto, port_arg) = parse_port(&args.port)?;
    let world = World::load(&args.files)?;
    for w in &world.warnings {
        eprintln!("warning: {w}");
    }
    let src = endpoint(&world, &args.from, "from")?;
    let dst = endpoint(&world, &args.to, "to")?;
    let port = resolve_port(proto, &port_arg, &dst, &args.port)?;
    let mut notes = Vec::new();
    if let PortArg::Name(name) = &port_arg {
        notes.push(format!(
            "the named port {proto}/{name} of {dst} is {proto}/{port}"
        ));
    }
    let verdict = evaluate(&world.state, &src, &dst, proto, port);
    let port_s = format!("{proto}/{port}");
    match args.output {
        Output::Json => {
            let j = JsonVerdict {
                from: src.to_string(),
                to: dst.to_string(),
                port: port_s,
                notes: &notes,
                verdict: &verdict,
            };
            println!("{}", serde_json::to_string_pretty(&j)?);
        }
        Output::Text => print!("{}", render_text(&src, &dst, &port_s, &notes, &verdict)),
    }
    Ok(if args.exit_code && !verdict.allowed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn side_text(what: &str, s: &SideVerdict) -> String {
    let mut out = format!(
        "  {what}: {}\n",
        if s.allowed { "allows" } else { "denies" }
    );
    if !s.isolated {
        out.push_str("    not isolated: no policy selects the pod for this direction, so everything is allowed\n");
        return out;
    }
    out.push_str(&format!("    isolated by: {}\n", s.isolated_by.join(", ")));
    if s.allowed_by.is_empty() {
        out.push_str("    no rule of these policies matches\n");
    } else {
        out.push_str(&format!("    allowed by: {}\n", s.allowed_by.join(", ")));
    }
    out
}

fn render_text(
    src: &Endpoint<'_>,
    dst: &Endpoint<'_>,
    port: &str,
    notes: &[String],
    v: &Verdict,
) -> String {
    let mut out = format!(
        "{src} -> {dst} on {port}: {}\n",
        if v.allowed { "ALLOWED" } else { "DENIED" }
    );
    for n in notes {
        out.push_str(&format!("  note: {n}\n"));
    }
    match &v.egress {
        Some(s) => out.push_str(&side_text(&format!("egress of {src}"), s)),
        None => out.push_str("  egress: the source is outside the cluster (no policy applies)\n"),
    }
    match &v.ingress {
        Some(s) => out.push_str(&side_text(&format!("ingress of {dst}"), s)),
        None => {
            out.push_str("  ingress: the destination is outside the cluster (no policy applies)\n")
        }
    }
    out
}
