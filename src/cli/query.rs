//! `tierguard query`: may SRC connect to DST on PROTO/PORT, and why?

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use clap::Args;
use serde::Serialize;

use super::Output;
use crate::engine::ports::Protocol;
use crate::engine::reach::{Decision, Endpoint, Exception, SideVerdict, Verdict, evaluate_placed};
use crate::world::World;

/// Arguments of `query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Manifests: files, directories (recursive) or - for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Source: namespace/name (a Pod, else a workload), an IP (a known pod's is
    /// that pod, a node's that node, else a host outside the cluster), or
    /// `outside` (any host outside the cluster).
    #[arg(long, required_unless_present = "batch")]
    pub from: Option<String>,
    /// Destination: namespace/name (a Pod, else a workload), an IP or
    /// `outside` (as for --from).
    #[arg(long, required_unless_present = "batch")]
    pub to: Option<String>,
    /// PROTO/PORT, e.g. tcp/5432 or tcp/http (PROTO: tcp, udp, sctp; a named
    /// port resolves on the destination pod's container ports).
    #[arg(long, required_unless_present = "batch")]
    pub port: Option<String>,
    /// Questions from a file (- for stdin), one per line: `FROM TO PROTO/PORT`
    /// (blank lines and `#` comments skipped). Answers in the same order:
    /// text blocks, or one JSON array.
    #[arg(long, conflicts_with_all = ["from", "to", "port"])]
    pub batch: Option<PathBuf>,
    /// An isolation policy whose `cluster.nodeCIDRs` say which addresses
    /// are nodes' (loaded and validated whole, as `check` does; only its
    /// `cluster` section is used; not searched for when not given).
    #[arg(long, env = "TIERGUARD_POLICY")]
    pub policy: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
    /// Exit 1 when the connection is not allowed for certain (denied, or
    /// allowed only for some addresses; in a batch: any question), as
    /// `check` exits 1 on violations; without it, exit 0 whenever the
    /// connection was evaluated.
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

/// One question's answer: the JSON form and the text form.
struct Answer {
    json: serde_json::Value,
    text: String,
    allowed: bool,
}

/// Answers one question against the world.
fn answer(world: &World, from: &str, to: &str, port_raw: &str) -> Result<Answer> {
    let (proto, port_arg) = parse_port(port_raw)?;
    let (src, src_note) = world.endpoint(from, "from")?;
    let (dst, dst_note) = world.endpoint(to, "to")?;
    let port = resolve_port(proto, &port_arg, &dst, port_raw)?;
    let mut notes: Vec<String> = src_note.into_iter().chain(dst_note).collect();
    if let PortArg::Name(name) = &port_arg {
        notes.push(format!(
            "the named port {proto}/{name} of {dst} is {proto}/{port}"
        ));
    }
    let verdict = evaluate_placed(&world.state, world, &src, &dst, proto, port);
    if let Some(e) = verdict.exception {
        notes.push(exception_note(e, &src, &dst));
    }
    let port_s = format!("{proto}/{port}");
    let json = serde_json::to_value(JsonVerdict {
        from: src.to_string(),
        to: dst.to_string(),
        port: port_s.clone(),
        notes: &notes,
        verdict: &verdict,
    })?;
    Ok(Answer {
        json,
        text: render_text(&src, &dst, &port_s, &notes, &verdict),
        allowed: verdict.decision == Decision::Allowed,
    })
}

/// Reads `--batch`: `(line number, from, to, port)` per question.
fn read_batch(path: &std::path::Path) -> Result<Vec<(usize, String, String, String)>> {
    let text = if path.as_os_str() == "-" {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)
            .map_err(|e| anyhow!("--batch -: cannot read stdin: {e}"))?;
        t
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| anyhow!("--batch {}: cannot read: {e}", path.display()))?
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let [from, to, port] = words[..] else {
            bail!(
                "--batch {}:{}: expected `FROM TO PROTO/PORT`, got {line:?}",
                path.display(),
                i + 1
            );
        };
        out.push((i + 1, from.to_string(), to.to_string(), port.to_string()));
    }
    Ok(out)
}

/// Runs `query`: exit 0 whenever the connection was evaluated; with
/// `--exit-code`, 0 allowed and 1 otherwise. Errors exit 2 (in `main`).
pub fn run(args: QueryArgs) -> Result<ExitCode> {
    let questions = match (&args.batch, &args.from, &args.to, &args.port) {
        (Some(path), ..) => read_batch(path)?,
        (None, Some(f), Some(t), Some(p)) => {
            // Fail on a bad port before loading the manifests.
            parse_port(p)?;
            vec![(0, f.clone(), t.clone(), p.clone())]
        }
        _ => bail!("give --from, --to and --port, or --batch FILE"),
    };
    let mut world = World::load(&args.files)?;
    if let Some(p) = &args.policy {
        world.node_cidrs = super::load_policy(Some(p))?.node_cidrs;
    }
    for w in &world.warnings {
        eprintln!("warning: {w}");
    }
    super::warn_calico_not_judged(&world, "query");
    let mut answers = Vec::new();
    for (line, from, to, port) in &questions {
        let a = answer(&world, from, to, port).map_err(|e| match &args.batch {
            Some(path) => anyhow!("--batch {}:{line}: {e:#}", path.display()),
            None => e,
        })?;
        answers.push(a);
    }
    let all_allowed = answers.iter().all(|a| a.allowed);
    match (args.output, args.batch.is_some()) {
        (Output::Json, false) => {
            for a in &answers {
                println!("{}", serde_json::to_string_pretty(&a.json)?);
            }
        }
        (Output::Json, true) => {
            let all: Vec<&serde_json::Value> = answers.iter().map(|a| &a.json).collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        (Output::Text, _) => {
            let texts: Vec<&str> = answers.iter().map(|a| a.text.as_str()).collect();
            print!("{}", texts.join("\n"));
        }
    }
    Ok(if args.exit_code && !all_allowed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The note for an exception, in the words of the reference.
pub(crate) fn exception_note(e: Exception, src: &Endpoint<'_>, dst: &Endpoint<'_>) -> String {
    match (e, src) {
        (Exception::Loopback, _) => format!(
            "{src} reaches itself: a pod cannot block access to itself (loopback follows no NetworkPolicy), whatever the policies below say"
        ),
        (Exception::LocalNode, Endpoint::Pod(_)) => format!(
            "{dst} is the node {src} runs on: traffic to and from a pod's own node is always allowed, whatever the policies below say"
        ),
        (Exception::LocalNode, _) => format!(
            "{src} is the node {dst} runs on: traffic from a pod's local node is always allowed, whatever the policies below say"
        ),
    }
}

/// One side's explanation, indented under the verdict line.
pub(crate) fn side_text(what: &str, other: &Endpoint<'_>, s: &SideVerdict) -> String {
    let word = if s.allowed {
        "allows"
    } else if s.depends_on_address() {
        "allows only some addresses"
    } else {
        "denies"
    };
    let mut out = format!("  {what}: {word}\n");
    if !s.tiers.is_empty() {
        // Tier by tier: the walkthrough says what each tier did.
        for t in &s.tiers {
            out.push_str(&format!("    {t}\n"));
        }
        if let Some(by) = &s.decided_by {
            out.push_str(&format!("    decided by: {by}\n"));
        }
        for a in &s.address_decides {
            out.push_str(&format!(
                "    the address of {other} is not known, and it decides: {a}\n"
            ));
        }
        return out;
    }
    if !s.isolated {
        out.push_str("    not isolated: no policy selects the pod for this direction, so everything is allowed\n");
        return out;
    }
    out.push_str(&format!("    isolated by: {}\n", s.isolated_by.join(", ")));
    if !s.allowed_by.is_empty() {
        out.push_str(&format!("    allowed by: {}\n", s.allowed_by.join(", ")));
    } else if s.depends_on_address() {
        out.push_str(&format!(
            "    the address of {other} is not known: allowed if it is in {}\n",
            s.allowed_if_address_in.join(", ")
        ));
    } else {
        out.push_str("    no rule of these policies matches\n");
    }
    out
}

/// What stands at an end no policy applies to.
fn unpoliced(e: &Endpoint<'_>) -> &'static str {
    match e {
        Endpoint::Node { .. } => "a node",
        _ => "outside the cluster",
    }
}

fn render_text(
    src: &Endpoint<'_>,
    dst: &Endpoint<'_>,
    port: &str,
    notes: &[String],
    v: &Verdict,
) -> String {
    let mut out = format!("{src} -> {dst} on {port}: {}\n", v.decision);
    for n in notes {
        out.push_str(&format!("  note: {n}\n"));
    }
    if let Some(f) = &v.future {
        out.push_str(&format!("  pods created later: {f}\n"));
        return out;
    }
    match &v.egress {
        Some(s) => out.push_str(&side_text(&format!("egress of {src}"), dst, s)),
        None => out.push_str(&format!(
            "  egress: the source is {} (no policy applies)\n",
            unpoliced(src)
        )),
    }
    match &v.ingress {
        Some(s) => out.push_str(&side_text(&format!("ingress of {dst}"), src, s)),
        None => out.push_str(&format!(
            "  ingress: the destination is {} (no policy applies)\n",
            unpoliced(dst)
        )),
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
            let (s, _) = world.endpoint(from, "from").expect("from");
            let (d, _) = world.endpoint(to, "to").expect("to");
            let v = evaluate_placed(&world.state, &world, &s, &d, Protocol::Tcp, 8080);
            let got = v.exception.map(|e| exception_note(e, &s, &d));
            assert!(v.allowed || got.is_none(), "an exception allows");
            match (want, &got) {
                (None, None) => {}
                (Some(w), Some(g)) if g.contains(w) => {}
                _ => panic!("{from} -> {to}: want {want:?}, got {got:?}"),
            }
        }
    }
}
