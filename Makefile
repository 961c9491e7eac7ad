# The two commands: `make run` and `make test`. Both install what is missing first.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup setup-docker run test test-unit test-e2e test-compose soak lint format bench llama-server up down clean

setup:
	$(PYTHON) -m devstack install

# Docker for the compose tests: engine, plugins, base images. Where none can be had (not root,
# not Debian) it says why and the compose tests skip with that reason.
setup-docker:
	$(PYTHON) -m devstack docker --optional

run: setup
	$(VPY) -m devstack run

test: setup setup-docker
	$(VPY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

test-unit: setup
	$(VPY) -m pytest -p no:cacheprovider tests/unit tests/static $(PYTEST_ARGS)

test-e2e: setup
	$(VPY) -m pytest -p no:cacheprovider tests/e2e $(PYTEST_ARGS)

# Every end-to-end module against compose.yaml (testcontainers) instead of local processes.
test-compose: setup
	$(PYTHON) -m devstack docker
	LLMSERVER_E2E_BACKEND=compose $(VPY) -m pytest -p no:cacheprovider tests/e2e tests/compose $(PYTEST_ARGS)

soak: setup
	$(VPY) -m pytest -p no:cacheprovider tests/soak $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup
	$(VPY) bench/run_all.py

# llama.cpp's own server, a reference row in the inference benchmark (compiles ~10 minutes).
llama-server:
	$(PYTHON) -m devstack llama-server

# The stack under Docker Compose: `docker compose up -d --wait`, gateway on 127.0.0.1:4891.
up: setup
	$(PYTHON) -m devstack up

# Stops it; the named volumes (models, Weaviate's data, Redis's queue) are kept.
down:
	$(PYTHON) -m devstack down

clean:
	rm -rf data
