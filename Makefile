# jejax: `make run` trains and evaluates the default method; `make test` runs the tests.
# Both create the virtual environment and obtain Fashion-MNIST first.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CONFIG ?= experiments/configs/simclr.py
WORKDIR ?= runs/$(basename $(notdir $(CONFIG)))
ARGS ?=

.PHONY: setup data multimodal run test bench bench-gpu bench-cpu-scaling bench-cpu clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

# Offline Fashion-MNIST: Debian's package where apt-get exists; otherwise TFDS downloads
# and prepares it (that step needs TensorFlow, the `prepare` extra).
data: setup
	@if $(PY) -m jejax.data.check fashion_mnist; then :; \
	elif command -v apt-get >/dev/null; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist; \
	else \
	  $(PY) -m pip install -q -e '.[prepare]' && \
	  $(PY) -c "import tensorflow_datasets as tfds; tfds.builder('fashion_mnist', file_format='array_record').download_and_prepare()"; \
	fi
	@# espeak-ng speaks the captions of the multimodal data set (jejax.data.speech).
	@if command -v espeak-ng >/dev/null; then :; \
	elif command -v apt-get >/dev/null; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq espeak-ng; \
	else \
	  echo "espeak-ng not found: install it (version 1.51) to build the multimodal data set"; \
	fi

# The full offline image-text-speech data set (minutes, about 3 GB in ~/.cache/jejax);
# the tests build a tiny one on their own, and first use builds it too.
multimodal: data
	$(PY) -m jejax.data.multimodal

run: data
	$(PY) -m jejax.main --config $(CONFIG) --workdir $(WORKDIR) $(ARGS)
	$(PY) -m jejax.embed --workdir $(WORKDIR)

test: data
	$(PY) -m pytest -q -n 2 --durations=25 tests

bench: data
	$(PY) experiments/bench.py

# SimCLR/BYOL on ResNet-18@32 and ResNet-50@224 in bf16, jejax beside PyTorch + lightly
# (needs torch, torchvision and lightly in the venv, else that part is skipped).
bench-gpu: setup
	$(PY) experiments/bench_gpu.py --parts jax,torch $(ARGS)

# Step time on 1, 2, 4, 8 fake CPU devices: sharding overhead, since they share the cores.
bench-cpu-scaling: setup
	$(PY) experiments/bench_gpu.py --parts cpu-scaling $(ARGS)

# The main job's step in jejax and in PyTorch on the CPU (PyTorch timed when installed:
# pip install torch --index-url https://download.pytorch.org/whl/cpu).
bench-cpu: data
	$(PY) experiments/bench_cpu.py $(ARGS)

clean:
	rm -rf runs bench_results .pytest_cache
