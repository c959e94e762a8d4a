//! tierguard on a real kube-apiserver, driven by kubectl as a user would.
//! See `harness.rs` for what runs; each test owns its control plane.

mod drain;
mod haproxy;
mod harness;
mod helm;
mod isolationpolicy;
mod load;
mod monitoring;
mod reports;
mod resilience;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use harness::{Cluster, Said, Scenarios};

/// One control plane at a time: the machine has two cores.
static SERIAL: Mutex<()> = Mutex::new(());

const VIOLATIONS: &str = "examples/three-tier-violations";

fn said(o: std::process::Output) -> Said {
    o.into()
}

fn expect_ok(s: &Said, what: &str) {
    assert!(s.ok, "{what} failed:\n{}{}", s.stdout, s.stderr);
}

fn expect_refused(s: &Said, what: &str, fragment: &str) {
    assert!(!s.ok, "{what} was admitted:\n{}", s.stdout);
    assert!(
        s.stderr.contains(fragment),
        "{what}: kubectl did not show {fragment:?}:\n{}",
        s.stderr
    );
}

fn label(c: &Cluster, ns: &str, key: &str) -> String {
    let out = said(c.kubectl(&[
        "get",
        "namespace",
        ns,
        "-o",
        &format!("jsonpath={{.metadata.labels.{}}}", key.replace('.', "\\.")),
    ]));
    out.stdout
}

/// The tutorial as a new user runs it, with tierguard registered: no manual
/// labelling, no hand-written default-deny or DNS policy.
fn tutorial(c: &Cluster) {
    for ns in ["frontend", "backend", "database"] {
        expect_ok(
            &said(c.kubectl(&["create", "namespace", ns])),
            "kubectl create namespace",
        );
        assert_eq!(label(c, ns, "name"), ns, "namespace {ns} got no name label");
    }
    for ns in ["frontend", "backend", "database"] {
        for p in ["tierguard-default-deny", "tierguard-allow-dns"] {
            c.eventually(30, &format!("{ns}/{p} injected"), || c.has_policy(ns, p));
        }
    }
    for f in [
        "examples/three-tier/apps.yaml",
        "examples/three-tier/flows.yaml",
    ] {
        expect_ok(&said(c.kubectl(&["apply", "-f", f])), f);
    }
}

#[test]
fn enforce_mode_end_to_end() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut c) = Cluster::start("enforce", &[], "") else {
        return;
    };
    let mut s = Scenarios::new();

    s.run(
        "a. the tutorial: namespaces get name=<ns> and their baseline; the tutorial's policies are admitted",
        || tutorial(&c),
    );

    s.run("baseline drift: one deleted by the guard's account comes back; a relabel into a tier injects", || {
        let guard = "system:serviceaccount:tierguard:tierguard";
        expect_ok(
            &said(c.kubectl(&["--as", guard, "delete", "networkpolicy", "tierguard-allow-dns", "-n", "frontend"])),
            "the guard deletes its own policy",
        );
        c.eventually(30, "frontend/tierguard-allow-dns restored", || c.has_policy("frontend", "tierguard-allow-dns"));
        expect_ok(&said(c.kubectl(&["create", "namespace", "payments"])), "create payments");
        expect_ok(
            &said(c.kubectl(&["label", "namespace", "payments", "tierguard.io/tier=backend"])),
            "admin moves payments into backend",
        );
        c.eventually(30, "payments baseline injected", || c.has_policy("payments", "tierguard-default-deny"));
    });

    s.run("b. each mistake is refused and kubectl shows the opened flow", || {
        let cases = [
            ("01-database-open-to-frontend", "apply", "tier frontend -> tier database on TCP/5432 is forbidden, but database's ingress allows it via database/allow-frontend-to-database ingress[0]"),
            ("02-allow-all-ingress-in-backend", "apply", "outside the cluster -> tier backend on all ports is forbidden"),
            ("03-delete-database-default-deny", "delete", "deleting database/tierguard-default-deny is refused: it is part of the baseline"),
            ("04-namespace-claims-name-backend", "apply", "label name=backend must equal the namespace's name"),
            ("05-database-open-to-internet", "apply", "outside the cluster -> tier database on TCP/5432 is forbidden"),
            ("06-frontend-to-database-pair", "apply", "tier frontend -> tier database on TCP/5432 is forbidden"),
            ("07-selector-on-unprotected-label", "apply", "any namespace outside the tiers -> tier database on TCP/5432 is forbidden"),
            ("08-named-port-opens-every-port", "apply", "tier frontend -> tier backend on TCP/1-79, TCP/81-65535 is forbidden"),
        ];
        for (case, verb, fragment) in cases {
            let file = format!("{VIOLATIONS}/{case}/{}.yaml", if verb == "apply" { "apply" } else { "delete" });
            expect_refused(&said(c.kubectl(&[verb, "-f", &file])), case, fragment);
        }
        // Nothing was created.
        let pols = said(c.kubectl(&["get", "networkpolicy", "-A", "-o", "name"]));
        assert!(!pols.stdout.contains("allow-frontend-to-database"), "{}", pols.stdout);
        let nss = said(c.kubectl(&["get", "namespace", "-o", "name"]));
        assert!(!nss.stdout.contains("namespace/reporting"), "{}", nss.stdout);
    });

    s.run(
        "c. spoofed name labels and tier joins without permission are refused",
        || {
            expect_ok(
                &said(c.kubectl(&["create", "namespace", "reports"])),
                "create reports",
            );
            expect_refused(
                &said(c.kubectl(&[
                    "label",
                    "namespace",
                    "reports",
                    "name=backend",
                    "--overwrite",
                ])),
                "relabel name=backend",
                "label name=backend must equal the namespace's name",
            );
            // alice may edit namespaces (RBAC) but is not in spec.membership.
            expect_ok(
                &said(c.kubectl(&[
                    "create",
                    "clusterrolebinding",
                    "alice-admin",
                    "--clusterrole=cluster-admin",
                    "--user=alice",
                ])),
                "bind alice",
            );
            expect_refused(
                &said(c.kubectl(&[
                    "--as",
                    "alice",
                    "label",
                    "namespace",
                    "reports",
                    "tierguard.io/tier=database",
                ])),
                "alice joins a tier",
                "changes tier membership",
            );
            // A member of system:masters (the kubeconfig's admin) may.
            expect_ok(
                &said(c.kubectl(&[
                    "label",
                    "namespace",
                    "reports",
                    "tierguard.io/tier=database",
                ])),
                "admin joins a tier",
            );
        },
    );

    s.run("e. server-side dry-run is judged and creates nothing", || {
        expect_refused(
            &said(c.kubectl(&["apply", "--dry-run=server", "-f", &format!("{VIOLATIONS}/01-database-open-to-frontend/apply.yaml")])),
            "dry-run violation",
            "tier frontend -> tier database on TCP/5432 is forbidden",
        );
        let ok = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: metrics-from-backend, namespace: database}\nspec:\n  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: backend}}}], ports: [{port: 5432}]}]\n";
        let out = said(c.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], ok));
        expect_ok(&out, "dry-run of an allowed policy");
        assert!(out.stdout.contains("(server dry run)"), "{}", out.stdout);
        let get = said(c.kubectl(&["get", "networkpolicy", "metrics-from-backend", "-n", "database"]));
        assert!(!get.ok && get.stderr.contains("NotFound"), "dry-run created the policy: {}", get.stdout);
    });

    s.run("i. cluster policies: CRDs installed while tierguard runs are watched; an Admin-tier Accept opening frontend->database is refused with its rule, the same rule in the Baseline tier (database is isolated) admitted, an AdminNetworkPolicy judged too", || {
        c.install_netpol_crds();
        let file = format!("{VIOLATIONS}/09-admin-accept-frontend-to-database/apply.yaml");
        // Discovery finds the kinds within about a second; until their lists
        // are in, tierguard answers "retry", so nothing is admitted unjudged.
        c.eventually(60, "the Admin-tier Accept is refused with its tier, priority and rule", || {
            let o = said(c.kubectl(&["apply", "-f", &file]));
            assert!(!o.ok, "the Admin-tier Accept was admitted: {}", o.stdout);
            o.stderr.contains("tier frontend -> tier database on TCP/5432 is forbidden, but database's ingress allows it via ClusterNetworkPolicy frontend-reads-database (Admin tier, priority 10) ingress[0] \"from-frontend\" Accept")
        });
        let get = said(c.kubectl(&["get", "clusternetworkpolicy", "frontend-reads-database"]));
        assert!(!get.ok && get.stderr.contains("NotFound"), "created: {}", get.stdout);
        let text = std::fs::read_to_string(format!("{}/{file}", harness::REPO)).expect("example");
        let late = text.replace("tier: Admin", "tier: Baseline").replace("name: frontend-reads-database", "name: frontend-reads-database-late");
        expect_ok(&said(c.kubectl_stdin(&["apply", "-f", "-"], &late)), "a Baseline-tier Accept into isolated pods");
        let anp = "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: frontend-reads-database}\nspec:\n  priority: 20\n  subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: database}}}\n  ingress:\n  - {name: from-frontend, action: Allow, from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: frontend}}}], ports: [{portNumber: {protocol: TCP, port: 5432}}]}\n";
        expect_refused(&said(c.kubectl_stdin(&["apply", "-f", "-"], anp)), "an AdminNetworkPolicy Allow", "via AdminNetworkPolicy frontend-reads-database (Admin tier, priority 20) ingress[0] \"from-frontend\" Allow");
        // Deleting it opens nothing.
        expect_ok(&said(c.kubectl(&["delete", "clusternetworkpolicy", "frontend-reads-database-late"])), "deleting the Baseline-tier policy");
    });

    s.run("audit annotations record refusals", || {
        let log = c.audit_log();
        assert!(
            log.contains("networkpolicies.validate.tierguard.io/verdict\":\"refused\""),
            "no refusal annotation in the audit log"
        );
    });

    s.run("f. tierguard stopped: policies fail closed, namespaces still create, nothing hangs; restarted: works again", || {
        c.stop_webhook();
        let started = Instant::now();
        let np = said(c.kubectl(&["apply", "-f", &format!("{VIOLATIONS}/02-allow-all-ingress-in-backend/apply.yaml")]));
        assert!(!np.ok, "a policy was admitted while tierguard was down");
        assert!(np.stderr.contains("failed calling webhook"), "{}", np.stderr);
        expect_ok(&said(c.kubectl(&["create", "namespace", "while-down"])), "namespace while tierguard is down");
        assert!(started.elapsed() < Duration::from_secs(30), "requests hung: {:?}", started.elapsed());
        c.start_webhook();
        expect_ok(&said(c.kubectl(&["create", "namespace", "after-restart"])), "namespace after restart");
        assert_eq!(label(&c, "after-restart", "name"), "after-restart");
        expect_refused(
            &said(c.kubectl(&["apply", "-f", &format!("{VIOLATIONS}/02-allow-all-ingress-in-backend/apply.yaml")])),
            "violation after restart",
            "is forbidden",
        );
    });

    s.run("h. what slipped past while tierguard was down is found: a lying name label is reset, an unjudged tier join undone", || {
        // Joins judged through the webhook carry their stamp.
        assert_eq!(annotation(&c, "payments", "tierguard.io/admitted-tier"), "backend");
        assert_eq!(annotation(&c, "reports", "tierguard.io/admitted-tier"), "database");
        c.stop_webhook();
        expect_ok(&said(c.kubectl(&["create", "namespace", "slipped"])), "create slipped while down");
        expect_ok(
            &said(c.kubectl(&["label", "namespace", "slipped", "tierguard.io/tier=backend", "name=backend", "--overwrite"])),
            "join a tier and lie about the name while down",
        );
        c.add_serve_args(&["--undo-unjudged-joins"]);
        c.start_webhook();
        // The killed replica's Lease runs out first (15 s).
        c.eventually(90, "slipped's name label reset", || label(&c, "slipped", "name") == "slipped");
        c.eventually(30, "slipped's tier label removed", || label(&c, "slipped", "tierguard.io/tier").is_empty());
        // Judged joins are left alone.
        assert_eq!(label(&c, "payments", "tierguard.io/tier"), "backend");
        assert_eq!(label(&c, "reports", "tierguard.io/tier"), "database");
        let log = c.webhook_log();
        assert!(log.contains("tier join nobody judged"), "no warning for the unjudged join");
        assert!(log.contains("unjudged tier join undone"), "no log line for the undo");
    });

    s.run("j. baseline.via: clusterNetworkPolicy: tierguard creates the Admin-tier baseline, keeps it, admits a NetworkPolicy it shadows, and refuses to let it go", || {
        c.stop_webhook();
        c.set_policy("examples/three-tier-cluster-baseline/policy.yaml");
        c.start_webhook();
        let name = "tierguard-baseline-database-by-name";
        let exists = |n: &str| c.kubectl(&["get", "clusternetworkpolicy", n]).status.success();
        // The killed replica's Lease runs out first (15 s).
        c.eventually(90, "the baseline ClusterNetworkPolicies exist", || {
            exists(name) && exists("tierguard-baseline-frontend-by-name-hosts") && exists("tierguard-baseline-ns-kube-system")
        });
        let managed = said(c.kubectl(&["get", "clusternetworkpolicy", name, "-o", "jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by} {.spec.tier} {.spec.priority}"]));
        assert_eq!(managed.stdout, "tierguard Admin 1", "{}", managed.stderr);
        // Every pod of every namespace into database, and database out to
        // every pod: shadowed by the baseline's Deny, so it opens nothing.
        let open = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: open-to-pods, namespace: database}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n  ingress: [{from: [{namespaceSelector: {}}]}]\n  egress: [{to: [{namespaceSelector: {}}]}]\n";
        c.eventually(30, "a NetworkPolicy the baseline shadows is admitted", || c.kubectl_stdin(&["apply", "-f", "-"], open).status.success());
        // Hosts outside the cluster are still NetworkPolicy's to isolate.
        expect_refused(
            &said(c.kubectl(&["apply", "-f", &format!("{VIOLATIONS}/05-database-open-to-internet/apply.yaml")])),
            "database open to the internet",
            "outside the cluster -> tier database on TCP/5432 is forbidden",
        );
        expect_refused(
            &said(c.kubectl(&["delete", "clusternetworkpolicy", name])),
            "deleting the baseline",
            "is tierguard's baseline",
        );
        // Even the guard's account cannot delete it now: the NetworkPolicy it
        // shadows would open database to frontend.
        expect_refused(
            &said(c.kubectl(&["--as", "system:serviceaccount:tierguard:tierguard", "delete", "clusternetworkpolicy", name])),
            "the guard deleting the baseline under a shadowed policy",
            "tier frontend -> tier database",
        );
        // An edit made past the webhook's judgement is put back: relabelled
        // by the guard's account (allowed, the spec is unchanged), then the
        // controller restores the managed-by label.
        expect_ok(
            &said(c.kubectl(&["--as", "system:serviceaccount:tierguard:tierguard", "label", "clusternetworkpolicy", name, "app.kubernetes.io/managed-by-"])),
            "the guard's account drops the label",
        );
        c.eventually(30, "the controller restores it", || {
            said(c.kubectl(&["get", "clusternetworkpolicy", name, "-o", "jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by}"])).stdout == "tierguard"
        });
        expect_ok(&said(c.kubectl(&["delete", "networkpolicy", "open-to-pods", "-n", "database"])), "deleting the shadowed policy");
        c.stop_webhook();
        c.set_policy("policies/three-tier.yaml");
        c.start_webhook();
    });

    s.run("k. Calico policies: an allow-all GlobalNetworkPolicy and a Calico NetworkPolicy allowing into database are refused (not judged yet), one confined to a namespace outside the tiers and a Deny are admitted", || {
        c.install_calico_crds();
        let gnp = |name: &str, extra: &str| format!("apiVersion: crd.projectcalico.org/v1\nkind: GlobalNetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n  order: 10\n  selector: all(){extra}\n  ingress: [{{action: Allow}}]\n  egress: [{{action: Allow}}]\n");
        // The API server may take a moment to route the new kinds through
        // the webhook's rules; one admitted meanwhile is deleted and retried.
        c.eventually(30, "the allow-all GlobalNetworkPolicy is refused", || {
            let o = said(c.kubectl_stdin(&["apply", "-f", "-"], &gnp("allow-all", "")));
            if o.ok {
                let _ = c.kubectl(&["delete", "globalnetworkpolicies.crd.projectcalico.org", "allow-all"]);
                return false;
            }
            o.stderr.contains("Calico GlobalNetworkPolicy allow-all (tier default, order 10) may apply to pods of tier namespaces")
                && o.stderr.contains("spec.ingress[0] Allow, spec.egress[0] Allow")
        });
        expect_ok(
            &said(c.kubectl_stdin(&["apply", "-f", "-"], &gnp("monitoring-only", "\n  namespaceSelector: projectcalico.org/name == 'monitoring'"))),
            "a GlobalNetworkPolicy confined to a namespace outside the tiers",
        );
        let np = |action: &str| format!("apiVersion: crd.projectcalico.org/v1\nkind: NetworkPolicy\nmetadata: {{name: from-frontend, namespace: database}}\nspec:\n  selector: all()\n  ingress: [{{action: {action}, source: {{namespaceSelector: \"projectcalico.org/name == 'frontend'\"}}}}]\n");
        expect_refused(
            &said(c.kubectl_stdin(&["apply", "-f", "-"], &np("Allow"))),
            "a Calico NetworkPolicy allowing frontend into database",
            "Calico NetworkPolicy database/from-frontend (tier default) may apply to pods of tier namespaces database",
        );
        expect_ok(&said(c.kubectl_stdin(&["apply", "-f", "-"], &np("Deny"))), "a Calico Deny in database");
    });

    s.finish(&c);
}

fn annotation(c: &Cluster, ns: &str, key: &str) -> String {
    said(c.kubectl(&[
        "get",
        "namespace",
        ns,
        "-o",
        &format!(
            "jsonpath={{.metadata.annotations.{}}}",
            key.replace('.', "\\.")
        ),
    ]))
    .stdout
}

#[test]
fn pods_wait_for_the_baseline() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Without the controller, the baseline only appears when applied by hand:
    // the window is observable.
    let Some(c) = Cluster::start("podguard", &["--controller=false"], "") else {
        return;
    };
    let mut s = Scenarios::new();
    s.run("g. a pod in a brand-new tier namespace is refused until its baseline exists, then admitted", || {
        expect_ok(&said(c.kubectl(&["create", "namespace", "database"])), "create database");
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: db, namespace: database}\nspec: {containers: [{name: c, image: postgres:16}]}\n";
        expect_refused(
            &said(c.kubectl_stdin(&["apply", "-f", "-"], pod)),
            "pod before the baseline",
            "whose baseline (tierguard-default-deny, tierguard-allow-dns) is not in place yet",
        );
        let baseline = said(std::process::Command::new(env!("CARGO_BIN_EXE_tierguard")).args(["baseline", "database"]).current_dir(harness::REPO).output().expect("baseline"));
        expect_ok(&said(c.kubectl_stdin(&["apply", "-f", "-"], &baseline.stdout)), "apply the baseline");
        c.eventually(30, "the pod is admitted once the baseline is indexed", || c.kubectl_stdin(&["apply", "-f", "-"], pod).status.success());
        // Outside the tiers pods never wait.
        expect_ok(&said(c.kubectl(&["create", "namespace", "playground"])), "create playground");
        expect_ok(&said(c.kubectl_stdin(&["apply", "-f", "-"], &pod.replace("database", "playground"))), "pod outside the tiers");
    });
    s.run("deploy/: the kustomizations render, and base + `tierguard certs` apply to a real API server", || {
        let rendered = said(c.kubectl(&["kustomize", "deploy/overlays/cert-manager"]));
        expect_ok(&rendered, "kubectl kustomize deploy/overlays/cert-manager");
        assert!(rendered.stdout.contains("cert-manager.io/inject-ca-from: tierguard/tierguard-serving"));
        let out = c.dir.join("certs");
        let certs = said(
            std::process::Command::new(env!("CARGO_BIN_EXE_tierguard"))
                .args(["certs", "--out"])
                .arg(&out)
                .current_dir(harness::REPO)
                .output()
                .expect("tierguard certs"),
        );
        expect_ok(&certs, "tierguard certs");
        // Applied last: the webhook configurations now point at the in-cluster Service.
        let applied = said(c.kubectl(&["apply", "-k", &out.display().to_string()]));
        expect_ok(&applied, "kubectl apply -k");
        for obj in [
            "deployment/tierguard", "service/tierguard", "poddisruptionbudget/tierguard", "serviceaccount/tierguard",
            "secret/tierguard-tls", "role/tierguard-leader-election",
        ] {
            expect_ok(&said(c.kubectl(&["get", "-n", "tierguard", obj])), obj);
        }
        let vwc = said(c.kubectl(&["get", "validatingwebhookconfiguration", "tierguard", "-o", "jsonpath={.webhooks[0].clientConfig.service.name}"]));
        assert_eq!(vwc.stdout, "tierguard");
        let cm = said(c.kubectl(&["get", "configmap", "-n", "tierguard", "-o", "name"]));
        assert!(cm.stdout.contains("configmap/tierguard-policy-"), "{}", cm.stdout);
    });
    s.finish(&c);
}

#[test]
fn audit_mode_end_to_end() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(c) = Cluster::start("audit", &["--mode", "audit"], "") else {
        return;
    };
    let mut s = Scenarios::new();
    s.run("setup", || tutorial(&c));
    s.run("d. mistakes are admitted with Warning: lines and audit annotations", || {
        let out = said(c.kubectl(&["apply", "-f", &format!("{VIOLATIONS}/01-database-open-to-frontend/apply.yaml")]));
        expect_ok(&out, "audit-mode apply");
        assert!(
            out.stderr.contains("Warning: tierguard (audit): tier frontend -> tier database on TCP/5432 is forbidden"),
            "{}",
            out.stderr
        );
        let out = said(c.kubectl(&["delete", "-f", &format!("{VIOLATIONS}/03-delete-database-default-deny/delete.yaml")]));
        expect_ok(&out, "audit-mode delete");
        assert!(out.stderr.contains("Warning: tierguard (audit):"), "{}", out.stderr);
        let log = c.audit_log();
        assert!(log.contains("networkpolicies.validate.tierguard.io/verdict\":\"warned\""), "no warned annotation in the audit log");
        assert!(c.webhook_log().contains("forbidden flow"), "no log line for the violation");
    });
    s.finish(&c);
}
