#!/usr/bin/env bash
# The data plane's half of the differential test (tests/dataplane.rs writes
# the worlds and compares): for each world directory under DIR, a fresh
# one-node cluster with kube-router's firewall (cluster.sh, no tierguard), the
# world applied, every probe connected for real.
#
#   tests/dataplane/diff.sh DIR
#
# A world directory holds
#   namespaces.json  its Namespaces (a List)
#   pods.tsv         NAMESPACE NAME IP LABELS CONTAINER-PORTS (tab-separated; YAML flow style)
#   policies/*.json  one NetworkPolicy each
#   probes.tsv       FROM PROTO ADDRESS:PORT (FROM: a pod's name, or "outside")
# and gets
#   applied.txt      the policy files the API server accepted (others are invalid)
#   observed.tsv     "open" or "closed" per line of probes.tsv
# Every pod serves TCP and UDP on $DP_PORTS; the host "outside" ($DP_OUTSIDE,
# not a pod) does too.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
[[ $# -eq 1 && -d "$1" ]] || { echo "usage: $0 DIR" >&2; exit 2; }
WORLDS="$(cd "$1" && pwd)"
DP_PORTS="${DP_PORTS:-1,2,3,4,9}"
DP_OUTSIDE="${DP_OUTSIDE:-192.168.1.5}"
# shellcheck source=cluster.sh
source tests/dataplane/cluster.sh

for world in "$WORLDS"/*/; do
  world="${world%/}"
  t0=$SECONDS
  dp_cluster_up
  t_up=$SECONDS
  k apply -f "$world/namespaces.json" >/dev/null
  : > "$world/applied.txt"
  for p in "$world"/policies/*.json; do
    [[ -e "$p" ]] || continue
    if k apply -f "$p" >/dev/null 2>"$world/apply-errors.log.tmp"; then
      basename "$p" >> "$world/applied.txt"
    else
      cat "$world/apply-errors.log.tmp" >> "$world/apply-errors.log"
    fi
  done
  rm -f "$world/apply-errors.log.tmp"
  while IFS=$'\t' read -r ns name ip labels ports; do
    dp_pod "$ns" "$name" "$ip" "$labels" "$ports" -tcp "$DP_PORTS" -udp "$DP_PORTS"
  done < "$world/pods.tsv"
  dp_pod_create outside "$DP_OUTSIDE"
  dp_serve outside outside -tcp "$DP_PORTS" -udp "$DP_PORTS"
  t_pods=$SECONDS
  dp_wait_synced
  t_sync=$SECONDS
  # One `peer probe` per source, all at once; answers put back in probes.tsv's order.
  : > "$world/observed.tsv.tmp"
  sources=$(cut -f1 "$world/probes.tsv" | sort -u)
  probing=()
  for from in $sources; do
    awk -F'\t' -v f="$from" '$1==f {print NR "\t" $2 " " $3}' "$world/probes.tsv" > "$DIR/lines-$from"
    cut -f2 "$DIR/lines-$from" | dp_in "$from" "$PEER" probe -timeout 2s > "$DIR/answers-$from" &
    probing+=($!)
  done
  # Each by its pid (a bare `wait` would wait for kube-router and the servers).
  for pid in "${probing[@]}"; do wait "$pid" || die "$world: a peer probe failed"; done
  for from in $sources; do
    [[ $(wc -l < "$DIR/answers-$from") -eq $(wc -l < "$DIR/lines-$from") ]] \
      || die "$world: $from answered $(wc -l < "$DIR/answers-$from") of $(wc -l < "$DIR/lines-$from") probes"
    paste <(cut -f1 "$DIR/lines-$from") "$DIR/answers-$from" >> "$world/observed.tsv.tmp"
  done
  sort -n "$world/observed.tsv.tmp" | cut -f2 > "$world/observed.tsv"
  rm -f "$world/observed.tsv.tmp"
  [[ $(wc -l < "$world/observed.tsv") -eq $(wc -l < "$world/probes.tsv") ]] || die "$world: probes and answers differ in number"
  # Every server still answers its node (always allowed): a closed probe
  # above was the firewall, not a dead server.
  while IFS=$'\t' read -r _ name ip _; do
    for port in ${DP_PORTS//,/ }; do
      dp_attempt node tcp "$ip" "$port" && dp_attempt node udp "$ip" "$port" \
        || die "$world: pod $name does not answer its node on port $port"
    done
  done < "$world/pods.tsv"
  dp_log "$(basename "$world"): $(wc -l < "$world/applied.txt") policies applied, $(wc -l < "$world/pods.tsv") pods, $(wc -l < "$world/probes.tsv") probes in $((SECONDS - t0)) s (cluster $((t_up - t0)) s, objects and pods $((t_pods - t_up)) s, sync $((t_sync - t_pods)) s, probes $((SECONDS - t_sync)) s)"
  dp_cluster_down
done
