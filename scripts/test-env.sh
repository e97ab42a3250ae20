#!/usr/bin/env bash
# Installs what the test suite needs beyond cargo. Idempotent; safe to run on every test run.
set -euo pipefail
cd "$(dirname "$0")/.."

# The guest target: rust-toolchain.toml names it, but rustup installs listed targets only
# when it installs the toolchain; add it when the toolchain was already there.
if ! rustc --print sysroot >/dev/null 2>&1 || [ ! -d "$(rustc --print sysroot)/lib/rustlib/wasm32-wasip2" ]; then
  rustup target add wasm32-wasip2
fi

# The real Python clients the end-to-end tests drive wisp with (tritonclient…), in a venv
# outside the clone so CI reruns reuse it. Tests find it through the same variable and
# default (see control-plane/tests/common/clients.rs). pip only runs when the requirements
# or the interpreter changed since the last install.
venv="${WISP_CLIENTS_VENV:-${HOME}/.cache/wisp/clients-venv}"
requirements=tests/clients/requirements.txt
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3-venv
  else
    echo "test-env: python3 cannot create venvs; install python3-venv" >&2
    exit 1
  fi
fi
stamp="$(python3 --version 2>&1) $(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.wisp-stamp" 2>/dev/null)" != "$stamp" ]; then
  if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ]; then
    echo "test-env: $venv exists and is not a venv; remove it or set WISP_CLIENTS_VENV" >&2
    exit 1
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$stamp" > "$venv/.wisp-stamp"
fi

# The onnxruntime library of that venv's `onnxruntime` wheel (pinned in the requirements):
# `make test` runs the coverage suites on the onnxruntime backend with it, and fails here
# rather than skipping them when it is missing.
./scripts/ort-dylib.sh >/dev/null

# Prometheus and promtool (Debian's `prometheus`, 2.42): the metrics test scrapes a real
# `wisp serve` with them and lints its exposition (control-plane/tests/e2e_metrics.rs).
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
  else
    echo "test-env: install Debian's prometheus package (prometheus, promtool)" >&2
    exit 1
  fi
fi

# sqld, the libSQL server (0.24.33): the scale-out tests run nodes on a real one
# (control-plane/tests/common/sqld.rs). It is in no package registry, so it is found, in
# order, at `$WISP_SQLD`, on `PATH`, next to this clone's parent (`../shared/bin/sqld`, a
# prebuilt copy on development machines) or where an earlier run put it; the one found is
# kept at `~/.cache/wisp/bin/sqld`, where the tests look by default. Missing: fail.
sqld_home="${HOME}/.cache/wisp/bin"
sqld=""
for candidate in "${WISP_SQLD:-}" "$(command -v sqld || true)" "../shared/bin/sqld" "$sqld_home/sqld"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then
    sqld="$candidate"
    break
  fi
done
if [ -z "$sqld" ]; then
  echo "test-env: sqld (libSQL server 0.24.33) not found: set WISP_SQLD or put it on PATH" >&2
  exit 1
fi
if [ "$(realpath "$sqld")" != "$(realpath -m "$sqld_home/sqld")" ]; then
  mkdir -p "$sqld_home"
  cp "$sqld" "$sqld_home/sqld.tmp" && mv "$sqld_home/sqld.tmp" "$sqld_home/sqld"
fi
"$sqld_home/sqld" --version >/dev/null

# The dashboard's browser test (control-plane/tests/e2e_dashboard.rs): Debian's chromium,
# node, and the npm packages of tests/browser (playwright-core driving that chromium — no
# browser is ever downloaded — and axe-core), installed with `npm ci` from the committed
# lockfile, again only when the lockfile or node changed.
if ! command -v chromium >/dev/null || ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium nodejs npm
  else
    echo "test-env: install Debian's chromium, nodejs and npm (the dashboard's browser test)" >&2
    exit 1
  fi
fi
browser_stamp="$(node --version) $(sha256sum tests/browser/package-lock.json | cut -d' ' -f1)"
if [ "$(cat tests/browser/node_modules/.wisp-stamp 2>/dev/null)" != "$browser_stamp" ]; then
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
  echo "$browser_stamp" > tests/browser/node_modules/.wisp-stamp
fi
