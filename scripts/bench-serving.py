#!/usr/bin/env python3
"""Serving benchmark: wisp vs FastAPI + onnxruntime on the same model, same machine, same run.

Starts `wisp serve` (the binary given, or target/release/wisp, else target/debug/wisp) and
the Python baseline (tests/bench/fastapi_app.py under uvicorn with httptools and uvloop,
2 workers: one per core) on 127.0.0.1,
loads each with `wrk` for a fixed time at concurrency 1, 8 and 64, and prints req/s, p50
and p99 with the ratios. Then the ceiling: wisp's bare `GET /healthz` under the same load
generator, the most requests any endpoint can answer here. Then the noisy-neighbour check: organisation B's p99 alone, and
while organisation A saturates a slow model, with B at concurrency 1 (within its fair
share of the cores) and 8 (saturating the machine by itself).

    scripts/bench-serving.py [--wisp PATH] [--seconds 10]

Needs `wrk` (Debian package) and the venv of tests/bench/requirements.txt
(`~/.cache/wisp/bench-venv`, or $WISP_BENCH_VENV). Load only ever targets 127.0.0.1, and
every run stops by itself.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
PASSWORD = "bench-password-123"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, token=None, body=None, raw=None, content_type="application/json"):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=120) as response:
        text = response.read()
        return json.loads(text) if text else None


def wait_ready(url, process, what):
    for _ in range(600):
        if process.poll() is not None:
            sys.exit(f"{what} exited early")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    sys.exit(f"{what} did not start")


WRK_SCRIPT = """
wrk.method = "POST"
local file = io.open(os.getenv("WISP_BENCH_BODY"), "rb")
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("WISP_BENCH_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
"""


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def load(url, body_file, concurrency, seconds, token=None, background=False):
    """Loads `url` with wrk for `seconds` at `concurrency` connections; returns req/s, p50
    and p99 in ms (or the running process when `background`). Any non-2xx answer fails the
    run: a benchmark of errors measures nothing."""
    script = Path(body_file).with_suffix(".lua")
    script.write_text(WRK_SCRIPT)
    threads = min(concurrency, 2)
    # The saturating neighbour's calls may take seconds: only a stuck call should time out.
    command = ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds}s",
               "--timeout", "30s", "--latency", "-s", str(script), url]
    env = dict(os.environ, WISP_BENCH_BODY=str(body_file), WISP_BENCH_TOKEN=token or "")
    if background:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    return parse_wrk(subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout, url)


def load_get(url, concurrency, seconds):
    """Loads `url` with plain GETs; returns req/s, p50 and p99 in ms."""
    command = ["wrk", "-t", str(min(concurrency, 2)), "-c", str(concurrency), "-d", f"{seconds}s",
               "--latency", url]
    return parse_wrk(subprocess.run(command, capture_output=True, text=True, check=True).stdout, url)


def parse_wrk(out, url):
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or errors:
        sys.exit(f"errors from {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    def percentile(label):
        found = re.search(r"^\s+" + label + r"%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
        if found is None:
            sys.exit(f"no {label}th percentile in wrk's output for {url}:\n{out}")
        return to_ms(*found.groups())
    return rps, percentile("50"), percentile("99")


def start_wisp(binary, data):
    port = free_port()
    env = dict(os.environ, WISP_DATA=str(data), WISP_LISTEN=f"127.0.0.1:{port}",
               WISP_ADMIN_EMAIL="bench@localhost", WISP_ADMIN_PASSWORD=PASSWORD,
               WISP_ORG="bench", RUST_LOG="warn,wasmtime_wasi_nn=off")
    process = subprocess.Popen([str(binary), "serve"], env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_ready(f"{base}/healthz", process, "wisp serve")
    return process, base


def see_outside_write(url, body_file, key):
    """Waits until the server sees a write made to its database by another process: its
    memoised rows are read again in the background once they are db::MEMO_TTL (1 s) old,
    by the first request that finds them so."""
    time.sleep(1.5)
    try:
        http("POST", url, key, raw=Path(body_file).read_bytes())
    except urllib.error.HTTPError:
        pass  # any answer read the rows: the wrong input for this model will do
    time.sleep(0.5)


def deploy(base, token, org, name, fixture):
    http("POST", f"{base}/v1/orgs/{org}/models", token, {"name": name})
    http("POST", f"{base}/v1/orgs/{org}/models/{name}/versions", token,
         raw=(FIXTURES / fixture).read_bytes(), content_type="application/octet-stream")
    deployed = http("PUT", f"{base}/v1/orgs/{org}/models/{name}/deployment", token,
                    {"version": 1, "wait": True})
    assert deployed["status"] == "ready", deployed


def release_binary():
    """The release `wisp` in cargo's target directory (honouring CARGO_TARGET_DIR), if built."""
    metadata = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout
    binary = Path(json.loads(metadata)["target_directory"]) / "release" / "wisp"
    return binary if binary.exists() else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wisp", type=Path)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    binary = args.wisp or release_binary()
    if binary is None or not shutil.which("wrk"):
        sys.exit("need a wisp binary (cargo build --release -p wisp) and `wrk` (scripts/bench-env.sh)")
    venv = Path(os.environ.get("WISP_BENCH_VENV", Path.home() / ".cache/wisp/bench-venv"))
    refs = json.loads((FIXTURES / "references.json").read_text())
    row = refs["digits_mlp.onnx"]["inputs"]["input"]["data"][:64]
    work = Path(tempfile.mkdtemp(prefix="wisp-bench-"))
    body = work / "mlp.json"
    body.write_text(json.dumps({"inputs": {"input": [row]}}))
    processes = []
    try:
        wisp, base = start_wisp(binary, work / "data")
        processes.append(wisp)
        token = http("POST", f"{base}/v1/auth/login", body={"email": "bench@localhost", "password": PASSWORD})["access_token"]
        deploy(base, token, "bench", "mlp", "digits_mlp.onnx")
        key = http("POST", f"{base}/v1/orgs/bench/api-keys", token, {"name": "bench", "scopes": ["predict"]})["secret"]
        # This measures the serving path, not the plan's rate limits (Enterprise: 1,000 req/s
        # per key), which would answer 429 at the door: lift them in this throwaway database.
        with sqlite3.connect(work / "data" / "wisp.db") as db:
            db.execute("UPDATE plans SET key_requests_per_second = 1000000, org_requests_per_second = 1000000")
        see_outside_write(f"{base}/v1/orgs/bench/models/mlp/predict", body, key)

        port = free_port()
        uvicorn = subprocess.Popen(
            [str(venv / "bin/uvicorn"), "fastapi_app:app", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "2", "--log-level", "warning"],
            cwd=ROOT / "tests/bench", env=dict(os.environ, WISP_BENCH_MODEL=str(FIXTURES / "digits_mlp.onnx")),
            stdout=subprocess.DEVNULL)
        processes.append(uvicorn)
        python_url = f"http://127.0.0.1:{port}/predict"
        wait_ready(f"http://127.0.0.1:{port}/docs", uvicorn, "uvicorn")

        wisp_url = f"{base}/v1/orgs/bench/models/mlp/predict"
        print(f"wisp: {binary.relative_to(ROOT) if binary.is_relative_to(ROOT) else binary}; "
              f"{args.seconds} s per point; digits MLP, one row per request\n")
        print(f"{'c':>3} | {'wisp req/s':>10} {'p50 ms':>7} {'p99 ms':>7} | {'python req/s':>12} {'p50 ms':>7} {'p99 ms':>7} | {'throughput x':>12} {'p99 ratio':>9}")
        python_best = 0
        for concurrency in (1, 8, 64):
            load(wisp_url, body, concurrency, 2, key)  # warm-up
            w = load(wisp_url, body, concurrency, args.seconds, key)
            load(python_url, body, concurrency, 2)
            p = load(python_url, body, concurrency, args.seconds)
            python_best = max(python_best, p[0])
            print(f"{concurrency:>3} | {w[0]:>10.0f} {w[1]:>7.2f} {w[2]:>7.2f} | {p[0]:>12.0f} {p[1]:>7.2f} {p[2]:>7.2f} | "
                  f"{w[0] / p[0]:>12.2f} {w[2] / p[2]:>9.2f}")
        uvicorn.send_signal(signal.SIGTERM)

        # The ceiling of any request on these cores with wrk beside it: wisp's bare health
        # check (no auth, no JSON, no runtime, no metering), against 5x Python's best.
        ceiling = {c: load_get(f"{base}/healthz", c, args.seconds) for c in (8, 64)}
        print(f"\nceiling: GET /healthz {ceiling[8][0]:.0f} req/s at c=8, {ceiling[64][0]:.0f} at c=64; "
              f"5x Python's best ({python_best:.0f}) is {5 * python_best:.0f} req/s")

        # Noisy neighbour: org B's p99 alone, then while org A saturates a slow model (the
        # digits CNN on 512-row batches).
        http("POST", f"{base}/v1/orgs", token, {"slug": "noisy"})
        deploy(base, token, "noisy", "cnn", "digits_cnn.onnx")
        noisy_key = http("POST", f"{base}/v1/orgs/noisy/api-keys", token, {"name": "noisy", "scopes": ["predict"]})["secret"]
        # A new organisation starts on Free, whose rate limit would turn the noise away at
        # the door; lift it so org A really loads the runtime.
        with sqlite3.connect(work / "data" / "wisp.db") as db:
            db.execute("UPDATE orgs SET plan_id = 'enterprise' WHERE slug = 'noisy'")
        see_outside_write(f"{base}/v1/orgs/noisy/models/cnn/predict", body, noisy_key)
        image = refs["digits_cnn.onnx"]["inputs"]["image"]["data"][:64]
        heavy = work / "cnn.json"
        heavy.write_text(json.dumps({"inputs": {"image": {"shape": [512, 1, 8, 8], "data": image * 512}}}))
        # B at c=1 asks for less than its fair share of the cores (one of two); at c=8 it
        # saturates the machine alone, so any neighbour must take half of it.
        solo = {c: load(wisp_url, body, c, args.seconds, key) for c in (1, 8)}
        noisy_url = f"{base}/v1/orgs/noisy/models/cnn/predict"
        noisy = load(noisy_url, heavy, 64, 2 * args.seconds + 6, noisy_key, background=True)
        time.sleep(2)
        shared = {c: load(wisp_url, body, c, args.seconds, key) for c in (1, 8)}
        noisy_rps = parse_wrk(noisy.communicate()[0], noisy_url)[0]
        print(f"\nnoisy neighbour: org A saturates the CNN (512-row batches, c=64, {noisy_rps:.0f} req/s)")
        for c in (1, 8):
            print(f"  org B (MLP, c={c}): p99 alone {solo[c][2]:.2f} ms ({solo[c][0]:.0f} req/s), "
                  f"beside A {shared[c][2]:.2f} ms ({shared[c][0]:.0f} req/s): ratio {shared[c][2] / solo[c][2]:.2f}")
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
