# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The stamp names the interpreter's version, so `make test PYTHON=python3.13` rebuilds a venv made
# with another Python instead of silently reusing it.
PY_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
STAMP := $(VENV)/.installed-$(PY_VERSION)
# SAM CLI lives in its own venv: it pins boto3/botocore versions that would fight the project's.
SAM_VENV := .tools/sam
SAM := $(SAM_VENV)/bin/sam
SAM_ENV := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=eu-north-1
# checkov too (it pins hundreds of packages); template findings we accept carry their reason as a skip
# annotation in template.yaml (Metadata: checkov: skip).
CHECKOV_VENV := .tools/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
# The suite runs in TEST_WORKERS processes (pytest-xdist), each taking a whole file at a time, so a file's
# module fixtures (a local stack, a convergence run) start once, as in a serial run; files marked heavy go
# first (tests/conftest.py). Much of the suite waits on injected latency and sleeps, so two workers on two
# cores roughly halve it. TEST_WORKERS=0 runs it in this process, serially.
TEST_WORKERS ?= 2
PYTEST_PARALLEL := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)
# The layer's lock: CPython 3.13 on manylinux aarch64, hashed; botocore and what only it needs come
# from the Lambda runtime (see layers/common/requirements.in).
LOCK_TARGET := --python-platform aarch64-manylinux2014 --python-version 3.13 --generate-hashes \
	--no-emit-package botocore --no-emit-package python-dateutil --no-emit-package six

.PHONY: demo test lint venv clean validate build bench lock checkov


$(STAMP): pyproject.toml layers/common/requirements.txt
	@test -n "$(PY_VERSION)" || { echo "PYTHON=$(PYTHON) does not run" >&2; exit 1; }
	if [ -x $(BIN)/python ] && [ "$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != "$(PY_VERSION)" ]; then \
		rm -rf $(VENV); fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(SAM):
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet "aws-sam-cli>=1.120"

$(CHECKOV):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet "checkov>=3.2,<4"

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/ml-connector demo

test: $(STAMP) $(SAM) $(CHECKOV)
	$(BIN)/ruff check --output-format concise .
	$(SAM_ENV) $(SAM) validate --lint --template template.yaml
	$(MAKE) --no-print-directory checkov
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL)

# Only the template (not the Python: ruff's bandit rules cover that); fails on any finding that has
# no reasoned skip in template.yaml.
checkov: $(CHECKOV)
	$(CHECKOV) --quiet --compact --skip-download --framework cloudformation --file template.yaml

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy layers/common/ml_connector localrun cli sandbox bench
	$(BIN)/mypy functions/dispatcher/app.py
	$(BIN)/mypy functions/poller/app.py
	$(BIN)/mypy functions/writer/app.py

validate: $(SAM)
	$(SAM_ENV) $(SAM) validate --lint --template template.yaml

# Regenerates layers/common/requirements.txt from requirements.in (needs the package index).
lock: $(STAMP)
	$(BIN)/uv pip compile layers/common/requirements.in $(LOCK_TARGET) --quiet \
		--output-file layers/common/requirements.txt

# sam build needs python3.13 on PATH for the arm64 python3.13 runtime (pyenv provides it here); the
# layer builds with layers/common/Makefile (locked wheels for aarch64, no Docker).
build: $(SAM)
	PATH="$$(ls -d $$HOME/.pyenv/versions/3.13*/bin 2>/dev/null | head -1):$$PATH" $(SAM_ENV) $(SAM) build

clean:
	rm -rf $(VENV) .tools .demo .bench .pytest_cache .mypy_cache .ruff_cache .aws-sam

# The benchmark harness (issue #8): ~20 min; writes docs/benchmarks.md. BENCH_ARGS=--quick for a small run.
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)
