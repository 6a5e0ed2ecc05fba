# The project's contract: every workflow is a target here; CI calls the same targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.DEFAULT_GOAL := help
.PHONY: help install browser node mcp-js run run-server serve chat ingest ask test test-slow lint format clean eval eval-update bench train

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-11s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	@echo "installing rag and its dependencies (the first build of llama-cpp-python takes ~10 minutes)"
	$(BIN)/pip install --quiet -e '.[dev,llamacpp]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install rag (torch pinned first)

# Debian's Chromium for the web page's browser tests (Playwright drives it; its own browser
# download does not work offline).  Installed only when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser: ## Install headless Chromium (Debian's) for the page's browser tests, if missing
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }
	@/usr/bin/chromium --version

# Debian's nodejs and npm run the MCP tests' second client, the official TypeScript SDK
# (tests/mcp_js: package.json and package-lock.json; node_modules is not committed).
JS_DIR   := tests/mcp_js
JS_STAMP := $(JS_DIR)/node_modules/.installed
node: ## Install Debian's nodejs and npm (the MCP tests' TypeScript client), if missing
	@command -v node >/dev/null && command -v npm >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y nodejs npm; }
	@node --version

$(JS_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	@if command -v npm >/dev/null; then \
		cd $(JS_DIR) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else \
		echo "npm is missing (make node installs it): the TypeScript MCP client's tests skip (fail under CI)"; \
	fi

mcp-js: $(JS_STAMP) ## The TypeScript MCP client the tests use (npm ci in tests/mcp_js)

run: install ## Ingest data/corpus if missing or stale, then serve the page and API on 127.0.0.1:8000
	$(BIN)/rag ingest --if-stale
	$(BIN)/rag serve

CHROMA_PORT ?= 8001
SERVER_ENV  := RAG_CHROMA_URL=http://127.0.0.1:$(CHROMA_PORT) RAG_INDEX_DIR=data/index-server
run-server: install ## Chroma server (data/chroma-server, port 8001) + 2 API workers on :8000; Ctrl-C stops both
	@mkdir -p data/chroma-server
	@$(BIN)/chroma run --path data/chroma-server --host 127.0.0.1 --port $(CHROMA_PORT) \
		>data/chroma-server.log 2>&1 & chroma=$$!; \
	trap 'kill $$chroma 2>/dev/null; wait $$chroma 2>/dev/null' EXIT; trap 'exit 130' INT TERM; \
	echo "chroma: http://127.0.0.1:$(CHROMA_PORT) (log: data/chroma-server.log)"; \
	for i in $$(seq 120); do \
		$(BIN)/python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$(CHROMA_PORT)/api/v2/heartbeat', timeout=1)" 2>/dev/null && break; \
		kill -0 $$chroma 2>/dev/null || { echo "chroma did not start:"; tail -5 data/chroma-server.log; exit 1; }; \
		sleep 0.5; \
	done; \
	$(SERVER_ENV) $(BIN)/rag ingest --if-stale && $(SERVER_ENV) $(BIN)/rag serve --workers 2

chat: install ## Talk to your documents (ingests data/corpus first if needed)
	$(BIN)/rag ingest --if-stale
	$(BIN)/rag chat

ingest: install ## Re-ingest data/corpus
	$(BIN)/rag ingest --prune

ask: install ## Ask a question: make ask Q="When did Putin last visit North Korea?"
	$(BIN)/rag ask "$(Q)"

test: install mcp-js ## Run the test suite (all but the minutes-long `slow` ones)
	$(BIN)/pytest -m "not slow"

test-slow: install ## Run the slow suites (kill -9 property test); CI runs these too
	$(BIN)/pytest -m slow

lint: install ## ruff and mypy
	$(BIN)/ruff check rag tests
	$(BIN)/mypy rag

format: install ## Format the code with ruff
	$(BIN)/ruff format rag tests
	$(BIN)/ruff check --fix rag tests

clean: ## Remove the indexes (embedded and run-server's) and caches (keeps .venv)
	rm -rf data/index data/index-server data/chroma-server data/chroma-server.log data/models .pytest_cache .mypy_cache .ruff_cache .hypothesis

TRAIN_DATA ?= ../shared/benchmarks/squad-train
train: install ## Re-train the readers (rag/answering/reader/) on SQuAD training articles (TRAIN_DATA); ~2.5 h on 2 cores, resumable
	$(BIN)/rag train --data $(TRAIN_DATA)

# Marked answers exported by `rag feedback export` (eval/feedback.jsonl) are asked too, when there.
GOLDEN := --golden eval/golden.jsonl $(if $(wildcard eval/feedback.jsonl),--golden eval/feedback.jsonl)
eval: install ## Evaluate on eval/golden.jsonl (+ eval/feedback.jsonl) against eval/baseline.json
	$(BIN)/rag eval $(GOLDEN) --corpus data/corpus --baseline eval/baseline.json

eval-update: install ## Re-run the evaluation and rewrite eval/baseline.json
	$(BIN)/rag eval $(GOLDEN) --corpus data/corpus --baseline eval/baseline.json --update-baseline

bench: install ## Benchmarks: a table and bench/results.json (BENCH_SCALE=tiny|default|full; see bench/README.md)
	$(BIN)/python -m bench.run --scale $(or $(BENCH_SCALE),default)
