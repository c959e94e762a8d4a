use super::*;
use std::path::PathBuf;
use std::time::Duration;

use crate::engine::isolation::Checker;
use crate::engine::tiers::IsolationPolicy;
use crate::world::World;

fn policy() -> IsolationPolicy {
    crate::model::isolationpolicy::load_file(std::path::Path::new("policies/three-tier.yaml"))
        .expect("the repository's policy")
}

fn world(extra: &[&str]) -> World {
    let mut paths: Vec<PathBuf> = ["namespaces", "baseline", "flows", "apps"]
        .iter()
        .map(|f| PathBuf::from(format!("examples/three-tier/{f}.yaml")))
        .collect();
    for e in extra {
        paths.push(PathBuf::from(format!(
            "examples/three-tier-violations/{e}/apply.yaml"
        )));
    }
    World::load(&paths).expect("the examples load")
}

fn reports_of(w: &World, previous: &Reports, at: u64) -> Reports {
    let iso = policy();
    let checker = Checker::new(&iso, &w.state);
    let tiers: Vec<String> = checker
        .tier_namespaces()
        .iter()
        .map(|n| n.name.clone())
        .collect();
    let report = checker.report().expect("within budget");
    build(
        &iso.name,
        &tiers,
        &report,
        previous,
        UNIX_EPOCH + Duration::from_secs(at),
    )
}

#[test]
fn a_clean_tutorial_gets_one_passing_report_per_tier_namespace() {
    let r = reports_of(&world(&[]), &Reports::default(), 100);
    assert_eq!(
        r.namespaced.keys().collect::<Vec<_>>(),
        ["backend", "database", "frontend"]
    );
    for (ns, b) in &r.namespaced {
        assert_eq!(
            b.summary,
            Summary {
                pass: 1,
                ..Summary::default()
            },
            "{ns}"
        );
        assert_eq!(b.results[0].result, "pass");
        assert_eq!(b.scope.as_ref().map(|s| s.name.as_str()), Some(ns.as_str()));
        assert_eq!(b.source, SOURCE);
    }
    let c = r.cluster.expect("a cluster report");
    assert_eq!(c.summary.pass, 1);
    assert_eq!(c.scope.map(|s| s.kind), Some("IsolationPolicy".to_string()));
}

#[test]
fn a_forbidden_flow_fails_in_the_breached_namespace_naming_the_policy_that_opens_it() {
    let r = reports_of(
        &world(&["01-database-open-to-frontend"]),
        &Reports::default(),
        100,
    );
    let db = &r.namespaced["database"];
    assert!(db.summary.fail >= 1, "{db:?}");
    assert_eq!(db.summary.pass, 0);
    assert_eq!(
        usize::try_from(db.summary.fail + db.summary.pass).ok(),
        Some(db.results.len())
    );
    let f = db
        .results
        .iter()
        .find(|x| x.properties.get("from").map(String::as_str) == Some("tier:frontend"))
        .expect("frontend -> database is reported");
    assert_eq!(f.result, "fail");
    assert_eq!(f.rule, "database ingress");
    assert_eq!(f.timestamp.seconds, 100);
    assert!(
        f.message.contains("tier frontend -> tier database"),
        "{}",
        f.message
    );
    assert!(
        f.resources
            .iter()
            .any(|o| o.kind == "NetworkPolicy" && o.namespace.as_deref() == Some("database")),
        "{:?}",
        f.resources
    );
    // The other namespaces are not blamed.
    assert_eq!(r.namespaced["backend"].summary.fail, 0);
}

#[test]
fn a_lying_name_label_fails_in_the_cluster_report() {
    let r = reports_of(
        &world(&["04-namespace-claims-name-backend"]),
        &Reports::default(),
        100,
    );
    let c = r.cluster.expect("a cluster report");
    assert_eq!(c.summary.fail, 1, "{c:?}");
    assert_eq!(c.results[0].resources[0].kind, "Namespace");
    assert!(
        c.results[0].message.contains("name="),
        "{}",
        c.results[0].message
    );
}

#[test]
fn findings_that_stay_keep_their_first_time_so_an_unchanged_state_builds_equal_reports() {
    let w = world(&["01-database-open-to-frontend"]);
    let first = reports_of(&w, &Reports::default(), 100);
    let again = reports_of(&w, &first, 500);
    assert_eq!(first, again);
    // A new finding is stamped now; the old keep theirs.
    let w2 = world(&[
        "01-database-open-to-frontend",
        "02-allow-all-ingress-in-backend",
    ]);
    let later = reports_of(&w2, &first, 900);
    assert!(
        later.namespaced["database"]
            .results
            .iter()
            .all(|x| x.timestamp.seconds == 100)
    );
    assert!(
        later.namespaced["backend"]
            .results
            .iter()
            .all(|x| x.timestamp.seconds == 900 && x.result == "fail")
    );
    // Fixed: the namespace passes again, stamped when it was found passing.
    let fixed = reports_of(&world(&[]), &later, 1000);
    assert_eq!(fixed.namespaced["database"].results[0].result, "pass");
    assert_eq!(
        fixed.namespaced["database"].results[0].timestamp.seconds,
        1000
    );
    assert_eq!(
        fixed.namespaced["frontend"].results[0].timestamp.seconds,
        100
    );
}

#[test]
fn a_report_holds_at_most_max_results_and_counts_the_rest() {
    let results: Vec<ReportResult> = (0..MAX_RESULTS + 7)
        .map(|i| fail("p", "ns ingress", format!("flow {i:04}")))
        .collect();
    let scope = ObjectRef {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        namespace: None,
        name: "ns".into(),
    };
    let b = body(scope, results, None, Timestamp::default());
    assert_eq!(b.results.len(), MAX_RESULTS);
    let last = b.results.last().expect("a last result");
    assert_eq!(last.properties["omitted"], "8");
    assert_eq!(b.summary.fail as usize, MAX_RESULTS);
}

#[test]
fn reports_serialize_to_the_openreports_field_names() {
    let r = reports_of(
        &world(&["01-database-open-to-frontend"]),
        &Reports::default(),
        100,
    );
    let v = serde_json::to_value(&r.namespaced["database"]).expect("serializes");
    let res = &v["results"][0];
    for k in [
        "policy",
        "rule",
        "result",
        "severity",
        "message",
        "timestamp",
        "source",
    ] {
        assert!(res.get(k).is_some(), "{k} in {res}");
    }
    assert!(res["timestamp"]["seconds"].is_i64());
    assert!(res["timestamp"]["nanos"].is_i64());
    assert_eq!(v["scope"]["kind"], "Namespace");
    // What is read back is what was written.
    let back: ReportBody = serde_json::from_value(v).expect("reads back");
    assert_eq!(back, r.namespaced["database"]);
}

/// A DNS subdomain, as the API server checks object names.
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// A label value, as the API server checks them.
fn valid_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

#[test]
fn names_and_labels_are_valid_for_any_policy_name() {
    assert_eq!(report_name("three-tier"), "tierguard-three-tier");
    assert_eq!(labels("three-tier")[POLICY_LABEL], "three-tier");
    let long_multibyte = format!("{}é{}", "a".repeat(242), "b".repeat(20));
    for policy in [
        "three-tier",
        "",
        "Three Tier",
        "team/payments",
        "ünïcödé",
        "ends-with-dash-",
        "ends.with.dot.",
        "a..b",
        &"a".repeat(300),
        &long_multibyte,
        &format!("{}-x", "a".repeat(241)),
        "-_.",
    ] {
        let n = report_name(policy);
        assert!(valid_name(&n), "{policy:?} -> name {n:?}");
        let v = &labels(policy)[POLICY_LABEL];
        assert!(valid_label_value(v), "{policy:?} -> label {v:?}");
    }
}
