#!/usr/bin/env bash
# Smoke-check a control plane started by up.sh DIR:
#   - kubectl get ns / create ns / apply + list a NetworkPolicy
#   - the apiserver calls a validating admission webhook at https://127.0.0.1:PORT
#     (a throwaway python3 HTTPS server that denies objects named "deny-*")
# Leaves the control plane running. Needs kubectl, openssl, python3.
set -euo pipefail
log() { printf '[smoke] %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
[[ $# -eq 1 ]] || die "usage: $0 DIR"
DIR="$(cd "$1" && pwd)"
export KUBECONFIG="$DIR/kubeconfig"
[[ -f "$KUBECONFIG" ]] || die "no $KUBECONFIG (run up.sh $DIR first)"
K=("${KUBECTL:-kubectl}" --request-timeout=20s)
NS="smoke-$(date +%s)-$RANDOM"
WORK="$(mktemp -d)"
WH_PID=""
cleanup() {
  if [[ -n "$WH_PID" ]]; then kill "$WH_PID" 2>/dev/null || true; fi
  "${K[@]}" delete validatingwebhookconfiguration tierguard-smoke --ignore-not-found >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

log "kubectl get ns";        "${K[@]}" get ns
log "kubectl create ns $NS"; "${K[@]}" create ns "$NS"
cat > "$WORK/np.yaml" <<EOF
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-frontend, namespace: $NS}
spec:
  podSelector: {matchLabels: {app: backend}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: frontend}}}]
    ports: [{protocol: TCP, port: 8080}]
EOF
log "kubectl apply NetworkPolicy"; "${K[@]}" apply -f "$WORK/np.yaml"
"${K[@]}" get networkpolicy -A | tee "$WORK/np.out"
grep -q "allow-frontend" "$WORK/np.out" || die "NetworkPolicy not listed"

# --- admission webhook reachable at https://127.0.0.1:PORT -------------------------
command -v python3 >/dev/null || { log "python3 not found: skipping webhook check"; echo "smoke: OK (webhook check skipped)"; exit 0; }
PKI="$DIR/pki"
openssl req -newkey rsa:2048 -nodes -keyout "$WORK/wh.key" -out "$WORK/wh.csr" -subj "/CN=127.0.0.1" >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$WORK/wh.ext"
openssl x509 -req -in "$WORK/wh.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
  -days 1 -out "$WORK/wh.crt" -extfile "$WORK/wh.ext" >/dev/null 2>&1
cat > "$WORK/webhook.py" <<'EOF'
import json, socket, ssl, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
cert, key, portfile = sys.argv[1:4]
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["request"]
        name = req.get("name") or req["object"]["metadata"].get("name", "")
        resp = {"uid": req["uid"], "allowed": not name.startswith("deny-")}
        if not resp["allowed"]:
            resp["status"] = {"code": 403, "message": "smoke webhook denied " + name}
        out = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out))); self.end_headers(); self.wfile.write(out)
    def log_message(self, *a): pass
srv = HTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
open(portfile, "w").write(str(srv.server_address[1]))
srv.serve_forever()
EOF
python3 "$WORK/webhook.py" "$WORK/wh.crt" "$WORK/wh.key" "$WORK/port" >"$WORK/wh.log" 2>&1 &
WH_PID=$!
for _ in $(seq 1 50); do [[ -s "$WORK/port" ]] && break; sleep 0.1; done
[[ -s "$WORK/port" ]] || die "webhook server did not start: $(cat "$WORK/wh.log")"
PORT="$(cat "$WORK/port")"
log "webhook listening on https://127.0.0.1:$PORT"
cat > "$WORK/vwc.yaml" <<EOF
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: tierguard-smoke}
webhooks:
- name: smoke.tierguard.test
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  timeoutSeconds: 5
  clientConfig:
    url: https://127.0.0.1:$PORT/validate
    caBundle: $(base64 -w0 "$PKI/ca.crt")
  namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: $NS}}
  rules:
  - apiGroups: [networking.k8s.io]
    apiVersions: [v1]
    operations: [CREATE, UPDATE]
    resources: [networkpolicies]
EOF
"${K[@]}" apply -f "$WORK/vwc.yaml"
# The webhook configuration reaches the admission plugin asynchronously; retry briefly.
denied=""
for _ in $(seq 1 20); do
  if out="$(sed 's/name: allow-frontend/name: deny-me/' "$WORK/np.yaml" | "${K[@]}" apply -f - 2>&1)"; then
    "${K[@]}" -n "$NS" delete networkpolicy deny-me >/dev/null 2>&1 || true
  elif grep -q "smoke webhook denied deny-me" <<< "$out"; then denied="$out"; break
  else die "unexpected error: $out"; fi
  sleep 0.5
done
[[ -n "$denied" ]] || die "webhook was never called"
log "denied as expected: $denied"
sed 's/name: allow-frontend/name: allowed-by-webhook/' "$WORK/np.yaml" | "${K[@]}" apply -f -
echo "smoke: OK"
