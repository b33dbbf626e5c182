# uma-health: `make demo` runs the demo, `make test` runs every test. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The demo's ports and URLs; every one can be moved (see README "Configuration").
export AS_PORT ?= 8400
export EHR_PORT ?= 8401
export DOCTOR_PORT ?= 8402
export WORKERS ?= 2

.PHONY: demo test lint venv clean demo-reset browser compose-cli balancer screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall whenever the project's metadata changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# $(call need,CHECK,DEBIAN PACKAGE,WHICH TESTS): install the package when CHECK fails and we
# are root (as in CI); otherwise say how (the tests then skip locally and fail under CI).
need = @{ $(1); } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $(2) >/dev/null; \
	  else echo "make test: $(2) is missing: sudo apt-get install $(2) ($(3) needs it)"; fi; }

# The browser tests drive Debian's Chromium.
browser:
	$(call need,command -v chromium,chromium,tests/browser)

# tests/test_compose.py has a compose CLI check docker-compose.yml: the docker CLI's own
# plugin where there is one, else Debian's docker-compose.
compose-cli:
	$(call need,docker compose version || command -v docker-compose,docker-compose,tests/test_compose.py)

# tests/test_two_nodes.py runs deploy/haproxy.cfg, the compose profile scale's balancer.
balancer:
	$(call need,command -v haproxy || test -x /usr/sbin/haproxy,haproxy,tests/test_two_nodes.py)

test: $(STAMP) browser compose-cli balancer
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# README's screenshots: run the browser tests, copy their pictures to docs/screenshots/.
screenshots: $(STAMP) browser
	$(BIN)/python docs/update_screenshots.py

lint: $(STAMP)
	$(BIN)/ruff check .

demo: $(STAMP)
	@$(BIN)/python -m uma_demo.launch

demo-reset:
	rm -f instance/authz_server.db instance/authz_server.db-wal instance/authz_server.db-shm
	rm -f instance/records_server.db instance/records_server.db-wal instance/records_server.db-shm
	rm -f instance/doctor_client.db instance/doctor_client.db-wal instance/doctor_client.db-shm
	rm -f instance/mqtt_broker.db instance/mqtt_broker.db-wal instance/mqtt_broker.db-shm
	rm -f instance/*.db-migrate.lock

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
