# make demo   - create .venv, install gridrun with PyTorch, TensorFlow and Ray, run the quickstart
# make test   - create .venv, install, run the test suite
# make bench  - the CPU benchmark suite: one table, runs/bench/suite.json (not tests)
# make bench-gpu - the GPU rows (needs a CUDA device)
# make bench-asha - ASHA vs full training on Fashion-MNIST (about an hour on 2 cores)
# make bench-parity - the Fashion-MNIST grid in PyTorch and in Keras, compared (about 75 minutes)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
EXTRAS ?= torch,tensorflow,dev,trackers

.PHONY: install demo test test-fast bench bench-gpu bench-asha bench-parity clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/gridrun launch ablations/quickstart.py --overwrite

# the tests not marked slow or ray on two processes, then those one at a time (each starts its
# own Ray; some kill processes and time the recovery)
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m "not slow and not ray" --durations=10
	$(BIN)/python -m pytest -q -m "slow or ray" --durations=20

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not ray"

bench: $(STAMP)
	$(BIN)/python benchmarks/suite.py

bench-gpu: $(STAMP)
	$(BIN)/python benchmarks/trainer_speed.py --device cuda --backbone resnet20 --frameworks torch
	$(BIN)/python benchmarks/trainer_speed.py --device cuda --backbone resnet20 --frameworks torch --fast
	$(BIN)/python benchmarks/gpu.py --out runs/bench/gpu.json

bench-parity: $(STAMP)
	$(BIN)/python benchmarks/framework_parity.py

bench-asha: $(STAMP)
	$(BIN)/python benchmarks/asha_agreement.py

clean:
	rm -rf $(VENV) runs build *.egg-info
