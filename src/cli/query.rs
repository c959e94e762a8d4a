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
    /// Source: namespace/name (a Pod, else a workload) or an IP (a known pod's is
    /// that pod, a node's that node, else a host outside the cluster).
    #[arg(long)]
    pub from: String,
    /// Destination: namespace/name (a Pod, else a workload) or an IP (as for --from).
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

/// Resolves `--from`/`--to`: `namespace/name`, or an IP — a known Pod's IP
/// is that pod, a node's IP (a Pod's `status.hostIP`, a Node's address) is
/// that node, anything else a host outside the cluster. Returns the endpoint,
/// the node IP when it is one, and a note saying how an IP was read.
fn endpoint<'w>(
    world: &'w World,
    s: &str,
    flag: &str,
) -> Result<(Endpoint<'w>, Option<IpAddr>, Option<String>)> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        if let Some(node) = node_of(world, ip) {
            return Ok((
                Endpoint::External(ip),
                Some(ip),
                Some(format!(
                    "--{flag} {ip} is {node}: neither a pod nor outside the cluster; no NetworkPolicy applies to the node itself, and pods' ipBlocks match its IP"
                )),
            ));
        }
        if let Some(p) = world
            .pods
            .iter()
            .find(|p| p.workload.is_none() && p.ips.contains(&ip))
        {
            return Ok((
                Endpoint::Pod(p),
                None,
                Some(format!(
                    "--{flag} {ip} is the IP of pod {}/{}: judged as that pod",
                    p.namespace, p.name
                )),
            ));
        }
        return Ok((Endpoint::External(ip), None, None));
    }
    let (ns, name) = s
        .split_once('/')
        .ok_or_else(|| anyhow!("--{flag} {s:?}: expected namespace/name or an IP address"))?;
    world
        .find_pod(ns, name)
        .map(|p| (Endpoint::Pod(p), None, None))
        .ok_or_else(|| {
            anyhow!("--{flag} {s:?}: no Pod or workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob) named {name} in namespace {ns} in the manifests")
        })
}

/// `the node of pod ns/name` or `node NAME` when `ip` is a node's IP.
fn node_of(world: &World, ip: IpAddr) -> Option<String> {
    if let Some((name, _)) = world.nodes.iter().find(|(_, ips)| ips.contains(&ip)) {
        return Some(format!("node {name}"));
    }
    world
        .host_ips
        .iter()
        .find(|(_, ips)| ips.contains(&ip))
        .map(|(pod, _)| format!("the node of pod {pod}"))
}

/// The exceptions the NetworkPolicy reference makes, which no policy can
/// change: a pod always reaches itself ("a pod cannot block access to
/// itself"), and traffic between a pod and the node it runs on is always
/// allowed ("traffic to and from the node where a Pod is running is always
/// allowed"; ingress "if the traffic source is the pod's local node").
fn exception(
    world: &World,
    (src, src_s): (&Endpoint<'_>, &str),
    src_node: Option<IpAddr>,
    (dst, dst_s): (&Endpoint<'_>, &str),
    dst_node: Option<IpAddr>,
) -> Option<String> {
    let local = |p: &crate::engine::state::Pod, ip: IpAddr| {
        p.workload.is_none()
            && world
                .host_ips
                .get(&format!("{}/{}", p.namespace, p.name))
                .is_some_and(|ips| ips.contains(&ip))
    };
    match (src, dst) {
        (Endpoint::Pod(a), Endpoint::Pod(b)) if a.workload.is_none() && std::ptr::eq(*a, *b) => {
            Some(format!(
                "{src_s} reaches itself: a pod cannot block access to itself (loopback follows no NetworkPolicy), whatever the policies below say"
            ))
        }
        (Endpoint::Pod(p), _) if dst_node.is_some_and(|ip| local(p, ip)) => Some(format!(
            "{dst_s} is the node {src_s} runs on: traffic to and from a pod's own node is always allowed, whatever the policies below say"
        )),
        (_, Endpoint::Pod(p)) if src_node.is_some_and(|ip| local(p, ip)) => Some(format!(
            "{src_s} is the node {dst_s} runs on: traffic from a pod's local node is always allowed, whatever the policies below say"
        )),
        _ => None,
    }
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
    let (src, src_node, src_note) = endpoint(&world, &args.from, "from")?;
    let (dst, dst_node, dst_note) = endpoint(&world, &args.to, "to")?;
    let port = resolve_port(proto, &port_arg, &dst, &args.port)?;
    let mut notes: Vec<String> = src_note.into_iter().chain(dst_note).collect();
    if let PortArg::Name(name) = &port_arg {
        notes.push(format!(
            "the named port {proto}/{name} of {dst} is {proto}/{port}"
        ));
    }
    let show = |e: &Endpoint<'_>, node: Option<IpAddr>| match node {
        Some(ip) => format!("{ip} (node)"),
        None => e.to_string(),
    };
    let (src_s, dst_s) = (show(&src, src_node), show(&dst, dst_node));
    let mut verdict = evaluate(&world.state, &src, &dst, proto, port);
    if let Some(e) = exception(&world, (&src, &src_s), src_node, (&dst, &dst_s), dst_node) {
        notes.push(e);
        verdict.allowed = true;
    }
    let port_s = format!("{proto}/{port}");
    match args.output {
        Output::Json => {
            let j = JsonVerdict {
                from: src_s.clone(),
                to: dst_s.clone(),
                port: port_s,
                notes: &notes,
                verdict: &verdict,
            };
            println!("{}", serde_json::to_string_pretty(&j)?);
        }
        Output::Text => print!(
            "{}",
            render_text(
                &src_s,
                &dst_s,
                &port_s,
                &notes,
                &verdict,
                (src_node.is_some(), dst_node.is_some())
            )
        ),
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
    src: &str,
    dst: &str,
    port: &str,
    notes: &[String],
    v: &Verdict,
    (src_is_node, dst_is_node): (bool, bool),
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
        None if src_is_node => out.push_str("  egress: the source is a node (no policy applies)\n"),
        None => out.push_str("  egress: the source is outside the cluster (no policy applies)\n"),
    }
    match &v.ingress {
        Some(s) => out.push_str(&side_text(&format!("ingress of {dst}"), s)),
        None if dst_is_node => {
            out.push_str("  ingress: the destination is a node (no policy applies)\n")
        }
        None => {
            out.push_str("  ingress: the destination is outside the cluster (no policy applies)\n")
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORLD: &str = include_str!("../../tests/query-world/world.yaml");

    /// (from, to, the exception that applies, if any)
    const EXCEPTIONS: &[(&str, &str, Option<&str>)] = &[
        ("app/server", "app/server", Some("reaches itself")),
        ("app/server-fleet", "app/server-fleet", None),
        ("app/client", "app/server", None),
        ("192.168.1.10", "app/server", Some("local node")),
        ("app/server", "192.168.1.10", Some("own node")),
        ("192.168.1.11", "app/server", None),
        ("192.168.1.12", "app/server", None),
        ("10.244.1.5", "app/server", Some("reaches itself")),
        ("203.0.113.9", "app/server", None),
    ];

    #[test]
    fn exceptions_table() {
        let world = World::from_text(WORLD, "world.yaml").expect("loads");
        for (from, to, want) in EXCEPTIONS {
            let (s, sn, _) = endpoint(&world, from, "from").expect("from");
            let (d, dn, _) = endpoint(&world, to, "to").expect("to");
            let got = exception(&world, (&s, from), sn, (&d, to), dn);
            match (want, &got) {
                (None, None) => {}
                (Some(w), Some(g)) if g.contains(w) => {}
                _ => panic!("{from} -> {to}: want {want:?}, got {got:?}"),
            }
        }
    }
}
