//! `tierguard check`'s output: text for people, JSON for programs, both
//! grouped by cause.

use serde::Serialize;

use super::{Group, by_cause, cause, end, flow, namespace_problem, note};
use crate::engine::calico::Unjudged;
use crate::engine::isolation::{Breach, Cause, End, NamespaceProblem, Note};
use crate::engine::tiers::{Judge, Mode};

/// What `check` found, and about what.
#[derive(Clone, Copy, Debug)]
pub struct Findings<'a> {
    /// The isolation policy's name.
    pub policy: &'a str,
    /// Its mode.
    pub mode: Mode,
    /// Its judgement.
    pub judge: Judge,
    /// True when only what opens relative to a base is reported.
    pub relative: bool,
    /// Forbidden flows.
    pub flows: &'a [Breach],
    /// Namespace problems.
    pub namespaces: &'a [NamespaceProblem],
    /// Calico policies tierguard cannot judge.
    pub unjudged: &'a [Unjudged],
    /// Objects of kinds tierguard does not read.
    pub skipped: usize,
}

impl<'a> Findings<'a> {
    /// The findings of a whole state's report (no base, nothing skipped).
    pub fn of_report(
        iso: &'a crate::engine::tiers::IsolationPolicy,
        report: &'a crate::engine::isolation::Report,
    ) -> Self {
        Findings {
            policy: &iso.name,
            mode: iso.mode,
            judge: iso.judge,
            relative: false,
            flows: &report.flows,
            namespaces: &report.namespaces,
            unjudged: &[],
            skipped: 0,
        }
    }

    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.flows.is_empty() && self.namespaces.is_empty() && self.unjudged.is_empty()
    }
}

/// The report for people: a summary line, then one entry per cause.
pub fn text(f: &Findings<'_>) -> String {
    let mut out = String::new();
    let groups = by_cause(f.flows);
    if f.is_clean() {
        out.push_str(&format!(
            "ok: no forbidden flow {} (isolation policy {})\n",
            if f.relative { "opened" } else { "allowed" },
            f.policy
        ));
    } else {
        out.push_str(&format!(
            "{} forbidden flow(s) {} by {} cause(s); {} namespace problem(s){} (isolation policy {})\n",
            f.flows.len(),
            if f.relative {
                "opened by the change"
            } else {
                "allowed"
            },
            groups.len(),
            f.namespaces.len(),
            match f.unjudged.len() {
                0 => String::new(),
                n => format!("; {n} Calico policy(ies) tierguard cannot judge"),
            },
            f.policy
        ));
    }
    for g in &groups {
        out.push('\n');
        out.push_str(&group_text(g));
    }
    if !f.namespaces.is_empty() {
        out.push('\n');
    }
    for n in f.namespaces {
        out.push_str(&format!("namespace: {}\n", namespace_problem(n)));
    }
    if !f.unjudged.is_empty() {
        out.push('\n');
    }
    for u in f.unjudged {
        out.push_str(&format!("cannot judge: {}\n", unjudged(u)));
    }
    if f.skipped > 0 {
        out.push_str(&format!(
            "\n({} object(s) of other kinds skipped; -v lists them)\n",
            f.skipped
        ));
    }
    out
}

/// An unjudged Calico policy for people.
fn unjudged(u: &Unjudged) -> String {
    format!(
        "{} may apply to {} with rules that can let traffic through ({}); tierguard does not \
         judge Calico policies' rules yet (docs/calico.md), so its webhook refuses this policy \
         in enforce mode",
        u.object,
        u.applies_to(),
        u.rules.join(", ")
    )
}

fn group_text(g: &Group<'_>) -> String {
    let mut out = format!("{}\n", cause(g.cause));
    out.push_str(&format!(
        "  breaks: {} {} (tier {})\n",
        g.namespace, g.wall, g.tier
    ));
    for (b, ports) in &g.flows {
        out.push_str(&format!("  opens: {}\n", flow(&b.from, &b.to, ports)));
    }
    for n in &g.notes {
        out.push_str(&format!("  note: {}\n", note(n)));
    }
    out
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Json<'a> {
    policy: &'a str,
    mode: Mode,
    judge: Judge,
    relative_to_base: bool,
    clean: bool,
    /// Every forbidden flow, with structured ends and every cause.
    flows: &'a [Breach],
    /// The same flows grouped by what opens them.
    by_cause: Vec<JsonGroup<'a>>,
    namespaces: Vec<JsonNamespace<'a>>,
    /// Calico policies tierguard cannot judge.
    unjudged: Vec<JsonUnjudged<'a>>,
    skipped: usize,
}

#[derive(Serialize)]
struct JsonUnjudged<'a> {
    #[serde(flatten)]
    policy: &'a Unjudged,
    message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonGroup<'a> {
    namespace: &'a str,
    tier: &'a str,
    wall: String,
    cause: &'a Cause,
    /// The cause for people.
    description: String,
    opens: Vec<JsonFlow<'a>>,
    notes: Vec<&'a Note>,
}

#[derive(Serialize)]
struct JsonFlow<'a> {
    from: &'a End,
    to: &'a End,
    ports: String,
    /// The flow for people.
    description: String,
}

#[derive(Serialize)]
struct JsonNamespace<'a> {
    #[serde(flatten)]
    problem: &'a NamespaceProblem,
    message: String,
}

/// The report for programs.
pub fn json(f: &Findings<'_>) -> Result<String, serde_json::Error> {
    let by_cause = by_cause(f.flows)
        .into_iter()
        .map(|g| JsonGroup {
            namespace: g.namespace,
            tier: g.tier,
            wall: g.wall.to_string(),
            cause: g.cause,
            description: cause(g.cause),
            opens: g
                .flows
                .iter()
                .map(|(b, ports)| JsonFlow {
                    from: &b.from,
                    to: &b.to,
                    ports: ports.to_string(),
                    description: format!("{} -> {}", end(&b.from), end(&b.to)),
                })
                .collect(),
            notes: g.notes.into_iter().collect(),
        })
        .collect();
    serde_json::to_string_pretty(&Json {
        policy: f.policy,
        mode: f.mode,
        judge: f.judge,
        relative_to_base: f.relative,
        clean: f.is_clean(),
        flows: f.flows,
        by_cause,
        namespaces: f
            .namespaces
            .iter()
            .map(|p| JsonNamespace {
                problem: p,
                message: namespace_problem(p),
            })
            .collect(),
        unjudged: f
            .unjudged
            .iter()
            .map(|u| JsonUnjudged {
                policy: u,
                message: unjudged(u),
            })
            .collect(),
        skipped: f.skipped,
    })
}
