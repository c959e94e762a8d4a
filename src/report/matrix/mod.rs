//! The connectivity matrix: every pair of ends × the ports that matter, in
//! one call (`tierguard connectivity`), rendered as a grid for people and as
//! json, csv, Markdown and Graphviz dot for programs and documents.
//!
//! ```text
//!  ends (pods, workloads, outside) × ports_that_matter ─► Matrix::compute (reach::evaluate_placed)
//!  Matrix ─► text (a grid per port) · json (grouped by decision) · csv · md · dot
//! ```
//!
//! "The ports that matter" are the port regions on which every verdict is
//! constant: the numbers and ranges the policies name, cut at every
//! container port (where named ports resolve). A region is judged at its
//! first port, which stands for all of it.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::engine::future::FutureNote;
use crate::engine::policy::Direction;
use crate::engine::ports::{PortNumbers, Protocol};
use crate::engine::reach::{Decision, Endpoint, Exception, Placement, Verdict, evaluate_placed};
use crate::engine::state::{Pod, State};

mod words;
use words::{
    because, cell, csv_field, decision_word, dot_id, exception_word, md_escape, short, side_words,
};

/// A run of ports of one protocol on which every verdict is the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRegion {
    /// The protocol.
    pub proto: Protocol,
    /// The first port (the one judged).
    pub lo: u16,
    /// The last port.
    pub hi: u16,
}

impl fmt::Display for PortRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}/{}", self.proto, self.lo)
        } else {
            write!(f, "{}/{}-{}", self.proto, self.lo, self.hi)
        }
    }
}

/// The port regions the policies and the pods' container ports tell apart:
/// every numbered port or range a rule names, cut wherever another entry or
/// a container port starts or ends, plus each container port. Ports no rule
/// and no container names are left out (every rule treats them alike: ask
/// for one with `--port`).
pub fn ports_that_matter<'p>(
    state: &State,
    pods: impl IntoIterator<Item = &'p Pod>,
) -> Vec<PortRegion> {
    let mut spans: Vec<(Protocol, u16, u16)> = Vec::new();
    for pol in state.policies() {
        for dir in [Direction::Ingress, Direction::Egress] {
            for rule in pol.rules(dir).unwrap_or_default() {
                for m in rule.ports.iter().flatten() {
                    if let PortNumbers::Range(lo, hi) = m.numbers {
                        spans.push((m.protocol, lo, hi));
                    }
                }
            }
        }
    }
    for p in pods {
        for c in &p.ports {
            spans.push((c.protocol, c.port, c.port));
        }
    }
    let mut out = Vec::new();
    for proto in Protocol::ALL {
        let mine: Vec<(u32, u32)> = spans
            .iter()
            .filter(|s| s.0 == proto)
            .map(|s| (u32::from(s.1), u32::from(s.2)))
            .collect();
        let cuts: BTreeSet<u32> = mine.iter().flat_map(|&(lo, hi)| [lo, hi + 1]).collect();
        let cuts: Vec<u32> = cuts.into_iter().collect();
        for w in cuts.windows(2) {
            let (lo, hi) = (w[0], w[1] - 1);
            if mine.iter().any(|&(a, b)| a <= lo && hi <= b) {
                // Within u16: every cut but the last comes from a u16 port.
                if let (Ok(lo), Ok(hi)) = (u16::try_from(lo), u16::try_from(hi)) {
                    out.push(PortRegion { proto, lo, hi });
                }
            }
        }
    }
    out
}

/// Every pair of ends on every port, judged.
pub struct Matrix<'w> {
    /// The ends, as rows (sources) and columns (destinations).
    pub ends: Vec<Endpoint<'w>>,
    /// The ports.
    pub ports: Vec<PortRegion>,
    /// `verdicts[port][from][to]`.
    verdicts: Vec<Vec<Vec<Verdict>>>,
}

/// One judged connection, as the machine formats list it.
#[derive(Serialize)]
struct Entry<'a> {
    from: String,
    to: String,
    port: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    exception: Option<Exception>,
    #[serde(skip_serializing_if = "Option::is_none")]
    egress: Option<&'a crate::engine::reach::SideVerdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ingress: Option<&'a crate::engine::reach::SideVerdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    future: Option<&'a FutureNote>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonMatrix<'a> {
    ends: Vec<String>,
    ports: Vec<String>,
    allowed: Vec<Entry<'a>>,
    depends_on_address: Vec<Entry<'a>>,
    depends_on_pod: Vec<Entry<'a>>,
    denied: Vec<Entry<'a>>,
}

/// How many judged cells decided each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Allowed (exceptions included).
    pub allowed: usize,
    /// Allowed only if an unknown address is in an ipBlock.
    pub depends_on_address: usize,
    /// Allowed for some pods created later, not for others.
    pub depends_on_pod: usize,
    /// Denied.
    pub denied: usize,
}

// === impl Matrix ===

impl<'w> Matrix<'w> {
    /// Judges every (from, to, port) with the exceptions `placement` knows.
    pub fn compute(
        state: &State,
        placement: &dyn Placement,
        ends: Vec<Endpoint<'w>>,
        ports: Vec<PortRegion>,
    ) -> Self {
        let verdicts = ports
            .iter()
            .map(|p| {
                ends.iter()
                    .map(|src| {
                        ends.iter()
                            .map(|dst| evaluate_placed(state, placement, src, dst, p.proto, p.lo))
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Self {
            ends,
            ports,
            verdicts,
        }
    }

    /// The verdict for one cell.
    pub fn verdict(&self, port: usize, from: usize, to: usize) -> &Verdict {
        &self.verdicts[port][from][to]
    }

    /// Whether a pair is judged: not an end other than a pod against itself,
    /// and not two ends that both stand for pods created later.
    fn judged(&self, from: usize, to: usize) -> bool {
        let future = |e: &Endpoint<'_>| matches!(e, Endpoint::Future { .. });
        (from != to || matches!(self.ends[from], Endpoint::Pod(_)))
            && !(future(&self.ends[from]) && future(&self.ends[to]))
    }

    /// Every judged cell, port by port, row by row.
    fn cells(&self) -> impl Iterator<Item = (usize, usize, usize, &Verdict)> {
        (0..self.ports.len()).flat_map(move |p| {
            (0..self.ends.len()).flat_map(move |f| {
                (0..self.ends.len())
                    .filter(move |&t| self.judged(f, t))
                    .map(move |t| (p, f, t, &self.verdicts[p][f][t]))
            })
        })
    }

    /// A grid's cell: `-` for a pair that is not judged.
    fn grid_cell(&self, port: usize, from: usize, to: usize) -> &'static str {
        if self.judged(from, to) {
            cell(&self.verdicts[port][from][to])
        } else {
            "-"
        }
    }

    /// How many judged cells decided each way.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for (.., v) in self.cells() {
            match v.decision {
                Decision::Allowed => c.allowed += 1,
                Decision::DependsOnAddress => c.depends_on_address += 1,
                Decision::DependsOnPod => c.depends_on_pod += 1,
                Decision::Denied => c.denied += 1,
            }
        }
        c
    }

    fn names(&self) -> Vec<String> {
        self.ends.iter().map(short).collect()
    }

    /// A grid per port for people; with `explain`, every connection that is
    /// not denied (and every denied one between pods), grouped by decision,
    /// with the rules that decide it.
    pub fn text(&self, explain: bool) -> String {
        let names = self.names();
        // Rows carry the names; columns the rows' numbers, so the grid stays
        // narrow whatever the names' length.
        let keys: Vec<String> = (1..=names.len()).map(|i| i.to_string()).collect();
        let width = names.iter().map(String::len).max().unwrap_or(0)
            + keys.last().map_or(0, String::len)
            + 1;
        let cw = keys.last().map_or(0, String::len).max(4);
        let mut out = String::new();
        for (p, port) in self.ports.iter().enumerate() {
            let _ = writeln!(out, "{port}  (rows: from, columns: to)");
            let _ = write!(out, "{:width$}", "");
            for k in &keys {
                let _ = write!(out, "  {k:>cw$}");
            }
            out.push('\n');
            for (f, n) in names.iter().enumerate() {
                let _ = write!(out, "{:width$}", format!("{} {n}", keys[f]));
                for t in 0..names.len() {
                    let _ = write!(out, "  {:>cw$}", self.grid_cell(p, f, t));
                }
                out.push('\n');
            }
            out.push('\n');
        }
        let c = self.counts();
        let _ = writeln!(
            out,
            "{} allowed, {} depend on an unknown address, {} depend on the pod created later, {} denied ({} ends, {} ports)",
            c.allowed,
            c.depends_on_address,
            c.depends_on_pod,
            c.denied,
            self.ends.len(),
            self.ports.len()
        );
        out.push_str(
            "legend: yes allowed · no denied · ip? allowed only if the unknown address is in an ipBlock · self a pod reaching itself · node its own node (both always allowed)\n",
        );
        if self
            .ends
            .iter()
            .any(|e| matches!(e, Endpoint::Future { .. }))
        {
            out.push_str(
                "        ns/* any pod created later in ns: yes for every such pod · no for none · pod? for some (by labels, ports or address) · - not judged\n",
            );
        }
        if explain {
            for (title, want) in [
                ("allowed", Decision::Allowed),
                ("depends on an unknown address", Decision::DependsOnAddress),
                ("depends on the pod created later", Decision::DependsOnPod),
                ("denied", Decision::Denied),
            ] {
                let _ = writeln!(out, "\n{title}:");
                for (p, f, t, v) in self.cells().filter(|c| c.3.decision == want) {
                    let _ = writeln!(
                        out,
                        "  {} -> {} on {}: {}",
                        names[f],
                        names[t],
                        self.ports[p],
                        because(v)
                    );
                }
            }
        }
        out
    }

    /// One JSON object: the ends, the ports, and the connections grouped by
    /// decision (with `explain`, each side's policies and rules).
    pub fn json(&self, explain: bool) -> serde_json::Result<String> {
        let names = self.names();
        let mut m = JsonMatrix {
            ends: names.clone(),
            ports: self.ports.iter().map(ToString::to_string).collect(),
            allowed: Vec::new(),
            depends_on_address: Vec::new(),
            depends_on_pod: Vec::new(),
            denied: Vec::new(),
        };
        for (p, f, t, v) in self.cells() {
            let e = Entry {
                from: names[f].clone(),
                to: names[t].clone(),
                port: self.ports[p].to_string(),
                exception: v.exception,
                egress: v.egress.as_ref().filter(|_| explain),
                ingress: v.ingress.as_ref().filter(|_| explain),
                future: v.future.as_ref(),
            };
            match v.decision {
                Decision::Allowed => m.allowed.push(e),
                Decision::DependsOnAddress => m.depends_on_address.push(e),
                Decision::DependsOnPod => m.depends_on_pod.push(e),
                Decision::Denied => m.denied.push(e),
            }
        }
        serde_json::to_string_pretty(&m)
    }

    /// `from,to,port,decision,exception` (with `explain`: `,egress,ingress`),
    /// one row per connection.
    pub fn csv(&self, explain: bool) -> String {
        let names = self.names();
        let mut out = String::from("from,to,port,decision,exception");
        if explain {
            out.push_str(",egress,ingress");
        }
        out.push('\n');
        for (p, f, t, v) in self.cells() {
            let _ = write!(
                out,
                "{},{},{},{},{}",
                csv_field(&names[f]),
                csv_field(&names[t]),
                self.ports[p],
                decision_word(v.decision),
                v.exception.map(exception_word).unwrap_or("")
            );
            if explain {
                // A pod created later is judged on both sides at once: its
                // note stands for both columns.
                let (egress, ingress) = match &v.future {
                    Some(n) => (n.to_string(), n.to_string()),
                    None => (
                        side_words(v.egress.as_ref()),
                        side_words(v.ingress.as_ref()),
                    ),
                };
                let _ = write!(out, ",{},{}", csv_field(&egress), csv_field(&ingress));
            }
            out.push('\n');
        }
        out
    }

    /// A Markdown table per port (with `explain`, a list of the deciding
    /// rules under each).
    pub fn md(&self, explain: bool) -> String {
        let names = self.names();
        let mut out = String::new();
        for (p, port) in self.ports.iter().enumerate() {
            let _ = writeln!(out, "### {port}\n");
            let _ = write!(out, "| from \\ to |");
            for n in &names {
                let _ = write!(out, " {} |", md_escape(n));
            }
            out.push('\n');
            out.push_str("|---|");
            for _ in &names {
                out.push_str("---|");
            }
            out.push('\n');
            for (f, n) in names.iter().enumerate() {
                let _ = write!(out, "| {} |", md_escape(n));
                for t in 0..names.len() {
                    let _ = write!(out, " {} |", self.grid_cell(p, f, t));
                }
                out.push('\n');
            }
            if explain {
                out.push('\n');
                for (_, f, t, v) in self.cells().filter(|c| c.0 == p) {
                    let _ = writeln!(
                        out,
                        "- {} → {}: {}",
                        md_escape(&names[f]),
                        md_escape(&names[t]),
                        md_escape(&because(v))
                    );
                }
            }
            out.push('\n');
        }
        out
    }

    /// A Graphviz digraph: an edge per pair that is not denied, labelled
    /// with its ports (dashed when it depends on an unknown address);
    /// exceptions (a pod to itself) are left out.
    pub fn dot(&self) -> String {
        let names = self.names();
        let mut out = String::from("digraph connectivity {\n  rankdir=LR;\n  node [shape=box];\n");
        for n in &names {
            let _ = writeln!(out, "  {};", dot_id(n));
        }
        for f in 0..names.len() {
            for t in 0..names.len() {
                if f == t {
                    continue;
                }
                for (want, style) in [
                    (Decision::Allowed, ""),
                    (Decision::DependsOnAddress, ", style=dashed"),
                    (Decision::DependsOnPod, ", style=dotted"),
                ] {
                    if !self.judged(f, t) {
                        continue;
                    }
                    let ports: Vec<String> = (0..self.ports.len())
                        .filter(|&p| {
                            let v = &self.verdicts[p][f][t];
                            v.decision == want && v.exception.is_none()
                        })
                        .map(|p| self.ports[p].to_string())
                        .collect();
                    if !ports.is_empty() {
                        let _ = writeln!(
                            out,
                            "  {} -> {} [label={}{style}];",
                            dot_id(&names[f]),
                            dot_id(&names[t]),
                            dot_id(&ports.join(", "))
                        );
                    }
                }
            }
        }
        out.push_str("}\n");
        out
    }
}

#[cfg(test)]
mod tests;
