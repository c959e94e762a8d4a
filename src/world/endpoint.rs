//! Connection ends as people name them (`namespace/name`, an IP,
//! `outside`), and where the world's pods run.

use std::net::IpAddr;

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1 as corev1;

use super::World;
use crate::engine::reach::{Endpoint, Placement};
use crate::engine::state::Pod;

/// A Pod's node is known by its `status.hostIP`/`hostIPs`.
impl Placement for World {
    fn node_addresses(&self, pod: &Pod) -> Option<&[IpAddr]> {
        if pod.workload.is_some() {
            return None;
        }
        self.host_ips
            .get(&format!("{}/{}", pod.namespace, pod.name))
            .map(Vec::as_slice)
    }
}

impl World {
    /// Reads a connection end as a person names it: `namespace/name` (a Pod,
    /// else a workload), or an IP — a node's (a Pod's `status.hostIP`, a Node's
    /// address) is that node, a known Pod's is that pod, one in
    /// [`World::node_cidrs`] a node, anything else a host outside the
    /// cluster — or `outside`, any host outside the cluster, or
    /// `namespace/*`, any pod created later in that namespace. The note says
    /// how an IP was read.
    pub fn endpoint(&self, s: &str, flag: &str) -> Result<(Endpoint<'_>, Option<String>)> {
        if s == "outside" {
            return Ok((Endpoint::Outside, None));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            if let Some((name, _)) = self.nodes.iter().find(|(_, ips)| ips.contains(&ip)) {
                return Ok((
                    Endpoint::Node {
                        name: Some(name),
                        ip,
                    },
                    Some(format!(
                        "--{flag} {ip} is node {name}: neither a pod nor outside the cluster; no NetworkPolicy applies to the node itself, and pods' ipBlocks match its IP"
                    )),
                ));
            }
            if let Some((pod, _)) = self.host_ips.iter().find(|(_, ips)| ips.contains(&ip)) {
                return Ok((
                    Endpoint::Node { name: None, ip },
                    Some(format!(
                        "--{flag} {ip} is the node of pod {pod}: neither a pod nor outside the cluster; no NetworkPolicy applies to the node itself, and pods' ipBlocks match its IP"
                    )),
                ));
            }
            if let Some(p) = self
                .pods
                .iter()
                .find(|p| p.workload.is_none() && p.ips.contains(&ip))
            {
                return Ok((
                    Endpoint::Pod(p),
                    Some(format!(
                        "--{flag} {ip} is the IP of pod {}/{}: judged as that pod",
                        p.namespace, p.name
                    )),
                ));
            }
            if self.node_cidrs.iter().any(|c| c.contains(ip)) {
                return Ok((
                    Endpoint::Node { name: None, ip },
                    Some(format!(
                        "--{flag} {ip} is in the isolation policy's nodeCIDRs: a node, neither a pod nor outside the cluster; no NetworkPolicy applies to the node itself, and pods' ipBlocks match its IP"
                    )),
                ));
            }
            return Ok((Endpoint::External(ip), None));
        }
        let (ns, name) = s.split_once('/').ok_or_else(|| {
            anyhow!("--{flag} {s:?}: expected namespace/name, namespace/* or an IP address")
        })?;
        if name == "*" {
            return match self.state.namespace(ns) {
                Some(n) => Ok((Endpoint::Future { namespace: &n.name }, None)),
                None => Err(anyhow!(
                    "--{flag} {s:?}: namespace {ns} is not in the manifests (a pod created later is judged in a Namespace whose labels are known)"
                )),
            };
        }
        self.find_pod(ns, name)
            .map(|p| (Endpoint::Pod(p), None))
            .ok_or_else(|| {
                anyhow!("--{flag} {s:?}: no Pod or workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob) named {name} in namespace {ns} in the manifests")
            })
    }
}

/// A Pod's own addresses: `status.podIPs` and `status.podIP`.
pub(super) fn pod_ips(p: &corev1::Pod) -> Vec<IpAddr> {
    let Some(status) = &p.status else {
        return Vec::new();
    };
    let mut ips: Vec<IpAddr> = status
        .pod_ips
        .iter()
        .flatten()
        .filter_map(|i| i.ip.parse().ok())
        .collect();
    if let Some(ip) = status.pod_ip.as_deref().and_then(|s| s.parse().ok())
        && !ips.contains(&ip)
    {
        ips.push(ip);
    }
    ips
}

/// The addresses of a Pod's node: `status.hostIPs` and `status.hostIP`.
pub(super) fn host_ips(p: &corev1::Pod) -> Vec<IpAddr> {
    let Some(status) = &p.status else {
        return Vec::new();
    };
    let mut ips: Vec<IpAddr> = status
        .host_ips
        .iter()
        .flatten()
        .filter_map(|i| i.ip.parse().ok())
        .collect();
    if let Some(ip) = status.host_ip.as_deref().and_then(|s| s.parse().ok())
        && !ips.contains(&ip)
    {
        ips.push(ip);
    }
    ips
}
