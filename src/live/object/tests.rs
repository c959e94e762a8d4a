use super::*;
use crate::engine::state::Namespace;
use std::collections::BTreeMap;

fn object(spec: &str, generation: i64) -> IsolationPolicyObject {
    let mut obj: IsolationPolicyObject = serde_yaml_ng::from_str(&format!(
        "apiVersion: tierguard.io/v1alpha1\nkind: IsolationPolicy\nmetadata: {{name: p, generation: {generation}}}\nspec: {spec}\n"
    ))
    .expect("object");
    obj.metadata.generation = Some(generation);
    obj
}

fn condition<'a>(s: &'a IsolationPolicyStatus, t: &str) -> &'a Condition {
    s.conditions.iter().find(|c| c.type_ == t).expect(t)
}

#[test]
fn a_valid_generation_is_accepted_ready_and_in_force() {
    let obj = object("{mode: audit, tiers: [{name: a}, {name: b}]}", 3);
    let v = judge(&obj);
    assert!(matches!(v, Verdict::Valid(_)));
    let s = status(&obj, &v, Some(3), None, "T1".into());
    assert_eq!(s.observed_generation, Some(3));
    assert_eq!(s.active_generation, Some(3));
    assert_eq!(condition(&s, "Accepted").status, "True");
    assert_eq!(condition(&s, "Ready").status, "True");
    assert_eq!(condition(&s, "Ready").observed_generation, Some(3));
    assert_eq!(s.mode.as_deref(), Some("audit"));
    assert_eq!(s.tier_names.as_deref(), Some("a,b"));
}

#[test]
fn an_invalid_generation_names_its_fields_and_keeps_the_last_valid_one() {
    let good = object("{tiers: [{name: a}]}", 1);
    let first = status(&good, &judge(&good), Some(1), None, "T1".into());
    let mut bad = object(
        "{mode: strict, tiers: [{name: a}], flows: [{from: 'tier:a', to: 'tier:z'}]}",
        2,
    );
    bad.status = Some(first);
    let v = judge(&bad);
    let Verdict::Invalid(errors) = &v else {
        panic!("invalid expected, got {v:?}")
    };
    assert!(
        errors.iter().any(|e| e.starts_with("spec.mode:")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with("spec.flows[0].to:")),
        "{errors:?}"
    );
    let s = status(&bad, &v, Some(1), None, "T2".into());
    assert_eq!(s.observed_generation, Some(2));
    assert_eq!(s.active_generation, Some(1), "generation 1 stays in force");
    let accepted = condition(&s, "Accepted");
    assert_eq!(
        (accepted.status.as_str(), accepted.reason.as_str()),
        ("False", "Invalid")
    );
    assert!(
        accepted.message.contains("spec.mode"),
        "{}",
        accepted.message
    );
    assert_eq!(accepted.last_transition_time, "T2", "it changed now");
    let ready = condition(&s, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "LastValidInForce")
    );
    assert_eq!(
        s.tier_names.as_deref(),
        Some("a"),
        "the tiers in force stay"
    );
}

#[test]
fn a_condition_keeps_its_transition_time_while_its_status_stays() {
    let obj = object("{tiers: [{name: a}]}", 1);
    let mut again = object("{tiers: [{name: a}, {name: b}]}", 2);
    again.status = Some(status(&obj, &judge(&obj), Some(1), None, "T1".into()));
    let s = status(&again, &judge(&again), Some(2), None, "T2".into());
    assert_eq!(condition(&s, "Ready").last_transition_time, "T1");
    assert_eq!(condition(&s, "Ready").observed_generation, Some(2));
}

#[test]
fn no_valid_generation_yet_says_so() {
    let bad = object("{tiers: []}", 1);
    let s = status(&bad, &judge(&bad), None, None, "T".into());
    assert_eq!(condition(&s, "Ready").reason, "NoValidGeneration");
    assert_eq!(s.active_generation, None);
}

#[test]
fn tier_namespaces_follow_names_and_labels() {
    let obj = object(
        "{tiers: [{name: frontend, namespaces: [web]}, {name: database}]}",
        1,
    );
    let Verdict::Valid(p) = judge(&obj) else {
        panic!("valid")
    };
    let mut state = State::default();
    let ns = |name: &str, labels: &[(&str, &str)]| {
        Namespace::new(
            name,
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        )
    };
    state.apply_namespace(ns("web", &[]));
    state.apply_namespace(ns("pg", &[("tierguard.io/tier", "database")]));
    state.apply_namespace(ns("other", &[]));
    let tiers = tier_namespaces(&p, &state);
    assert_eq!(tiers[0].namespaces, vec!["web".to_string()]);
    assert_eq!(tiers[1].namespaces, vec!["pg".to_string()]);
}

#[test]
fn a_status_written_back_is_written_once() {
    // The status computed from an object carrying it is the same status,
    // so a replica does not rewrite what it wrote (or what another wrote).
    for (spec, active) in [("{tiers: [{name: a}]}", Some(1)), ("{tiers: []}", None)] {
        let mut obj = object(spec, 1);
        let tiers = Some(vec![TierStatus {
            name: "a".into(),
            namespaces: vec!["x".into()],
        }]);
        let first = status(&obj, &judge(&obj), active, tiers.clone(), "T1".into());
        // Through JSON, as the API server stores and returns it.
        let stored: IsolationPolicyStatus =
            serde_json::from_value(serde_json::to_value(&first).expect("json")).expect("back");
        obj.status = Some(stored);
        let again = status(&obj, &judge(&obj), active, tiers, "T2".into());
        assert_eq!(obj.status.as_ref(), Some(&again), "{spec}");
    }
}

#[test]
fn a_replica_with_nothing_in_force_keeps_the_recorded_active_generation() {
    let good = object("{tiers: [{name: a}]}", 1);
    let mut bad = object("{tiers: []}", 2);
    bad.status = Some(status(&good, &judge(&good), Some(1), None, "T1".into()));
    let running = status(&bad, &judge(&bad), Some(1), None, "T2".into());
    let waiting = status(&bad, &judge(&bad), None, None, "T2".into());
    assert_eq!(waiting, running, "two replicas would overwrite each other");
    assert_eq!(condition(&waiting, "Ready").reason, "LastValidInForce");
}
