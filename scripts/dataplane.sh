#!/usr/bin/env bash
# The tutorial on packets: a real kube-apiserver + etcd, tierguard, and
# kube-router's network policy firewall in a "node" network namespace, pods as
# network namespaces (tests/dataplane/net.sh), and the tutorial's checks as
# real TCP and UDP connections. Exits non-zero when any connection is not as
# the tutorial says, or when a refused mistake is admitted or opens its flow.
# Needs root (network namespaces, iptables); builds what is missing.
#
#   make dataplane             # scripts/deps.sh, then this script
#   DP_KEEP=1 scripts/dataplane.sh   # leave the namespaces and logs for a look
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# shellcheck source=../tests/dataplane/cluster.sh
source tests/dataplane/cluster.sh

say "control plane, tierguard and kube-router's firewall in the node namespace $DP_NODE"
dp_cluster_up tierguard

say "the tutorial's namespaces, created plainly: tierguard labels them and injects the baseline"
for ns in frontend backend database; do k create namespace "$ns" >/dev/null; done
for ns in frontend backend database; do
  for _ in $(seq 1 100); do k get networkpolicy tierguard-allow-dns -n "$ns" >/dev/null 2>&1 && break; sleep 0.2; done
done
k get namespaces frontend backend database --show-labels
k get networkpolicy -A

say "the tutorial's pods (network namespaces running a TCP/UDP server) and a DNS responder in kube-system"
HTTP='[{name: http, containerPort: 80}]'
dp_pod kube-system coredns 10.89.0.10 '{k8s-app: kube-dns}' '[{name: dns, containerPort: 53, protocol: UDP}]' -udp 53 -dns
dp_pod frontend frontend-app 10.89.0.11 '{app: frontend, tier: web}' "$HTTP" -tcp 80,8080
dp_pod backend backend-app 10.89.0.12 '{app: backend, tier: api}' "$HTTP" -tcp 80,8080
dp_pod database database-app 10.89.0.13 '{app: database, tier: data}' '[{name: postgres, containerPort: 5432}]' -tcp 5432,80
# "outside": a client that is not a pod (an address outside the pod network).
dp_pod_create outside 192.0.2.10
k get pods -A -o wide

# Every server answers its own node (the reference: a pod's node may always
# reach it), so a closed flow below is the firewall's doing, not a dead server.
say "each server answers from its node (positive controls)"
dp_expect open node tcp frontend-app 80
dp_expect open node tcp backend-app 80
dp_expect open node tcp database-app 5432
dp_expect open node dns coredns 53

tutorial_checks() {
  dp_expect closed frontend-app tcp database-app 5432   # "this should fail"
  dp_expect closed outside tcp database-app 5432
  dp_expect closed outside tcp backend-app 80
  dp_expect closed frontend-app tcp backend-app 8080
  dp_expect closed database-app tcp frontend-app 80
  dp_expect closed backend-app tcp frontend-app 80
}

say "the baseline alone: every tier pod isolated, DNS allowed"
tutorial_checks
dp_expect closed frontend-app tcp backend-app 80
dp_expect closed backend-app tcp database-app 5432
dp_expect open frontend-app dns coredns 53
dp_expect open backend-app dns coredns 53
dp_expect open database-app dns coredns 53

say "the tutorial's allow policies are admitted"
k apply -f examples/three-tier/flows.yaml
dp_expect open frontend-app tcp backend-app 80        # "this should work"
dp_expect open backend-app tcp database-app 5432
dp_expect open outside tcp frontend-app 80
dp_expect open frontend-app dns coredns 53
dp_expect open backend-app dns coredns 53
dp_expect open database-app dns coredns 53
tutorial_checks

say "the mistakes are refused, and their flows stay closed"
for case in 01-database-open-to-frontend 02-allow-all-ingress-in-backend 05-database-open-to-internet \
            06-frontend-to-database-pair 07-selector-on-unprotected-label 08-named-port-opens-every-port; do
  if out="$(k apply -f "examples/three-tier-violations/$case/apply.yaml" 2>&1)"; then
    printf '  FAIL  %s was admitted:\n%s\n' "$case" "$out"; FAILED=1
  elif ! grep -q 'denied the request: tierguard' <<< "$out"; then
    printf '  FAIL  %s failed, but not by tierguard'"'"'s refusal:\n%s\n' "$case" "$out"; FAILED=1
  else
    printf '  ok    %s refused: %s\n' "$case" "$(grep -m1 -o 'denied the request: .\{0,110\}' <<< "$out" || echo "$out" | head -n1)"
  fi
done
if out="$(k delete -f examples/three-tier-violations/03-delete-database-default-deny/delete.yaml 2>&1)"; then
  printf '  FAIL  03-delete-database-default-deny was admitted:\n%s\n' "$out"; FAILED=1
elif ! grep -q 'denied the request: tierguard' <<< "$out" || ! k get networkpolicy tierguard-default-deny -n database >/dev/null 2>&1; then
  printf '  FAIL  03-delete-database-default-deny: not tierguard'"'"'s refusal, or the policy is gone:\n%s\n' "$out"; FAILED=1
else
  printf '  ok    03-delete-database-default-deny refused\n'
fi
tutorial_checks

say "a pod in a new tier namespace: its connections from their first moment"
# The order of a kubelet: the Pod is admitted (tierguard's pod guard waits
# for the baseline), the container starts and connects at once, and its IP
# reaches the Pod's status a moment later; kube-router learns the pod from
# that status.
k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: analytics, labels: {tierguard.io/tier: database}}
YAML
refused=0
for _ in $(seq 1 100); do
  if k apply -f - >/dev/null 2>&1 <<YAML
apiVersion: v1
kind: Pod
metadata: {name: analytics-app, namespace: analytics, labels: {app: analytics}}
spec:
  nodeName: $NODE
  containers: [{name: app, image: tierguard.test/peer}]
YAML
  then break; fi
  refused=$((refused + 1)); sleep 0.1
done
k get pod analytics-app -n analytics >/dev/null 2>&1 || die "the analytics pod was never admitted"
printf '  the Pod was refused %d times (baseline not in place yet), then admitted; baseline: %s\n' "$refused" \
  "$(k get networkpolicy -n analytics -o name | tr '\n' ' ')"
dp_pod_create analytics-app 10.89.0.20
dp_serve outside outside-host -tcp 80
dp_in analytics-app "$PEER" hammer -for 8s -every 20ms 192.0.2.10:80 > "$DIR/hammer" &
HAMMER=$!
t_start=$(date +%s%N)
sleep 0.2
k patch pod analytics-app -n analytics --subresource=status --type=merge -p \
  "{\"status\":{\"phase\":\"Running\",\"hostIP\":\"$NODE_IP\",\"hostIPs\":[{\"ip\":\"$NODE_IP\"}],\"podIP\":\"10.89.0.20\",\"podIPs\":[{\"ip\":\"10.89.0.20\"}]}}" >/dev/null
t_ip=$(( ($(date +%s%N) - t_start) / 1000000 ))
wait "$HAMMER"
read -r attempts opened first last < <(awk '{n++} $2=="open"{o++; if (f=="") f=$1; l=$1} END {print n, o+0, (f==""?"-":f), (l==""?"-":l)}' "$DIR/hammer")
if (( opened > 0 )); then
  printf '  %d attempts to outside:80 every 20 ms; %d got through, from %s ms to %s ms after the container started (its IP in the Pod status at ~%d ms): the data plane'"'"'s window, before kube-router installs the pod'"'"'s rules\n' \
    "$attempts" "$opened" "$first" "$last" "$t_ip"
else
  printf '  %d attempts to outside:80 every 20 ms; none got through\n' "$attempts"
fi
# Once the firewall knows the pod, the baseline holds: the last 3 s closed.
if awk -v end="$(tail -n1 "$DIR/hammer" | cut -d' ' -f1)" '$1 > end - 3000 && $2 == "open" {bad=1} END {exit bad ? 0 : 1}' "$DIR/hammer"; then
  printf '  FAIL  analytics-app -> outside tcp/80 still open 5 s after its IP was reported\n'; FAILED=1
else
  printf '  ok    analytics-app -> outside tcp/80 closed once the firewall knows the pod\n'
fi

kill -0 "$KR_PID" 2>/dev/null || die "kube-router exited"
if [[ $FAILED -ne 0 ]]; then die "some connections were not as the tutorial says"; fi
say "every connection is as the tutorial says"
