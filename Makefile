# Thin wrappers; the work is in scripts/harness.sh (it installs what it needs itself).
.PHONY: lab lab-down test test-quick verify lint images bench

lab:        ## Create the lab containers and deploy site.yml onto them
	scripts/harness.sh lab

lab-down:   ## Remove the lab containers and network, nothing else
	scripts/harness.sh lab-down

test:       ## Lint, unit tests and every Molecule scenario (Debian 13 and 12)
	scripts/harness.sh test

test-quick: ## Lint, unit tests, molecule default on Debian 13 (kept), its checks matching K
	K="$(K)" scripts/harness.sh test-quick

verify:     ## The checks matching K again, on the containers test-quick kept
	K="$(K)" scripts/harness.sh verify

lint:       ## yamllint, ansible-lint and ruff only
	scripts/harness.sh lint

bench:      ## Deployment time, mail throughput and footprint, side by side (BENCHMARKS.md)
	scripts/harness.sh bench

images:     ## Build the debian-systemd base images if missing
	scripts/build-images.sh
