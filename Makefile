# Everything a newcomer needs: `make run` serves the webhook on https://127.0.0.1:8443 with
# development certificates and the embedded policy; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test lint format bench deploy-policy clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)
	$(BIN)/meshwarden serve --host 127.0.0.1 --port 8443 --cert-dir certs

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/admission_throughput.py

# kustomize reads no file outside deploy/base: keep its copy of the policy in step
# (tests/test_deploy.py fails when they differ).
deploy-policy:
	cp policies/policy.yaml deploy/base/policy.yaml

clean:
	rm -rf $(VENV) certs/*.crt certs/*.key .pytest_cache .ruff_cache .hypothesis
