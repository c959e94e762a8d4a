#!/usr/bin/env bash
# The API-server benchmark (issue: judging must not grow with a namespace's
# policy count, measured where users feel it). Starts a real etcd +
# kube-apiserver (tests/control-plane/) and a release `tierguard serve
# --bench-noop`, sets up the tutorial, preloads PRELOAD NetworkPolicies into
# tier namespace backend and MEMBERS namespaces into tier backend by label,
# then runs scripts/apibench.py: N NetworkPolicy CREATEs and NS_N Namespace
# CREATEs per round at CONCURRENCY, with no webhook, a no-op webhook and
# tierguard, alternating, ROUNDS rounds. Results: docs/benchmarks.md.
#
#   make bench-api                 # defaults: PRELOAD=1000 MEMBERS=300 N=200 NS_N=100 ROUNDS=3 CONCURRENCY=4
#   N=100 ROUNDS=2 make bench-api
#   TG_BIN=target/debug/tierguard PRELOAD=20 MEMBERS=5 N=10 NS_N=5 ROUNDS=1 scripts/apibench.sh   # a quick try
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# TG_BIN: a tierguard binary to use instead of building the release one.
TG="${TG_BIN:-}"
if [[ -z "$TG" ]]; then
  cargo build --release --quiet --bin tierguard
  TG="$ROOT/target/release/tierguard"
fi
eval "$(tests/control-plane/build.sh | grep -E '^(KUBE_APISERVER|ETCD|KUBECTL)=')"
export KUBE_APISERVER ETCD KUBECTL
PATH="$(dirname "$KUBECTL"):$PATH"

DIR="$(mktemp -d -t tierguard-apibench-XXXXXX)"
SERVE_PID=""
cleanup() {
  [[ -n "$SERVE_PID" ]] && kill "$SERVE_PID" 2>/dev/null || true
  cp "$DIR/tierguard.log" "$ROOT/target/apibench-tierguard.log" 2>/dev/null || true
  tests/control-plane/down.sh "$DIR" >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

TIERGUARD_CP_APISERVER_ARGS="--disable-admission-plugins=ServiceAccount --max-requests-inflight=1000 --max-mutating-requests-inflight=1000" \
  tests/control-plane/up.sh "$DIR" 2>&1 | tail -1
export KUBECONFIG="$DIR/kubeconfig"
# shellcheck disable=SC1091
set -a; source "$DIR/env"; set +a
kubectl create namespace tierguard >/dev/null
kubectl create clusterrolebinding tierguard --clusterrole=cluster-admin --serviceaccount=tierguard:tierguard >/dev/null

PORTS=$(python3 scripts/free_port.py 2); PORT=${PORTS%%$'\n'*}; ADMIN=${PORTS##*$'\n'}
"$TG" certs --out "$DIR/certs" --host 127.0.0.1 >/dev/null
RUST_LOG="${RUST_LOG:-warn}" "$TG" serve --kubeconfig "$KUBECONFIG" --tls-cert "$DIR/certs/tls.crt" --tls-key "$DIR/certs/tls.key" \
  --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN" --policy policies/three-tier.yaml \
  --log-format json --drain-seconds 0 --bench-noop > "$DIR/tierguard.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$ADMIN/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$ADMIN/readyz" >/dev/null || { cat "$DIR/tierguard.log"; exit 1; }

# The tutorial with tierguard's own webhooks (as make demo does): the tier
# namespaces get name=<ns> and their baseline.
CA=$(base64 -w0 < "$DIR/certs/ca.crt")
sed -E "s#^( *)service: \{name: tierguard, namespace: tierguard, path: (/[a-z]+), port: 443\}#\1url: \"https://127.0.0.1:$PORT\2\"\n\1caBundle: $CA#" \
  deploy/base/webhooks.yaml | kubectl apply -f - >/dev/null
kubectl apply -f examples/three-tier/namespaces.yaml >/dev/null
for ns in frontend backend database; do
  for _ in $(seq 1 100); do kubectl get networkpolicy tierguard-allow-dns -n "$ns" >/dev/null 2>&1 && break; sleep 0.2; done
done
kubectl apply -f examples/three-tier/flows.yaml >/dev/null
# apibench.py preloads with tierguard's webhooks in place (joining a tier
# needs the mutating webhook's stamp), then removes them: the rounds
# register their own validating webhooks with the same rules (the
# NetworkPolicy and Namespace ones), one webhook in the path per mode.

TG_PORT=$PORT TG_CA_B64=$CA python3 scripts/apibench.py
echo "tierguard's own handler time (tierguard_admission_duration_seconds):"
curl -fsS "http://127.0.0.1:$ADMIN/metrics" | grep -E '^tierguard_admission_duration_seconds_(sum|count)' || true
