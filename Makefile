# The README's two commands: `make demo` (the main job) and `make test` (the whole suite).
# Both create the virtual environment and install everything on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# CPU build of torch: on the development and CI machines this wheel is on disk, so nothing multi-gigabyte
# is downloaded. GPU machines install a CUDA build instead (see the Dockerfile's TORCH_INDEX_URL).
TORCH  ?= torch==2.13.0

.PHONY: demo test lint typecheck pytest install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev,notebook]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mupredict demo

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache mupredict.db*
