#!/usr/bin/env bash
# The tutorial with tierguard, end to end, on a local control plane:
# builds what is missing, starts a real etcd + kube-apiserver and tierguard,
# registers the webhooks, plays the tutorial and its mistakes with kubectl,
# then (as root) plays it again on packets (scripts/dataplane.sh), and tears
# everything down.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { # print a command, run it, show its output; never stop the demo
  printf '\n$ %s\n' "$*"
  "$@" 2>&1 | sed 's/^/  /' || true
}

say "building tierguard (cargo build)"
cargo build --quiet --bin tierguard
TG="$ROOT/target/debug/tierguard"

say "building or reusing the control plane (first build takes several minutes)"
eval "$(tests/control-plane/build.sh | grep -E '^(KUBE_APISERVER|ETCD|KUBECTL)=')"
export KUBE_APISERVER ETCD
# kubectl from PATH, or built with the control plane when there is none.
PATH="$(dirname "$KUBECTL"):$PATH"

DIR="$(mktemp -d -t tierguard-demo-XXXXXX)"
SERVE_PID=""
cleanup() {
  [[ -n "$SERVE_PID" ]] && kill "$SERVE_PID" 2>/dev/null || true
  tests/control-plane/down.sh "$DIR" >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

say "starting etcd and kube-apiserver on 127.0.0.1"
TIERGUARD_CP_APISERVER_ARGS="--disable-admission-plugins=ServiceAccount" tests/control-plane/up.sh "$DIR" 2>&1 | tail -2
export KUBECONFIG="$DIR/kubeconfig"
kubectl create namespace tierguard >/dev/null
kubectl create clusterrolebinding tierguard --clusterrole=cluster-admin --serviceaccount=tierguard:tierguard >/dev/null

PORTS=$(python3 scripts/free_port.py 2); PORT=${PORTS%%$'\n'*}; ADMIN=${PORTS##*$'\n'}
say "the isolation policy as a cluster object: the CRD (tierguard crd) and policies/three-tier.yaml"
"$TG" crd | kubectl apply -f - >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/isolationpolicies.tierguard.io >/dev/null
run kubectl apply -f policies/three-tier.yaml
say "the OpenReports CRDs (github.com/openreports/reports-api, from the Go module proxy): tierguard publishes its findings there"
tests/control-plane/crds.sh openreports 2>/dev/null | while read -r crd; do kubectl apply --server-side -f "$crd" >/dev/null; done
kubectl wait --for=condition=Established --timeout=60s crd/reports.openreports.io crd/clusterreports.openreports.io >/dev/null
say "starting tierguard serve on 127.0.0.1:$PORT (certificates from tierguard certs; --policy-object three-tier)"
"$TG" certs --out "$DIR/certs" --host 127.0.0.1 >/dev/null
"$TG" serve --kubeconfig "$KUBECONFIG" --tls-cert "$DIR/certs/tls.crt" --tls-key "$DIR/certs/tls.key" \
  --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN" --policy-object three-tier \
  --log-format json --drain-seconds 0 --discovery-interval-seconds 1 > "$DIR/tierguard.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$ADMIN/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$ADMIN/readyz" >/dev/null || { cat "$DIR/tierguard.log"; exit 1; }

# deploy/base/webhooks.yaml, with the in-cluster Service swapped for this local URL.
CA=$(base64 -w0 < "$DIR/certs/ca.crt")
sed -E "s#^( *)service: \{name: tierguard, namespace: tierguard, path: (/[a-z]+), port: 443\}#\1url: \"https://127.0.0.1:$PORT\2\"\n\1caBundle: $CA#" \
  deploy/base/webhooks.yaml | kubectl apply -f - >/dev/null

wait_for() { # namespace policy
  for _ in $(seq 1 100); do kubectl get networkpolicy "$2" -n "$1" >/dev/null 2>&1 && return; sleep 0.2; done
}

say "a. the tutorial: create the tier namespaces — no manual labelling"
run kubectl create namespace frontend
run kubectl create namespace backend
run kubectl create namespace database
for ns in frontend backend database; do wait_for "$ns" tierguard-allow-dns; done
run kubectl get namespaces frontend backend database --show-labels
say "   tierguard injected default-deny and DNS into each"
run kubectl get networkpolicy -A
say "   the tutorial's applications and allow policies are admitted"
run kubectl apply -f examples/three-tier/apps.yaml
run kubectl apply -f examples/three-tier/flows.yaml

say "b. the mistakes in examples/three-tier-violations are refused, naming the flow and the rule"
run kubectl apply -f examples/three-tier-violations/01-database-open-to-frontend/apply.yaml
run kubectl apply -f examples/three-tier-violations/02-allow-all-ingress-in-backend/apply.yaml
run kubectl apply -f examples/three-tier-violations/07-selector-on-unprotected-label/apply.yaml
run kubectl apply -f examples/three-tier-violations/08-named-port-opens-every-port/apply.yaml

say "   on a plugin with sig-network's ClusterNetworkPolicy, the same flow opened by an Admin-tier Accept is refused too"
say "   (the network-policy-api CRDs, fetched from the Go module proxy; tierguard finds them without a restart)"
tests/control-plane/crds.sh 2>/dev/null | while read -r crd; do kubectl apply --server-side -f "$crd" >/dev/null; done
kubectl wait --for=condition=Established --timeout=60s crd/clusternetworkpolicies.policy.networking.k8s.io >/dev/null
for _ in $(seq 1 50); do
  kubectl apply --dry-run=server -f examples/three-tier-violations/09-admin-accept-frontend-to-database/apply.yaml 2>&1 | grep -q 'Admin tier' && break
  sleep 0.2
done
run kubectl apply -f examples/three-tier-violations/09-admin-accept-frontend-to-database/apply.yaml

say "c. the baseline, the name label and tier membership are protected"
run kubectl delete networkpolicy tierguard-default-deny -n database
run kubectl apply -f examples/three-tier-violations/04-namespace-claims-name-backend/apply.yaml
run kubectl create namespace analytics
run kubectl create clusterrolebinding alice --clusterrole=cluster-admin --user=alice
run kubectl --as alice label namespace analytics tierguard.io/tier=database

say "d. the policy object: tierguard reports its state, refuses an invalid edit, and puts a valid one in force live"
run kubectl get isolationpolicy
run kubectl patch isolationpolicy three-tier --type merge -p '{"spec":{"mode":"strict"}}'
run kubectl patch isolationpolicy three-tier --type json \
  -p '[{"op":"add","path":"/spec/tiers/-","value":{"name":"cache","namespaces":["cache"]}}]'
run kubectl create namespace cache
wait_for cache tierguard-allow-dns
run kubectl get networkpolicy -n cache
for _ in $(seq 1 60); do # status follows namespaces within 10 s
  kubectl get isolationpolicy three-tier -o jsonpath='{.status.tiers[3].namespaces}' | grep -q cache && break
  sleep 0.5
done
run kubectl get isolationpolicy three-tier -o jsonpath='{range .status.tiers[*]}{.name}: {.namespaces}{"\n"}{end}'

say "e. continuous reports: a Report per tier namespace (OpenReports), rewritten only when a finding changes"
run kubectl get reports.openreports.io -A
say "   in audit mode a mistake is admitted with a warning — and within seconds it is in database's Report"
run kubectl patch isolationpolicy three-tier --type merge -p '{"spec":{"mode":"audit"}}'
for _ in $(seq 1 60); do
  kubectl apply --dry-run=server -f examples/three-tier-violations/01-database-open-to-frontend/apply.yaml >/dev/null 2>&1 && break
  sleep 0.5
done
run kubectl apply -f examples/three-tier-violations/01-database-open-to-frontend/apply.yaml
for _ in $(seq 1 60); do
  [[ "$(kubectl get reports.openreports.io tierguard-three-tier -n database -o jsonpath='{.summary.fail}' 2>/dev/null)" -gt 0 ]] 2>/dev/null && break
  sleep 0.5
done
run kubectl get reports.openreports.io -A
run kubectl get reports.openreports.io tierguard-three-tier -n database -o jsonpath='{range .results[*]}{.result}: {.message}{"\n"}{end}'
say "   the same report without a reports UI: tierguard check --cluster"
run "$TG" check --cluster --policy-object three-tier

say "and offline, the same engine answers \"why?\""
run "$TG" query -f examples/three-tier --from frontend/frontend-app --to database/database-app --port tcp/5432

say "f. on packets: the tutorial again with a real NetworkPolicy data plane"
say "   (kube-router's firewall, pods as network namespaces; scripts/dataplane.sh, also make dataplane)"
if [[ "$(id -u)" -eq 0 ]] && ip netns list >/dev/null 2>&1; then
  scripts/deps.sh iptables ipset conntrack iproute2
  scripts/dataplane.sh 2>&1 | grep -vE '^\[(control-plane|dataplane|up)\]' | sed 's/^/  /' || true
else
  say "   skipped: network namespaces and iptables need root (run make dataplane as root)"
fi

say "done; tearing down"
