# Two commands: `make run` (demo on http://127.0.0.1:8000) and `make test` (whole suite).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: run test test-fast install install-test browser lint bench clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PIP) install -q -e '.[test,bench]'
	@touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

# Debian's chromium and a CJK font for the browser tests (playwright cannot download browsers here).
browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi wqy; then \
		if [ "$$(id -u)" = "0" ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null) \
			|| echo "warning: could not install chromium; browser tests will be skipped"; \
		else echo "warning: chromium missing and not root; browser tests will be skipped"; fi; \
	fi

run: install
	mkdir -p var
	$(VENV)/bin/cardbot demo

test: lint browser
	$(PY) -m pytest -n 2 --dist loadfile -q

# The pure-rule unit tests (money, calendar, card rules): seconds, no database or Redis.
test-fast: install-test
	$(PY) -m pytest -m unit -q -p no:cacheprovider

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: install-test
	$(PY) -m bench

clean:
	rm -rf $(VENV) var .pytest_cache
