//! Manifests (YAML or JSON, any kinds) → `World::from_text`; on success the
//! full isolation report (with the repository's three-tier policy, judged
//! `walls` and `effective`), a change check per policy, and concrete
//! verdicts between a few pods. Any panic is a bug.

#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use tierguard::engine::isolation::{Change, Checker, check_change};
use tierguard::engine::ports::Protocol;
use tierguard::engine::reach::{Endpoint, evaluate};
use tierguard::engine::tiers::IsolationPolicy;
use tierguard::model::isolationpolicy;
use tierguard::report::SUMMARY_MAX;
use tierguard::report::check::{self, Findings};
use tierguard::report::kubectl::Refusal;
use tierguard::world::World;

const THREE_TIER: &str = include_str!("../../policies/three-tier.yaml");

/// The three-tier policy as written (`judge: walls`) and judged `effective`.
fn policies() -> &'static [IsolationPolicy; 2] {
    static ISO: OnceLock<[IsolationPolicy; 2]> = OnceLock::new();
    ISO.get_or_init(|| {
        let walls = isolationpolicy::parse(THREE_TIER, "three-tier.yaml")
            .expect("policies/three-tier.yaml parses");
        let effective_text = THREE_TIER.replace("judge: walls", "judge: effective");
        let effective = isolationpolicy::parse(&effective_text, "three-tier-effective.yaml")
            .expect("the effective variant parses");
        [walls, effective]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(world) = World::from_text(text, "fuzz") else {
        return;
    };
    let state = &world.state;
    for iso in policies() {
        // Over budget is an answer (the webhook refuses it), not a crash.
        let Ok(report) = Checker::new(iso, state).report() else {
            continue;
        };
        // Every renderer of the report: check text and JSON, kubectl lines.
        let findings = Findings::of_report(iso, &report);
        let _ = (check::text(&findings), check::json(&findings));
        let refusal = Refusal {
            kind: "NetworkPolicy".into(),
            object: "fuzz/fuzz".into(),
            delete: false,
            problems: Vec::new(),
            breaches: report.flows.clone(),
            policy: iso.name.clone(),
        };
        assert!(refusal.lines().iter().all(|l| l.len() <= SUMMARY_MAX));
        // Re-applying (and deleting) a policy the state already holds.
        for p in state.policies().take(2) {
            let _ = check_change(iso, state, &Change::ApplyPolicy(Arc::clone(p)));
            let _ = check_change(
                iso,
                state,
                &Change::DeletePolicy {
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                },
            );
        }
    }

    let pods = &world.pods;
    let external = Endpoint::External(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)));
    let picks = [pods.first(), pods.get(1), pods.last()];
    for a in picks.iter().flatten() {
        let _ = evaluate(state, &Endpoint::Pod(a), &external, Protocol::Tcp, 80);
        let _ = evaluate(state, &external, &Endpoint::Pod(a), Protocol::Tcp, 80);
        for b in picks.iter().flatten() {
            let _ = evaluate(
                state,
                &Endpoint::Pod(a),
                &Endpoint::Pod(b),
                Protocol::Tcp,
                80,
            );
        }
    }
});
