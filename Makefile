# The two commands of the README. Both set the machine up first (idempotent).
PY := .venv/bin/python
REPORTS := reports

# Everything make starts finds the venv's tools first (pytest, pyocd, rig, ruff, python3):
# a tool installed elsewhere on the machine never stands in for one the set-up did not install.
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup hil test lint clean

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

# The main job: the HIL suite on the default board (the twin), HTML report in reports/; one
# worker (and twin) per core, ARGS="-n 0" for one process.
hil: setup
	$(PY) -m pytest -n auto tests_hil --board twin \
	  --html=$(REPORTS)/hil-report.html --self-contained-html --junitxml=$(REPORTS)/hil-junit.xml $(ARGS)

# Everything: the project's own tests and the HIL suite, one worker per core (each worker
# drives its own twin; set ARGS="-n 0" for one process).
test: setup
	$(PY) -m pytest -n auto tests tests_hil \
	  --html=$(REPORTS)/test-report.html --self-contained-html --junitxml=$(REPORTS)/test-junit.xml $(ARGS)

clean:
	rm -rf firmware/build $(REPORTS)/*.html $(REPORTS)/*.xml
