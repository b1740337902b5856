# The two commands of the README. Both set the machine up first (idempotent).
PY := .venv/bin/python
REPORTS := reports

# Everything make starts finds the venv's tools first (pytest, pyocd, rig, ruff, python3):
# a tool installed elsewhere on the machine never stands in for one the set-up did not install.
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup hil test lint campaign clean

setup:
	@scripts/setup

# Linter, formatter check and type check of rig/ (all configured in pyproject.toml), and the
# GitHub workflow files (actionlint, configured in .github/actionlint.yaml); .ci/run runs it
# before the tests.
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	.venv/bin/actionlint -color=false

# pytest-xdist workers: two per core, at most 8 (each drives its own twin; a worker waits
# on wall-paced twin time, the console and sockets about as much as it computes: on 2 cores
# `make hil` takes 98 s with 3-4 workers against 133 s with 2). WORKERS=N to choose.
WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); n=$$((2 * n)); [ $$n -gt 8 ] && n=8; echo $$n)

# The main job: the HIL suite on the default board (the twin), HTML report in reports/;
# ARGS="-n 0" for one process.
hil: setup
	$(PY) -m pytest -n $(WORKERS) tests_hil --board twin \
	  --html=$(REPORTS)/hil-report.html --self-contained-html --junitxml=$(REPORTS)/hil-junit.xml $(ARGS)

# Everything: the project's own tests and the HIL suite, WORKERS workers (set ARGS="-n 0"
# for one process).
test: setup
	$(PY) -m pytest -n $(WORKERS) tests tests_hil \
	  --html=$(REPORTS)/test-report.html --self-contained-html --junitxml=$(REPORTS)/test-junit.xml $(ARGS)

# The power-cut campaign with its defaults (issue 19): the reference bootloader, a 300 KiB
# update over Ethernet, every class and sector boundary plus a seeded sample to 1000
# single-cut points, 10 multi-cut runs; exit 1 if any point bricked the board. JSON and
# HTML in reports/campaign/. .ci/run runs it after the tests (~20 min on a 2-core machine).
SEED ?= 19
campaign: setup
	.venv/bin/rig campaign power-cut --seed $(SEED) --out $(REPORTS)/campaign $(ARGS)

clean:
	rm -rf firmware/build $(REPORTS)/*.html $(REPORTS)/*.xml
