# Two commands: `make test` and `make demo`. Each creates .venv and installs requirements on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo install clean

install: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

demo: $(STAMP)
	$(PY) -m datasets.synthetic --out data/synthetic --if-changed
	$(PY) -m datasets.check --cityscapes data/synthetic/Cityscapes --gta5 data/synthetic/GTA5

clean:
	rm -rf $(VENV) runs .pytest_cache
