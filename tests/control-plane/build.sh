#!/usr/bin/env bash
# Build (or reuse) a real kube-apiserver and etcd for tierguard's test control
# plane. See README.md next to this file.
#
# Output: progress on stderr; on stdout the binaries' paths, these two lines last:
#   KUBE_APISERVER=/abs/path/kube-apiserver
#   ETCD=/abs/path/etcd
# preceded by KUBECTL=/abs/path/kubectl
# so callers can do:  eval "$(tests/control-plane/build.sh)"
#
# Env:
#   KUBE_APISERVER, ETCD  prebuilt binaries to use instead of building (each
#                         one independently; a set variable skips that build)
#   TIERGUARD_CP_DIR      output dir (default <repo>/target/control-plane/<k8s-version>)
#   TIERGUARD_CP_REBUILD=1  rebuild even if cached binaries look current
#   KUBECTL               kubectl to use (default: the one on PATH; when there is
#                         none, kubectl of the same k8s version is built)
#   TIERGUARD_CP_KUBECTL=1  build kubectl even when one is on PATH
#   TIERGUARD_K8S         a minor release of the version matrix (v1.36, v1.37):
#                         build from versions/<it>/ instead of the default
#                         modules here (v1.35, the oldest supported release)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

log() { printf '[control-plane] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

MODS="$HERE"
if [[ -n "${TIERGUARD_K8S:-}" ]]; then
  MODS="$HERE/versions/$TIERGUARD_K8S"
  [[ -f "$MODS/kube-apiserver/go.mod" ]] \
    || die "TIERGUARD_K8S=$TIERGUARD_K8S: no $MODS/kube-apiserver/go.mod (have: $(ls "$HERE/versions" | tr '\n' ' '))"
fi

# Versions are read from the pinned go.mod files (single source of truth).
modver() { # $1 = go.mod, $2 = module path -> its required version
  awk -v m="$2" '$1=="require"{$1=""; $0=$0} $1==m{print $2; exit}' "$1"
}
K8S_VERSION="$(modver "$MODS/kube-apiserver/go.mod" k8s.io/kubernetes)"
ETCD_VERSION="$(modver "$MODS/etcd/go.mod" go.etcd.io/etcd/server/v3)"
[[ -n "$K8S_VERSION" ]] || die "cannot read k8s.io/kubernetes version from kube-apiserver/go.mod"
[[ -n "$ETCD_VERSION" ]] || die "cannot read etcd version from etcd/go.mod"

OUT="${TIERGUARD_CP_DIR:-$REPO/target/control-plane/$K8S_VERSION}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

abspath() { (cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd)" "$(basename "$1")"); }

# Stamp = hash of everything that determines the binary; a stale cache is rebuilt.
stamp_of() { # $1 = module dir
  { cat "$1/go.mod" "$1/go.sum"; cat "$1"/*.go 2>/dev/null || true; go env GOVERSION; } | sha256sum | cut -d' ' -f1
}

# Run a long command, printing a heartbeat so CI logs never go silent.
run_with_heartbeat() { # $1 = label, rest = command
  local label="$1"; shift
  local start=$SECONDS
  "$@" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 1 30); do sleep 1; kill -0 "$pid" 2>/dev/null || break; done
    kill -0 "$pid" 2>/dev/null && log "  ... $label still running ($((SECONDS - start))s)"
  done
  wait "$pid"
}

build_one() { # $1 = name (binary), $2 = module dir, $3 = package, $4 = ldflags
  local name="$1" mod="$2" pkg="$3" ldflags="$4"
  local bin="$OUT/$name" stampfile="$OUT/.$name.stamp"
  if ! command -v go >/dev/null; then
    [[ -x "$bin" ]] || die "go not found in PATH (need Go >= 1.24); or set KUBE_APISERVER / ETCD to prebuilt binaries"
    log "$name: go not found; reusing $bin without checking that it is current"
    return
  fi
  local want; want="$(stamp_of "$mod")"
  if [[ -x "$bin" && -f "$stampfile" && "$(cat "$stampfile")" == "$want" && "${TIERGUARD_CP_REBUILD:-0}" != 1 ]]; then
    log "$name: reusing cached $bin"
    return
  fi
  mkdir -p "$OUT"
  local t0=$SECONDS
  log "$name: downloading modules (first time only; uses the Go module cache $(go env GOMODCACHE))"
  (cd "$mod" && run_with_heartbeat "go mod download ($name)" go mod download)
  log "$name: modules ready in $((SECONDS - t0))s; compiling $pkg"
  [[ $name == etcd ]] || log "$name: a cold compile takes minutes (kube-apiserver alone ~4-5 min on 2 idle cores, 10+ min on busy ones; ~2.2 GB Go build cache); later builds hit the cache"
  local t1=$SECONDS
  (cd "$mod" && export CGO_ENABLED=0 && run_with_heartbeat "go build ($name)" \
     go build -mod=readonly -buildvcs=false -trimpath -ldflags="$ldflags" -o "$bin.tmp.$$" "$pkg")
  mv -f "$bin.tmp.$$" "$bin"
  printf '%s\n' "$want" > "$stampfile"
  log "$name: built in $((SECONDS - t1))s (total $((SECONDS - t0))s): $bin ($(du -h "$bin" | cut -f1))"
}

log "kube-apiserver $K8S_VERSION, etcd $ETCD_VERSION; output dir $OUT"

minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
vpkg=k8s.io/component-base/version
K8S_LDFLAGS="-s -w -X $vpkg.gitVersion=$K8S_VERSION -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean"

if [[ -n "${KUBE_APISERVER:-}" ]]; then
  [[ -x "$KUBE_APISERVER" ]] || die "KUBE_APISERVER=$KUBE_APISERVER is not an executable file"
  KUBE_APISERVER="$(abspath "$KUBE_APISERVER")"
  log "kube-apiserver: using prebuilt $KUBE_APISERVER (from \$KUBE_APISERVER)"
else
  build_one kube-apiserver "$MODS/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver "$K8S_LDFLAGS"
  KUBE_APISERVER="$OUT/kube-apiserver"
fi

if [[ -n "${ETCD:-}" ]]; then
  [[ -x "$ETCD" ]] || die "ETCD=$ETCD is not an executable file"
  ETCD="$(abspath "$ETCD")"
  log "etcd: using prebuilt $ETCD (from \$ETCD)"
else
  build_one etcd "$MODS/etcd" . "-s -w"
  ETCD="$OUT/etcd"
fi

# Kubernetes' version skew policy: kubectl is supported within one minor
# version of the API server. A kubectl on PATH outside that is not used.
kubectl_minor() { # $1 = kubectl -> its client minor version ("" when unknown)
  "$1" version --client -o json 2>/dev/null \
    | sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p' | head -n1
}
within_skew() { # $1 = kubectl
  local m; m="$(kubectl_minor "$1")"
  [[ -n "$m" ]] && (( m >= minor - 1 && m <= minor + 1 ))
}

# kubectl: $KUBECTL, else the one on PATH, else built from the same modules
# (so a machine without kubectl still runs the end-to-end tests and the demo).
if [[ -n "${KUBECTL:-}" ]]; then
  [[ -x "$KUBECTL" ]] || KUBECTL="$(command -v "$KUBECTL" || true)"
  [[ -n "$KUBECTL" && -x "$KUBECTL" ]] || die "KUBECTL is not an executable"
  log "kubectl: using $KUBECTL (from \$KUBECTL)"
elif [[ "${TIERGUARD_CP_KUBECTL:-0}" != 1 ]] && command -v kubectl >/dev/null 2>&1 \
     && within_skew "$(command -v kubectl)"; then
  KUBECTL="$(command -v kubectl)"
  log "kubectl: using $KUBECTL (on PATH, v1.$(kubectl_minor "$KUBECTL"))"
else
  if [[ "${TIERGUARD_CP_KUBECTL:-0}" != 1 ]] && command -v kubectl >/dev/null 2>&1; then
    log "kubectl on PATH is v1.$(kubectl_minor "$(command -v kubectl)"), outside the supported skew (one minor) of v1.$minor; using kubectl $K8S_VERSION from the same modules"
  fi
  build_one kubectl "$MODS/kube-apiserver" k8s.io/kubernetes/cmd/kubectl "$K8S_LDFLAGS"
  KUBECTL="$OUT/kubectl"
fi
echo "KUBECTL=$(abspath "$KUBECTL")"

KUBE_APISERVER="$(abspath "$KUBE_APISERVER")"
ETCD="$(abspath "$ETCD")"
echo "KUBE_APISERVER=$KUBE_APISERVER"
echo "ETCD=$ETCD"
