# bookbench: `make demo` runs the main job end to end, `make test` is the test command CI runs.
VENV ?= .venv
PY := $(VENV)/bin/python
BOOKBENCH := $(VENV)/bin/bookbench
STAMP := $(VENV)/.installed

.PHONY: install test test-fast lint demo bench bench-check clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# four processes, one test file each at a time (module fixtures stay in one process; the processes beyond the two
# cores fill the time the others spend waiting on stopped or hung processes), then the tests that measure timing or
# noise on the real stack alone (marker `serial`): see the README's Development section for the measured times
#
# Bytecode caching on for the tests even where the environment turns it off (PYTHONDONTWRITEBYTECODE=1): every
# test starts bookbench, service, Locust and dispatcher processes, and each would otherwise compile the project's
# modules from source again, and each pytest process rewrite every test module's asserts again (compiled once
# up front, so that the four test processes starting together do not each compile them).
CACHED := env -u PYTHONDONTWRITEBYTECODE
# the files that hold a serial test, found by their marker: the serial run imports only those (collecting every test
# file to keep 2 tests took ~3 s); with none found it falls back to collecting all
SERIAL_FILES := $(shell grep -rl --include='test_*.py' 'pytest.mark.serial' tests)
test: $(STAMP)
	$(CACHED) $(PY) -m compileall -q bookbench target_service
	$(CACHED) $(PY) -m pytest -q -n 4 --dist loadfile --no-loadscope-reorder -m "not serial"
	$(CACHED) $(PY) -m pytest -q -m serial $(SERIAL_FILES)

test-fast: $(STAMP)
	$(CACHED) $(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# End to end on the embedded database: the pre-deployment checks, then none / seed / recommended compared on the
# four scenarios at 1M appointments (compare.html; see the README). Every check runs once: compare's first round
# runs smoke, uat, stress and preflight against each set's service (pipeline/run.py run_checks, recorded in each
# run's review), so the check command first runs only the suites compare does not (it fails fast, before the
# 8-minute compare). Together they are every suite of `check all` (tests/cli/test_terminal.py holds them to it).
DEMO_SUITES := notifications hostile audit
demo: $(STAMP)
	$(BOOKBENCH) check $(DEMO_SUITES) --junit results/demo-checks.xml
	$(BOOKBENCH) compare

# Benchmarks print measured ratios, each stated goal with `met` / `NOT met`; `make bench` never gates on a timing.
# `make bench-check` runs the same benchmarks and fails each one that missed a goal it states (--bench-check,
# benchmarks/goals.py). wrk comes from Debian's packages.
bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || echo "wrk missing: its benchmarks skip"
	$(PY) -m pytest -q benchmarks -p no:cacheprovider --benchmark-disable-gc -s $(BENCH_FLAGS)

bench-check:
	$(MAKE) bench BENCH_FLAGS=--bench-check

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
