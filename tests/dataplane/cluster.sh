# A one-node cluster with a real data plane, for tierguard's packet tests;
# sourced, not run (scripts/dataplane.sh, tests/dataplane/diff.sh).
#
# In a "node" network namespace (net.sh): a real etcd + kube-apiserver
# (tests/control-plane), optionally tierguard with its webhooks registered,
# and kube-router's network policy firewall (build.sh) for the Node object
# this file registers, as a kubelet would. Pods are Pod objects bound to the
# node, each with a network namespace, the status a kubelet would report, and
# `peer serve` as its workload. Needs root.
#
# Set before sourcing: ROOT (the repository); optionally TIERGUARD_BIN. Provides dp_cluster_up,
# dp_pod, dp_attempt, k (kubectl against the cluster), $DIR, $FAILED.

die() { printf '[dataplane] ERROR: %s\n' "$*" >&2; exit 1; }
[[ "$(id -u)" -eq 0 ]] || die "needs root (network namespaces and iptables)"
for c in ip iptables ipset; do command -v "$c" >/dev/null || die "$c not found (scripts/deps.sh installs it)"; done

# $TIERGUARD_BIN: a tierguard binary to use (cargo test passes its own,
# whose features differ from a plain `cargo build`'s).
if [[ -n "${TIERGUARD_BIN:-}" ]]; then
  TG="$TIERGUARD_BIN"
else
  cargo build --quiet --bin tierguard
  TG="$ROOT/target/debug/tierguard"
fi
built="$("$ROOT/tests/control-plane/build.sh")" || die "tests/control-plane/build.sh failed"
eval "$(grep -E '^(KUBE_APISERVER|ETCD|KUBECTL)=' <<< "$built")"
export KUBE_APISERVER ETCD
built="$("$ROOT/tests/dataplane/build.sh")" || die "tests/dataplane/build.sh failed"
eval "$built"

export DP_PREFIX="tgdp$$"
# shellcheck source=net.sh
source "$ROOT/tests/dataplane/net.sh"
DIR="$(mktemp -d -t tierguard-dataplane-XXXXXX)"
NODE_IP=10.88.0.1
NODE=node-1
FAILED=0

dp_cleanup() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then
    for f in tierguard.log kube-router.log; do
      [[ -f "$DIR/$f" ]] && { echo "--- last lines of $DIR/$f" >&2; tail -n 40 "$DIR/$f" >&2; }
    done
  fi
  if [[ "${DP_KEEP:-0}" == 1 ]]; then
    dp_log "DP_KEEP=1: namespaces ${DP_PREFIX}-* and $DIR are left in place"
    return
  fi
  ip netns exec "$DP_NODE" "$ROOT/tests/control-plane/down.sh" "$DIR" >/dev/null 2>&1 || true
  dp_destroy
  rm -rf "$DIR"
}
trap dp_cleanup EXIT

k() { ip netns exec "$DP_NODE" "$KUBECTL" --kubeconfig "$DIR/kubeconfig" "$@"; }

# dp_cluster_up [tierguard]: the control plane, the Node and kube-router; with
# "tierguard", tierguard serve (policies/three-tier.yaml) and its webhooks too.
dp_cluster_up() {
  dp_node_create "$NODE_IP"
  TIERGUARD_CP_APISERVER_ARGS="--disable-admission-plugins=ServiceAccount" \
    ip netns exec "$DP_NODE" "$ROOT/tests/control-plane/up.sh" "$DIR" 2>&1 | tail -n 1
  if [[ "${1:-}" == tierguard ]]; then
    k create namespace tierguard >/dev/null
    k create clusterrolebinding tierguard --clusterrole=cluster-admin --serviceaccount=tierguard:tierguard >/dev/null
    local port=8443 admin=8081 ca
    "$TG" certs --out "$DIR/certs" --host 127.0.0.1 >/dev/null
    ip netns exec "$DP_NODE" "$TG" serve --kubeconfig "$DIR/kubeconfig" \
      --tls-cert "$DIR/certs/tls.crt" --tls-key "$DIR/certs/tls.key" \
      --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" --policy "$ROOT/policies/three-tier.yaml" \
      --log-format json --drain-seconds 0 > "$DIR/tierguard.log" 2>&1 &
    for _ in $(seq 1 100); do
      ip netns exec "$DP_NODE" curl -fsS "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break
      sleep 0.2
    done
    ip netns exec "$DP_NODE" curl -fsS "http://127.0.0.1:$admin/readyz" >/dev/null || die "tierguard not ready"
    ca=$(base64 -w0 < "$DIR/certs/ca.crt")
    sed -E "s#^( *)service: \{name: tierguard, namespace: tierguard, path: (/[a-z]+), port: 443\}#\1url: \"https://127.0.0.1:$port\2\"\n\1caBundle: $ca#" \
      "$ROOT/deploy/base/webhooks.yaml" | k apply -f - >/dev/null
  fi
  # The Node, as a kubelet would register it (there is none).
  k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata: {name: $NODE, labels: {kubernetes.io/hostname: $NODE}}
spec: {podCIDR: 10.89.0.0/16, podCIDRs: [10.89.0.0/16]}
YAML
  k patch node "$NODE" --subresource=status --type=merge -p \
    "{\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"$NODE_IP\"},{\"type\":\"Hostname\",\"address\":\"$NODE\"}]}}" >/dev/null
  # NODE_NAME: v2.1.0 looks the Node up by NODE_NAME, then the machine's
  # hostname, and only then --hostname-override.
  NODE_NAME="$NODE" ip netns exec "$DP_NODE" "$KUBE_ROUTER" --kubeconfig "$DIR/kubeconfig" --hostname-override "$NODE" \
    --run-firewall=true --run-router=false --run-service-proxy=false --enable-cni=false \
    --enable-ipv6=false --health-port=0 --metrics-port=0 --iptables-sync-period=2s \
    --service-cluster-ip-range=10.0.0.0/24 -v 1 > "$DIR/kube-router.log" 2>&1 &
  KR_PID=$!
}

# dp_pod NAMESPACE NAME IP LABELS CONTAINER-PORTS SERVE-ARGS...: a Pod object
# bound to the node (LABELS and CONTAINER-PORTS in YAML flow style), its
# network namespace, its status as a kubelet would report it, and its
# workload (peer serve SERVE-ARGS) listening.
declare -A DP_IP
dp_pod() {
  local ns="$1" name="$2" ip="$3" labels="$4" ports="$5"; shift 5
  dp_pod_create "$name" "$ip"
  k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $name, namespace: $ns, labels: $labels}
spec:
  nodeName: $NODE
  containers: [{name: app, image: tierguard.test/peer, ports: $ports}]
YAML
  k patch pod "$name" -n "$ns" --subresource=status --type=merge -p \
    "{\"status\":{\"phase\":\"Running\",\"hostIP\":\"$NODE_IP\",\"hostIPs\":[{\"ip\":\"$NODE_IP\"}],\"podIP\":\"$ip\",\"podIPs\":[{\"ip\":\"$ip\"}],\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}" >/dev/null
  dp_serve "$name" "$ns/$name" "$@"
  DP_IP[$name]="$ip"
}

# dp_serve NAME GREETING SERVE-ARGS...: peer serve in NAME's namespace, waited for.
dp_serve() {
  local name="$1" greeting="$2"; shift 2
  dp_in "$name" "$PEER" serve -name "$greeting" "$@" > "$DIR/peer-$name.log" 2>&1 &
  for _ in $(seq 1 50); do grep -q '^ready' "$DIR/peer-$name.log" 2>/dev/null && return; sleep 0.1; done
  die "peer in $name did not start: $(cat "$DIR/peer-$name.log")"
}

# dp_attempt FROM KIND(tcp|udp|dns) ADDRESS PORT: 0 when the connection got
# through (the server's greeting, its echo, or a DNS answer).
dp_attempt() {
  local from="$1" kind="$2" addr="$3:$4"
  case "$kind" in
    tcp) dp_in "$from" "$PEER" connect -timeout 700ms "$addr" ;;
    udp) dp_in "$from" "$PEER" connect -udp -timeout 700ms "$addr" ;;
    dns) dp_in "$from" "$PEER" dns -timeout 700ms "$addr" backend-service.backend.svc.cluster.local ;;
  esac >/dev/null 2>&1
}

# dp_expect open|closed FROM KIND TO PORT: the firewall applies changes within
# seconds, so a check waits up to 30 s for the expected state, then must see
# it three times in a row. Prints a line; a miss sets FAILED=1.
dp_expect() {
  local want="$1" from="$2" kind="$3" to="$4" port="$5" got streak=0 t0=$SECONDS
  while (( SECONDS - t0 < 30 )); do
    if dp_attempt "$from" "$kind" "${DP_IP[$to]}" "$port"; then got=open; else got=closed; fi
    if [[ $got == "$want" ]]; then
      streak=$((streak + 1)); (( streak == 3 )) && break
    else
      streak=0; sleep 0.5
    fi
  done
  if (( streak == 3 )); then
    printf '  ok    %-12s -> %-14s %s/%s is %s\n' "$from" "$to" "$kind" "$port" "$want"
  else
    printf '  FAIL  %-12s -> %-14s %s/%s should be %s, is %s\n' "$from" "$to" "$kind" "$port" "$want" "$got"
    FAILED=1
  fi
}

# dp_wait_synced: wait until two full syncs of kube-router have started since
# now and none is running (the second began after every change made before
# the call had reached it), and fail on a sync it aborted.
dp_wait_synced() {
  local s0 t0=$SECONDS log="$DIR/kube-router.log"
  s0=$(grep -c 'Starting sync of iptables' "$log" || true)
  until (( $(grep -c 'Starting sync of iptables' "$log" || true) >= s0 + 2 )) \
        && (( $(grep -c 'sync iptables took' "$log" || true) >= $(grep -c 'Starting sync of iptables' "$log" || true) )); do
    (( SECONDS - t0 < 60 )) || die "kube-router did not sync within 60 s"
    kill -0 "$KR_PID" 2>/dev/null || die "kube-router exited"
    sleep 0.2
  done
  if grep -q 'Aborting sync' "$log"; then
    grep 'Aborting sync' "$log" | tail -n 3 >&2
    die "kube-router aborted a sync"
  fi
}

# dp_cluster_down: stop kube-router, tierguard and the control plane and
# delete every namespace of this run (dp_cluster_up may then run again).
dp_cluster_down() {
  # kube-router's and tierguard's watches first: the API server then stops at once.
  ip netns pids "$DP_NODE" 2>/dev/null | while read -r pid; do
    grep -qxE 'kube-router|tierguard' "/proc/$pid/comm" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
  done || true
  sleep 0.5
  ip netns exec "$DP_NODE" "$ROOT/tests/control-plane/down.sh" "$DIR" >/dev/null 2>&1 || true
  dp_destroy
  DP_IFINDEX=0
  DP_IP=()
}
