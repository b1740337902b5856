# The two commands of the README. Both set the machine up first (idempotent).
PY := .venv/bin/python
REPORTS := reports

.PHONY: setup hil test clean

setup:
	@scripts/setup

# The main job: the HIL suite on the default board (the twin), HTML report in reports/.
hil: setup
	$(PY) -m pytest tests_hil --board twin \
	  --html=$(REPORTS)/hil-report.html --self-contained-html --junitxml=$(REPORTS)/hil-junit.xml $(ARGS)

# Everything: the project's own tests and the HIL suite.
test: setup
	$(PY) -m pytest tests tests_hil \
	  --html=$(REPORTS)/test-report.html --self-contained-html --junitxml=$(REPORTS)/test-junit.xml $(ARGS)

clean:
	rm -rf firmware/build $(REPORTS)/*.html $(REPORTS)/*.xml
