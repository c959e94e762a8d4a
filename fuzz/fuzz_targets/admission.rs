//! Structure-aware: an arbitrary AdmissionReview (kinds Namespace,
//! NetworkPolicy, Pod and unexpected ones; operations CREATE, UPDATE,
//! DELETE, CONNECT and junk; objects and old objects built from arbitrary
//! NetworkPolicies, Namespaces and Pods, with selectors of many
//! requirements, sometimes null or malformed) posted to tierguard's real
//! router (`admission::router`, driven by one current-thread tokio runtime)
//! at `/validate` and `/mutate`, against the three-tier example world, once
//! enforcing and once in audit mode.
//!
//! Invariants (src/admission/: request.rs, outcome.rs, validate/, mutate.rs):
//! 1. A body `Request::parse` accepts is answered 200 with an AdmissionReview
//!    whose `response.uid` is the request's uid; any other body gets a 4xx.
//! 2. Audit mode admits everything it answers (refusals become warnings).
//! 3. Enforce mode never admits, on /validate, what tierguard cannot judge:
//!    an unexpected kind; a NetworkPolicy or Namespace CREATE/UPDATE whose
//!    object cannot be read or validated; a Namespace UPDATE without a
//!    readable old object; a NetworkPolicy CONNECT; an UPDATE or DELETE of a
//!    baseline policy's name without a readable old object.
//! 4. /mutate admits, and its only patch (Namespace CREATE/UPDATE) applies to
//!    the object and leaves `name=<namespace>` on it (or the `name` label it
//!    had, left alone: validation refuses a lying one).
//! 5. Memory stays bounded: the metrics exposition does not grow with the
//!    number of distinct requests.

#![no_main]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::http::{Request as HttpRequest, StatusCode};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use tierguard::admission::pool::JudgePool;
use tierguard::admission::request::Request;
use tierguard::admission::{BodyBudget, Ctx, DEFAULT_MAX_BODY, DEFAULT_MAX_INFLIGHT_BODY, router};
use tierguard::engine::tiers::Mode;
use tierguard::index::Index;
use tierguard::model::isolationpolicy;
use tierguard::telemetry::Metrics;
use tierguard::world::World;

const THREE_TIER: &str = include_str!("../../policies/three-tier.yaml");
const EXAMPLE: [&str; 4] = [
    include_str!("../../examples/three-tier/namespaces.yaml"),
    include_str!("../../examples/three-tier/baseline.yaml"),
    include_str!("../../examples/three-tier/flows.yaml"),
    include_str!("../../examples/three-tier/apps.yaml"),
];
const GUARD: &str = "system:serviceaccount:tierguard:tierguard";
const DEFAULT_DENY: &str = "tierguard-default-deny";
const ALLOW_DNS: &str = "tierguard-allow-dns";

struct Fixture {
    rt: tokio::runtime::Runtime,
    enforce: Arc<Ctx>,
    audit: Arc<Ctx>,
    /// The contexts' routers, built once (cloning a router is cheap).
    routers: [axum::Router; 2],
}

fn ctx(mode: Mode) -> Arc<Ctx> {
    let mut policy =
        isolationpolicy::parse(THREE_TIER, "three-tier.yaml").expect("the policy parses");
    policy.mode = mode;
    let world = World::from_text(&EXAMPLE.join("\n---\n"), "examples/three-tier")
        .expect("examples/three-tier loads");
    Arc::new(Ctx {
        policy,
        index: Arc::new(RwLock::new(Index::preloaded(world.state))),
        metrics: Arc::new(Metrics::new()),
        deadline: Duration::from_secs(2),
        max_body: DEFAULT_MAX_BODY,
        baseline_editors: BTreeSet::from([GUARD.to_string()]),
        pod_guard: true,
        pool: JudgePool::new(1),
        bodies: BodyBudget::new(DEFAULT_MAX_INFLIGHT_BODY, DEFAULT_MAX_BODY),
    })
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let enforce = ctx(Mode::Enforce);
        let audit = ctx(Mode::Audit);
        Fixture {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime"),
            routers: [router(enforce.clone(), false), router(audit.clone(), false)],
            enforce,
            audit,
        }
    })
}

// === the input's structure ===

#[derive(Arbitrary, Debug)]
enum Uid {
    Fixed,
    Empty,
    Missing,
    Text(String),
}

#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
enum KindChoice {
    Namespace,
    NetworkPolicy,
    Pod,
    /// Same kind name, another group: not a NetworkPolicy.
    CalicoNetworkPolicy,
    Deployment,
    Secret,
    /// Any group and kind (the webhook's rules should not send them, but
    /// anyone who reaches the webhook can).
    Junk(String, String),
}

#[derive(Arbitrary, Debug)]
enum OpChoice {
    Create,
    Update,
    Delete,
    Connect,
    Lowercase,
    Missing,
    Junk(String),
}

#[derive(Arbitrary, Debug)]
enum NsChoice {
    Frontend,
    Backend,
    Database,
    KubeSystem,
    Fresh,
    Missing,
    Empty,
    Text(String),
}

impl NsChoice {
    fn get(&self) -> Option<String> {
        Some(match self {
            NsChoice::Frontend => "frontend".into(),
            NsChoice::Backend => "backend".into(),
            NsChoice::Database => "database".into(),
            NsChoice::KubeSystem => "kube-system".into(),
            NsChoice::Fresh => "shop".into(),
            NsChoice::Missing => return None,
            NsChoice::Empty => String::new(),
            NsChoice::Text(s) => s.clone(),
        })
    }
}

#[derive(Arbitrary, Debug)]
enum NameChoice {
    DefaultDeny,
    AllowDns,
    AllowFrontend,
    Frontend,
    Backend,
    Database,
    Shop,
    Empty,
    Text(String),
}

impl NameChoice {
    fn get(&self) -> String {
        match self {
            NameChoice::DefaultDeny => DEFAULT_DENY.into(),
            NameChoice::AllowDns => ALLOW_DNS.into(),
            NameChoice::AllowFrontend => "allow-frontend".into(),
            NameChoice::Frontend => "frontend".into(),
            NameChoice::Backend => "backend".into(),
            NameChoice::Database => "database".into(),
            NameChoice::Shop => "shop".into(),
            NameChoice::Empty => String::new(),
            NameChoice::Text(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum UserChoice {
    Alice,
    Guard,
    Master,
    NoUserInfo,
}

#[derive(Arbitrary, Debug)]
enum Key {
    App,
    Role,
    Name,
    MetadataName,
    Tier,
    K8sApp,
    ManagedBy,
    Invalid,
    Text(String),
}

impl Key {
    fn get(&self) -> String {
        match self {
            Key::App => "app".into(),
            Key::Role => "role".into(),
            Key::Name => "name".into(),
            Key::MetadataName => "kubernetes.io/metadata.name".into(),
            Key::Tier => "tierguard.io/tier".into(),
            Key::K8sApp => "k8s-app".into(),
            Key::ManagedBy => "app.kubernetes.io/managed-by".into(),
            Key::Invalid => "-not/a/key-".into(),
            Key::Text(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Val {
    Frontend,
    Backend,
    Database,
    KubeSystem,
    KubeDns,
    Tierguard,
    A,
    Empty,
    Text(String),
}

impl Val {
    fn get(&self) -> String {
        match self {
            Val::Frontend => "frontend".into(),
            Val::Backend => "backend".into(),
            Val::Database => "database".into(),
            Val::KubeSystem => "kube-system".into(),
            Val::KubeDns => "kube-dns".into(),
            Val::Tierguard => "tierguard".into(),
            Val::A => "a".into(),
            Val::Empty => String::new(),
            Val::Text(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum ExprOp {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Junk(String),
}

#[derive(Arbitrary, Debug)]
struct Expr {
    key: Key,
    op: ExprOp,
    values: Option<Vec<Val>>,
}

#[derive(Arbitrary, Debug)]
enum Malformed {
    Number,
    MatchLabelsNotStrings,
    ExpressionsNotAList,
    OperatorNotAString,
}

#[derive(Arbitrary, Debug)]
enum Sel {
    Null,
    Empty,
    Plain {
        match_labels: Vec<(Key, Val)>,
        exprs: Vec<Expr>,
    },
    /// Many requirements on distinct keys, each with many values: shapes
    /// past the limits (256 requirements, 10,000 values) are reachable.
    Huge {
        requirements: u32,
        values: u32,
        op: u8,
    },
    Malformed(Malformed),
}

/// A count below `max` from `x`: one in eight anywhere below `max` (huge
/// shapes, past the limits, stay reachable), the rest below 16, so that a
/// typical input costs microseconds, not the milliseconds of building,
/// serialising and parsing 12,000 values four times.
fn scaled(x: u32, max: usize) -> usize {
    let n = (x >> 3) as usize;
    if x % 8 == 0 { n % max } else { n % 16 }
}

/// What tierguard is certain to refuse to read, if a selector is read.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Flaw {
    None,
    /// Fails validation (operator, values) or the limits.
    Invalid,
    /// Fails deserialisation.
    Unreadable,
}

impl Sel {
    fn json(&self, flaw: &mut Flaw) -> Value {
        match self {
            Sel::Null => Value::Null,
            Sel::Empty => json!({}),
            Sel::Plain {
                match_labels,
                exprs,
            } => {
                let mut out = Map::new();
                if !match_labels.is_empty() {
                    let ml: Map<String, Value> = match_labels
                        .iter()
                        .map(|(k, v)| (k.get(), Value::String(v.get())))
                        .collect();
                    out.insert("matchLabels".into(), Value::Object(ml));
                }
                if !exprs.is_empty() {
                    let list: Vec<Value> = exprs
                        .iter()
                        .map(|e| {
                            let op = match &e.op {
                                ExprOp::In => "In".to_string(),
                                ExprOp::NotIn => "NotIn".to_string(),
                                ExprOp::Exists => "Exists".to_string(),
                                ExprOp::DoesNotExist => "DoesNotExist".to_string(),
                                ExprOp::Junk(s) => s.clone(),
                            };
                            let n = e.values.as_ref().map_or(0, Vec::len);
                            let invalid = match op.as_str() {
                                "In" | "NotIn" => n == 0,
                                "Exists" | "DoesNotExist" => n > 0,
                                _ => true,
                            };
                            if invalid {
                                *flaw = (*flaw).max(Flaw::Invalid);
                            }
                            let mut m = Map::new();
                            m.insert("key".into(), Value::String(e.key.get()));
                            m.insert("operator".into(), Value::String(op));
                            if let Some(vs) = &e.values {
                                m.insert(
                                    "values".into(),
                                    vs.iter().map(|v| Value::String(v.get())).collect(),
                                );
                            }
                            Value::Object(m)
                        })
                        .collect();
                    out.insert("matchExpressions".into(), Value::Array(list));
                }
                Value::Object(out)
            }
            Sel::Huge {
                requirements,
                values,
                op,
            } => {
                let reqs = scaled(*requirements, 400);
                let vals = scaled(*values, 12_000);
                let op = ["In", "NotIn", "Exists", "DoesNotExist"][usize::from(op % 4)];
                let listed = matches!(op, "In" | "NotIn");
                // The values are written only for a listed operator.
                if reqs > 256 || (listed && reqs > 0 && vals > 10_000) {
                    *flaw = (*flaw).max(Flaw::Invalid);
                }
                if listed && vals == 0 && reqs > 0 {
                    *flaw = (*flaw).max(Flaw::Invalid);
                }
                let values: Vec<Value> = if listed {
                    (0..vals).map(|j| Value::String(format!("v{j}"))).collect()
                } else {
                    Vec::new()
                };
                let list: Vec<Value> = (0..reqs)
                    .map(|i| {
                        let mut m = Map::new();
                        m.insert("key".into(), Value::String(format!("k{i}")));
                        m.insert("operator".into(), Value::String(op.into()));
                        if listed {
                            // The long list on the first requirement only:
                            // the rest stay cheap to build.
                            let v = if i == 0 {
                                values.clone()
                            } else {
                                vec![json!("v0")]
                            };
                            m.insert("values".into(), Value::Array(v));
                        }
                        Value::Object(m)
                    })
                    .collect();
                json!({ "matchExpressions": list })
            }
            Sel::Malformed(m) => {
                *flaw = Flaw::Unreadable;
                match m {
                    Malformed::Number => json!(7),
                    Malformed::MatchLabelsNotStrings => json!({"matchLabels": {"app": 5}}),
                    Malformed::ExpressionsNotAList => json!({"matchExpressions": {"key": "a"}}),
                    Malformed::OperatorNotAString => {
                        json!({"matchExpressions": [{"key": "a", "operator": ["In"]}]})
                    }
                }
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Proto {
    Tcp,
    Udp,
    Sctp,
    Missing,
    Junk,
}

#[derive(Arbitrary, Debug)]
enum PortIn {
    Number(Proto, i32),
    Named(Proto, Val),
    Range(Proto, i32, i32),
    ProtocolOnly(Proto),
}

impl PortIn {
    fn json(&self) -> Value {
        let proto = |p: &Proto, m: &mut Map<String, Value>| {
            let s = match p {
                Proto::Tcp => "TCP",
                Proto::Udp => "UDP",
                Proto::Sctp => "SCTP",
                Proto::Junk => "ICMP",
                Proto::Missing => return,
            };
            m.insert("protocol".into(), json!(s));
        };
        let mut m = Map::new();
        match self {
            PortIn::Number(p, n) => {
                proto(p, &mut m);
                m.insert("port".into(), json!(n));
            }
            PortIn::Named(p, v) => {
                proto(p, &mut m);
                m.insert("port".into(), json!(v.get()));
            }
            PortIn::Range(p, a, b) => {
                proto(p, &mut m);
                m.insert("port".into(), json!(a));
                m.insert("endPort".into(), json!(b));
            }
            PortIn::ProtocolOnly(p) => proto(p, &mut m),
        }
        Value::Object(m)
    }
}

#[derive(Arbitrary, Debug)]
enum Cidr {
    Anywhere,
    PodRange,
    Outside,
    V6,
    Junk(String),
}

impl Cidr {
    fn get(&self) -> String {
        match self {
            Cidr::Anywhere => "0.0.0.0/0".into(),
            Cidr::PodRange => "192.168.1.0/24".into(),
            Cidr::Outside => "203.0.113.0/24".into(),
            Cidr::V6 => "::/0".into(),
            Cidr::Junk(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum PeerIn {
    Pods {
        namespaces: Option<Sel>,
        pods: Option<Sel>,
    },
    IpBlock {
        cidr: Cidr,
        except: Vec<Cidr>,
    },
    Nothing,
}

#[derive(Arbitrary, Debug)]
struct RuleIn {
    peers: Option<Vec<PeerIn>>,
    ports: Option<Vec<PortIn>>,
}

impl RuleIn {
    fn json(&self, dir: &str, flaw: &mut Flaw) -> Value {
        let mut m = Map::new();
        if let Some(peers) = &self.peers {
            let list: Vec<Value> = peers
                .iter()
                .map(|p| match p {
                    PeerIn::Pods { namespaces, pods } => {
                        let mut o = Map::new();
                        // Only a deserialisation error is certain here: a
                        // rule of an excluded direction may go unvalidated.
                        let mut f = Flaw::None;
                        if let Some(s) = namespaces {
                            o.insert("namespaceSelector".into(), s.json(&mut f));
                        }
                        if let Some(s) = pods {
                            o.insert("podSelector".into(), s.json(&mut f));
                        }
                        if f == Flaw::Unreadable {
                            *flaw = Flaw::Unreadable;
                        }
                        Value::Object(o)
                    }
                    PeerIn::IpBlock { cidr, except } => json!({"ipBlock": {
                        "cidr": cidr.get(),
                        "except": except.iter().map(Cidr::get).collect::<Vec<_>>(),
                    }}),
                    PeerIn::Nothing => json!({}),
                })
                .collect();
            m.insert(dir.into(), Value::Array(list));
        }
        if let Some(ports) = &self.ports {
            m.insert(
                "ports".into(),
                ports.iter().map(PortIn::json).collect::<Vec<_>>().into(),
            );
        }
        Value::Object(m)
    }
}

#[derive(Arbitrary, Debug)]
enum PolicyType {
    Ingress,
    Egress,
    Junk,
}

#[derive(Arbitrary, Debug)]
enum SpecIn {
    Missing,
    NotAnObject,
    Spec {
        pod_selector: Option<Sel>,
        policy_types: Option<Vec<PolicyType>>,
        ingress: Option<Vec<RuleIn>>,
        egress: Option<Vec<RuleIn>>,
    },
}

#[derive(Arbitrary, Debug)]
enum MetaName {
    Request,
    Other(NameChoice),
    Missing,
}

#[derive(Arbitrary, Debug)]
struct Meta {
    name: MetaName,
    namespace: Option<NsChoice>,
    labels: Option<Vec<(Key, Val)>>,
    managed: bool,
}

impl Meta {
    /// The metadata, and whether it has a name.
    fn json(&self, request_name: &str) -> (Value, bool) {
        let mut m = Map::new();
        let named = match &self.name {
            MetaName::Request => {
                m.insert("name".into(), json!(request_name));
                true
            }
            MetaName::Other(n) => {
                m.insert("name".into(), json!(n.get()));
                true
            }
            MetaName::Missing => false,
        };
        if let Some(ns) = self.namespace.as_ref().and_then(NsChoice::get) {
            m.insert("namespace".into(), json!(ns));
        }
        let mut labels: Option<Map<String, Value>> = self
            .labels
            .as_ref()
            .map(|l| l.iter().map(|(k, v)| (k.get(), json!(v.get()))).collect());
        if self.managed {
            labels
                .get_or_insert_default()
                .insert("app.kubernetes.io/managed-by".into(), json!("tierguard"));
        }
        if let Some(l) = labels {
            m.insert("labels".into(), Value::Object(l));
        }
        (Value::Object(m), named)
    }
}

#[derive(Arbitrary, Debug)]
enum Obj {
    Missing,
    Null,
    NetworkPolicy {
        meta: Meta,
        spec: SpecIn,
    },
    Namespace {
        meta: Meta,
        spec_not_an_object: bool,
    },
    Pod {
        meta: Meta,
        ports: Vec<(Val, u16)>,
    },
}

/// What the target knows of an object it built.
struct Built {
    json: Option<Value>,
    /// Certain to be unreadable or invalid as a NetworkPolicy.
    bad_policy: bool,
    /// Certain to be unreadable as a NetworkPolicy (an old object needs only
    /// to be read: whether it is managed is all that is used).
    unreadable_policy: bool,
    /// Certain to be unreadable as a Namespace, or nameless (a new object
    /// must name its namespace).
    bad_namespace: bool,
    /// Certain to be unreadable as a Namespace (an old object needs only to
    /// be read: its tier label is all that is used).
    unreadable_namespace: bool,
}

impl Obj {
    fn build(&self, request_name: &str) -> Built {
        match self {
            Obj::Missing => Built {
                json: None,
                bad_policy: true,
                unreadable_policy: true,
                bad_namespace: true,
                unreadable_namespace: true,
            },
            Obj::Null => Built {
                json: Some(Value::Null),
                bad_policy: true,
                unreadable_policy: true,
                bad_namespace: true,
                unreadable_namespace: true,
            },
            Obj::NetworkPolicy { meta, spec } => {
                let (meta, _) = meta.json(request_name);
                let mut flaw = Flaw::None;
                let mut o = Map::new();
                o.insert("apiVersion".into(), json!("networking.k8s.io/v1"));
                o.insert("kind".into(), json!("NetworkPolicy"));
                o.insert("metadata".into(), meta);
                match spec {
                    SpecIn::Missing => {}
                    SpecIn::NotAnObject => {
                        flaw = Flaw::Unreadable;
                        o.insert("spec".into(), json!("spec"));
                    }
                    SpecIn::Spec {
                        pod_selector,
                        policy_types,
                        ingress,
                        egress,
                    } => {
                        let mut s = Map::new();
                        if let Some(sel) = pod_selector {
                            // The pod selector is always validated.
                            s.insert("podSelector".into(), sel.json(&mut flaw));
                        }
                        if let Some(types) = policy_types {
                            let t: Vec<Value> = types
                                .iter()
                                .map(|t| match t {
                                    PolicyType::Ingress => json!("Ingress"),
                                    PolicyType::Egress => json!("Egress"),
                                    PolicyType::Junk => json!("Sideways"),
                                })
                                .collect();
                            s.insert("policyTypes".into(), Value::Array(t));
                        }
                        for (dir, peer, rules) in
                            [("ingress", "from", ingress), ("egress", "to", egress)]
                        {
                            if let Some(rules) = rules {
                                let r: Vec<Value> =
                                    rules.iter().map(|r| r.json(peer, &mut flaw)).collect();
                                s.insert(dir.into(), Value::Array(r));
                            }
                        }
                        o.insert("spec".into(), Value::Object(s));
                    }
                }
                Built {
                    json: Some(Value::Object(o)),
                    bad_policy: flaw != Flaw::None,
                    unreadable_policy: flaw == Flaw::Unreadable,
                    bad_namespace: false,
                    unreadable_namespace: false,
                }
            }
            Obj::Namespace {
                meta,
                spec_not_an_object,
            } => {
                let (meta, named) = meta.json(request_name);
                let spec = if *spec_not_an_object {
                    json!(["kubernetes"])
                } else {
                    json!({"finalizers": ["kubernetes"]})
                };
                Built {
                    json: Some(json!({"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": meta, "spec": spec})),
                    bad_policy: false,
                    unreadable_policy: false,
                    bad_namespace: *spec_not_an_object || !named,
                    unreadable_namespace: *spec_not_an_object,
                }
            }
            Obj::Pod { meta, ports } => {
                let (meta, _) = meta.json(request_name);
                let ports: Vec<Value> = ports
                    .iter()
                    .map(|(n, p)| json!({"name": n.get(), "containerPort": p}))
                    .collect();
                Built {
                    json: Some(json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                        "spec": {"containers": [{"name": "c", "image": "i", "ports": ports}]}})),
                    bad_policy: false,
                    unreadable_policy: false,
                    bad_namespace: false,
                    unreadable_namespace: false,
                }
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    uid: Uid,
    kind: KindChoice,
    operation: OpChoice,
    namespace: NsChoice,
    name: NameChoice,
    user: UserChoice,
    dry_run: bool,
    object: Obj,
    old_object: Obj,
}

#[derive(PartialEq, Eq)]
enum Operation {
    Create,
    Update,
    Delete,
    Connect,
    Other,
}

struct Case {
    body: Vec<u8>,
    uid: Option<String>,
    kind: KindChoice,
    operation: Operation,
    name: String,
    object: Built,
    old: Built,
}

fn build(input: &Input) -> Case {
    let (group, version, kind, resource) = match &input.kind {
        KindChoice::Namespace => ("", "v1", "Namespace", "namespaces"),
        KindChoice::NetworkPolicy => (
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
        ),
        KindChoice::Pod => ("", "v1", "Pod", "pods"),
        KindChoice::CalicoNetworkPolicy => (
            "crd.projectcalico.org",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
        ),
        KindChoice::Deployment => ("apps", "v1", "Deployment", "deployments"),
        KindChoice::Secret => ("", "v1", "Secret", "secrets"),
        KindChoice::Junk(g, k) => (g.as_str(), "v1", k.as_str(), "junk"),
    };
    let name = input.name.get();
    let uid = match &input.uid {
        Uid::Fixed => Some("705ab4f5-6393-11e8-b7cc-42010a800002".to_string()),
        Uid::Empty => Some(String::new()),
        Uid::Missing => None,
        Uid::Text(s) => Some(s.clone()),
    };
    let (op, operation) = match &input.operation {
        OpChoice::Create => (Some("CREATE".to_string()), Operation::Create),
        OpChoice::Update => (Some("UPDATE".to_string()), Operation::Update),
        OpChoice::Delete => (Some("DELETE".to_string()), Operation::Delete),
        OpChoice::Connect => (Some("CONNECT".to_string()), Operation::Connect),
        OpChoice::Lowercase => (Some("create".to_string()), Operation::Other),
        OpChoice::Missing => (None, Operation::Other),
        OpChoice::Junk(s) => {
            let o = match s.as_str() {
                "CREATE" => Operation::Create,
                "UPDATE" => Operation::Update,
                "DELETE" => Operation::Delete,
                "CONNECT" => Operation::Connect,
                _ => Operation::Other,
            };
            (Some(s.clone()), o)
        }
    };
    let object = input.object.build(&name);
    let old = input.old_object.build(&name);
    let mut req = Map::new();
    if let Some(u) = &uid {
        req.insert("uid".into(), json!(u));
    }
    req.insert(
        "kind".into(),
        json!({"group": group, "version": version, "kind": kind}),
    );
    req.insert(
        "resource".into(),
        json!({"group": group, "version": version, "resource": resource}),
    );
    req.insert("name".into(), json!(name));
    if let Some(ns) = input.namespace.get() {
        req.insert("namespace".into(), json!(ns));
    }
    if let Some(op) = op {
        req.insert("operation".into(), json!(op));
    }
    match input.user {
        UserChoice::Alice => {
            req.insert(
                "userInfo".into(),
                json!({"username": "alice", "groups": ["dev"]}),
            );
        }
        UserChoice::Guard => {
            req.insert("userInfo".into(), json!({"username": GUARD}));
        }
        UserChoice::Master => {
            req.insert(
                "userInfo".into(),
                json!({"username": "root", "groups": ["system:masters"]}),
            );
        }
        UserChoice::NoUserInfo => {
            req.insert("userInfo".into(), json!({}));
        }
    }
    if let Some(o) = &object.json {
        req.insert("object".into(), o.clone());
    }
    if let Some(o) = &old.json {
        req.insert("oldObject".into(), o.clone());
    }
    req.insert("dryRun".into(), json!(input.dry_run));
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                        "request": Value::Object(req)});
    Case {
        body: serde_json::to_vec(&review).expect("a Value serialises"),
        uid,
        kind: match &input.kind {
            // A junk kind that spells a judged one is judged as that one.
            KindChoice::Junk(g, k) => match (g.as_str(), k.as_str()) {
                ("", "Namespace") => KindChoice::Namespace,
                ("networking.k8s.io", "NetworkPolicy") => KindChoice::NetworkPolicy,
                ("", "Pod") => KindChoice::Pod,
                _ => input.kind.clone(),
            },
            k => k.clone(),
        },
        operation,
        name,
        object,
        old,
    }
}

async fn post(router: &axum::Router, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    use tower::ServiceExt;
    let req = HttpRequest::post(path)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Body::from(body))
        .expect("request");
    let resp = router
        .clone()
        .oneshot(req)
        .await
        .expect("the router is infallible");
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .expect("an in-memory body")
        .to_bytes()
        .to_vec();
    (status, bytes)
}

/// Invariant 1: the answer's shape; returns the `response` object when the
/// body was a request.
fn answer(case: &Case, parsed: bool, status: StatusCode, body: &[u8]) -> Option<Value> {
    if !parsed {
        assert!(
            status.is_client_error(),
            "an unparsable review answered {status}: {}",
            String::from_utf8_lossy(body)
        );
        return None;
    }
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(body));
    let v: Value = serde_json::from_slice(body).expect("the answer is JSON");
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1", "{v}");
    assert_eq!(v["kind"], "AdmissionReview", "{v}");
    let uid = case.uid.as_deref().expect("a parsed request has a uid");
    assert_eq!(v["response"]["uid"], uid, "{v}");
    assert!(v["response"]["allowed"].is_boolean(), "{v}");
    Some(v["response"].clone())
}

/// Invariant 3: what enforce mode must not admit on /validate.
fn must_refuse(case: &Case) -> Option<&'static str> {
    use Operation::*;
    let writes = matches!(case.operation, Create | Update);
    match case.kind {
        // Calico policies are judged by what may apply to tier pods
        // (tests/admission_calico.rs); no simpler rule holds for them here.
        KindChoice::Deployment | KindChoice::Secret | KindChoice::Junk(..) => {
            Some("an unexpected kind")
        }
        KindChoice::NetworkPolicy if case.operation == Connect => Some("CONNECT"),
        KindChoice::NetworkPolicy
            if matches!(case.operation, Update | Delete)
                && [DEFAULT_DENY, ALLOW_DNS].contains(&case.name.as_str())
                && case.old.unreadable_policy =>
        {
            Some("a baseline change without a readable old object")
        }
        KindChoice::NetworkPolicy if writes && case.object.bad_policy => {
            Some("an unreadable or invalid NetworkPolicy")
        }
        KindChoice::Namespace if writes && case.object.bad_namespace => {
            Some("an unreadable Namespace")
        }
        KindChoice::Namespace if case.operation == Update && case.old.unreadable_namespace => {
            Some("a Namespace UPDATE without a readable old object")
        }
        _ => None,
    }
}

/// Invariant 4: the mutation's patch.
fn check_patch(case: &Case, resp: &Value) {
    assert_eq!(resp["allowed"], true, "mutation never refuses: {resp}");
    let Some(patch) = resp.get("patch").filter(|p| !p.is_null()) else {
        return;
    };
    assert!(
        case.kind == KindChoice::Namespace
            && matches!(case.operation, Operation::Create | Operation::Update),
        "a patch for another request: {resp}"
    );
    assert_eq!(resp["patchType"], "JSONPatch", "{resp}");
    // kube writes the patch's bytes as a list of numbers; base64 text is
    // what the API reference shows: accept both.
    let bytes: Vec<u8> = match patch {
        Value::Array(list) => list
            .iter()
            .map(|b| {
                b.as_u64()
                    .and_then(|b| u8::try_from(b).ok())
                    .expect("the patch is bytes")
            })
            .collect(),
        _ => {
            use base64::Engine as _;
            let s = patch.as_str().expect("the patch is bytes or base64 text");
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .expect("the patch is base64")
        }
    };
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("a JSON patch");
    let mut obj = case
        .object
        .json
        .clone()
        .expect("a patched request has an object");
    let before = obj["metadata"]["labels"]["name"].clone();
    json_patch::patch(&mut obj, &patch).expect("the patch applies to the object");
    let name = obj["metadata"]["name"]
        .as_str()
        .map_or(case.name.clone(), str::to_string);
    if before.is_null() {
        assert_eq!(obj["metadata"]["labels"]["name"], name, "{obj}");
    } else {
        // A `name` label already there is left alone (validation refuses a
        // lying one); the patch may still set the tier stamp.
        assert_eq!(obj["metadata"]["labels"]["name"], before, "{obj}");
    }
}

fn check_metrics(ctx: &Ctx) {
    let text = ctx.metrics.render().expect("metrics render");
    assert!(
        text.len() < 256 * 1024,
        "the metrics grew to {} bytes:\n{}",
        text.len(),
        &text[..text.len().min(4096)]
    );
}

static RUNS: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|input: Input| {
    let f = fixture();
    let case = build(&input);
    let parsed = Request::parse(&case.body).is_ok();
    f.rt.block_on(async {
        for (router, audit) in [(&f.routers[0], false), (&f.routers[1], true)] {
            let (status, body) = post(router, "/validate", case.body.clone()).await;
            if let Some(resp) = answer(&case, parsed, status, &body) {
                if audit {
                    assert_eq!(resp["allowed"], true, "audit admits: {resp}");
                } else if let Some(why) = must_refuse(&case) {
                    assert_eq!(resp["allowed"], false, "enforce admitted {why}: {resp}");
                }
            }
            let (status, body) = post(router, "/mutate", case.body.clone()).await;
            if let Some(resp) = answer(&case, parsed, status, &body) {
                check_patch(&case, &resp);
            }
        }
    });
    if RUNS.fetch_add(1, Ordering::Relaxed) % 20_000 == 0 {
        check_metrics(&f.enforce);
        check_metrics(&f.audit);
    }
});
