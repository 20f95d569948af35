# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# SAM CLI lives in its own venv: it pins boto3/botocore versions that would fight the project's.
SAM_VENV := .tools/sam
SAM := $(SAM_VENV)/bin/sam
SAM_ENV := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=eu-north-1

.PHONY: demo test lint venv clean validate build bench


$(STAMP): pyproject.toml layers/common/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(SAM):
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet "aws-sam-cli>=1.120"

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/ml-connector demo

test: $(STAMP) $(SAM)
	$(BIN)/ruff check --output-format concise .
	$(SAM_ENV) $(SAM) validate --lint --template template.yaml
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy layers/common/ml_connector localrun cli sandbox bench
	$(BIN)/mypy functions/poller/app.py
	$(BIN)/mypy functions/writer/app.py

validate: $(SAM)
	$(SAM_ENV) $(SAM) validate --lint --template template.yaml

# sam build needs python3.13 on PATH for the arm64 python3.13 runtime (pyenv provides it here).
build: $(SAM)
	PATH="$$(ls -d $$HOME/.pyenv/versions/3.13*/bin 2>/dev/null | head -1):$$PATH" $(SAM_ENV) $(SAM) build

clean:
	rm -rf $(VENV) .tools .demo .bench .pytest_cache .mypy_cache .ruff_cache .aws-sam

# The benchmark harness (issue #8): ~20 min; writes docs/benchmarks.md. BENCH_ARGS=--quick for a small run.
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)
