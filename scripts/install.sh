#!/usr/bin/env bash
# Create .venv and install Topics with its test extras, offline-capable models included.
# torch goes first, pinned to the CPU build: left to the resolver, sentence-transformers would
# pull a multi-GB CUDA build instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[dev]"
echo "installed: $(.venv/bin/topics --version)" >&2
# The PostgreSQL store's tests start a throwaway server; they need the server binaries (not a running one).
if ! command -v initdb >/dev/null && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    echo "note: no PostgreSQL server binaries (initdb); the PostgreSQL tests will be skipped." \
         "Install them with: apt-get install postgresql" >&2
fi
