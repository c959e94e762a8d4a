# The two commands of the README.
.PHONY: demo test bench-api
demo: ## the tutorial with tierguard on a local control plane, end to end
	scripts/demo.sh
test: ## every test, end to end included (scripts/deps.sh installs the Debian packages they need)
	scripts/deps.sh
	cargo test --locked
bench-api: ## NetworkPolicy and Namespace CREATEs through a real kube-apiserver: no webhook, a no-op one, tierguard (docs/benchmarks.md)
	scripts/apibench.sh
