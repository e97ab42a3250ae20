#!/usr/bin/env bash
# Installs what the test suite needs beyond cargo. Idempotent; safe to run on every test run.
set -euo pipefail
cd "$(dirname "$0")/.."

# The guest target: rust-toolchain.toml names it, but rustup installs listed targets only
# when it installs the toolchain; add it when the toolchain was already there.
if ! rustc --print sysroot >/dev/null 2>&1 || [ ! -d "$(rustc --print sysroot)/lib/rustlib/wasm32-wasip2" ]; then
  rustup target add wasm32-wasip2
fi
