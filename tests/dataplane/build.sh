#!/usr/bin/env bash
# Build (or reuse) the data plane of tierguard's packet tests: kube-router's
# network policy firewall, from the Go module proxy exactly as its own go.mod
# pins it (`go install ...@v2.1.0`), and the pods' workload (peer/).
# See README.md next to this file.
#
# Output: progress on stderr; on stdout
#   KUBE_ROUTER=/abs/path/kube-router
#   PEER=/abs/path/peer
# so callers can do:  eval "$(tests/dataplane/build.sh)"
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
KUBE_ROUTER_VERSION=v2.1.0
OUT="$REPO/target/dataplane"
mkdir -p "$OUT"

log() { printf '[dataplane] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
command -v go >/dev/null || die "go not found in PATH (the data plane is built from Go modules)"

stamp="$KUBE_ROUTER_VERSION $(go env GOVERSION)"
if [[ -x "$OUT/kube-router" && "$(cat "$OUT/.kube-router.stamp" 2>/dev/null)" == "$stamp" ]]; then
  log "kube-router: reusing cached $OUT/kube-router"
else
  log "kube-router $KUBE_ROUTER_VERSION: building from the Go module proxy (first time ~4 minutes on two cores)"
  t0=$SECONDS
  rm -rf "$OUT/gobin"
  GOBIN="$OUT/gobin" CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
    go install -trimpath -ldflags="-s -w" \
    "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION"
  mv -f "$OUT/gobin/kube-router" "$OUT/kube-router"
  rm -rf "$OUT/gobin"
  printf '%s\n' "$stamp" > "$OUT/.kube-router.stamp"
  log "kube-router: built in $((SECONDS - t0))s"
fi

# The peer is small; always rebuilt (a second when cached).
(cd "$HERE/peer" && CGO_ENABLED=0 go build -trimpath -o "$OUT/peer" .)
echo "KUBE_ROUTER=$OUT/kube-router"
echo "PEER=$OUT/peer"
