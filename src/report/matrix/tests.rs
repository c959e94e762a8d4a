//! The matrix's regions, cells and formats on a small world.

use super::*;
use crate::world::World;

const WORLD: &str = "
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
spec: {containers: [{name: c, ports: [{containerPort: 80, name: http}]}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: y, labels: {app: b}}
spec: {containers: [{name: c, ports: [{containerPort: 5432, name: db}, {containerPort: 53, protocol: UDP}]}]}
status: {podIP: 10.0.0.2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-x, namespace: y}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: x}}}]
    ports: [{port: 5000, endPort: 6000}, {port: db}]
";

#[test]
fn regions_cut_ranges_at_container_ports() {
    let w = World::from_text(WORLD, "w").expect("loads");
    let got: Vec<String> = ports_that_matter(&w.state, &w.pods)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        got,
        [
            "TCP/80",
            "TCP/5000-5431",
            "TCP/5432",
            "TCP/5433-6000",
            "UDP/53"
        ]
    );
}

#[test]
fn every_region_is_uniform() {
    // Judging any port of a region gives the verdicts its first port gives.
    let w = World::from_text(WORLD, "w").expect("loads");
    let ends: Vec<Endpoint<'_>> = w
        .pods
        .iter()
        .map(Endpoint::Pod)
        .chain([Endpoint::Outside])
        .collect();
    for r in ports_that_matter(&w.state, &w.pods) {
        for port in [r.lo, r.hi, r.lo + (r.hi - r.lo) / 2] {
            for s in &ends {
                for d in &ends {
                    let a = evaluate_placed(&w.state, &w, s, d, r.proto, r.lo).decision;
                    let b = evaluate_placed(&w.state, &w, s, d, r.proto, port).decision;
                    assert_eq!(a, b, "{s} -> {d} {r} at {port}");
                }
            }
        }
    }
}

#[test]
fn cells_show_exceptions_and_decisions() {
    let w = World::from_text(WORLD, "w").expect("loads");
    let ends: Vec<Endpoint<'_>> = w.pods.iter().map(Endpoint::Pod).collect();
    let ports = vec![PortRegion {
        proto: Protocol::Tcp,
        lo: 5432,
        hi: 5432,
    }];
    let m = Matrix::compute(&w.state, &w, ends, ports);
    assert_eq!(cell(m.verdict(0, 0, 0)), "self");
    assert_eq!(cell(m.verdict(0, 0, 1)), "yes"); // x/a -> y/b db
    assert_eq!(cell(m.verdict(0, 1, 0)), "yes"); // x/a is not isolated
    assert_eq!(cell(m.verdict(0, 1, 1)), "self");
    assert_eq!(
        m.counts(),
        Counts {
            allowed: 4,
            ..Counts::default()
        }
    );
    assert!(m.csv(false).contains("x/a,y/b,TCP/5432,allowed,\n"));
}
