//! `serve --policy-object`: the isolation policy as a cluster object.
//!
//! The CRD (`deploy/crd`, what `tierguard crd` prints) is installed into a
//! real kube-apiserver, the repository's policy is created as an
//! IsolationPolicy, and tierguard reads it from there. Then, with no
//! restart: a live edit is in force within seconds for the webhook and the
//! baseline controller; an invalid edit is refused with field paths; one
//! stored while the webhook is away leaves the last valid generation in
//! force and says so in `status`, which also counts the violations the
//! cluster allows now.

use serde_json::Value;

use super::harness::Cluster;
use super::{SERIAL, expect_ok, expect_refused, said, tutorial};

const POLICY: &str = "three-tier";

/// database ingress from frontend on TCP 5432: forbidden by the
/// repository's policy.
const FRONTEND_TO_DATABASE: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: frontend-to-database, namespace: database}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingress:
  - from: [{namespaceSelector: {matchLabels: {name: frontend}}}]
    ports: [{protocol: TCP, port: 5432}]
";

fn status(c: &Cluster) -> Value {
    let out = said(c.kubectl(&["get", "isolationpolicy", POLICY, "-o", "json"]));
    expect_ok(&out, "kubectl get isolationpolicy");
    let obj: Value = serde_json::from_str(&out.stdout).expect("json");
    obj["status"].clone()
}

fn condition(status: &Value, t: &str) -> (String, String, String) {
    let c = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == t)
        .cloned()
        .unwrap_or_default();
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    (s("status"), s("reason"), s("message"))
}

fn generation(c: &Cluster) -> i64 {
    let out = said(c.kubectl(&[
        "get",
        "isolationpolicy",
        POLICY,
        "-o",
        "jsonpath={.metadata.generation}",
    ]));
    out.stdout.trim().parse().expect("generation")
}

fn patch(c: &Cluster, json_patch: &str) -> super::harness::Said {
    said(c.kubectl(&[
        "patch",
        "isolationpolicy",
        POLICY,
        "--type",
        "json",
        "-p",
        json_patch,
    ]))
}

/// Sets `spec.mode` (the webhook, if registered, judging it); returns the
/// generation stored.
fn set_mode(c: &Cluster, mode: &str) -> i64 {
    let p = format!(r#"[{{"op":"replace","path":"/spec/mode","value":"{mode}"}}]"#);
    expect_ok(&patch(c, &p), &format!("set spec.mode to {mode}"));
    generation(c)
}

fn admitted(c: &Cluster, manifest: &str) -> bool {
    said(c.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], manifest)).ok
}

#[test]
fn isolation_policy_objects_are_validated_watched_and_reported() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut c) =
        Cluster::start_control_plane("isolationpolicy", &["--policy-object", POLICY], "")
    else {
        return;
    };
    c.guard_namespace();
    expect_ok(
        &said(c.kubectl(&["apply", "-k", "deploy/crd"])),
        "apply -k deploy/crd",
    );
    c.wait_established("tierguard.io", &["isolationpolicies"]);
    expect_ok(
        &said(c.kubectl(&["apply", "-f", "policies/three-tier.yaml"])),
        "kubectl apply the policy as an object",
    );
    c.start_webhook();
    c.register();

    // In force: the tutorial works exactly as with --policy FILE.
    c.eventually(20, "status Ready", || {
        condition(&status(&c), "Ready").0 == "True"
    });
    tutorial(&c);
    let s = status(&c);
    assert_eq!(condition(&s, "Accepted").0, "True", "{s}");
    assert_eq!(s["mode"], "enforce");
    assert_eq!(s["tierNames"], "frontend,backend,database");
    assert_eq!(s["observedGeneration"], s["activeGeneration"]);
    c.eventually(30, "status lists the tier namespaces", || {
        status(&c)["tiers"][2]["namespaces"] == serde_json::json!(["database"])
    });
    c.eventually(30, "status counts no violations", || {
        status(&c)["violations"] == 0
    });
    let table = said(c.kubectl(&["get", "isop"]));
    expect_ok(&table, "kubectl get isop");
    for column in [
        "MODE",
        "TIERS",
        "READY",
        "enforce",
        "frontend,backend,database",
        "True",
    ] {
        assert!(table.stdout.contains(column), "{column}:\n{}", table.stdout);
    }
    assert!(
        !admitted(&c, FRONTEND_TO_DATABASE),
        "frontend→database opened under the original policy"
    );

    // A live edit: a new flow and a new tier, no restart.
    let pid = c.webhook_pid();
    expect_ok(
        &said(c.kubectl(&["create", "namespace", "cache"])),
        "create namespace cache",
    );
    assert!(!c.has_policy("cache", "tierguard-default-deny"));
    expect_ok(
        &patch(
            &c,
            r#"[{"op":"add","path":"/spec/flows/-","value":{"from":"tier:frontend","to":"tier:database","ports":["TCP/5432"]}},
                {"op":"add","path":"/spec/tiers/-","value":{"name":"cache","namespaces":["cache"]}}]"#,
        ),
        "kubectl patch: allow frontend→database, add tier cache",
    );
    let edited = generation(&c);
    c.eventually(20, "the new flow in force in the webhook", || {
        admitted(&c, FRONTEND_TO_DATABASE)
    });
    c.eventually(30, "the controller gives the new tier its baseline", || {
        c.has_policy("cache", "tierguard-default-deny")
            && c.has_policy("cache", "tierguard-allow-dns")
    });
    c.eventually(20, "status follows the edit", || {
        let s = status(&c);
        s["activeGeneration"] == edited && s["tierNames"] == "frontend,backend,database,cache"
    });
    assert_eq!(c.webhook_pid(), pid, "tierguard restarted");

    // An invalid edit is refused by tierguard with field paths.
    let bad = patch(
        &c,
        r#"[{"op":"replace","path":"/spec/mode","value":"strict"},
            {"op":"add","path":"/spec/flows/-","value":{"from":"tier:frontend","to":"tier:nowhere"}}]"#,
    );
    expect_refused(
        &bad,
        "an invalid IsolationPolicy",
        "spec.mode: Unsupported value: \"strict\"",
    );
    assert!(bad.stderr.contains("spec.flows[4].to"), "{}", bad.stderr);
    assert_eq!(generation(&c), edited, "the refused edit was stored");

    // Stored anyway (the webhook away): the last valid generation stays in
    // force, and status says why.
    expect_ok(
        &said(c.kubectl(&["delete", "validatingwebhookconfiguration", "tierguard"])),
        "remove the validating webhooks",
    );
    let stored = set_mode(&c, "strict");
    c.eventually(20, "status reports the invalid generation", || {
        let s = status(&c);
        s["observedGeneration"] == stored
            && condition(&s, "Accepted").1 == "Invalid"
            && condition(&s, "Ready").1 == "LastValidInForce"
    });
    let s = status(&c);
    assert_eq!(s["activeGeneration"], edited, "{s}");
    assert!(
        condition(&s, "Accepted").2.contains("spec.mode"),
        "{}",
        condition(&s, "Accepted").2
    );
    c.register();
    assert!(
        admitted(&c, FRONTEND_TO_DATABASE),
        "the last valid generation is not in force"
    );
    let backend_from_frontend_6379 = FRONTEND_TO_DATABASE
        .replace("5432", "6379")
        .replace("frontend-to-database", "frontend-to-database-6379");
    assert!(
        !admitted(&c, &backend_from_frontend_6379),
        "enforcement stopped with an invalid generation stored"
    );

    // Fixed: in force again.
    let fixed = set_mode(&c, "audit");
    c.eventually(20, "the fixed generation in force", || {
        let s = status(&c);
        s["activeGeneration"] == fixed && condition(&s, "Ready").0 == "True"
    });
    c.eventually(20, "audit mode in force", || {
        admitted(&c, &backend_from_frontend_6379)
    });
    // Clean so far: the total is there, at 0 (alerts read it).
    c.eventually(30, "the total at 0 while the cluster is clean", || {
        violations_present(&c) == Some(0)
    });
    // Admitted for real (audit mode): status counts what it opens.
    expect_ok(
        &said(c.kubectl_stdin(&["apply", "-f", "-"], &backend_from_frontend_6379)),
        "a violating NetworkPolicy in audit mode",
    );
    c.eventually(30, "status counts the violation", || {
        status(&c)["violations"].as_i64().is_some_and(|n| n > 0)
    });
    c.eventually(30, "the gauge counts it too", || {
        super::harness::admin_get(c.admin_port, "/metrics").is_some_and(|(_, m)| {
            m.lines().any(|l| {
                l.starts_with("tierguard_violations_current{")
                    && l.contains("policy=\"three-tier\"")
                    && l.contains("from=\"tier:frontend\"")
                    && l.contains("to=\"tier:database\"")
                    && !l.ends_with(" 0")
            })
        })
    });
    c.eventually(30, "the total agrees with status", || {
        let n = status(&c)["violations"].as_i64();
        n.is_some_and(|n| n > 0) && violations_present(&c) == n
    });
    assert_eq!(c.webhook_pid(), pid, "tierguard restarted");
}

/// `tierguard_violations_present{policy="three-tier"}` as serve exports it.
fn violations_present(c: &Cluster) -> Option<i64> {
    let (_, m) = super::harness::admin_get(c.admin_port, "/metrics")?;
    m.lines()
        .find(|l| l.starts_with("tierguard_violations_present{policy=\"three-tier\"} "))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}
