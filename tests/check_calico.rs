//! `tierguard check` over Calico NetworkPolicy and GlobalNetworkPolicy
//! manifests: one that may apply to tier pods with a rule that can let
//! traffic through is reported as one tierguard cannot judge (exit 1), not
//! skipped; the ones that cannot open a forbidden flow leave the report
//! clean; bad ones are errors naming the file, object and field.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

use common::{stderr, stdout, tierguard};

fn text(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// A fresh directory holding the tutorial as tierguard leaves it plus
/// `extra` as `calico.yaml`.
fn world(name: &str, extra: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tierguard-check-calico-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    for f in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/three-tier"))
        .expect("example")
    {
        let f = f.expect("entry").path();
        std::fs::copy(&f, dir.join(f.file_name().expect("name"))).expect("copy");
    }
    std::fs::write(dir.join("calico.yaml"), extra).expect("write");
    dir
}

fn check(dir: &Path, extra: &[&str]) -> Output {
    let d = dir.display().to_string();
    let mut args = vec!["check", "-f", &d];
    args.extend_from_slice(extra);
    tierguard(&args)
}

const OPEN_DB: &str = "\
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: open-db}
spec:
  order: 10
  namespaceSelector: projectcalico.org/name == 'database'
  ingress:
  - action: Deny
    source: {namespaceSelector: name == 'backend'}
  - action: Allow
    source: {namespaceSelector: name == 'frontend'}
";

#[test]
fn a_global_policy_that_may_open_a_tier_is_reported_not_skipped() {
    let dir = world("gnp", OPEN_DB);
    let o = check(&dir, &[]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("1 Calico policy(ies) tierguard cannot judge"),
        "{out}"
    );
    assert!(
        out.contains(
            "cannot judge: Calico GlobalNetworkPolicy open-db (tier default, order 10) may apply \
             to pods of tier namespaces database with rules that can let traffic through \
             (spec.ingress[1] Allow)"
        ),
        "only database is selected, only the Allow rule named: {out}"
    );
    assert!(!out.contains("skipped"), "{out}");

    let o = check(&dir, &["-o", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["clean"], false);
    assert_eq!(
        v["unjudged"][0]["namespaces"],
        serde_json::json!(["database"])
    );
    assert_eq!(
        v["unjudged"][0]["rules"],
        serde_json::json!(["spec.ingress[1] Allow"])
    );
    assert!(
        v["unjudged"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("docs/calico.md")),
        "{v}"
    );
}

#[test]
fn calico_policies_that_cannot_open_a_forbidden_flow_leave_the_report_clean() {
    // Outside the tiers, deny-only, log-only: nothing to judge.
    for (name, policy) in [
        (
            "outside",
            "apiVersion: crd.projectcalico.org/v1\nkind: GlobalNetworkPolicy\nmetadata: {name: mon}\nspec:\n  namespaceSelector: projectcalico.org/name == 'monitoring'\n  ingress: [{action: Allow}]\n",
        ),
        (
            "deny",
            "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: d, namespace: database}\nspec:\n  selector: all()\n  ingress: [{action: Deny}, {action: Log}]\n",
        ),
        (
            "elsewhere",
            "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: a, namespace: tools}\nspec:\n  selector: all()\n  ingress: [{action: Allow}]\n",
        ),
    ] {
        let dir = world(name, policy);
        let o = check(&dir, &[]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o));
        assert!(
            text(&o).contains("ok: no forbidden flow"),
            "{name}: {}",
            text(&o)
        );
    }
}

#[test]
fn a_namespaced_calico_policy_in_a_tier_namespace_is_reported_with_its_namespace() {
    let dir = world(
        "np",
        "apiVersion: crd.projectcalico.org/v1\nkind: NetworkPolicy\nmetadata: {name: allow-all, namespace: database}\nspec:\n  tier: platform\n  order: 5\n  selector: all()\n  egress: [{action: Pass}]\n",
    );
    let o = check(&dir, &[]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(
            "cannot judge: Calico NetworkPolicy database/allow-all (tier platform, order 5) may \
             apply to pods of tier namespaces database with rules that can let traffic through \
             (spec.egress[0] Pass)"
        ),
        "{out}"
    );
}

#[test]
fn relative_to_a_base_and_without_only_what_the_change_adds_is_reported() {
    let dir = world("base", OPEN_DB);
    let d = dir.display().to_string();
    // The base already has it: the change adds nothing.
    let o = check(&dir, &["--base", &d]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The base lacks it: the change adds it.
    let base = world("base-without", "");
    let b = base.display().to_string();
    let o = check(&dir, &["--base", &b]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("open-db"), "{}", text(&o));
    // "What if I delete it?": clean.
    let gone = dir.join("calico.yaml").display().to_string();
    let o = check(&dir, &["--without", &gone]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn a_calico_policy_tierguard_cannot_read_is_an_error_naming_file_object_and_field() {
    let dir = world(
        "bad",
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: broken}\nspec:\n  selector: app == 'x' &&\n  ingress: [{action: Allow}]\n",
    );
    let o = check(&dir, &[]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("calico.yaml"), "names the file: {out}");
    assert!(
        out.contains("GlobalNetworkPolicy broken"),
        "names the object: {out}"
    );
    assert!(out.contains("spec.selector"), "names the field: {out}");
}

#[test]
fn query_and_connectivity_warn_that_calico_rules_are_left_out() {
    let dir = world("query", OPEN_DB);
    let d = dir.display().to_string();
    let o = tierguard(&[
        "query", "-f", &d, "--from", "frontend", "--to", "database", "--port", "tcp/5432",
    ]);
    let err = stderr(&o);
    assert!(
        err.contains(
            "warning: query does not judge Calico policies' rules yet (docs/calico.md): its \
             verdicts leave out 1 Calico policy (Calico GlobalNetworkPolicy open-db)"
        ),
        "{}",
        text(&o)
    );
    let o = tierguard(&["connectivity", "-f", &d]);
    assert!(
        stderr(&o).contains("warning: connectivity does not judge Calico"),
        "{}",
        text(&o)
    );
    // Without Calico policies, no such warning.
    let plain = world("query-plain", "");
    let p = plain.display().to_string();
    let o = tierguard(&[
        "query", "-f", &p, "--from", "frontend", "--to", "database", "--port", "tcp/5432",
    ]);
    assert!(!stderr(&o).contains("Calico"), "{}", text(&o));
}
