# The README's two commands: `make demo` and `make test`. Both create .venv with torch pinned to
# the CPU build through constraints.txt (an unpinned torch pulls gigabytes of CUDA packages).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo browser test lint tour clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# The main job on the embedded digits data (no network): both studies, then what the storage holds.
demo: $(STAMP)
	$(BIN)/anncnn-tune optimize --study digits-cnn --n-trials 30
	$(BIN)/anncnn-tune optimize --study digits-ann --n-trials 30
	$(BIN)/anncnn-tune studies

# Headless Chromium for the dashboard test (Debian's package; the test skips with a reason without it).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "chromium not installed: the browser test will be skipped"; }

test: $(STAMP) browser
	$(BIN)/lint-imports
	$(BIN)/pytest -q

# Rerun docs/tour.ipynb in a fresh kernel and store its outputs (tables, figures) in the file, as CI
# compares them (tests/test_notebook.py). Run it after a change that moves what the notebook shows.
tour: $(STAMP)
	$(BIN)/python tests/tour.py --write

lint: $(STAMP)
	$(BIN)/ruff check anncnn_tune tests benchmarks

clean:
	rm -rf $(VENV) anncnn-tune.db anncnn-tune.db.lock anncnn-tune.db-wal anncnn-tune.db-shm anncnn-tune-artifacts .pytest_cache
