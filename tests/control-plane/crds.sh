#!/usr/bin/env bash
# The policy.networking.k8s.io CRDs, fetched from the Go module proxy (never
# committed): ClusterNetworkPolicy from sigs.k8s.io/network-policy-api v0.3.0,
# AdminNetworkPolicy and BaselineAdminNetworkPolicy from v0.1.7 (the last
# release that ships them). Standard channel.
#
#   crds.sh              the policy.networking.k8s.io CRDs
#   crds.sh openreports  the openreports.io CRDs (Report, ClusterReport) from
#                        github.com/openreports/reports-api v0.2.1
#
# Output: the CRD files' absolute paths on stdout, one per line; progress on stderr.
set -euo pipefail

log() { printf '[control-plane] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null || die "go not found in PATH (needed to fetch the CRDs)"

dir_of() { # $1 = module@version -> its directory in the module cache
  (cd "${TMPDIR:-/tmp}" && GOFLAGS=-mod=mod go mod download -json "$1") |
    awk -F'"' '$2=="Dir"{print $4}'
}

case "${1:-netpol}" in
  netpol)
    under=config/crd/standard
    specs=(
      "sigs.k8s.io/network-policy-api@v0.3.0 policy.networking.k8s.io_clusternetworkpolicies.yaml"
      "sigs.k8s.io/network-policy-api@v0.1.7 policy.networking.k8s.io_adminnetworkpolicies.yaml"
      "sigs.k8s.io/network-policy-api@v0.1.7 policy.networking.k8s.io_baselineadminnetworkpolicies.yaml"
    ) ;;
  openreports)
    under=config/crd
    specs=(
      "github.com/openreports/reports-api@v0.2.1 openreports.io_reports.yaml"
      "github.com/openreports/reports-api@v0.2.1 openreports.io_clusterreports.yaml"
    ) ;;
  *) die "unknown CRD set $1 (netpol, openreports)" ;;
esac

for spec in "${specs[@]}"; do
  read -r mod file <<<"$spec"
  dir="$(dir_of "$mod")"
  [[ -n "$dir" ]] || die "cannot download $mod"
  path="$dir/$under/$file"
  [[ -f "$path" ]] || die "$mod has no $under/$file"
  log "CRD $file from $mod"
  echo "$path"
done
