#!/usr/bin/env bash
# Build (or reuse) the tools of tierguard's deployment tests, from the Go
# module proxy, each exactly as its own go.mod pins it (`go install
# ...@version`); nothing is committed:
#   helm      helm.sh/helm/v4 v4.3.2          (the chart: deploy/helm/)
#   promtool  github.com/prometheus/prometheus v0.316.0  (the alerts: deploy/monitoring/)
#
# Usage: tests/tools/build.sh helm|promtool
# Output: progress on stderr; on stdout one line, e.g.
#   HELM=/abs/path/helm
# so callers can do:  eval "$(tests/tools/build.sh helm)"
# Env: HELM, PROMTOOL  a binary to use instead of building.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUT="$REPO/target/tools"

log() { printf '[tools] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

tool="${1:-}"
case "$tool" in
  helm)
    var=HELM version=v4.3.2 pkg=helm.sh/helm/v4/cmd/helm minutes=2.5
    ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$version" ;;
  promtool)
    var=PROMTOOL version=v0.316.0 pkg=github.com/prometheus/prometheus/cmd/promtool minutes=5
    ldflags="-s -w" ;;
  *) die "usage: $0 helm|promtool" ;;
esac

given="${!var:-}"
if [[ -n "$given" ]]; then
  [[ -x "$given" ]] || given="$(command -v "$given" || true)"
  [[ -n "$given" && -x "$given" ]] || die "$var is set but not an executable"
  echo "$var=$given"
  exit 0
fi
command -v go >/dev/null || die "go not found in PATH ($tool is built from Go modules); or set $var"
mkdir -p "$OUT"
stamp="$version $(go env GOVERSION)"
if [[ -x "$OUT/$tool" && "$(cat "$OUT/.$tool.stamp" 2>/dev/null)" == "$stamp" ]]; then
  log "$tool: reusing cached $OUT/$tool"
else
  log "$tool $version: building from the Go module proxy (first time ~$minutes minutes on two cores)"
  t0=$SECONDS
  gobin="$OUT/gobin-$tool-$$"
  rm -rf "$gobin"
  GOBIN="$gobin" CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
    go install -trimpath -ldflags="$ldflags" "$pkg@$version"
  mv -f "$gobin/$tool" "$OUT/$tool"
  rm -rf "$gobin"
  printf '%s\n' "$stamp" > "$OUT/.$tool.stamp"
  log "$tool: built in $((SECONDS - t0))s"
fi
echo "$var=$OUT/$tool"
