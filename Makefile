# kongops.upgrade — developer entry points. `make demo` and `make test` are all a fresh
# machine needs; everything else is reachable from them.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help
PYTHON ?= python3.11
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
COLL_ROOT := $(VENV)/collections
export ANSIBLE_COLLECTIONS_PATH := $(COLL_ROOT)
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH := true
export PATH := $(VENV)/bin:$(PATH)
# ansible-core 2.19's ansible-test pins pip 24.2 for the venvs it creates.
PIP_VERSION := 24.2
MODE ?= dbless
LB ?= haproxy
KONG_X ?= 3.8.1
KONG_Y ?= 3.9.3
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 2

.PHONY: molecule-if-docker help venv system-deps sanity lint unit kongsim integration pytest test demo \
	sandbox-up sandbox-down upgrade-rolling upgrade-in-place upgrade-hybrid bench molecule \
	changelog-lint clean

help:
	@echo "make demo   - create the environment, start the local sandbox, run a rolling upgrade, print the report"
	@echo "make test   - create the environment and run every test (sanity, lint, unit, simulator, integration, molecule)"
	@echo "other: sandbox-up sandbox-down upgrade-rolling upgrade-in-place upgrade-hybrid bench molecule lint sanity"

$(VENV)/.stamp: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	mkdir -p $(COLL_ROOT)/ansible_collections/kongops
	ln -sfn $(CURDIR) $(COLL_ROOT)/ansible_collections/kongops/upgrade
	touch $@

venv: $(VENV)/.stamp system-deps

# PostgreSQL, HAProxy and nginx are real servers from Debian's packages.
system-deps:
	@missing=""; \
	for pair in /usr/lib/postgresql/15/bin/postgres:postgresql-15 /usr/sbin/haproxy:haproxy \
	            /usr/sbin/nginx:nginx /usr/bin/psql:postgresql-client-15 /usr/bin/socat:socat; do \
	  [ -e "$${pair%%:*}" ] || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; }; \
	fi

# ansible-test bootstraps pip in every venv it creates from a download our machines cannot
# reach; seed its cache with an ensurepip-based stand-in.
$(HOME)/.ansible/test/cache/.seeded: tests/tools/get_pip_offline.py | $(VENV)/.stamp
	mkdir -p $(dir $@)
	cp tests/tools/get_pip_offline.py $(HOME)/.ansible/test/cache/get_pip_$(subst .,_,$(PIP_VERSION)).py
	touch $@

sanity: venv $(HOME)/.ansible/test/cache/.seeded
	tests/tools/sanity.sh

lint: venv
	ruff check plugins tests bench
	ruff format --check plugins tests bench
	ansible-lint --offline -q
	antsibull-changelog lint

unit: venv
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

# Two workers (the machine's two cores), a test file per worker at a time: the end-to-end suites wait
# on soaks, health checks and Kong's timers much of the time, and each file's sandboxes and fixtures
# stay with its worker (tests/sandbox/procs.sandbox_base_port gives each worker its own ports). The
# longest files go first (tests/conftest.py LONGEST_FILES), in that order (--no-loadscope-reorder).
pytest: venv
	$(PY) -m pytest tests -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

molecule: venv
	tests/molecule/run.sh

# ansible-test integration over tests/integration/targets (one target per module), against the real
# services the test starts (also part of `make pytest`)
integration: venv $(HOME)/.ansible/test/cache/.seeded
	$(PY) -m pytest tests/integration/test_ansible_test_targets.py -q -p no:cacheprovider $(PYTEST_ARGS)

# sanity, lint, pytest, then molecule; molecule's images build in the background meanwhile
test: venv
	tests/tools/test_all.sh

# The molecule scenarios are part of `make test` wherever a Docker Engine answers; without one
# they are skipped with a message that says so.
molecule-if-docker:
	@if docker info >/dev/null 2>&1; then $(MAKE) --no-print-directory molecule; \
	else echo "molecule: SKIPPED - no Docker Engine answers (docker info failed)"; fi

sandbox-up: venv
	$(PY) -m tests.sandbox up --mode $(MODE) --lb $(LB) --kong-x $(KONG_X) $(if $(KONG_CP),--kong-cp $(KONG_CP))

sandbox-down: venv
	$(PY) -m tests.sandbox down

upgrade-rolling: venv
	$(PY) -m tests.sandbox upgrade --strategy rolling --kong-y $(KONG_Y)

upgrade-in-place: venv
	$(PY) -m tests.sandbox upgrade --strategy in_place --kong-y $(KONG_Y)

upgrade-hybrid: venv
	$(PY) -m tests.sandbox upgrade --strategy hybrid --kong-y $(KONG_Y)

demo: venv
	$(PY) -m tests.sandbox demo --kong-x $(KONG_X) --kong-y $(KONG_Y)

bench: venv
	$(PY) -m bench.run

clean:
	rm -rf .cache tests/output
