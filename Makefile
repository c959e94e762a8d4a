# The two commands of the README.
.PHONY: demo test bench-api e2e-matrix
demo: ## the tutorial with tierguard on a local control plane, end to end
	scripts/demo.sh
test: ## every test, end to end included (scripts/deps.sh installs the Debian packages they need)
	scripts/deps.sh
	cargo test --locked
e2e-matrix: ## the end-to-end tests on each supported Kubernetes release (1.35, 1.36, 1.37), each built from Go modules
	scripts/deps.sh
	scripts/e2e-matrix.sh
bench-api: ## NetworkPolicy and Namespace CREATEs through a real kube-apiserver: no webhook, a no-op one, tierguard (docs/benchmarks.md)
	scripts/apibench.sh
