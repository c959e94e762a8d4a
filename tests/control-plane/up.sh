#!/usr/bin/env bash
# Start a throwaway control plane (real etcd + real kube-apiserver) on
# 127.0.0.1 with fresh credentials in DIR. See README.md next to this file.
#
#   tests/control-plane/up.sh DIR      # then: kubectl --kubeconfig DIR/kubeconfig get ns
#   tests/control-plane/down.sh DIR
#
# Writes into DIR: pki/ (CA, serving cert, admin client cert, SA keys, token
# file), etcd-data/, etcd.log, kube-apiserver.log, apiserver.cmd, kubeconfig,
# pids, env.
# Binaries come from $KUBE_APISERVER / $ETCD, else from build.sh (cached).
# Env: TIERGUARD_CP_READY_TIMEOUT (seconds, default 120);
#      TIERGUARD_CP_APISERVER_ARGS extra kube-apiserver flags, word-split
#      (e.g. "--disable-admission-plugins=ServiceAccount").
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[up] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 DIR"
mkdir -p "$1"
DIR="$(cd "$1" && pwd)"
if [[ -f "$DIR/pids" ]]; then
  while read -r _ pid; do
    if tr '\0' '\n' 2>/dev/null < "/proc/$pid/cmdline" | grep -qF -- "$DIR/"; then
      die "$DIR/pids lists running pid $pid: run down.sh $DIR first"
    fi
  done < "$DIR/pids"
fi
command -v openssl >/dev/null || die "openssl not found"
command -v curl >/dev/null || die "curl not found"

# --- binaries -----------------------------------------------------------------
if [[ -z "${KUBE_APISERVER:-}" || -z "${ETCD:-}" ]]; then
  eval "$("$HERE/build.sh" | grep -E '^(KUBE_APISERVER|ETCD)=')"
fi
[[ -x "$KUBE_APISERVER" ]] || die "KUBE_APISERVER=$KUBE_APISERVER is not executable"
[[ -x "$ETCD" ]] || die "ETCD=$ETCD is not executable"

# --- free loopback ports ----------------------------------------------------------
# Pick random high ports nobody is listening on (small race window; fine for tests).
free_port() { # args: ports already chosen
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 12000 ))  # below the usual ephemeral range (32768+)
    [[ " $* " == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free port found"
}
ETCD_CLIENT_PORT=$(free_port)
ETCD_PEER_PORT=$(free_port "$ETCD_CLIENT_PORT")
APISERVER_PORT=$(free_port "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT")

# --- credentials -----------------------------------------------------------------
PKI="$DIR/pki"
rm -rf "$PKI" "$DIR/etcd-data"
mkdir -p "$PKI"
chmod 700 "$PKI"
ossl() { openssl "$@" >/dev/null 2>&1 || { openssl "$@"; die "openssl $1 failed"; }; }
log "generating CA, serving cert, admin client cert and service-account keys in $PKI"
ossl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
  -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -subj "/CN=tierguard-test-ca"
signed_cert() { # $1 = name, $2 = subject, $3 = extensions (openssl config lines)
  ossl req -newkey rsa:2048 -nodes -sha256 -keyout "$PKI/$1.key" -out "$PKI/$1.csr" -subj "$2"
  printf '%s\n' "$3" > "$PKI/$1.ext"
  ossl x509 -req -sha256 -days 3650 -in "$PKI/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -CAcreateserial -out "$PKI/$1.crt" -extfile "$PKI/$1.ext"
  rm -f "$PKI/$1.csr" "$PKI/$1.ext"
}
# The apiserver cert names 127.0.0.1/localhost plus the in-cluster names of
# the default "kubernetes" Service (names only; nothing listens off loopback).
signed_cert apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1"
# Admin: client cert in group system:masters (RBAC superuser).
signed_cert admin "/O=system:masters/CN=tierguard-admin" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
# Service-account token signing key pair.
ossl genrsa -out "$PKI/sa.key" 2048
ossl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"
# Static bearer token (also system:masters), handy for curl.
TOKEN="$(openssl rand -hex 24)"
printf '%s,tierguard-admin-token,tierguard-admin-token,system:masters\n' "$TOKEN" > "$PKI/tokens.csv"
printf '%s\n' "$TOKEN" > "$PKI/admin.token"
chmod 600 "$PKI"/*.key "$PKI/tokens.csv" "$PKI/admin.token"

# On any failure from here on, stop whatever was started (logs stay in DIR).
UP_OK=0
trap '[[ $UP_OK == 1 ]] || "$HERE/down.sh" "$DIR" >&2 || true' EXIT

# --- etcd --------------------------------------------------------------------------
: > "$DIR/pids"
log "starting etcd on 127.0.0.1:$ETCD_CLIENT_PORT (peer $ETCD_PEER_PORT), data in $DIR/etcd-data"
ETCD_URL="http://127.0.0.1:$ETCD_CLIENT_PORT"
PEER_URL="http://127.0.0.1:$ETCD_PEER_PORT"
nohup "$ETCD" \
  --name=tierguard-test \
  --data-dir="$DIR/etcd-data" \
  --listen-client-urls="$ETCD_URL" \
  --advertise-client-urls="$ETCD_URL" \
  --listen-peer-urls="$PEER_URL" \
  --initial-advertise-peer-urls="$PEER_URL" \
  --initial-cluster="tierguard-test=$PEER_URL" \
  --initial-cluster-state=new \
  --unsafe-no-fsync \
  --log-level=warn \
  > "$DIR/etcd.log" 2>&1 < /dev/null &
ETCD_PID=$!
echo "etcd $ETCD_PID" >> "$DIR/pids"

for _ in $(seq 1 100); do
  curl -fsS --max-time 2 "$ETCD_URL/health" 2>/dev/null | grep -q '"health":"true"' && break
  kill -0 "$ETCD_PID" 2>/dev/null || { tail -20 "$DIR/etcd.log" >&2; die "etcd exited; see $DIR/etcd.log"; }
  sleep 0.2
done
curl -fsS --max-time 2 "$ETCD_URL/health" 2>/dev/null | grep -q '"health":"true"' || die "etcd not healthy; see $DIR/etcd.log"

# --- kube-apiserver ----------------------------------------------------------------
# Its command line is kept in DIR/apiserver.cmd, so that apiserver.sh can
# start it again the same way (a restart under load, in the resilience tests).
read -r -a EXTRA_ARGS <<< "${TIERGUARD_CP_APISERVER_ARGS:-}"
APISERVER_CMD=(
  "$KUBE_APISERVER"
  --bind-address=127.0.0.1
  --advertise-address=127.0.0.1
  --secure-port="$APISERVER_PORT"
  --etcd-servers="$ETCD_URL"
  --tls-cert-file="$PKI/apiserver.crt"
  --tls-private-key-file="$PKI/apiserver.key"
  --client-ca-file="$PKI/ca.crt"
  --token-auth-file="$PKI/tokens.csv"
  --authorization-mode=RBAC
  --service-account-issuer=https://kubernetes.default.svc.cluster.local
  --service-account-key-file="$PKI/sa.pub"
  --service-account-signing-key-file="$PKI/sa.key"
  --service-cluster-ip-range=10.0.0.0/24
  --endpoint-reconciler-type=none
  --profiling=false
  ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"}
)
printf '%s\0' "${APISERVER_CMD[@]}" > "$DIR/apiserver.cmd"

# --- kubeconfig ----------------------------------------------------------------------
b64() { base64 -w0 < "$1"; }
cat > "$DIR/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: tierguard-test
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: tierguard-admin
  user:
    client-certificate-data: $(b64 "$PKI/admin.crt")
    client-key-data: $(b64 "$PKI/admin.key")
contexts:
- name: tierguard-test
  context:
    cluster: tierguard-test
    user: tierguard-admin
current-context: tierguard-test
EOF
chmod 600 "$DIR/kubeconfig"

# --- start it and wait for /readyz -------------------------------------------------------
"$HERE/apiserver.sh" "$DIR"

cat > "$DIR/env" <<EOF
KUBECONFIG=$DIR/kubeconfig
KUBE_API_URL=https://127.0.0.1:$APISERVER_PORT
KUBE_CA_FILE=$PKI/ca.crt
KUBE_TOKEN_FILE=$PKI/admin.token
ETCD_URL=$ETCD_URL
EOF
log "  kubectl --kubeconfig $DIR/kubeconfig get ns"
log "  stop with: $HERE/down.sh $DIR"
cat "$DIR/env"
UP_OK=1
