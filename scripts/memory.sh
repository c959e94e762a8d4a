#!/usr/bin/env bash
# Memory of `tierguard serve` under hostile bodies: RSS at start, the peak
# (VmHWM) while N clients at once send 3 MiB AdmissionReviews full of
# `[0,0,…]`, and RSS after the load. Numbers for docs/limits.md.
#
# Usage: scripts/memory.sh [CLIENTS] [ROUNDS]     (defaults 8 and 5)
# Needs: a release build (cargo build --release --examples --bin tierguard), curl.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS="${1:-8}"
ROUNDS="${2:-5}"
out="${CARGO_TARGET_DIR:-target}"
bin="$out/release/tierguard"
loadgen="$out/release/examples/loadgen"
[ -x "$bin" ] && [ -x "$loadgen" ] || { echo "build first: cargo build --release --examples --bin tierguard" >&2; exit 2; }

dir="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
"$loadgen" --write-world "$dir/world" --write-certs "$dir/certs" >/dev/null
port=$((20000 + RANDOM % 20000))
admin=$((port + 1))
RUST_LOG=warn "$bin" serve --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
    --tls-cert "$dir/certs/tls.crt" --tls-key "$dir/certs/tls.key" \
    --policy policies/three-tier.yaml --world "$dir/world" --log-format json \
    2>"$dir/serve.log" &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null && break; sleep 0.1; done

kb() { awk -v k="$1:" '$1==k {print $2}' "/proc/$pid/status"; }

# 3 MiB of zeros, in the request's options, in an unknown spec field, and in
# an annotation: the three places a parsed JSON tree would amplify.
python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
zeros = "[" + ",".join(["0"] * (3 * 1024 * 1024 // 2 - 1024)) + "]"
def review(place):
    obj = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "p", "namespace": "database"}, "spec": {"podSelector": {}}}
    req = {"uid": "00000000-0000-0000-0000-000000000001",
           "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "NetworkPolicy"},
           "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "networkpolicies"},
           "name": "p", "namespace": "database", "operation": "CREATE",
           "userInfo": {"username": "alice"}, "object": obj, "dryRun": False}
    text = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
    if place == "options":
        text = text[:-2] + ', "options": ' + zeros + "}}"
    elif place == "spec":
        text = text.replace('"podSelector": {}', '"podSelector": {}, "junk": ' + zeros)
    else:
        text = text.replace('"namespace": "database"}, "spec"', '"namespace": "database", "annotations": {"a": "' + zeros + '"}}, "spec"')
    return text
for place in ("options", "spec", "annotation"):
    open(f"{d}/{place}.json", "w").write(review(place))
PY
size=$(stat -c %s "$dir/options.json")
start_rss=$(kb VmRSS)
ok=0; fail=0
for round in $(seq "$ROUNDS"); do
    pids=()
    for c in $(seq "$CLIENTS"); do
        place=$(echo options spec annotation | cut -d' ' -f$(( (c % 3) + 1 )))
        curl -sk --max-time 20 -o "$dir/out.$c" -w '%{http_code}\n' \
            -H 'content-type: application/json' --data-binary "@$dir/$place.json" \
            "https://127.0.0.1:$port/validate" >"$dir/code.$c" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || true; done
    for c in $(seq "$CLIENTS"); do
        if [ "$(cat "$dir/code.$c")" = 200 ]; then ok=$((ok + 1)); else fail=$((fail + 1)); fi
    done
done
peak=$(kb VmHWM)
sleep 5
after=$(kb VmRSS)
echo "body_bytes=$size clients=$CLIENTS rounds=$ROUNDS answered_200=$ok other=$fail"
echo "rss_start_kib=$start_rss peak_kib=$peak rss_after_5s_kib=$after"
echo "peak_above_start_mib=$(( (peak - start_rss) / 1024 )) per_concurrent_body_mib=$(( (peak - start_rss) / 1024 / CLIENTS ))"
echo "largest_log_line_bytes=$(awk '{ if (length($0) > m) m = length($0) } END { print m + 0 }' "$dir/serve.log") log_lines=$(wc -l <"$dir/serve.log")"
