# Network namespaces for tierguard's data-plane tests; sourced, not run.
#
# One "node" network namespace holds the control plane, tierguard and the
# network policy firewall. Each "pod" is a network namespace joined to the
# node by a veth pair: the pod's eth0 has the pod IP as a /32 and a default
# route via 169.254.1.1, which the node side of every pair owns; the node
# routes each pod IP to its veth. Traffic between pods is therefore routed
# through the node namespace, where the firewall's iptables rules see it,
# as on a node of a routed pod network (kube-router's, Calico's).
#
# All names start with $DP_PREFIX, so a run removes only its own namespaces.

: "${DP_PREFIX:?DP_PREFIX must be set}"
DP_NODE="${DP_PREFIX}-node"
DP_GW=169.254.1.1

dp_log() { printf '[dataplane] %s\n' "$*" >&2; }

# dp_node_create NODE_IP: the node namespace, with NODE_IP on its loopback.
dp_node_create() {
  ip netns add "$DP_NODE"
  ip -n "$DP_NODE" link set lo up
  ip -n "$DP_NODE" addr add "$1/32" dev lo
  ip netns exec "$DP_NODE" sysctl -qw net.ipv4.ip_forward=1
}

# dp_pod_create NAME IP: a pod namespace NAME with address IP, joined to the
# node. The node's side of the pair is named from a counter (15-byte limit).
DP_IFINDEX=0
dp_pod_create() {
  local name="$1" ip="$2" ns="${DP_PREFIX}-$1" hostif
  DP_IFINDEX=$((DP_IFINDEX + 1))
  hostif="dpv${DP_IFINDEX}"
  ip netns add "$ns"
  ip link add "$hostif" netns "$DP_NODE" type veth peer name eth0 netns "$ns"
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
  ip -n "$ns" addr add "$ip/32" dev eth0
  ip -n "$ns" route add "$DP_GW" dev eth0 scope link
  ip -n "$ns" route add default via "$DP_GW" dev eth0
  ip -n "$DP_NODE" link set "$hostif" up
  ip -n "$DP_NODE" addr add "$DP_GW/32" dev "$hostif" scope link
  ip -n "$DP_NODE" route add "$ip/32" dev "$hostif"
  dp_log "pod $name: namespace $ns, $ip via $hostif"
}

# dp_in NAME CMD...: run CMD in pod NAME's namespace ("node" for the node's).
dp_in() {
  local name="$1"; shift
  ip netns exec "${DP_PREFIX}-$name" "$@"
}

# dp_destroy: kill everything left in this run's namespaces, then delete them.
dp_destroy() {
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${DP_PREFIX}-" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -TERM 2>/dev/null || true
  done
  sleep 0.5
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${DP_PREFIX}-" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}
