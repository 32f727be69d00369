# Two entry points for a fresh machine (see README):
#   make demo   install, then run the main job on the embedded (Parquet) store
#   make test   install everything (Python deps, Neo4j jars) and run the full test suite (what CI runs)
#   make test-fast  the fast tier while developing: no Neo4j, no slow tests (pytest -m "not slow")
VENV ?= .venv
PY := $(VENV)/bin/python
GRAPHONC := $(VENV)/bin/graphonc
RUN ?= runs/metabric
CONFIG ?= configs/metabric.yaml

.PHONY: setup demo test test-fast bench clean

setup:
	bash scripts/setup.sh

PATIENT ?= MB-0010

# the main job: graph -> model -> index -> similar patients + tumour-board report (CPU is fine)
demo: setup
	$(GRAPHONC) build-graph --config $(CONFIG) --out $(RUN) --force
	$(GRAPHONC) info $(RUN)
	$(GRAPHONC) train --run $(RUN)
	$(GRAPHONC) index --run $(RUN)
	$(GRAPHONC) similar --run $(RUN) --patient $(PATIENT) -k 10
	$(GRAPHONC) report --run $(RUN) --patient $(PATIENT)

test:
	bash scripts/setup.sh --neo4j
	$(PY) -m pytest -q --durations=15

# tests marked `neo4j` count as slow (tests/conftest.py), so this needs no server
test-fast: setup
	$(PY) -m pytest -q -m "not slow" --durations=10

bench: setup
	$(PY) scripts/bench_build.py --sizes 1000,10000,100000

clean:
	rm -rf runs .pytest_cache
