# uma-health: `make demo` runs the demo, `make test` runs every test. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

AS_PORT ?= 8400
export AS_ISSUER ?= http://localhost:$(AS_PORT)
WORKERS ?= 2

.PHONY: demo test lint venv clean demo-reset

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall whenever the project's metadata changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

demo: $(STAMP)
	@$(BIN)/python -m authz_server.cli seed-demo
	@echo "Authorization server: $(AS_ISSUER)  (sign in as alice/alice, bob/bob, ... — demo only)"
	$(BIN)/gunicorn --workers $(WORKERS) --bind 127.0.0.1:$(AS_PORT) --access-logfile - \
		'authz_server.wsgi:app'

demo-reset:
	rm -f instance/authz_server.db instance/authz_server.db-wal instance/authz_server.db-shm

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
