#!/usr/bin/env bash
# Set up graphonc on a fresh machine: a Python 3.11 virtualenv in .venv with the package and its
# dependencies. Idempotent: reruns only reinstall when pyproject.toml changed.
# With --neo4j it also fetches the Neo4j 5.26 jars with Maven (Java 17 + Maven; installed with apt-get
# when missing and we are root) and installs Chromium for the report test the same way.
# Env: PYTHON (interpreter to use, default python3.11 or python3), GRAPHONC_VENV (default .venv),
#      GRAPHONC_MAVEN_CACHE (where the jars and the Maven repository are cached; reused when present),
#      GRAPHONC_FAISS (auto: faiss-gpu in place of faiss-cpu where nvidia-smi sees a GPU; cpu; gpu).
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
VENV="${GRAPHONC_VENV:-.venv}"
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
  echo "graphonc needs Python 3.11; $PY is $("$PY" --version 2>&1). Set PYTHON=/path/to/python3.11." >&2
  exit 1
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"

stamp="$VENV/.graphonc-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
faiss="${GRAPHONC_FAISS:-auto}"
if [ "$faiss" = auto ]; then
  faiss=cpu
  if command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1; then faiss=gpu; fi
fi
want="$want-faiss-$faiss"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip wheel setuptools
  "$VENV/bin/python" -m pip install --quiet -e '.[dev]'
  if [ "$faiss" = gpu ]; then
    # faiss-cpu and faiss-gpu install the same `faiss` package: one replaces the other. faiss-gpu
    # >= 1.15.1 carries kernels for Hopper GPUs too (graphonc probes the GPU before using it).
    # The spec comes from pyproject's `gpu` extra; the extra itself cannot be installed here, as
    # reinstalling graphonc would bring faiss-cpu back.
    read -ra gpu_specs <<< "$("$VENV/bin/python" -c 'import tomllib
print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["gpu"])')"
    "$VENV/bin/python" -m pip uninstall --quiet -y faiss-cpu
    "$VENV/bin/python" -m pip install --quiet "${gpu_specs[@]}"
  fi
  echo "$want" > "$stamp"
fi
"$VENV/bin/graphonc" --help > /dev/null
echo "graphonc installed in $VENV"

if [ "${1:-}" = "--neo4j" ]; then
  if ! command -v java > /dev/null || ! command -v mvn > /dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
      apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless maven > /dev/null
    else
      echo "Neo4j needs Java 17 and Maven on PATH (e.g. apt-get install openjdk-17-jre-headless maven)." >&2
      exit 1
    fi
  fi
  "$VENV/bin/graphonc" neo4j resolve
  # the tumour-board report test renders the page in headless Chromium (Debian's chromium package)
  if ! command -v chromium > /dev/null && ! command -v chromium-browser > /dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
      apt-get update -qq && apt-get install -y -qq chromium > /dev/null
    else
      echo "The report test needs Chromium on PATH (e.g. apt-get install chromium)." >&2
      exit 1
    fi
  fi
fi
