# radlib: two set-up commands (`make run`, `make test`) plus `make lab`, `make notebooks`, `make sync`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.radlib-installed
# tests and notebooks run in `smoke` unless RADLIB_PROFILE says otherwise; `make run` picks the machine's
# profile itself (`cpu` without a GPU, `lab` with one)
TEST_PROFILE := $(or $(RADLIB_PROFILE),smoke)
# notebooks and tests on a small CPU: do not oversubscribe the cores
export OMP_NUM_THREADS ?= 2
PYTEST_ARGS ?=
# the notebooks that carry the central claims: `make test` runs them in the `cpu` profile with their asserts
# (tests/test_notebooks_cpu.py, same list), not in smoke under nbval
CPU_NOTEBOOKS := 00_quickstart 04_opposite_pairs 06_robust_evaluation 09_baselines_and_ablations

.PHONY: venv run test lint test-unit test-notebooks lab-paths lab notebooks docs sync bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e ".[dev,local]"
	@touch $(STAMP)

venv: $(STAMP)

## the main job: train a non-robust and a robust detector, attack both at several eps, write runs/demo/report.md
run: venv
	$(BIN)/python -m radlib demo --out runs/demo

## the whole suite: unit tests, the CPU_NOTEBOOKS in `cpu` (claims asserted) and every other notebook under nbval
## (smoke profile unless RADLIB_PROFILE says otherwise)
test: venv lint
	RADLIB_PROFILE=$(TEST_PROFILE) $(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env \
	  -p no:cacheprovider $(foreach nb,$(CPU_NOTEBOOKS),--ignore=notebooks/$(nb).ipynb) $(PYTEST_ARGS)

## static checks (part of `make test`): ruff's defect rules and mypy on radlib/, configured in pyproject.toml
lint: venv
	$(BIN)/ruff check radlib
	$(BIN)/mypy

test-unit: venv
	RADLIB_PROFILE=$(TEST_PROFILE) $(BIN)/python -m pytest tests $(PYTEST_ARGS)

## every notebook's lab-only code paths at tiny sizes on the CPU (part of `make test`; asserts skipped)
lab-paths: venv
	RADLIB_PROFILE=$(TEST_PROFILE) $(BIN)/python -m pytest tests/test_notebooks_lab_paths.py $(PYTEST_ARGS)

lab: venv
	$(BIN)/jupyter lab notebooks

## execute every notebook into build/ (keeps the sources untouched)
notebooks: venv
	@mkdir -p build
	for nb in notebooks/[0-9]*.ipynb; do \
	  $(BIN)/jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=1800 \
	    --output-dir build "$$nb" || exit 1; done

## executed copies of the series, with their figures, for readers: docs/notebooks/ (+ TIMES.md, the wall times);
## `cpu` profile unless RADLIB_PROFILE says otherwise; the cache is runs/cache (RADLIB_CACHE=$$(mktemp -d) for cold)
docs: venv
	$(BIN)/python docs/build_notebooks.py --profile $(or $(RADLIB_PROFILE),cpu)

## re-pair notebooks after editing either side (.ipynb <-> .py percent)
sync: venv
	$(BIN)/jupytext --sync notebooks/[0-9]*.ipynb

bench: venv
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_eval.py

clean:
	rm -rf build runs .pytest_cache
