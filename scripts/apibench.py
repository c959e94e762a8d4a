#!/usr/bin/env python3
"""The webhook as users feel it: NetworkPolicy and Namespace CREATEs through a
real kube-apiserver, with (a) no webhook, (b) a no-op webhook registered with
tierguard's rules, (c) tierguard — in alternating rounds of one run.

Run by scripts/apibench.sh (which starts the control plane and tierguard and
passes everything in the environment); standard library only.

Reports, per mode and round: client-side p50/p99 of each CREATE (fixed
concurrency, keep-alive connections) and the API server's own
apiserver_admission_webhook_admission_duration_seconds for the webhook
(mean, p50, p99 from its histogram buckets).
"""

import http.client
import json
import os
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

API = urllib.parse.urlparse(os.environ["KUBE_API_URL"])
CA = os.environ["KUBE_CA_FILE"]
TOKEN = open(os.environ["KUBE_TOKEN_FILE"]).read().strip()
KUBECTL = os.environ.get("KUBECTL", "kubectl")
PORT = os.environ["TG_PORT"]
WEBHOOK_CA = os.environ["TG_CA_B64"]
PRELOAD = int(os.environ.get("PRELOAD", "1000"))
MEMBERS = int(os.environ.get("MEMBERS", "300"))
N = int(os.environ.get("N", "200"))
NS_N = int(os.environ.get("NS_N", "100"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "4"))
MODES = ["none", "noop", "tierguard"]
HOOKS = {
    "networkpolicies": ("networkpolicies", "networking.k8s.io", "Fail"),
    "namespaces": ("namespaces", "", "Ignore"),
}


def connection():
    ctx = ssl.create_default_context(cafile=CA)
    return http.client.HTTPSConnection(API.hostname, API.port, context=ctx, timeout=30)


def request(conn, method, path, body=None):
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = conn.getresponse()
    data = r.read()
    return r.status, data


def kubectl_apply(yaml_text):
    subprocess.run([KUBECTL, "apply", "-f", "-"], input=yaml_text.encode(), check=True,
                   stdout=subprocess.DEVNULL)


def kubectl_delete(kind, name):
    subprocess.run([KUBECTL, "delete", kind, name, "--ignore-not-found"], check=True,
                   stdout=subprocess.DEVNULL)


def webhook_config(name, path):
    """A ValidatingWebhookConfiguration with tierguard's NetworkPolicy and
    Namespace rules (deploy/base/webhooks.yaml), pointing at `path`."""
    hooks = []
    for key, (resource, group, failure) in HOOKS.items():
        ops = "[CREATE, UPDATE, DELETE]" if key == "networkpolicies" else "[CREATE, UPDATE]"
        hooks.append(f"""- name: {key}.{name}.bench.tierguard.io
  clientConfig:
    url: "https://127.0.0.1:{PORT}{path}"
    caBundle: {WEBHOOK_CA}
  rules:
  - {{apiGroups: ["{group}"], apiVersions: ["*"], operations: {ops}, resources: [{resource}], scope: "*"}}
  namespaceSelector:
    matchExpressions:
    - {{key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system, kube-node-lease, tierguard]}}
  failurePolicy: {failure}
  matchPolicy: Equivalent
  sideEffects: None
  timeoutSeconds: 5
  admissionReviewVersions: [v1]""")
    return f"""apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: tierguard-bench-{name}}}
webhooks:
""" + "\n".join(hooks) + "\n"


def set_mode(mode):
    """Registers exactly the webhooks of `mode` (tierguard's own
    configuration stays out of the way: the bench ones carry the same
    rules), and waits for the API server to see it."""
    for other in ("noop", "tierguard"):
        if other != mode:
            kubectl_delete("validatingwebhookconfiguration", f"tierguard-bench-{other}")
    if mode == "noop":
        kubectl_apply(webhook_config("noop", "/noop"))
    elif mode == "tierguard":
        kubectl_apply(webhook_config("tierguard", "/validate"))
    time.sleep(3)


def np_body(name):
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "backend"},
        "spec": {
            "podSelector": {"matchLabels": {"app": name}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"name": "frontend"}},
                                   "podSelector": {"matchLabels": {"app": "frontend"}}}],
                         "ports": [{"protocol": "TCP", "port": 80}]}],
        },
    }


def create_all(items):
    """POSTs every (path, body) at CONCURRENCY; returns the latencies (s)."""
    lat = []
    errors = []
    lock = threading.Lock()
    it = iter(items)

    def worker():
        conn = connection()
        while True:
            with lock:
                item = next(it, None)
            if item is None:
                break
            path, body = item
            t0 = time.perf_counter()
            try:
                status, data = request(conn, "POST", path, body)
            except (OSError, http.client.HTTPException) as e:
                # A lost connection is a failed CREATE, not a lost sample.
                with lock:
                    errors.append(("exception", str(e).encode()))
                conn.close()
                conn = connection()
                continue
            dt = time.perf_counter() - t0
            with lock:
                if status == 201:
                    lat.append(dt)
                else:
                    errors.append((status, data[:300]))
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit(f"{len(errors)} CREATEs failed, e.g. {errors[0]}")
    return lat


def webhook_histogram(name_prefix, operation="CREATE"):
    """{le: count}, sum, count of the API server's webhook admission
    duration for webhooks whose name starts with `name_prefix`."""
    conn = connection()
    _, data = request(conn, "GET", "/metrics")
    conn.close()
    buckets, total, count = {}, 0.0, 0
    for line in data.decode().splitlines():
        if not line.startswith("apiserver_admission_webhook_admission_duration_seconds"):
            continue
        if f'name="{name_prefix}' not in line or f'operation="{operation}"' not in line:
            continue
        metric, value = line.rsplit(" ", 1)
        if "_bucket{" in metric:
            le = metric.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = buckets.get(le, 0) + float(value)
        elif "_sum{" in metric:
            total += float(value)
        elif "_count{" in metric:
            count += float(value)
    return buckets, total, count


def quantile(delta, q):
    """Linear interpolation within the histogram's buckets."""
    edges = sorted(((float("inf") if k == "+Inf" else float(k)), v) for k, v in delta.items())
    total = edges[-1][1] if edges else 0
    if total == 0:
        return float("nan")
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in edges:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-9)
        prev_le, prev_c = le, c
    return prev_le


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main():
    set_mode("tierguard")
    print(f"preloading {PRELOAD} NetworkPolicies into backend", flush=True)
    create_all([("/apis/networking.k8s.io/v1/namespaces/backend/networkpolicies",
                 np_body(f"preload-{i:05}")) for i in range(PRELOAD)])
    print(f"preloading {MEMBERS} namespaces into tier backend by label", flush=True)
    create_all([("/api/v1/namespaces",
                 {"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": f"backend-m{i:04}", "labels": {"tierguard.io/tier": "backend"}}})
                for i in range(MEMBERS)])
    # Wait for the controller's baseline in every member, then take
    # tierguard's own configurations out of the path.
    for _ in range(300):
        conn = connection()
        _, data = request(conn, "GET", "/apis/networking.k8s.io/v1/networkpolicies?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dtierguard")
        conn.close()
        injected = {i["metadata"]["namespace"] for i in json.loads(data)["items"]}
        if all(f"backend-m{i:04}" in injected for i in range(MEMBERS)):
            break
        time.sleep(1)
    else:
        sys.exit("the baseline was not injected into every member")
    kubectl_delete("validatingwebhookconfiguration", "tierguard")
    kubectl_delete("mutatingwebhookconfiguration", "tierguard")
    rows = []
    seq = 0
    for rnd in range(ROUNDS):
        order = MODES if rnd % 2 == 0 else list(reversed(MODES))
        for mode in order:
            set_mode(mode)
            for kind in ("networkpolicies", "namespaces"):
                prefix = f"{kind}.{mode}.bench.tierguard.io"
                before = webhook_histogram(prefix)
                if kind == "networkpolicies":
                    items = [("/apis/networking.k8s.io/v1/namespaces/backend/networkpolicies",
                              np_body(f"r{seq:05}-{i:04}")) for i in range(N)]
                else:
                    items = [("/api/v1/namespaces",
                              {"apiVersion": "v1", "kind": "Namespace",
                               "metadata": {"name": f"team-r{seq:05}-{i:04}"}}) for i in range(NS_N)]
                seq += 1
                n_policies = PRELOAD + sum(r["n"] for r in rows if r["kind"] == "networkpolicies")
                lat = create_all(items)
                after = webhook_histogram(prefix)
                delta = {k: after[0].get(k, 0) - before[0].get(k, 0) for k in after[0]}
                dcount = after[2] - before[2]
                row = {
                    "round": rnd + 1, "mode": mode, "kind": kind, "n": len(lat),
                    "policies_in_backend": n_policies if kind == "networkpolicies" else None,
                    "client_p50_ms": 1000 * statistics.median(lat),
                    "client_p99_ms": 1000 * pct(lat, 0.99),
                    "webhook_calls": dcount,
                    "webhook_mean_ms": 1000 * (after[1] - before[1]) / dcount if dcount else None,
                    "webhook_p50_ms": 1000 * quantile(delta, 0.5) if dcount else None,
                    "webhook_p99_ms": 1000 * quantile(delta, 0.99) if dcount else None,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\nsummary (medians over rounds):")
    for kind in ("networkpolicies", "namespaces"):
        for mode in MODES:
            rs = [r for r in rows if r["kind"] == kind and r["mode"] == mode]
            def med(key):
                vals = [r[key] for r in rs if r[key] is not None]
                return f"{statistics.median(vals):.2f}" if vals else "-"
            # The API server's buckets (5 ms, 25 ms, ...) are too coarse for
            # quantiles: compare the means.
            print(f"  {kind:15} {mode:9} client p50 {med('client_p50_ms')} ms  p99 {med('client_p99_ms')} ms"
                  f"  webhook (API server) mean {med('webhook_mean_ms')} ms")
        tg = [r["webhook_mean_ms"] for r in rows if r["kind"] == kind and r["mode"] == "tierguard"]
        noop = [r["webhook_mean_ms"] for r in rows if r["kind"] == kind and r["mode"] == "noop"]
        if tg and noop and all(v is not None for v in tg + noop):
            per_round = ", ".join(f"{t / n:.2f}x" for t, n in zip(tg, noop))
            print(f"  {kind}: tierguard / no-op webhook (API server mean): per round {per_round}; "
                  f"medians over rounds {statistics.median(tg) / statistics.median(noop):.2f}x")


if __name__ == "__main__":
    main()
