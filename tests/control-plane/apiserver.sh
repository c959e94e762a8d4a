#!/usr/bin/env bash
# Start, stop or restart the kube-apiserver of the control plane up.sh set
# up in DIR, with the command line up.sh kept in DIR/apiserver.cmd (same
# port, credentials and etcd), and wait for its /readyz.
#
#   tests/control-plane/apiserver.sh DIR [start|stop|restart]
#
# start (the default) stops a running one first, so it is also a restart.
# Output goes to DIR/kube-apiserver.log (appended); DIR/pids is kept current.
# Env: TIERGUARD_CP_READY_TIMEOUT (seconds, default 120).
set -euo pipefail
log() { printf '[apiserver] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 DIR [start|stop|restart]"
DIR="$(cd "$1" && pwd)"
WHAT="${2:-start}"
[[ -s "$DIR/apiserver.cmd" ]] || die "no $DIR/apiserver.cmd: run up.sh $DIR first"
mapfile -d '' CMD < "$DIR/apiserver.cmd"
PORT=""
for arg in "${CMD[@]}"; do
  [[ $arg == --secure-port=* ]] && PORT="${arg#--secure-port=}"
done
[[ -n "$PORT" ]] || die "$DIR/apiserver.cmd has no --secure-port"
PKI="$DIR/pki"

# Only a pid whose command line mentions DIR is ours (guards against reuse).
ours() { [[ -r "/proc/$1/cmdline" ]] && tr '\0' '\n' < "/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$DIR/"; }

stop() {
  local pid
  pid="$(awk '$1 == "kube-apiserver" { print $2 }' "$DIR/pids" 2>/dev/null | tail -1)"
  if [[ -n "$pid" ]] && ours "$pid"; then
    log "stopping kube-apiserver (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do ours "$pid" || break; sleep 0.1; done
    if ours "$pid"; then log "pid $pid ignored SIGTERM; sending SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    for _ in $(seq 1 50); do ours "$pid" || break; sleep 0.1; done
  fi
  if [[ -f "$DIR/pids" ]]; then
    grep -v '^kube-apiserver ' "$DIR/pids" > "$DIR/pids.tmp" || true
    mv "$DIR/pids.tmp" "$DIR/pids"
  fi
}

start() {
  log "starting kube-apiserver on https://127.0.0.1:$PORT"
  local started pid
  started=$(date +%s.%N)
  nohup "${CMD[@]}" >> "$DIR/kube-apiserver.log" 2>&1 < /dev/null &
  pid=$!
  echo "kube-apiserver $pid" >> "$DIR/pids"
  local token deadline
  token="$(cat "$PKI/admin.token")"
  deadline=$(( $(date +%s) + ${TIERGUARD_CP_READY_TIMEOUT:-120} ))
  until curl -fsS --max-time 2 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $token" \
          "https://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -30 "$DIR/kube-apiserver.log" >&2; die "kube-apiserver exited; see $DIR/kube-apiserver.log"
    fi
    if (( $(date +%s) >= deadline )); then
      curl -sS --max-time 5 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $token" \
        "https://127.0.0.1:$PORT/readyz?verbose" >&2 || true
      die "kube-apiserver not ready after ${TIERGUARD_CP_READY_TIMEOUT:-120}s; see $DIR/kube-apiserver.log"
    fi
    sleep 0.25
  done
  log "kube-apiserver ready in $(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')s at https://127.0.0.1:$PORT"
}

case "$WHAT" in
  start|restart) stop; start ;;
  stop) stop ;;
  *) die "unknown command $WHAT (start, stop or restart)" ;;
esac
