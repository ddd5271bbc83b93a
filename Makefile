# Kefu: `make run` serves the demo shop on http://127.0.0.1:8000; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install migrate seed browser bench clean lint ui ui-test screenshots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	$(BIN)/kefu migrate

seed: migrate
	$(BIN)/kefu demo seed

# The front end (ui/): npm ci from the committed lock file, then a Vite build into kefu/ui_dist (not committed).
UI_NODE := ui/node_modules/.ci-stamp
UI_BUILT := kefu/ui_dist/index.html
UI_SOURCES := $(shell find ui/src -type f 2>/dev/null) ui/index.html ui/vite.config.ts ui/tsconfig.json

$(UI_NODE): ui/package.json ui/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm (Node.js 20.19+) is needed to build ui/"; exit 1; }
	cd ui && npm ci --no-audit --no-fund
	touch $(UI_NODE)

$(UI_BUILT): $(UI_NODE) $(UI_SOURCES)
	cd ui && npm run build

ui: $(UI_BUILT)

ui-test: $(UI_NODE)
	cd ui && npm test

# PNGs of the main screens for the README: chromium plus fonts for the Chinese text and the emoji (the tests
# themselves read text, not pixels, and need neither font).
SHOT_FONTS := fonts-wqy-microhei fonts-noto-color-emoji
screenshots: $(STAMP) browser ui
	@{ fc-list 2>/dev/null | grep -qi "wqy\|noto.*cjk" && fc-list 2>/dev/null | grep -qi "emoji"; } || { \
	  echo "installing fonts for the screenshots: $(SHOT_FONTS)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SHOT_FONTS) >/dev/null) \
	  || echo "could not install $(SHOT_FONTS): Chinese text and emoji in the screenshots will show as boxes"; }
	$(BIN)/python -m tests.e2e.screenshots docs/screenshots

run: $(STAMP) ui
	$(BIN)/kefu serve --seed-demo --host $(HOST) --port $(PORT)

# Debian's chromium drives the browser tests; npm/pip browser downloads do not work on these machines.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || { echo "could not install chromium (need root and Debian's package registry)"; exit 1; }; }

test: $(STAMP) browser ui ui-test
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check kefu tests bench

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/chat_roundtrip.py

clean:
	rm -rf $(VENV) var .pytest_cache
