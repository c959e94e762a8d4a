//! Isolation policy text → `model::isolationpolicy::parse`; on success, the policy
//! judges the three-tier example world (so a policy the parser accepts must
//! not crash the checker either). Any panic is a bug.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tierguard::engine::isolation::Checker;
use tierguard::model::isolationpolicy;
use tierguard::world::World;

const EXAMPLE: [&str; 4] = [
    include_str!("../../examples/three-tier/namespaces.yaml"),
    include_str!("../../examples/three-tier/baseline.yaml"),
    include_str!("../../examples/three-tier/flows.yaml"),
    include_str!("../../examples/three-tier/apps.yaml"),
];

fn example_world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        World::from_text(&EXAMPLE.join("\n---\n"), "examples/three-tier")
            .expect("examples/three-tier loads")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(iso) = isolationpolicy::parse(text, "fuzz") else {
        return;
    };
    let Ok(report) = Checker::new(&iso, &example_world().state).report() else {
        return;
    };
    let _ = tierguard::report::check::text(&tierguard::report::check::Findings::of_report(
        &iso, &report,
    ));
});
