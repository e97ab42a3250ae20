#!/usr/bin/env bash
# Installs what the benchmark programs need beyond cargo: `wrk` (the load generator of
# scripts/bench-serving.py) and the Python baseline's venv (FastAPI, uvicorn, onnxruntime).
# Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
  else
    echo "bench-env: install wrk (Debian package wrk)" >&2
    exit 1
  fi
fi

venv="${WISP_BENCH_VENV:-${HOME}/.cache/wisp/bench-venv}"
requirements=tests/bench/requirements.txt
stamp="$(python3 --version 2>&1) $(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.wisp-stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$stamp" > "$venv/.wisp-stamp"
fi
