#!/usr/bin/env bash
# Stop the control plane that up.sh started in DIR (kube-apiserver, then etcd).
# Leaves DIR's files (logs, etcd data, credentials) in place; delete DIR to clean up.
set -euo pipefail
log() { printf '[down] %s\n' "$*" >&2; }
[[ $# -eq 1 ]] || { log "usage: $0 DIR"; exit 1; }
DIR="$(cd "$1" && pwd)"
PIDS="$DIR/pids"
[[ -f "$PIDS" ]] || { log "no $PIDS: nothing to stop"; exit 0; }

# Only signal a pid whose command line still mentions DIR (both processes get
# paths under DIR as flags), which guards against pid reuse.
ours() { # $1 = name (unused), $2 = pid
  [[ -r "/proc/$2/cmdline" ]] && tr '\0' '\n' < "/proc/$2/cmdline" 2>/dev/null | grep -qF -- "$DIR/"
}

# Reverse order: kube-apiserver before etcd.
mapfile -t entries < <(tac "$PIDS")
for entry in "${entries[@]}"; do
  read -r name pid <<< "$entry"
  [[ -n "${pid:-}" ]] || continue
  if ! ours "$name" "$pid"; then log "$name (pid $pid) is not running"; continue; fi
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do ours "$name" "$pid" || break; sleep 0.1; done
  if ours "$name" "$pid"; then log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
done
rm -f "$PIDS"
log "stopped"
