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
    /// PROTO/PORT, e.g. tcp/5432 (PROTO: tcp, udp, sctp).
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

/// Parses `tcp/80`.
pub fn parse_port(s: &str) -> Result<(Protocol, u16)> {
    let Some((p, n)) = s.split_once('/') else {
        bail!("--port {s:?}: expected PROTO/PORT, e.g. tcp/80");
    };
    let proto = Protocol::parse_loose(p)
        .ok_or_else(|| anyhow!("--port {s:?}: protocol must be tcp, udp or sctp"))?;
    let port = n
        .parse::<u16>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| anyhow!("--port {s:?}: port must be a number from 1 to 65535"))?;
    Ok((proto, port))
}

/// Runs `query`: exit 0 whenever the connection was evaluated; with
/// `--exit-code`, 0 allowed and 1 denied. Errors exit 2 (in `main`).
pub fn run(args: QueryArgs) -> Result<ExitCode> {
    let (proto, port) = parse_port(&args.port)?;
    let world = World::load(&args.files)?;
    let src = endpoint(&world, &args.from, "from")?;
    let dst = endpoint(&world, &args.to, "to")?;
    let verdict = evaluate(&world.state, &src, &dst, proto, port);
    let port_s = format!("{proto}/{port}");
    match args.output {
        Output::Json => {
            let j = JsonVerdict {
                from: src.to_string(),
                to: dst.to_string(),
                port: port_s,
                verdict: &verdict,
            };
            println!("{}", serde_json::to_string_pretty(&j)?);
        }
        Output::Text => print!("{}", render_text(&src, &dst, &port_s, &verdict)),
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

fn render_text(src: &Endpoint<'_>, dst: &Endpoint<'_>, port: &str, v: &Verdict) -> String {
    let mut out = format!(
        "{src} -> {dst} on {port}: {}\n",
        if v.allowed { "ALLOWED" } else { "DENIED" }
    );
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
