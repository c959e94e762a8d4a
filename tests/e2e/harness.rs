//! End-to-end harness: a real etcd + kube-apiserver (built from Go modules by
//! `tests/control-plane/build.sh`, or `KUBE_APISERVER`/`ETCD`), the real
//! `tierguard serve` binary with certificates from a test CA, webhook
//! configurations pointing at it, and kubectl as the client.
//!
//! Everything is torn down when the [`Cluster`] drops — after success,
//! failure or panic. Without Go and without prebuilt binaries the tests skip
//! loudly; with `TIERGUARD_E2E=required` (set by `.ci/run`) they fail.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use tierguard::certs::Ca;

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Whether the environment demands the end-to-end tests.
pub fn required() -> bool {
    std::env::var("TIERGUARD_E2E").is_ok_and(|v| v == "required")
}

/// A running control plane with tierguard registered.
pub struct Cluster {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    /// The kubectl binary (on PATH, or built with the control plane).
    kubectl: String,
    pub webhook_port: u16,
    pub admin_port: u16,
    webhook: Option<Child>,
    ca: Ca,
    tls_dir: PathBuf,
    serve_args: Vec<String>,
    /// The isolation policy `serve` runs with, relative to the repository.
    policy: String,
}

/// A loopback port nobody listens on, below the kernel's ephemeral range.
///
/// A port the kernel hands out for `:0` is in the ephemeral range
/// (32768–60999 here), where the API server's and etcd's own outgoing
/// connections take their local ports too: between choosing one and
/// `tierguard serve` binding it, a client socket can take it, and the bind
/// fails with "Address already in use". So ports come from 10000–19999
/// (the control-plane script takes 20000–31999), in a per-process sequence
/// that starts at a pid-derived offset, and each is checked free by binding.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const BASE: u32 = 10_000;
    const SPAN: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (BASE + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {BASE}..{}", BASE + SPAN)
}

/// The control plane's binaries and the kubectl to drive it.
struct Binaries {
    apiserver: String,
    etcd: String,
    kubectl: String,
}

/// A tool of the deployment tests (`helm`, `promtool`), built (or reused)
/// by `tests/tools/build.sh`, or the binary in `$VAR` (`HELM`, `PROMTOOL`);
/// `None` (skip) when Go is missing and the end-to-end tests are not required.
pub fn go_tool(tool: &str) -> Option<String> {
    let var = tool.to_uppercase();
    if Command::new("go").arg("version").output().is_err() && std::env::var(&var).is_err() {
        assert!(
            !required(),
            "no Go toolchain to build {tool}, but TIERGUARD_E2E=required"
        );
        eprintln!("\n!!!!!!!! {tool} TESTS SKIPPED: no Go toolchain and no {var} !!!!!!!!\n");
        return None;
    }
    let out = Command::new("bash")
        .args([&format!("{REPO}/tests/tools/build.sh"), tool])
        .stderr(Stdio::inherit())
        .output()
        .expect("tests/tools/build.sh runs");
    assert!(out.status.success(), "tests/tools/build.sh {tool} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{var}=")))
        .map(str::to_string)
}

/// The kubectl the end-to-end tests use (see [`control_plane_binaries`]).
pub fn kubectl_binary() -> Option<String> {
    control_plane_binaries().map(|b| b.kubectl)
}

/// Builds (or finds) the control-plane binaries and kubectl (the one on
/// PATH, else built from the same modules); `None` when that cannot work
/// here (no Go, no prebuilt binaries).
fn control_plane_binaries() -> Option<Binaries> {
    if let (Ok(apiserver), Ok(etcd)) = (std::env::var("KUBE_APISERVER"), std::env::var("ETCD")) {
        let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        return Some(Binaries {
            apiserver,
            etcd,
            kubectl,
        });
    }
    if Command::new("go").arg("version").output().is_err() {
        return None;
    }
    eprintln!("[e2e] building the control plane (first build takes minutes; cached after)");
    let out = Command::new("bash")
        .arg(format!("{REPO}/tests/control-plane/build.sh"))
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    if !out.status.success() {
        panic!(
            "tests/control-plane/build.sh failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(str::to_string)
    };
    Some(Binaries {
        apiserver: get("KUBE_APISERVER")?,
        etcd: get("ETCD")?,
        kubectl: get("KUBECTL")?,
    })
}

impl Cluster {
    /// Starts everything, or returns `None` (skip) when no control plane can
    /// run here and it is not required. `serve_args` are extra flags for
    /// `tierguard serve` (e.g. `--mode audit`); `apiserver_args` extra flags
    /// for kube-apiserver.
    pub fn start(name: &str, serve_args: &[&str], apiserver_args: &str) -> Option<Cluster> {
        let mut cluster = Self::start_control_plane(name, serve_args, apiserver_args)?;
        cluster.guard_namespace();
        cluster.start_webhook();
        cluster.register();
        Some(cluster)
    }

    /// The control plane alone: no tierguard running or registered, nothing
    /// created (see [`Cluster::start`] for the arguments).
    pub fn start_control_plane(
        name: &str,
        serve_args: &[&str],
        apiserver_args: &str,
    ) -> Option<Cluster> {
        let Some(Binaries {
            apiserver,
            etcd,
            kubectl,
        }) = control_plane_binaries()
        else {
            let msg =
                "END-TO-END TESTS SKIPPED: no Go toolchain and no KUBE_APISERVER/ETCD binaries";
            if required() {
                panic!("{msg}, but TIERGUARD_E2E=required");
            }
            eprintln!("\n!!!!!!!! {msg} !!!!!!!!\n");
            return None;
        };
        let dir = std::env::temp_dir().join(format!("tierguard-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        // Audit logging, so audit annotations can be read back.
        std::fs::write(
            dir.join("audit-policy.yaml"),
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  resources: [{group: networking.k8s.io, resources: [networkpolicies]}, {group: \"\", resources: [namespaces]}]\n",
        )
        .expect("audit policy");
        let extra = format!(
            "--audit-policy-file={} --audit-log-path={} --disable-admission-plugins=ServiceAccount {apiserver_args}",
            dir.join("audit-policy.yaml").display(),
            dir.join("audit.log").display()
        );
        let up = Command::new("bash")
            .arg(format!("{REPO}/tests/control-plane/up.sh"))
            .arg(&dir)
            .env("KUBE_APISERVER", &apiserver)
            .env("ETCD", &etcd)
            .env("TIERGUARD_CP_APISERVER_ARGS", extra)
            .status()
            .expect("up.sh runs");
        let ca = Ca::new("tierguard e2e CA").expect("ca");
        let tls_dir = dir.join("tierguard-tls");
        let cluster = Cluster {
            kubeconfig: dir.join("kubeconfig"),
            kubectl,
            dir,
            webhook_port: free_port(),
            admin_port: free_port(),
            webhook: None,
            ca,
            tls_dir,
            serve_args: serve_args.iter().map(|s| s.to_string()).collect(),
            policy: "policies/three-tier.yaml".into(),
        };
        assert!(
            up.success(),
            "tests/control-plane/up.sh failed (see {}/kube-apiserver.log)",
            cluster.dir.display()
        );
        cluster.check_server_version();
        let pair = cluster
            .ca
            .issue(&["localhost".into(), "127.0.0.1".into()], (2035, 1, 1))
            .expect("serving cert");
        std::fs::create_dir_all(&cluster.tls_dir).expect("tls dir");
        std::fs::write(cluster.tls_dir.join("tls.crt"), pair.cert_pem).expect("cert");
        std::fs::write(cluster.tls_dir.join("tls.key"), pair.key_pem).expect("key");
        Some(cluster)
    }

    /// Prints the API server's version and, when `TIERGUARD_K8S` (the
    /// version matrix's release, e.g. `v1.37`) is set, fails unless the
    /// server runs that release, so a matrix run cannot silently test
    /// another version.
    fn check_server_version(&self) {
        let out = self.kubectl(&["version", "-o", "json"]);
        assert!(
            out.status.success(),
            "kubectl version: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("version JSON");
        let server = v["serverVersion"]["gitVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let client = v["clientVersion"]["gitVersion"]
            .as_str()
            .unwrap_or_default();
        eprintln!("[e2e] kube-apiserver {server}, kubectl {client}");
        if let Ok(want) = std::env::var("TIERGUARD_K8S")
            && !want.is_empty()
        {
            assert!(
                server.starts_with(&format!("{want}.")),
                "TIERGUARD_K8S={want} but the API server is {server}"
            );
        }
    }

    /// Starts `tierguard serve` and waits until it is ready.
    pub fn start_webhook(&mut self) {
        let log = self.dir.join("tierguard.log");
        let child = self.spawn_serve(self.webhook_port, self.admin_port, &log, &[]);
        self.webhook = Some(child);
        wait_ready(self.admin_port, &log);
    }

    /// Starts one more `tierguard serve` replica on fresh ports, with the
    /// cluster's certificate, kubeconfig and serve flags plus `extra`, and
    /// waits until it is ready. It is killed when the [`Replica`] drops.
    pub fn start_replica(&self, name: &str, extra: &[&str]) -> Replica {
        let webhook_port = free_port();
        let admin_port = free_port();
        let log = self.dir.join(format!("tierguard-{name}.log"));
        let child = self.spawn_serve(webhook_port, admin_port, &log, extra);
        let replica = Replica {
            name: name.to_string(),
            child: Some(child),
            webhook_port,
            admin_port,
            log: log.clone(),
        };
        wait_ready(admin_port, &log);
        replica
    }

    fn spawn_serve(
        &self,
        webhook_port: u16,
        admin_port: u16,
        log: &std::path::Path,
        extra: &[&str],
    ) -> Child {
        let log = std::fs::File::create(log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tierguard"));
        cmd.current_dir(REPO)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{webhook_port}"))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{admin_port}"))
            .arg("--tls-cert")
            .arg(self.tls_dir.join("tls.crt"))
            .arg("--tls-key")
            .arg(self.tls_dir.join("tls.key"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(
                // `--policy-object` reads the policy from the cluster instead.
                (!self
                    .serve_args
                    .iter()
                    .map(String::as_str)
                    .chain(extra.iter().copied())
                    .any(|a| a == "--policy-object"))
                .then(|| ["--policy".to_string(), self.policy.clone()])
                .into_iter()
                .flatten(),
            )
            .arg("--log-format")
            .arg("json")
            .arg("--discovery-interval-seconds")
            .arg("1")
            .args(&self.serve_args)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        cmd.spawn().expect("tierguard serve starts")
    }

    /// The guard's namespace (its leader-election Lease lives there) and
    /// RBAC for the guard's service account, as deploy/ sets them up.
    pub fn guard_namespace(&self) {
        for args in [
            &["create", "namespace", "tierguard"][..],
            &[
                "create",
                "clusterrolebinding",
                "tierguard-guard",
                "--clusterrole=cluster-admin",
                "--serviceaccount=tierguard:tierguard",
            ],
        ] {
            let o = self.kubectl(args);
            assert!(
                o.status.success(),
                "{}: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }

    /// Installs the policy.networking.k8s.io CRDs (ClusterNetworkPolicy,
    /// AdminNetworkPolicy, BaselineAdminNetworkPolicy) fetched by
    /// `tests/control-plane/crds.sh` from the Go module proxy, and waits
    /// until the API server serves them.
    pub fn install_netpol_crds(&self) {
        self.install_fetched_crds("netpol");
        self.wait_established(
            "policy.networking.k8s.io",
            &[
                "clusternetworkpolicies",
                "adminnetworkpolicies",
                "baselineadminnetworkpolicies",
            ],
        );
    }

    /// Installs the OpenReports CRDs (Report, ClusterReport) fetched by
    /// `tests/control-plane/crds.sh openreports` from the Go module proxy,
    /// and waits until the API server serves them.
    pub fn install_openreports_crds(&self) {
        self.install_fetched_crds("openreports");
        self.wait_established("openreports.io", &["reports", "clusterreports"]);
    }

    /// Applies the CRDs `tests/control-plane/crds.sh SET` fetches.
    fn install_fetched_crds(&self, set: &str) {
        let out = Command::new("bash")
            .arg(format!("{REPO}/tests/control-plane/crds.sh"))
            .arg(set)
            .stderr(Stdio::inherit())
            .output()
            .expect("crds.sh runs");
        assert!(
            out.status.success(),
            "tests/control-plane/crds.sh {set} failed"
        );
        let files = String::from_utf8_lossy(&out.stdout).to_string();
        for f in files.lines().filter(|l| !l.is_empty()) {
            let o = self.kubectl(&["apply", "--server-side", "-f", f]);
            assert!(
                o.status.success(),
                "applying {f}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }

    /// Waits until the API server serves each CRD `<plural>.<group>`.
    pub fn wait_established(&self, group: &str, plurals: &[&str]) {
        for crd in plurals {
            let o = self.kubectl(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                &format!("crd/{crd}.{group}"),
            ]);
            assert!(
                o.status.success(),
                "{crd}.{group} not established: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }

    /// Installs tierguard's minimal Calico policy CRDs
    /// (`tests/control-plane/calico-crds.yaml`) and waits until the API
    /// server serves them.
    pub fn install_calico_crds(&self) {
        let file = format!("{REPO}/tests/control-plane/calico-crds.yaml");
        let o = self.kubectl(&["apply", "-f", &file]);
        assert!(
            o.status.success(),
            "applying {file}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        self.wait_established(
            "crd.projectcalico.org",
            &["globalnetworkpolicies", "networkpolicies"],
        );
    }

    /// The isolation policy of the next [`Cluster::start_webhook`].
    pub fn set_policy(&mut self, path: &str) {
        self.policy = path.to_string();
    }

    /// Adds flags for the next [`Cluster::start_webhook`].
    pub fn add_serve_args(&mut self, args: &[&str]) {
        self.serve_args.extend(args.iter().map(|s| s.to_string()));
    }

    /// The process id of `tierguard serve`, if it runs.
    pub fn webhook_pid(&self) -> Option<u32> {
        self.webhook.as_ref().map(Child::id)
    }

    /// Stops `tierguard serve`.
    pub fn stop_webhook(&mut self) {
        if let Some(mut c) = self.webhook.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Applies deploy/base/webhooks.yaml — the rules production uses — with
    /// each `clientConfig.service` replaced by a URL on loopback and the
    /// test CA as `caBundle`.
    pub fn register(&self) {
        self.register_at(self.webhook_port);
    }

    /// [`Cluster::register`] with the webhooks' URLs on `port` (a load
    /// balancer in front of replicas, say).
    pub fn register_at(&self, port: u16) {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca.cert_pem());
        let text = std::fs::read_to_string(format!("{REPO}/deploy/base/webhooks.yaml"))
            .expect("deploy/base/webhooks.yaml");
        let mut replaced = 0;
        let yaml: String = text
            .lines()
            .map(|line| {
                let trimmed = line.trim_start();
                match trimmed
                    .strip_prefix("service: {name: tierguard, namespace: tierguard, path: ")
                {
                    Some(rest) => {
                        replaced += 1;
                        let path = rest.split(',').next().unwrap_or_default();
                        let indent = &line[..line.len() - trimmed.len()];
                        format!(
                            "{indent}url: \"https://127.0.0.1:{port}{path}\"\n{indent}caBundle: {ca}\n"
                        )
                    }
                    None => format!("{line}\n"),
                }
            })
            .collect();
        assert_eq!(replaced, 8, "deploy/base/webhooks.yaml changed shape");
        let out = self.kubectl_stdin(&["apply", "-f", "-"], &yaml);
        assert!(
            out.status.success(),
            "registering the webhooks failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs kubectl against the cluster.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .current_dir(REPO)
            .output()
            .expect("kubectl runs")
    }

    /// Runs kubectl with `input` on stdin.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .current_dir(REPO)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes()).expect("stdin");
        }
        child.wait_with_output().expect("kubectl finishes")
    }

    /// Polls `f` every 200 ms for up to `secs` seconds.
    pub fn eventually(&self, secs: u64, what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f() {
            assert!(
                Instant::now() < deadline,
                "timed out after {secs}s waiting for: {what}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// True when the NetworkPolicy exists.
    pub fn has_policy(&self, namespace: &str, name: &str) -> bool {
        self.kubectl(&["get", "networkpolicy", name, "-n", namespace])
            .status
            .success()
    }

    /// The audit log so far.
    pub fn audit_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("audit.log")).unwrap_or_default()
    }

    /// The webhook's log so far.
    pub fn webhook_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("tierguard.log")).unwrap_or_default()
    }

    /// Starts, stops or restarts the kube-apiserver, same port and flags
    /// (`tests/control-plane/apiserver.sh`; `start` waits for `/readyz`).
    pub fn apiserver(&self, what: &str) {
        let status = Command::new("bash")
            .arg(format!("{REPO}/tests/control-plane/apiserver.sh"))
            .arg(&self.dir)
            .arg(what)
            .status()
            .expect("apiserver.sh runs");
        assert!(
            status.success(),
            "apiserver.sh {what} failed (see {}/kube-apiserver.log)",
            self.dir.display()
        );
    }

    /// The pid of the control plane's `name` (`etcd`, `kube-apiserver`).
    pub fn control_plane_pid(&self, name: &str) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("pids"))
            .ok()?
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(n, _)| *n == name)
            .filter_map(|(_, pid)| pid.trim().parse().ok())
            .next_back()
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`) to the control plane's `name`.
    pub fn signal_control_plane(&self, name: &str, signal: &str) {
        let pid = self.control_plane_pid(name).expect("the process's pid");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {name} ({pid}) failed");
    }

    /// Compacts etcd's history up to its current revision (through its
    /// HTTP gateway) and returns that revision: a watch resumed from an
    /// older resourceVersion then gets `410 Gone`.
    pub fn compact_etcd(&self) -> i64 {
        let env = std::fs::read_to_string(self.dir.join("env")).expect("the control plane's env");
        let url = env
            .lines()
            .find_map(|l| l.strip_prefix("ETCD_URL="))
            .expect("ETCD_URL in env")
            .to_string();
        let post = |path: &str, body: &str| -> serde_json::Value {
            let out = Command::new("curl")
                .args(["-fsS", "--max-time", "10", "-X", "POST", "-d", body])
                .arg(format!("{url}{path}"))
                .output()
                .expect("curl runs");
            assert!(
                out.status.success(),
                "etcd {path}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice(&out.stdout).expect("etcd answers JSON")
        };
        // Any key: the header carries the store's revision.
        let range = post("/v3/kv/range", r#"{"key":"AA=="}"#);
        let revision: i64 = range["header"]["revision"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .expect("a revision");
        post(
            "/v3/kv/compaction",
            &format!(r#"{{"revision":"{revision}","physical":true}}"#),
        );
        revision
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_webhook();
        let _ = Command::new("bash")
            .arg(format!("{REPO}/tests/control-plane/down.sh"))
            .arg(&self.dir)
            .status();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!(
                "[e2e] kept {} for inspection (logs of etcd, kube-apiserver, tierguard)",
                self.dir.display()
            );
        }
    }
}

/// Polls `GET /readyz` on `admin_port` until it answers 200, for up to 30 s;
/// panics with the log at `log` otherwise.
pub fn wait_ready(admin_port: u16, log: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while readyz(admin_port) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "tierguard did not become ready; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// GET `path` on the plain-HTTP admin listener at `port`: the status and
/// the body, or `None` when nothing answers.
pub fn admin_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split(' ').nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// The status `/readyz` answers on `admin_port`.
pub fn readyz(admin_port: u16) -> Option<u16> {
    admin_get(admin_port, "/readyz").map(|(status, _)| status)
}

/// One more `tierguard serve` of a [`Cluster`] (see
/// [`Cluster::start_replica`]); killed on drop unless it has exited.
pub struct Replica {
    pub name: String,
    pub child: Option<Child>,
    pub webhook_port: u16,
    pub admin_port: u16,
    pub log: PathBuf,
}

impl Replica {
    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The sum of `tierguard_admission_requests_total` on its `/metrics`:
    /// the admission requests it has answered.
    pub fn admissions_answered(&self) -> Option<u64> {
        let (status, body) = admin_get(self.admin_port, "/metrics")?;
        if status != 200 {
            return None;
        }
        let total = body
            .lines()
            .filter(|l| l.starts_with("tierguard_admission_requests_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        Some(total as u64)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What a kubectl command printed.
pub struct Said {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Said {
    fn from(o: Output) -> Self {
        Said {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs scenarios one after another, collecting failures so that one broken
/// scenario does not hide the others; panics at the end if any failed.
pub struct Scenarios {
    failures: Vec<String>,
}

impl Scenarios {
    pub fn new() -> Self {
        Self {
            failures: Vec::new(),
        }
    }

    pub fn run(&mut self, name: &str, f: impl FnOnce()) {
        eprintln!("[e2e] scenario: {name}");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        if let Err(e) = r {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            self.failures.push(format!("{name}: {msg}"));
        }
    }

    pub fn finish(self, cluster: &Cluster) {
        if !self.failures.is_empty() {
            eprintln!("--- tierguard log ---\n{}", cluster.webhook_log());
            panic!(
                "{} scenario(s) failed:\n{}",
                self.failures.len(),
                self.failures.join("\n")
            );
        }
    }
}
