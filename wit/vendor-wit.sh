#!/usr/bin/env bash
# Refreshes wit/deps from the WIT that the pinned wasmtime-wasi-nn crate implements, so the
# guests and the host always agree on the wasi-nn version. Run after bumping wasmtime.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(cargo metadata --format-version 1 --locked |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="wasmtime-wasi-nn"))')
src=$(cargo metadata --format-version 1 --locked |
  python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="wasmtime-wasi-nn"))')
mkdir -p wit/deps/wasi-nn
cp "$(dirname "$src")/wit/wasi-nn.wit" wit/deps/wasi-nn/wasi-nn.wit
echo "vendored wasi-nn from wasmtime-wasi-nn $version"
