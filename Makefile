# launchgate — every entry point a person or CI needs.
# `make test` and `make demo` set up everything they need (venv, binaries) on first use.
SHELL := /bin/bash
PY    ?= python3
VENV  ?= .venv
BIN   := $(VENV)/bin
export LAUNCHGATE_CACHE ?= $(HOME)/.cache/launchgate

.PHONY: venv crds testenv peers up down test unit integration lint demo bench bench-decisions bench-peers clean

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml devtools/pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' -e devtools
	touch $@

crds: venv            ## regenerate crds/ from the pydantic models
	$(BIN)/python -m launchgate.api.crdgen crds
	cp crds/*.yaml charts/launchgate/crds/

testenv:              ## build/install kube-apiserver, etcd, Gateway API CRDs, Prometheus (cached)
	bash hack/testenv/build.sh

up: venv testenv      ## local control plane + Prometheus in the background; last line: export KUBECONFIG=...
	@$(BIN)/python -m launchgate_dev.devenv up

down: venv            ## stop what `make up` started
	@$(BIN)/python -m launchgate_dev.devenv down

test: venv testenv    ## the whole suite: unit tests and integration tests against the real parts
	$(BIN)/python -m pytest -q tests

unit: venv
	$(BIN)/python -m pytest -q tests/unit

integration: venv testenv
	$(BIN)/python -m pytest -q tests/integration

lint: venv           ## ruff, mypy and the import contracts that keep the layers one-way
	$(BIN)/ruff check operator devtools tests
	$(BIN)/mypy operator/launchgate devtools/launchgate_dev
	$(BIN)/lint-imports

demo: venv testenv    ## a good canary promoted through every phase, a bad one rolled back
	$(BIN)/python -m launchgate_dev.demo

bench: venv testenv   ## benchmarks; results go to BENCHMARKS.md and benchmarks/results/
	$(BIN)/python -m launchgate_dev.bench

bench-decisions: venv  ## decision quality of fixed thresholds vs evidence-aware gates (pure logic), into BENCHMARKS.md
	$(BIN)/python -m launchgate_dev.decision_bench --canaries 2000 --write

peers:                ## build the peers bench-peers runs beside launchgate (Argo Rollouts; cached)
	bash hack/peers/build.sh

bench-peers: venv testenv peers  ## launchgate and Argo Rollouts side by side; BENCHMARKS.md "Side by side"
	$(BIN)/python -m launchgate_dev.bench_peers

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
