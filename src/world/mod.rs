//! Loading manifests into a [`World`]: files, directories (recursively) or
//! stdin; YAML (multi-document) or JSON; `v1/List` and every `*List` kind.
//!
//! ```text
//!  Namespace ─────────────► State.namespaces (+ kubernetes.io/metadata.name)
//!  NetworkPolicy ─validate─► State.policies   (errors name file, object, field)
//!  ClusterNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy
//!                ─validate─► State cluster policies
//!  Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob ─► pods
//!  Service ────────────────► services (kept for later use)
//!  Node ───────────────────► nodes (addresses); Pod status.hostIP ─► host_ips
//!  Calico NetworkPolicy, GlobalNetworkPolicy (projectcalico.org/v3,
//!  crd.projectcalico.org/v1) ─validate─► calico (read, not judged)
//!  anything else ──────────► skipped (counted; `-v` lists them)
//!  no apiVersion, no kind ─► skipped with a warning (not a Kubernetes object)
//! ```
//!
//! A namespace an object lives in but that no manifest declares exists with
//! only its automatic name label, as the API server would create it.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, anyhow};
use k8s_openapi::api::apps::v1 as appsv1;
use k8s_openapi::api::batch::v1 as batchv1;
use k8s_openapi::api::core::v1 as corev1;
use k8s_openapi::api::networking::v1 as netv1;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::engine::names;
use crate::engine::ports::{ContainerPort, Protocol};
use crate::engine::state::{Namespace, Pod, State};
use crate::model::documents::parse_documents;

mod calico;
mod endpoint;

pub use calico::CalicoObject;
use endpoint::{host_ips, pod_ips};

/// The namespace objects without `metadata.namespace` land in.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A Service (kept for later use; not yet part of any verdict).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// Everything loaded from a set of manifests.
#[derive(Debug, Default)]
pub struct World {
    /// Namespaces and policies.
    pub state: State,
    /// Pods and workloads (standing for their pods).
    pub pods: Vec<Pod>,
    /// Services.
    pub services: Vec<Service>,
    /// Objects of kinds tierguard does not read: `kind namespace/name (file)`.
    pub skipped: Vec<String>,
    /// Namespaces the manifests declare (not merely reference).
    pub declared: Vec<String>,
    /// Documents skipped because they are not Kubernetes objects (neither
    /// `apiVersion` nor `kind`: a `package.json` in a `-f DIR`), naming the
    /// file; the commands print them to stderr.
    pub warnings: Vec<String>,
    /// Node IPs: each Pod's `status.hostIP`/`hostIPs` (`namespace/name` →
    /// IPs), for the rule that a pod's own node always reaches it.
    pub host_ips: BTreeMap<String, Vec<IpAddr>>,
    /// Calico NetworkPolicies and GlobalNetworkPolicies.
    pub calico: Vec<CalicoObject>,
    /// Node objects: name → their addresses (InternalIP, ExternalIP).
    pub nodes: BTreeMap<String, Vec<IpAddr>>,
    /// Where nodes' addresses lie, from an isolation policy's
    /// `cluster.nodeCIDRs` (empty unless a command was given one).
    pub node_cidrs: Vec<crate::engine::ipblock::Cidr>,
}

/// An error in the manifests, naming the file, the object and the field.
#[derive(Debug)]
pub struct LoadErrors(pub Vec<String>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for LoadErrors {}

// === impl World ===

impl World {
    /// Loads every path (`-` is stdin).
    pub fn load(paths: &[PathBuf]) -> Result<World> {
        let mut loader = Loader::default();
        for p in paths {
            if p.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| anyhow!("<stdin>: cannot read: {e}"))?;
                loader.text(&text, "<stdin>");
            } else {
                loader.path(p)?;
            }
        }
        loader.finish()
    }

    /// Loads manifests from text (for tests and the webhook's `--world`).
    pub fn from_text(text: &str, origin: &str) -> Result<World> {
        let mut loader = Loader::default();
        loader.text(text, origin);
        loader.finish()
    }

    /// Removes the namespaces, policies and pods that `other` declares (by
    /// kind, namespace and name): "what if these were deleted?".
    pub fn remove(&mut self, other: &World) {
        for p in other.state.policies() {
            self.state.delete_policy(&p.namespace, &p.name);
        }
        for ns in other.declared.iter() {
            self.state.delete_namespace(ns);
        }
        self.calico
            .retain(|c| !other.calico.iter().any(|o| o.object == c.object));
        self.pods.retain(|p| {
            !other
                .pods
                .iter()
                .any(|o| o.namespace == p.namespace && o.name == p.name)
        });
    }

    /// Finds a pod by `namespace/name`, else a workload of that name.
    pub fn find_pod(&self, namespace: &str, name: &str) -> Option<&Pod> {
        self.pods
            .iter()
            .find(|p| p.namespace == namespace && p.name == name && p.workload.is_none())
            .or_else(|| {
                self.pods
                    .iter()
                    .find(|p| p.namespace == namespace && p.name == name)
            })
    }
}

#[derive(Default)]
struct Loader {
    world: World,
    errors: Vec<String>,
    declared: BTreeMap<String, Namespace>,
}

impl Loader {
    fn path(&mut self, p: &Path) -> Result<()> {
        let meta = std::fs::metadata(p).map_err(|e| anyhow!("{}: {e}", p.display()))?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| anyhow!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for e in entries {
                let is_manifest = e
                    .extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"));
                if e.is_dir() || is_manifest {
                    self.path(&e)?;
                }
            }
            return Ok(());
        }
        let bytes = std::fs::read(p).map_err(|e| anyhow!("{}: cannot read: {e}", p.display()))?;
        match String::from_utf8(bytes) {
            Ok(text) => self.text(&text, &p.display().to_string()),
            Err(_) => self.errors.push(format!("{}: not UTF-8 text", p.display())),
        }
        Ok(())
    }

    fn text(&mut self, text: &str, origin: &str) {
        match parse_documents(text, origin) {
            Ok(docs) => {
                for d in docs {
                    if !looks_like_object(&d.value) {
                        self.world.warnings.push(format!(
                            "{origin}{}: skipped: not a Kubernetes object (no apiVersion or kind)",
                            d.where_
                        ));
                        continue;
                    }
                    self.value(d.value, origin, &d.where_);
                }
            }
            Err(e) => self.errors.push(e.to_string()),
        }
    }

    fn value(&mut self, v: Value, origin: &str, where_: &str) {
        let Value::Object(map) = &v else {
            self.errors.push(format!(
                "{origin}{where_}: expected an object, found {}",
                kind_of(&v)
            ));
            return;
        };
        let kind = map
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let api = map
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if kind.is_empty() {
            self.errors
                .push(format!("{origin}{where_}: kind: Required value"));
            return;
        }
        if kind.ends_with("List") && map.contains_key("items") {
            if let Some(Value::Array(items)) = map.get("items") {
                for (i, item) in items.iter().enumerate() {
                    self.value(item.clone(), origin, &format!("{where_} items[{i}]"));
                }
            } else {
                self.errors
                    .push(format!("{origin}{where_}: items: expected a list"));
            }
            return;
        }
        let group = api.split_once('/').map_or("", |(g, _)| g);
        let obj_name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("<no name>")
            .to_string();
        let at = |_: &Self, meta_ns: Option<&str>| match meta_ns {
            Some(ns) => format!("{origin}{where_}: {kind} {ns}/{obj_name}"),
            None => format!("{origin}{where_}: {kind} {obj_name}"),
        };
        let obj_ns = v
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_NAMESPACE)
            .to_string();
        match (group, kind.as_str()) {
            ("", "Namespace") => {
                let label = at(self, None);
                if let Some(ns) = self.typed::<corev1::Namespace>(v, &label) {
                    self.namespace(ns, &label);
                }
            }
            ("networking.k8s.io", "NetworkPolicy") => {
                let label = at(self, Some(&obj_ns));
                if let Some(np) = self.typed::<netv1::NetworkPolicy>(v, &label) {
                    match crate::model::networkpolicy::convert(&np, DEFAULT_NAMESPACE) {
                        Ok(p) => self.world.state.apply_policy(Arc::new(p)),
                        Err(errs) => {
                            for e in errs {
                                self.errors.push(format!("{label}: {e}"));
                            }
                        }
                    }
                }
            }
            (crate::model::clusterpolicy::GROUP, _)
                if crate::model::clusterpolicy::api_of(&api, &kind).is_some() =>
            {
                let label = at(self, None);
                let Some(cluster_api) = crate::model::clusterpolicy::api_of(&api, &kind) else {
                    return;
                };
                match crate::model::clusterpolicy::convert(cluster_api, &v) {
                    Ok(p) => self.world.state.apply_cluster_policy(Arc::new(p)),
                    Err(errs) => {
                        for e in errs {
                            self.errors.push(format!("{label}: {e}"));
                        }
                    }
                }
            }
            (g, k) if crate::model::calico::policy::Kind::of(g, k).is_some() => {
                let global = k == "GlobalNetworkPolicy";
                let label = at(self, Some(obj_ns.as_str()).filter(|_| !global));
                self.calico(&v, g, k, &obj_ns, &label);
            }
            ("", "Pod") => {
                let label = at(self, Some(&obj_ns));
                if let Some(p) = self.typed::<corev1::Pod>(v, &label) {
                    let ips = pod_ips(&p);
                    let hosts = host_ips(&p);
                    if !hosts.is_empty() {
                        let key = format!(
                            "{obj_ns}/{}",
                            p.metadata.name.as_deref().unwrap_or_default()
                        );
                        self.world.host_ips.insert(key, hosts);
                    }
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let labels = p.metadata.labels.clone().unwrap_or_default();
                    self.pod(&obj_ns, &name, labels, p.spec.as_ref(), ips, None, &label);
                }
            }
            ("apps", "Deployment") => self.workload::<appsv1::Deployment>(
                v,
                &kind,
                &obj_ns,
                at(self, Some(&obj_ns)),
                |d| d.spec.map(|s| s.template),
            ),
            ("apps", "StatefulSet") => self.workload::<appsv1::StatefulSet>(
                v,
                &kind,
                &obj_ns,
                at(self, Some(&obj_ns)),
                |d| d.spec.map(|s| s.template),
            ),
            ("apps", "DaemonSet") => self.workload::<appsv1::DaemonSet>(
                v,
                &kind,
                &obj_ns,
                at(self, Some(&obj_ns)),
                |d| d.spec.map(|s| s.template),
            ),
            ("apps", "ReplicaSet") => self.workload::<appsv1::ReplicaSet>(
                v,
                &kind,
                &obj_ns,
                at(self, Some(&obj_ns)),
                |d| d.spec.and_then(|s| s.template),
            ),
            ("batch", "Job") => {
                self.workload::<batchv1::Job>(v, &kind, &obj_ns, at(self, Some(&obj_ns)), |d| {
                    d.spec.map(|s| s.template)
                })
            }
            ("batch", "CronJob") => {
                self.workload::<batchv1::CronJob>(v, &kind, &obj_ns, at(self, Some(&obj_ns)), |d| {
                    d.spec.and_then(|s| s.job_template.spec).map(|s| s.template)
                })
            }
            ("", "Node") => {
                let label = at(self, None);
                if let Some(n) = self.typed::<corev1::Node>(v, &label) {
                    let ips = n
                        .status
                        .and_then(|s| s.addresses)
                        .unwrap_or_default()
                        .iter()
                        .filter(|a| matches!(a.type_.as_str(), "InternalIP" | "ExternalIP"))
                        .filter_map(|a| a.address.parse().ok())
                        .collect();
                    self.world
                        .nodes
                        .insert(n.metadata.name.unwrap_or_default(), ips);
                }
            }
            ("", "Service") => {
                let label = at(self, Some(&obj_ns));
                if let Some(s) = self.typed::<corev1::Service>(v, &label) {
                    self.world.services.push(Service {
                        namespace: obj_ns.clone(),
                        name: s.metadata.name.unwrap_or_default(),
                    });
                    self.reference(&obj_ns);
                }
            }
            _ => {
                self.world
                    .skipped
                    .push(format!("{api} {kind} {obj_name} ({origin}{where_})"));
            }
        }
    }

    fn typed<T: DeserializeOwned>(&mut self, v: Value, label: &str) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(v) {
            Ok(t) => Some(t),
            Err(e) => {
                self.errors
                    .push(format!("{label}: {}: {}", e.path(), e.inner()));
                None
            }
        }
    }

    fn namespace(&mut self, ns: corev1::Namespace, label: &str) {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let before = self.errors.len();
        if name.is_empty() {
            self.errors
                .push(format!("{label}: metadata.name: Required value"));
        } else {
            for m in names::dns1123_label(&name) {
                self.errors.push(format!(
                    "{label}: metadata.name: Invalid value: {name:?}: {m}"
                ));
            }
        }
        let labels = ns.metadata.labels.unwrap_or_default();
        for (k, v) in &labels {
            for m in names::label_key(k) {
                self.errors.push(format!(
                    "{label}: metadata.labels: Invalid value: {k:?}: {m}"
                ));
            }
            for m in names::label_value(v) {
                self.errors.push(format!(
                    "{label}: metadata.labels[{k}]: Invalid value: {v:?}: {m}"
                ));
            }
        }
        if self.errors.len() == before {
            self.declared
                .insert(name.clone(), Namespace::new(&name, labels));
        }
    }

    fn reference(&mut self, ns: &str) {
        if self.world.state.namespace(ns).is_none() {
            self.world
                .state
                .apply_namespace(Namespace::new(ns, BTreeMap::new()));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn pod(
        &mut self,
        ns: &str,
        name: &str,
        labels: BTreeMap<String, String>,
        spec: Option<&corev1::PodSpec>,
        ips: Vec<IpAddr>,
        workload: Option<String>,
        label: &str,
    ) {
        let mut ports = Vec::new();
        for (ci, c) in spec
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            for (pi, cp) in c.ports.iter().flatten().enumerate() {
                let path = format!("containers[{ci}].ports[{pi}]");
                let protocol = match cp.protocol.as_deref() {
                    None => Protocol::Tcp,
                    Some(s) => match Protocol::from_k8s(s) {
                        Some(p) => p,
                        None => {
                            self.errors.push(format!(
                                "{label}: {path}.protocol: Unsupported value: {s:?}"
                            ));
                            continue;
                        }
                    },
                };
                let Ok(port) = u16::try_from(cp.container_port)
                    .map_err(|_| ())
                    .and_then(|p| if p == 0 { Err(()) } else { Ok(p) })
                else {
                    self.errors.push(format!(
                        "{label}: {path}.containerPort: Invalid value: {}: must be between 1 and 65535, inclusive",
                        cp.container_port
                    ));
                    continue;
                };
                ports.push(ContainerPort {
                    name: cp.name.clone(),
                    port,
                    protocol,
                });
            }
        }
        self.world.pods.push(Pod {
            namespace: ns.to_string(),
            name: name.to_string(),
            labels,
            ports,
            ips,
            workload,
        });
        self.reference(ns);
    }

    fn workload<T: DeserializeOwned>(
        &mut self,
        v: Value,
        kind: &str,
        ns: &str,
        label: String,
        template: impl FnOnce(T) -> Option<corev1::PodTemplateSpec>,
    ) {
        let name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some(obj) = self.typed::<T>(v, &label) {
            let tpl = template(obj).unwrap_or_default();
            let labels = tpl.metadata.and_then(|m| m.labels).unwrap_or_default();
            self.pod(
                ns,
                &name,
                labels,
                tpl.spec.as_ref(),
                Vec::new(),
                Some(format!("{kind}/{name}")),
                &label,
            );
        }
    }

    fn finish(mut self) -> Result<World> {
        if !self.errors.is_empty() {
            return Err(LoadErrors(self.errors).into());
        }
        // Declared namespaces replace the stand-ins of referenced ones.
        for (name, ns) in std::mem::take(&mut self.declared) {
            self.world.declared.push(name);
            self.world.state.apply_namespace(ns);
        }
        let referenced: Vec<String> = self
            .world
            .state
            .namespaces_with_policies()
            .map(str::to_string)
            .collect();
        for ns in referenced {
            self.reference(&ns);
        }
        Ok(self.world)
    }
}

/// A document with `apiVersion` or `kind` is meant as a Kubernetes object
/// (and errors when invalid); a mapping with neither is some other file
/// (`{"foo": 1}`, a `package.json`). A document that is not a mapping stays
/// an error.
fn looks_like_object(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.contains_key("apiVersion") || m.contains_key("kind"),
        _ => true,
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
