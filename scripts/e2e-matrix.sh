#!/usr/bin/env bash
# The end-to-end tests on every Kubernetes release tierguard supports: the
# default control plane (tests/control-plane/kube-apiserver, the oldest
# supported release) and each release under tests/control-plane/versions/.
# Each release's kube-apiserver, etcd (the version that release ships with)
# and kubectl are built from the Go module proxy and cached under
# target/control-plane/<version>/. The harness fails a run whose API server
# is not the release asked for. Prints one line per release and exits non-zero
# when any failed.
#
#   make test-matrix                     # all releases
#   RELEASES="v1.37" scripts/e2e-matrix.sh   # one (make test runs this one)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

default="$(awk '$1=="k8s.io/kubernetes"{print $2; exit}' tests/control-plane/kube-apiserver/go.mod)"
default="${default%.*}"
if [[ -z "${RELEASES:-}" ]]; then
  RELEASES="$default $(ls tests/control-plane/versions | tr '\n' ' ')"
fi

summary=()
failed=0
for release in $RELEASES; do
  k8s="$release"
  [[ "$release" == "$default" ]] && k8s=""  # the default modules
  log="target/e2e-matrix-$release.log"
  mkdir -p target
  echo "[e2e-matrix] $release: building its control plane and running the e2e tests (log: $log)" >&2
  start=$SECONDS
  # build.sh builds kubectl of the release when the one on PATH is outside
  # the skew policy's one minor version.
  # Required unless the caller says otherwise (make test passes its own
  # setting, so that without Go its last step skips like the others).
  if TIERGUARD_K8S="$k8s" TIERGUARD_E2E="${TIERGUARD_E2E-required}" \
       cargo test --locked --test e2e >"$log" 2>&1; then
    result=passed
  else
    result=FAILED; failed=1
    echo "[e2e-matrix] $release failed; the end of $log:" >&2
    tail -n 120 "$log" >&2
  fi
  server="$(grep -m1 -o 'kube-apiserver v[0-9.]*, etcd v[0-9.]*' "$log" || echo 'versions not reported')"
  summary+=("$release: $result in $((SECONDS - start)) s ($server; $(grep -E '^test result:' "$log" | tail -n1))")
  echo "[e2e-matrix] ${summary[-1]}" >&2
done
printf '%s\n' "${summary[@]}"
exit "$failed"
