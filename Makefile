# fedledger: two commands on a fresh machine.
#   make simulate   set everything up and run the main job (fedledger simulate, in-process chain)
#   make test       set everything up and run the test suite (CI runs exactly this via .ci/run)
# Everything lands in .venv/ and node_modules/ inside the checkout; nothing is installed globally.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ANVIL  := node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
ARGS   ?=

.PHONY: setup simulate test test-all lint typecheck bench datasets postgres chromium report-deps vendor contracts clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(ANVIL): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(ANVIL)

simulate: $(STAMP)
	$(BIN)/fedledger simulate $(ARGS)

test: $(STAMP) $(ANVIL) postgres chromium report-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist worksteal -m "not slow" $(ARGS)

test-all: $(STAMP) $(ANVIL) postgres chromium report-deps
	$(BIN)/pytest -n 2 --dist worksteal $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/python -m fedledger.chain.artifacts

bench: $(STAMP) $(ANVIL) datasets
	$(BIN)/python bench/run_all.py

# Debian's Fashion-MNIST (70,000 images) is the deployment bench's workload; the tests and
# `make simulate` need only the datasets that ship inside Python packages.
FASHION := /usr/share/datasets/fashion-mnist
datasets:
	@if [ -d $(FASHION) ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get install -y -q dataset-fashion-mnist || \
	  { apt-get update -q && apt-get install -y -q dataset-fashion-mnist; }; \
	elif command -v sudo >/dev/null; then sudo apt-get install -y -q dataset-fashion-mnist; \
	else echo "bench: $(FASHION) is missing; run 'apt-get install dataset-fashion-mnist' as root" >&2; exit 1; fi

# The integration tests start a real PostgreSQL server (tests/integration/postgres.py) from
# Debian's postgresql package; installed here when no initdb is on PATH or in /usr/lib/postgresql.
postgres:
	@if command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; }; \
	elif command -v sudo >/dev/null; then sudo apt-get install -y -q postgresql; \
	else echo "test: PostgreSQL is missing; run 'apt-get install postgresql' as root" >&2; exit 1; fi

# The dashboard's browser tests (tests/browser) drive Debian's headless Chromium through its
# chromedriver; installed here when either is missing, as postgres is above.
chromium:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; }; \
	elif command -v sudo >/dev/null; then sudo apt-get install -y -q chromium chromium-driver; \
	else echo "test: Chromium is missing; run 'apt-get install chromium chromium-driver' as root" >&2; exit 1; fi

# The dashboard's charting library: pinned in package.json, its built file committed in the
# package (a wheel must carry it; users' machines are offline). Refresh after changing the pin.
VENDOR := src/fedledger/dashboard/static/vendor
vendor: $(ANVIL)
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css $(VENDOR)/
	cp node_modules/uplot/LICENSE $(VENDOR)/uPlot.LICENSE

# `fedledger report --format pdf` lays out with WeasyPrint, which loads Debian's pango; its tests
# render the PDF to PNG pages with poppler's pdftoppm and read it back with pdftotext.
REPORT_DEBS := poppler-utils libpango-1.0-0 libpangoft2-1.0-0
report-deps:
	@if command -v pdftoppm >/dev/null && ldconfig -p | grep -q libpangoft2-1.0; then :; \
	elif [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(REPORT_DEBS) || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(REPORT_DEBS); }; \
	elif command -v sudo >/dev/null; then sudo apt-get install -y -q $(REPORT_DEBS); \
	else echo "test: poppler/pango are missing; run 'apt-get install $(REPORT_DEBS)' as root" >&2; exit 1; fi

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
