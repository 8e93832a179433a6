# Two entry points (see README): `make demo` and `make test`. Each installs what it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build of torch for machines without CUDA; see README for CUDA builds.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup system-deps demo test lint

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[sr,eval,test]'
	touch $@

# ImageJ (the tool the seed studies measured with) and a virtual display for the agreement tests.
system-deps:
	@if ! command -v imagej >/dev/null || ! command -v xvfb-run >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q imagej xvfb; \
	  else sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q imagej xvfb; fi; \
	fi

demo: setup
	$(VENV)/bin/mrsuperres demo --output out/demo

lint: setup
	$(VENV)/bin/ruff check .

test: setup system-deps lint
	$(PY) -m pytest -q Testing
