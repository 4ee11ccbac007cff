# make demo   - create .venv, install gridrun with PyTorch, TensorFlow and Ray, run the quickstart
# make test   - create .venv, install, run the test suite
# make bench  - the benchmark scripts (numbers for the README; not tests)
# make bench-asha - ASHA vs full training on Fashion-MNIST (about an hour on 2 cores)
# make bench-parity - the Fashion-MNIST grid in PyTorch and in Keras, compared (about 20 minutes)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
EXTRAS ?= torch,tensorflow,dev

.PHONY: install demo test test-fast bench bench-asha bench-parity clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/gridrun launch ablations/quickstart.py --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not ray"

bench: $(STAMP)
	$(BIN)/python benchmarks/fashion_baseline.py
	$(BIN)/python benchmarks/report_scale.py
	$(BIN)/python benchmarks/augment_cost.py
	$(BIN)/python benchmarks/trainer_speed.py
	$(BIN)/python benchmarks/orchestration.py
	$(BIN)/python benchmarks/parallel.py
	$(BIN)/python benchmarks/data_path.py
	$(BIN)/python benchmarks/keras_memory.py

bench-parity: $(STAMP)
	$(BIN)/python benchmarks/framework_parity.py

bench-asha: $(STAMP)
	$(BIN)/python benchmarks/asha_agreement.py

clean:
	rm -rf $(VENV) runs build *.egg-info
