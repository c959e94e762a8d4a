//! The cluster's current violations as OpenReports objects
//! (`openreports.io/v1alpha1`): what `serve`'s leader publishes and
//! `tierguard check --cluster -o openreports` prints.
//!
//! ```text
//!  Report (isolation) ─┬─ per tier namespace ─► Report  tierguard-<policy>
//!                      │     a `fail` result per forbidden flow through its walls
//!                      │     (or one `pass`: its walls hold)
//!                      └─ cluster-scoped ─────► ClusterReport tierguard-<policy>
//!                            a `fail` result per namespace whose protected
//!                            labels lie or conflict (or one `pass`)
//! ```
//!
//! A result's `timestamp` is when tierguard first found it: a finding that
//! stays keeps its time, so an unchanged state builds byte-equal reports
//! and the publisher writes nothing.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::engine::isolation::{Breach, Cause, NamespaceProblem, Report};
use crate::model::baseline::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// The API group.
pub const GROUP: &str = "openreports.io";
/// The version written.
pub const VERSION: &str = "v1alpha1";
/// `source` of every report and result.
pub const SOURCE: &str = "tierguard";
/// The label naming the isolation policy a report is for.
pub const POLICY_LABEL: &str = "tierguard.io/policy";
/// The most results one report holds; the rest are counted in a last
/// result (`tierguard check --cluster` lists them all).
pub const MAX_RESULTS: usize = 500;
/// The longest message of a result, in bytes (cut beyond it, marked).
pub const MAX_MESSAGE: usize = 2_000;

/// A reference to a Kubernetes object (`corev1.ObjectReference`'s fields
/// tierguard fills).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// Its namespace (cluster-scoped objects: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

/// Seconds and nanoseconds since the Unix epoch (`metav1.Timestamp`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    /// Whole seconds.
    pub seconds: i64,
    /// The fraction, in nanoseconds.
    pub nanos: i32,
}

impl Timestamp {
    /// The time `t`, to the second (reports need no finer).
    pub fn of(t: SystemTime) -> Self {
        let seconds = t
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Self { seconds, nanos: 0 }
    }
}

/// Counts of results by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Requirements met.
    #[serde(default)]
    pub pass: u32,
    /// Requirements not met.
    #[serde(default)]
    pub fail: u32,
    /// Not met, not scored.
    #[serde(default)]
    pub warn: u32,
    /// Could not be evaluated.
    #[serde(default)]
    pub error: u32,
    /// Not evaluated.
    #[serde(default)]
    pub skip: u32,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportResult {
    /// Always [`SOURCE`].
    #[serde(default)]
    pub source: String,
    /// The isolation policy.
    pub policy: String,
    /// The wall (`<namespace> ingress`, `<namespace> egress`), or the check
    /// (`walls`, `namespace labels`).
    #[serde(default)]
    pub rule: String,
    /// Always `network isolation`.
    #[serde(default)]
    pub category: String,
    /// `high` for a failure, `info` for a pass.
    #[serde(default)]
    pub severity: String,
    /// When tierguard first found it.
    #[serde(default)]
    pub timestamp: Timestamp,
    /// `pass` or `fail`.
    #[serde(default)]
    pub result: String,
    /// Always true.
    #[serde(default)]
    pub scored: bool,
    /// The objects at fault: the rules' policies, or the namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ObjectRef>,
    /// What is wrong, for people.
    #[serde(default)]
    pub message: String,
    /// The finding's parts, for tools: from, to, ports, wall, causes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// The part of a Report (or ClusterReport) tierguard owns: everything but
/// `metadata`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportBody {
    /// Always [`SOURCE`].
    #[serde(default)]
    pub source: String,
    /// The namespace (Report) or the isolation policy (ClusterReport).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ObjectRef>,
    /// Results by outcome.
    #[serde(default)]
    pub summary: Summary,
    /// The findings.
    #[serde(default)]
    pub results: Vec<ReportResult>,
}

/// The reports of one isolation policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reports {
    /// The policy's name.
    pub policy: String,
    /// Namespace → its Report.
    pub namespaced: BTreeMap<String, ReportBody>,
    /// The ClusterReport.
    pub cluster: Option<ReportBody>,
}

/// The name of every report of `policy`: `tierguard-<policy>`, made a
/// valid object name whatever the policy file's name is (lower case; other
/// characters than `a-z0-9` become `-`; at most 253 characters; ending in
/// a letter or digit).
pub fn report_name(policy: &str) -> String {
    let mapped: String = format!("tierguard-{policy}")
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| match c {
            'a'..='z' | '0'..='9' => c,
            _ => '-',
        })
        .take(253)
        .collect();
    mapped.trim_end_matches('-').to_string()
}

/// The labels every report carries: tierguard's managed-by label (what the
/// publisher lists its own reports by) and the policy's name, made a valid
/// label value (`A-Za-z0-9-_.`, at most 63, starting and ending with a
/// letter or digit; empty when nothing is left).
pub fn labels(policy: &str) -> BTreeMap<String, String> {
    let value: String = policy
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(63)
        .collect();
    let value = value.trim_matches(['-', '_', '.']).to_string();
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
        (POLICY_LABEL.to_string(), value),
    ])
}

/// Annotations that keep GitOps tools from pruning or diffing reports
/// they did not create (Argo CD; Flux touches only what its sources hold).
pub fn annotations() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "argocd.argoproj.io/compare-options".to_string(),
            "IgnoreExtraneous".to_string(),
        ),
        (
            "argocd.argoproj.io/sync-options".to_string(),
            "Prune=false".to_string(),
        ),
    ])
}

/// The whole object of one report: `kind` (`Report` with its namespace, or
/// `ClusterReport`), its metadata (name, [`labels`], [`annotations`]) and
/// `body`.
pub fn manifest(
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    policy: &str,
    body: &ReportBody,
) -> Value {
    let mut metadata = json!({
        "name": name,
        "labels": labels(policy),
        "annotations": annotations(),
    });
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    let mut obj = serde_json::to_value(body).unwrap_or_else(|_| json!({}));
    obj["apiVersion"] = json!(format!("{GROUP}/{VERSION}"));
    obj["kind"] = json!(kind);
    obj["metadata"] = metadata;
    obj
}

/// Every object of `reports`: the Reports by namespace, then the
/// ClusterReport.
pub fn manifests(reports: &Reports) -> Vec<Value> {
    let name = report_name(&reports.policy);
    let mut out: Vec<Value> = reports
        .namespaced
        .iter()
        .map(|(ns, b)| manifest("Report", Some(ns), &name, &reports.policy, b))
        .collect();
    if let Some(c) = &reports.cluster {
        out.push(manifest("ClusterReport", None, &name, &reports.policy, c));
    }
    out
}

/// The reports for `report`, judged under the isolation policy `policy`
/// whose existing tier namespaces are `tier_namespaces`. Findings already
/// in `previous` keep their timestamp; new ones get `now`.
pub fn build(
    policy: &str,
    tier_namespaces: &[String],
    report: &Report,
    previous: &Reports,
    now: SystemTime,
) -> Reports {
    let now = Timestamp::of(now);
    let mut by_ns: BTreeMap<&str, Vec<ReportResult>> = tier_namespaces
        .iter()
        .map(|n| (n.as_str(), Vec::new()))
        .collect();
    for b in &report.flows {
        by_ns
            .entry(b.namespace.as_str())
            .or_default()
            .push(flow_result(policy, b));
    }
    let namespaced = by_ns
        .into_iter()
        .map(|(ns, results)| {
            let results = match results.is_empty() {
                true => vec![pass(policy, "walls", "no forbidden flow crosses its walls")],
                false => results,
            };
            let before = previous.namespaced.get(ns);
            let scope = ObjectRef {
                api_version: "v1".into(),
                kind: "Namespace".into(),
                namespace: None,
                name: ns.to_string(),
            };
            (ns.to_string(), body(scope, results, before, now))
        })
        .collect();
    let mut problems: Vec<ReportResult> = report
        .namespaces
        .iter()
        .map(|p| problem_result(policy, p))
        .collect();
    if problems.is_empty() {
        problems.push(pass(
            policy,
            "namespace labels",
            "no namespace's protected labels lie or conflict",
        ));
    }
    let scope = ObjectRef {
        api_version: crate::model::isolationpolicy::API_VERSION.into(),
        kind: "IsolationPolicy".into(),
        namespace: None,
        name: policy.to_string(),
    };
    let cluster = Some(body(scope, problems, previous.cluster.as_ref(), now));
    Reports {
        policy: policy.to_string(),
        namespaced,
        cluster,
    }
}

/// A report of `results` (sorted, cut to [`MAX_RESULTS`], timestamps
/// carried over from `before`).
fn body(
    scope: ObjectRef,
    mut results: Vec<ReportResult>,
    before: Option<&ReportBody>,
    now: Timestamp,
) -> ReportBody {
    results.sort_by(|a, b| (&a.rule, &a.message).cmp(&(&b.rule, &b.message)));
    results.dedup();
    if results.len() > MAX_RESULTS {
        let cut = results.len() - (MAX_RESULTS - 1);
        let policy = results[0].policy.clone();
        results.truncate(MAX_RESULTS - 1);
        let mut more = fail(
            &policy,
            "more",
            format!("and {cut} more forbidden flows: `tierguard check --cluster` lists them all"),
        );
        more.properties.insert("omitted".into(), cut.to_string());
        results.push(more);
    }
    for r in &mut results {
        r.timestamp = before
            .and_then(|b| b.results.iter().find(|p| same_finding(p, r)))
            .map_or(now, |p| p.timestamp);
    }
    let mut summary = Summary::default();
    for r in &results {
        match r.result.as_str() {
            "pass" => summary.pass += 1,
            _ => summary.fail += 1,
        }
    }
    ReportBody {
        source: SOURCE.into(),
        scope: Some(scope),
        summary,
        results,
    }
}

/// The same finding, whenever it was found.
fn same_finding(a: &ReportResult, b: &ReportResult) -> bool {
    a.policy == b.policy
        && a.rule == b.rule
        && a.result == b.result
        && a.message == b.message
        && a.resources == b.resources
        && a.properties == b.properties
}

fn result(
    policy: &str,
    rule: &str,
    outcome: &str,
    severity: &str,
    message: String,
) -> ReportResult {
    ReportResult {
        source: SOURCE.into(),
        policy: policy.to_string(),
        rule: rule.to_string(),
        category: "network isolation".into(),
        severity: severity.into(),
        timestamp: Timestamp::default(),
        result: outcome.into(),
        scored: true,
        resources: Vec::new(),
        message,
        properties: BTreeMap::new(),
    }
}

fn pass(policy: &str, rule: &str, message: &str) -> ReportResult {
    result(policy, rule, "pass", "info", message.to_string())
}

fn fail(policy: &str, rule: &str, message: String) -> ReportResult {
    result(policy, rule, "fail", "high", message)
}

/// The objects that open a flow.
fn culprits(b: &Breach) -> Vec<ObjectRef> {
    let mut out: Vec<ObjectRef> = b
        .causes
        .iter()
        .map(|(c, _)| match c {
            Cause::Rule { rule, .. } => ObjectRef {
                api_version: "networking.k8s.io/v1".into(),
                kind: "NetworkPolicy".into(),
                namespace: Some(rule.namespace.clone()),
                name: rule.policy.clone(),
            },
            Cause::ClusterRule { rule, .. } => ObjectRef {
                api_version: format!(
                    "policy.networking.k8s.io/{}",
                    rule.api.versions().first().copied().unwrap_or("v1beta1")
                ),
                kind: rule.api.kind().into(),
                namespace: None,
                name: rule.policy.clone(),
            },
            Cause::Unisolated { .. } => ObjectRef {
                api_version: "v1".into(),
                kind: "Namespace".into(),
                namespace: None,
                name: b.namespace.clone(),
            },
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn flow_result(policy: &str, b: &Breach) -> ReportResult {
    let causes: Vec<String> = b
        .causes
        .iter()
        .map(|(c, ports)| format!("{} on {ports}", super::cause(c)))
        .collect();
    let mut message = format!(
        "forbidden flow {} is allowed: opened by {}",
        super::flow(&b.from, &b.to, &b.ports),
        causes.join("; ")
    );
    for n in &b.notes {
        message.push_str("; note: ");
        message.push_str(&super::note(n));
    }
    // 500 results stay well under the API server's object size limit.
    let message = super::clip(&message, MAX_MESSAGE);
    let mut r = fail(policy, &format!("{} {}", b.namespace, b.wall), message);
    r.resources = culprits(b);
    r.properties = BTreeMap::from([
        ("from".to_string(), super::metric_class(&b.from)),
        ("to".to_string(), super::metric_class(&b.to)),
        ("ports".to_string(), b.ports.to_string()),
        ("tier".to_string(), b.tier.clone()),
        ("wall".to_string(), b.wall.to_string()),
    ]);
    r
}

fn problem_result(policy: &str, p: &NamespaceProblem) -> ReportResult {
    let mut r = fail(policy, "namespace labels", super::namespace_problem(p));
    r.resources = vec![ObjectRef {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        namespace: None,
        name: p.namespace().to_string(),
    }];
    r
}

#[cfg(test)]
mod tests;
