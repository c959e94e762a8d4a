#!/usr/bin/env bash
# Fuzzes tierguard's untrusted inputs: Kubernetes manifests and the
# isolation policy and Calico selectors (text targets), and structure-aware
# AdmissionReviews through the router and selectors through the engine.
# Usage: fuzz/run.sh [SECONDS]   (per target; default 600)
#   TARGETS="admission selectors" fuzz/run.sh   which targets (default: the
#                                               two text targets, as before)
#   RUNS=10000000 fuzz/run.sh                   an exact execution count per
#                                               target instead of a time limit
#   MAX_LEN=...   longest input (default 8192; 65536 for admission)
#   SANITIZER=none fuzz/run.sh                  build without AddressSanitizer
#                                               (still release with debug
#                                               assertions; several times the
#                                               executions per second; default
#                                               address, cargo-fuzz's own)
#
# Needs a nightly toolchain (`rustup toolchain install nightly`). Corpora are
# seeded from examples/ and policies/ into fuzz/corpus/<target>/ (git-ignored);
# crashes land in fuzz/artifacts/<target>/ and the logs in fuzz/logs/.
# Set JOBS=2 to run the targets at the same time (one core each).
set -euo pipefail

SECONDS_PER_TARGET="${1:-600}"
TARGETS="${TARGETS:-manifests isolation_policy}"
RUNS="${RUNS:-}"
MAX_LEN="${MAX_LEN:-}"
TIMEOUT="${TIMEOUT:-10}" # seconds per input before libFuzzer reports a timeout
JOBS="${JOBS:-1}"
SANITIZER="${SANITIZER:-address}"

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
cd "$here"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz
fi

seed() {
    local dir="corpus/$1"
    mkdir -p "$dir"
    shift
    for f in "$@"; do
        [ -f "$f" ] || continue
        # Flattened path as the name: idempotent across runs.
        cp -f "$f" "$dir/seed-$(echo "${f#"$root"/}" | tr '/' '_')"
    done
}

# manifests: every manifest file, plus the whole three-tier world in one input
# (the report only has something to judge when tier namespaces and policies
# come together) and the world with each violation applied.
mapfile -t manifests < <(find "$root/examples" "$root/policies" -type f \( -name '*.yaml' -o -name '*.yml' -o -name '*.json' \) | sort)
seed manifests "${manifests[@]}"
world="corpus/manifests/seed-three-tier-world.yaml"
: >"$world"
for f in "$root"/examples/three-tier/*.yaml; do
    cat "$f" >>"$world"
    printf '\n---\n' >>"$world"
done
for v in "$root"/examples/three-tier-violations/*/apply.yaml; do
    name="$(basename "$(dirname "$v")")"
    { cat "$world"; cat "$v"; } >"corpus/manifests/seed-world+$name.yaml"
done

# isolation_policy: the repository's policies and a few variants reaching
# other branches (effective judge, audit mode, DNS anywhere/none, no CIDRs).
mapfile -t policies < <(find "$root/policies" -type f -name '*.yaml' | sort)
seed isolation_policy "${policies[@]}"
base="$root/policies/three-tier.yaml"
sed 's/judge: walls/judge: effective/' "$base" >corpus/isolation_policy/seed-effective.yaml
sed 's/mode: enforce/mode: audit/' "$base" >corpus/isolation_policy/seed-audit.yaml
sed '/^  cluster:/,/serviceCIDRs/d' "$base" >corpus/isolation_policy/seed-no-cidrs.yaml
sed 's/to: cluster-dns/to: anywhere/; /namespace: kube-system/d; /podLabels:/d' "$base" >corpus/isolation_policy/seed-dns-anywhere.yaml
sed 's/to: cluster-dns/to: none/; /namespace: kube-system/d; /podLabels:/d' "$base" >corpus/isolation_policy/seed-dns-none.yaml

# calico_selectors: selectors from Calico's documentation and the tests'
# shapes (one per line of the seed list).
mkdir -p corpus/calico_selectors
i=0
while IFS= read -r line; do
    printf '%s' "$line" >"corpus/calico_selectors/seed-$i"
    i=$((i + 1))
done <<'SEEDS'
role == 'database'
all()
has(projectcalico.org/name) && projectcalico.org/name in {'frontend', 'backend'}
!(tier not in {"db",}) || app != 'x' && k8s-app starts with 'kube'
(a contains 'b' || global()) && !!has(c)
SEEDS

# admission and selectors: structure-aware (arbitrary bytes decoded by the
# `arbitrary` crate); libFuzzer starts them from an empty corpus.
mkdir -p corpus/admission corpus/selectors

mkdir -p logs
for t in $TARGETS; do mkdir -p "artifacts/$t"; done
# Build once (release, debug assertions, AddressSanitizer unless
# SANITIZER=none: cargo-fuzz's defaults), then run the binaries directly, as
# `cargo fuzz run` does: an edit to src/ during a run does not trigger
# rebuilds. Both builds write the same binaries (the last build wins).
cargo +nightly fuzz build --sanitizer="$SANITIZER"
host="$(rustc +nightly -vV | sed -n 's/^host: //p')"
bin="target/$host/release"

run() {
    local target="$1" len="$MAX_LEN" limit dict=()
    if [ -z "$len" ]; then
        if [ "$target" = admission ]; then len=65536; else len=8192; fi
    fi
    if [ -n "$RUNS" ]; then
        limit=(-runs="$RUNS")
        echo "== $target: $RUNS runs, log fuzz/logs/$target.log"
    else
        limit=(-max_total_time="$SECONDS_PER_TARGET")
        echo "== $target: ${SECONDS_PER_TARGET}s, log fuzz/logs/$target.log"
    fi
    # The dictionary is YAML text: it helps only the text targets.
    case "$target" in
    manifests | isolation_policy) dict=(-dict=tierguard.dict) ;;
    calico_selectors) dict=(-dict=calico.dict) ;;
    esac
    local rc=0
    "$bin/$target" -artifact_prefix="artifacts/$target/" \
        "${limit[@]}" -max_len="$len" -timeout="$TIMEOUT" \
        -rss_limit_mb="${RSS_LIMIT_MB:-2048}" "${dict[@]}" -print_final_stats=1 \
        "corpus/$target" >"logs/$target.log" 2>&1 || rc=$?
    tail -n 20 "logs/$target.log"
    return $rc
}

status=0
if [ "$JOBS" -ge 2 ]; then
    pids=()
    for t in $TARGETS; do
        run "$t" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || status=1; done
else
    for t in $TARGETS; do run "$t" || status=1; done
fi
ls -l artifacts/*/ 2>/dev/null || true
exit "$status"
