# The two commands of the README.
.PHONY: demo test test-matrix e2e-matrix dataplane bench-api
demo: ## the tutorial with tierguard on a local control plane, end to end
	scripts/demo.sh
test: ## every test, end to end included, on the oldest (1.35) and the newest (1.37) supported Kubernetes (scripts/deps.sh installs the Debian packages they need)
	scripts/deps.sh
	cargo test --locked
	RELEASES=v1.37 TIERGUARD_E2E="$${TIERGUARD_E2E:-}" scripts/e2e-matrix.sh
test-matrix: ## the end-to-end tests on each supported Kubernetes release (1.35, 1.36, 1.37), each built from Go modules
	scripts/deps.sh
	scripts/e2e-matrix.sh
e2e-matrix: test-matrix
dataplane: ## the tutorial on packets: kube-router's firewall in network namespaces, real connections (root)
	scripts/deps.sh
	scripts/dataplane.sh
bench-api: ## NetworkPolicy and Namespace CREATEs through a real kube-apiserver: no webhook, a no-op one, tierguard (docs/benchmarks.md)
	scripts/apibench.sh
