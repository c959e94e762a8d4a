//! haproxy as the Service in front of tierguard's replicas: `mode tcp` (TLS
//! passes through), a random replica per connection (as kube-proxy picks), each replica health-checked on its admin
//! port's `/readyz` every 100 ms, out after one failure, back after two
//! successes — a faster kube-proxy with endpoints driven by readiness.
//!
//! Installed by `scripts/deps.sh` (`make test` runs it). Missing, the tests
//! that need it skip loudly; with `TIERGUARD_E2E=required` they fail.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Replica, free_port, required};

/// A running haproxy, killed on drop.
pub struct Haproxy {
    /// The frontend's port on 127.0.0.1.
    pub port: u16,
    child: Child,
}

/// The haproxy binary, or `None` (after a loud message) when it is missing
/// and not required.
pub fn binary() -> Option<String> {
    let bin = std::env::var("HAPROXY").unwrap_or_else(|_| "haproxy".into());
    let found = Command::new(&bin)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(bin);
    }
    let msg = "LOAD-BALANCER TEST SKIPPED: no haproxy (run scripts/deps.sh, or set HAPROXY)";
    if required() {
        panic!("{msg}, but TIERGUARD_E2E=required");
    }
    eprintln!("\n!!!!!!!! {msg} !!!!!!!!\n");
    None
}

/// The configuration: one TCP frontend, one backend with `replicas`.
fn config(port: u16, replicas: &[&Replica]) -> String {
    let mut cfg = format!(
        "global\n\
         \x20 maxconn 4096\n\
         \x20 log stderr format raw local0\n\
         defaults\n\
         \x20 mode tcp\n\
         \x20 log global\n\
         \x20 option tcplog\n\
         \x20 timeout connect 1s\n\
         \x20 timeout client 60s\n\
         \x20 timeout server 60s\n\
         \x20 timeout check 1s\n\
         \x20 # No retry, no redispatch: like kube-proxy, a connection sent to\n\
         \x20 # a replica that refuses it fails (so does the test).\n\
         \x20 retries 0\n\
         frontend webhook\n\
         \x20 bind 127.0.0.1:{port}\n\
         \x20 default_backend tierguard\n\
         backend tierguard\n\
         \x20 balance random\n\
         \x20 option httpchk GET /readyz\n"
    );
    for r in replicas {
        cfg.push_str(&format!(
            "  server {} 127.0.0.1:{} check port {} inter 100ms fall 1 rise 2\n",
            r.name, r.webhook_port, r.admin_port
        ));
    }
    cfg
}

impl Haproxy {
    /// Writes the configuration into `dir` and starts haproxy in the
    /// foreground; returns once its frontend accepts connections.
    pub fn start(bin: &str, dir: &Path, replicas: &[&Replica]) -> Haproxy {
        let port = free_port();
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, config(port, replicas)).expect("haproxy.cfg");
        let check = Command::new(bin)
            .arg("-c")
            .arg("-f")
            .arg(&cfg)
            .output()
            .expect("haproxy -c runs");
        assert!(
            check.status.success(),
            "haproxy rejected its configuration: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = std::fs::File::create(dir.join("haproxy.log")).expect("haproxy log");
        let child = Command::new(bin)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("haproxy starts");
        let haproxy = Haproxy { port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "haproxy did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        haproxy
    }
}

impl Haproxy {
    /// From the log of closed sessions: how many each server carried, and
    /// how many ended at connect (`SC`: the server refused or reset it, or
    /// no server was up).
    pub fn sessions(&self, dir: &Path) -> String {
        let log = std::fs::read_to_string(dir.join("haproxy.log")).unwrap_or_default();
        let mut per_server = std::collections::BTreeMap::<String, u64>::new();
        let mut failed_connect = 0;
        for line in log.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(server) = words.iter().find_map(|w| w.strip_prefix("tierguard/")) else {
                continue;
            };
            *per_server.entry(server.to_string()).or_default() += 1;
            if words.iter().any(|w| w.starts_with("SC") && w.len() == 2) {
                failed_connect += 1;
            }
        }
        format!("closed sessions per server {per_server:?}, {failed_connect} failed at connect")
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
