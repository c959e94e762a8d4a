//! deploy/monitoring: the PrometheusRule's alerts pass `promtool check
//! rules` and their unit tests (`alerts-test.yaml`, one firing case per
//! alert), and the Grafana dashboard is well formed. That every metric they
//! name is one `tierguard serve` exports is checked against a running serve
//! in `helm.rs`.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use super::harness::{self, REPO};
use super::{expect_ok, said};

fn promtool() -> Option<String> {
    harness::go_tool("promtool")
}

fn yaml(path: &str) -> Value {
    let text =
        std::fs::read_to_string(format!("{REPO}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The metric names the alerts' and the dashboard's queries use.
pub fn metric_names() -> BTreeSet<String> {
    let rule = yaml("deploy/monitoring/prometheusrule.yaml");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{REPO}/deploy/monitoring/grafana-dashboard.json"))
            .expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    let rules = rule["spec"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten());
    let targets = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten());
    let mut names = BTreeSet::new();
    for expr in rules.chain(targets).filter_map(|q| q["expr"].as_str()) {
        let mut rest = expr;
        while let Some(at) = rest.find("tierguard_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            names.insert(name);
        }
    }
    names
}

#[test]
fn alerts_pass_promtool_and_their_unit_tests() {
    let Some(promtool) = promtool() else { return };
    let rule = yaml("deploy/monitoring/prometheusrule.yaml");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["kind"], "PrometheusRule");
    let alerts: BTreeSet<String> = rule["spec"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["alert"].as_str().map(str::to_string))
        .collect();
    assert!(alerts.len() >= 10, "{alerts:?}");
    // Every alert has a case where it fires.
    let tests = yaml("deploy/monitoring/alerts-test.yaml");
    let firing: BTreeSet<String> = tests["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["alert_rule_test"].as_array().into_iter().flatten())
        .filter(|a| a["exp_alerts"].as_array().is_some_and(|e| !e.is_empty()))
        .filter_map(|a| a["alertname"].as_str().map(str::to_string))
        .collect();
    let untested: Vec<_> = alerts.difference(&firing).collect();
    assert!(
        untested.is_empty(),
        "alerts without a firing test: {untested:?}"
    );

    let dir = std::env::temp_dir().join(format!("tierguard-alerts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let rules = serde_yaml_ng::to_string(&rule["spec"]).expect("rules serialise");
    std::fs::write(dir.join("tierguard-rules.yaml"), rules).expect("rules");
    std::fs::copy(
        format!("{REPO}/deploy/monitoring/alerts-test.yaml"),
        dir.join("alerts-test.yaml"),
    )
    .expect("copy");
    let run = |args: &[&str]| {
        said(
            Command::new(&promtool)
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("promtool runs"),
        )
    };
    let check = run(&["check", "rules", "tierguard-rules.yaml"]);
    expect_ok(&check, "promtool check rules");
    assert!(
        check
            .stdout
            .contains(&format!("SUCCESS: {} rules found", alerts.len())),
        "{}",
        check.stdout
    );
    let test = run(&["test", "rules", "alerts-test.yaml"]);
    expect_ok(&test, "promtool test rules");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dashboard_is_well_formed() {
    let text = std::fs::read_to_string(format!("{REPO}/deploy/monitoring/grafana-dashboard.json"))
        .expect("dashboard");
    let d: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(d["uid"], "tierguard");
    let panels = d["panels"].as_array().expect("panels");
    let ids: BTreeSet<_> = panels
        .iter()
        .map(|p| p["id"].as_u64().expect("panel id"))
        .collect();
    assert_eq!(ids.len(), panels.len(), "panel ids repeat");
    for p in panels {
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            assert!(expr.contains("tierguard_"), "panel {}: {expr}", p["title"]);
            assert_eq!(
                expr.matches('(').count(),
                expr.matches(')').count(),
                "panel {}: {expr}",
                p["title"]
            );
        }
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {}",
            p["title"]
        );
    }
    // The panels the issue names: requests, refusals, latency, violations,
    // sync state, certificate expiry.
    let queried: String = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    for m in [
        "tierguard_admission_requests_total",
        "verdict=\"refused\"",
        "tierguard_admission_duration_seconds_bucket",
        "tierguard_violations_total",
        "tierguard_index_synced",
        "tierguard_certificate_expiry_timestamp_seconds",
        "tierguard_controller_leader",
    ] {
        assert!(queried.contains(m), "the dashboard does not show {m}");
    }
}
