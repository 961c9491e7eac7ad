# The two commands: `make run` and `make test`. Both install what is missing first.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup run test test-unit test-e2e soak lint format bench llama-server up down clean

setup:
	$(PYTHON) -m devstack install

run: setup
	$(VPY) -m devstack run

test: setup
	$(VPY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

test-unit: setup
	$(VPY) -m pytest -p no:cacheprovider tests/unit tests/static $(PYTEST_ARGS)

test-e2e: setup
	$(VPY) -m pytest -p no:cacheprovider tests/e2e $(PYTEST_ARGS)

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

up:
	docker compose up

down:
	docker compose down

clean:
	rm -rf data
