# consentkit — `make demo` runs the demo site, `make test` runs the whole suite.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
LEDGER ?= sqlite:///demo-ledger.db

.PHONY: venv demo test bench bench-http lint format clean i18n browser-deps widget widget-deps

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: venv
	$(PY) -m demo_site --host $(HOST) --port $(PORT) --ledger $(LEDGER)

test: venv browser-deps widget-deps
	$(PY) -m pytest

# axe-core for the browser tests' accessibility checks (needs npm; Chromium comes from Debian).
browser-deps:
	@if command -v npm >/dev/null 2>&1 && [ ! -f tests/browser/node_modules/axe-core/axe.min.js ]; then \
		cd tests/browser && npm ci --no-audit --no-fund --silent; fi

# The pinned esbuild (widget/package-lock.json) that builds the shipped widget/consentkit.js;
# tests/test_widget_build.py rebuilds with it. Reinstalled when the lockfile is newer than the install.
widget-deps:
	@if command -v npm >/dev/null 2>&1 && { [ ! -f widget/node_modules/.package-lock.json ] || \
		[ widget/package-lock.json -nt widget/node_modules/.package-lock.json ]; }; then \
		cd widget && npm ci --no-audit --no-fund --silent; fi

# Rebuild widget/consentkit.js (minified, shipped) from widget/src/consentkit.js (readable).
widget: widget-deps
	cd widget && npm run --silent build

bench: venv
	$(PY) benchmarks/middleware.py
	$(PY) benchmarks/ledger.py

# Over real HTTP: uvicorn and wrk (apt-get install wrk), requests/s with and without consentkit.
bench-http: venv
	$(PY) benchmarks/http_bench.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy consentkit

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

# Extract the banner's texts, merge them into each catalog, compile the catalogs.
i18n: venv
	$(VENV)/bin/pybabel extract -F babel.cfg -k _ -k gettext --no-location --sort-output --project consentkit --copyright-holder "consentkit developers" -o consentkit/locales/consentkit.pot .
	$(VENV)/bin/pybabel update -D consentkit -i consentkit/locales/consentkit.pot -d consentkit/locales --width 100
	$(VENV)/bin/pybabel compile -D consentkit -d consentkit/locales --statistics
