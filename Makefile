# The two commands of the README.
.PHONY: demo test
demo: ## the tutorial with tierguard on a local control plane, end to end
	scripts/demo.sh
test: ## every test, end to end included (scripts/deps.sh installs the Debian packages they need)
	scripts/deps.sh
	cargo test --locked
