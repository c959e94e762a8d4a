#!/usr/bin/env bash
# Installs the Debian packages the tests need and that are not there yet:
# haproxy (the load balancer of tests/e2e's rolling-update test); iptables, ipset,
# conntrack and iproute2 (the data plane of tests/dataplane).
# Idempotent; silent when everything is present. Runs apt-get as root, or
# through sudo otherwise.
#
#   scripts/deps.sh            # the default list below
#   scripts/deps.sh pkg ...    # these packages instead
set -euo pipefail

PACKAGES=(haproxy iptables ipset conntrack iproute2)
if [[ $# -gt 0 ]]; then
  PACKAGES=("$@")
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "scripts/deps.sh: missing packages ${missing[*]} and no apt-get; install them by hand" >&2
  exit 1
fi
SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "scripts/deps.sh: missing packages ${missing[*]}; not root and no sudo" >&2
    exit 1
  fi
  SUDO=(sudo)
fi
echo "scripts/deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The package lists are fetched only when the package is unknown to apt.
if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
  "${SUDO[@]}" apt-get update -qq >/dev/null
fi
log="$(mktemp -t tierguard-deps-XXXXXX.log)"
if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
  cat "$log" >&2
  echo "scripts/deps.sh: apt-get install ${missing[*]} failed" >&2
  exit 1
fi
rm -f "$log"
echo "scripts/deps.sh: installed ${missing[*]}" >&2
