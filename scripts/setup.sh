#!/usr/bin/env bash
# Set up graphonc on a fresh machine: a Python 3.11 virtualenv in .venv with the package and its
# dependencies. Idempotent: reruns only reinstall when pyproject.toml changed.
# Env: PYTHON (interpreter to use, default python3.11 or python3), GRAPHONC_VENV (default .venv).
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
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip wheel setuptools
  "$VENV/bin/python" -m pip install --quiet -e '.[dev]'
  echo "$want" > "$stamp"
fi
"$VENV/bin/graphonc" --help > /dev/null
echo "graphonc installed in $VENV"
