# Common commands. `make demo` and `make test` are the README's quick start.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test unit lint chaos fuzz cluster controlplane image bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

controlplane:
	bash tests/controlplane/build.sh
	bash tests/consumers/build.sh
	bash tests/helm/build.sh
	bash tests/promql/build.sh

# The container image, built with podman on a Debian base made by mmdebstrap (no registry,
# no daemon; installs both with apt-get when missing). IMAGE=name:tag to name it.
image:
	bash tests/image/build.sh

cluster: $(VENV)/.installed controlplane
	$(PY) -m tests.support.controlplane

demo: $(VENV)/.installed controlplane
	$(PY) -m tests.support.demo

test: $(VENV)/.installed controlplane
	$(PY) -m pytest

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

chaos: $(VENV)/.installed controlplane
	CHAOS_WATCHES=$${CHAOS_WATCHES:-300} CHAOS_JOB_SECONDS=$${CHAOS_JOB_SECONDS:-40} \
		$(PY) -m pytest -n 0 -s -m chaos tests/e2e/test_chaos.py

# The lifecycle model (tests/unit/test_lifecycle_model.py) with many more examples than CI runs.
fuzz: $(VENV)/.installed
	LIFECYCLE_EXAMPLES=$${LIFECYCLE_EXAMPLES:-10000} LIFECYCLE_REPORT=1 \
		$(PY) -m pytest -n 0 -s -p no:cacheprovider tests/unit/test_lifecycle_model.py

# The scale benchmark (bench/run.py): both poll modes and the floor; N=50,000 takes the longest.
# `make bench N="1000 10000"` for fewer; then `python -m bench.report bench/results/<file>.json`.
bench: $(VENV)/.installed controlplane
	$(PY) -m pip install --quiet -e '.[test,bench]'
	nice $(PY) -m bench.run $(if $(N),$(foreach n,$(N),--n $(n)),--n 1000 --n 10000 --n 50000)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check operator tests bench
	$(VENV)/bin/ruff format --check operator tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
