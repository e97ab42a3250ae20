#!/usr/bin/env bash
# Prints the path of the onnxruntime library that the onnxruntime backend loads
# (ORT_DYLIB_PATH): the one the `onnxruntime` wheel in the clients venv ships
# (tests/clients/requirements.txt pins it; scripts/test-env.sh installs it). Fails, rather
# than printing nothing, when it is not there: the onnxruntime coverage suites must not
# skip.
set -euo pipefail
venv="${WISP_CLIENTS_VENV:-${HOME}/.cache/wisp/clients-venv}"
if [ ! -x "$venv/bin/python" ]; then
  echo "ort-dylib: no venv at $venv; run scripts/test-env.sh" >&2
  exit 1
fi
"$venv/bin/python" - <<'PY'
import glob, os, sys
try:
    import onnxruntime
except ImportError:
    sys.exit("ort-dylib: the onnxruntime wheel is not installed; run scripts/test-env.sh")
capi = os.path.join(os.path.dirname(onnxruntime.__file__), "capi")
found = sorted(glob.glob(os.path.join(capi, "libonnxruntime.so.*")))
if not found:
    sys.exit(f"ort-dylib: no libonnxruntime.so.* in {capi}")
print(found[-1])
PY
