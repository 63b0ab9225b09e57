# Two commands do all set-up on a fresh machine with only Python: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
FUZZ_SECONDS ?= 60

.PHONY: install browser smtp-tools demo test lint format bench eval fuzz clean

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/digest demo

# Browser tests drive Debian's Chromium (never a downloaded one); installed here when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  (apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)) >/dev/null; }

# The benchmark (and its test) need Postfix's smtp-sink/smtp-source: Debian's postfix package is
# installed when missing, with the daemon never started (bench/smtp.py).
smtp-tools: install
	@$(BIN)/python -c 'from bench.smtp import ensure_tools; log = []; ensure_tools(log); print(*log, sep="\n")' | sed '/^$$/d'

test: install browser smtp-tools
	$(BIN)/pytest

# Coverage-guided fuzzing (tests/fuzz/): each harness for FUZZ_SECONDS, one after the other, one
# worker; new corpus and crashes go to test-output/fuzz/<target>/. Not part of `make test`.
fuzz: install
	$(BIN)/python -m tests.fuzz --seconds $(FUZZ_SECONDS) --out test-output/fuzz

# The big-day benchmark of issue 5 (bench/README.md); options via ARGS, e.g. make bench ARGS=--quick
bench: install smtp-tools
	$(BIN)/python -m bench $(ARGS)

# The relevance evaluation of issue 13 (bench/eval/PROVENANCE.md): writes bench/eval/results.md/json.
eval: install
	$(BIN)/python -m bench.eval $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy digest workers bench tests

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) outbox demo.sqlite3* test-output .pytest_cache .mypy_cache .ruff_cache
