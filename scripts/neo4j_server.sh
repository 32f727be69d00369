#!/usr/bin/env bash
# Start/stop/query the local Neo4j 5.26 Community server (127.0.0.1 only) for dev and CI.
#   scripts/neo4j_server.sh start|stop|status|resolve [--data-dir D] [--bolt-port P] [--http-port Q] ...
# (the same as `graphonc neo4j ...`; see `graphonc neo4j start --help`)
# Env: GRAPHONC_NEO4J_DATA_DIR, GRAPHONC_NEO4J_BOLT_PORT, GRAPHONC_NEO4J_HTTP_PORT,
#      GRAPHONC_MAVEN_CACHE (Maven repo + jar folder; cache it in CI), NEO4J_PASSWORD.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then python="$repo/.venv/bin/python"; else python="$(command -v python3)"; fi
fi
if [[ $# -lt 1 ]]; then
  echo "usage: $0 start|stop|status|resolve [options]" >&2
  exit 64
fi
cd "$repo"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m graphonc.cli neo4j "$@"
