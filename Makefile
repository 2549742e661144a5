# Two commands: `make test` and `make demo`. Each creates .venv and installs requirements on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# `make demo ARGS=--DEVICE=cpu` passes overrides to every step script.
.PHONY: test demo study install clean readme-figures

install: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# Most tests are process start-up and small tensors: one thread per worker and one worker per core (at most 4)
# finish sooner than one worker with every core.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n auto --maxprocesses=4 tests

demo: $(STAMP)
	$(PY) -m datasets.synthetic --out data/synthetic
	$(PY) -m datasets.check --cityscapes data/synthetic/Cityscapes --gta5 data/synthetic/GTA5 --max-images 50
	$(PY) step2a_deeplab_cityscapes.py --demo $(ARGS)
	$(PY) step2b_bisenet_cityscapes.py --demo $(ARGS)
	$(PY) step3a3b_gta_to_cityscapes.py --demo $(ARGS)
	$(PY) step4_5_adversarial.py --demo $(ARGS)
	$(PY) step6_uda_methods.py --demo $(ARGS)
	$(PY) -m utils.report runs --out runs/RESULTS.md

# The adaptation study (study.py): `make study SEEDS=11,12,13 ROWS=all` runs other seeds and rows.
study: $(STAMP)
	$(PY) -m datasets.synthetic --out data/synthetic
	$(PY) study.py $(if $(SEEDS),--SEEDS=$(SEEDS)) $(if $(ROWS),--ROWS=$(ROWS)) $(ARGS)

# After `make demo`: the small prediction PNGs the README shows (docs/images/).
readme-figures: $(STAMP)
	$(PY) -m utils.report runs --figures docs/images \
		--figures-only step2b_bisenet-demo,step4_5_adversarial-demo_adv_ce_sgd > /dev/null

clean:
	rm -rf $(VENV) runs .pytest_cache
