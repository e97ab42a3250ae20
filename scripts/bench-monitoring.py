#!/usr/bin/env python3
"""Monitoring overhead: predict latency with Prometheus metrics and drift sampling at their
defaults vs both off, in one run, same binary, same machine.

Starts three `wisp serve` processes from the same binary: `on` with the defaults (metrics
recorded, drift enabled at its default sample rate) and a drift reference on the model, so
its calls are profiled; `off` with `metrics.enabled = false` and `drift.enabled = false`;
`metrics` with metrics alone (to tell the two costs apart). All serve the same model;
`wrk` loads them in alternating rounds at concurrency 1 (and 8 for throughput), and the
script prints each round's p50 and the ratios of the medians: the overhead.

    scripts/bench-monitoring.py [--wisp PATH] [--seconds 10] [--rounds 3]

Needs `wrk`. Load only ever targets 127.0.0.1, and every run stops by itself.
"""

import argparse
import importlib.util
import json
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("bench_serving", ROOT / "scripts" / "bench-serving.py")
serving = importlib.util.module_from_spec(spec)
spec.loader.exec_module(serving)

MODEL = ("mlp", "digits_mlp.onnx")
REFERENCE_CALLS = 200


def start(binary, work, name, config):
    """A wisp with its own data directory and `config` (TOML); returns (process, base, key)."""
    data = work / name
    data.mkdir()
    (data / "wisp.toml").write_text(config)
    port = serving.free_port()
    env = dict(serving.os.environ, WISP_DATA=str(data), WISP_LISTEN=f"127.0.0.1:{port}",
               WISP_CONFIG=str(data / "wisp.toml"), WISP_ADMIN_EMAIL="bench@localhost",
               WISP_ADMIN_PASSWORD=serving.PASSWORD, WISP_ORG="bench", RUST_LOG="warn,wasmtime_wasi_nn=off")
    process = subprocess.Popen([str(binary), "serve"], env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    serving.wait_ready(f"{base}/healthz", process, f"wisp serve ({name})")
    token = serving.http("POST", f"{base}/v1/auth/login",
                         body={"email": "bench@localhost", "password": serving.PASSWORD})["access_token"]
    serving.deploy(base, token, "bench", *MODEL)
    key = serving.http("POST", f"{base}/v1/orgs/bench/api-keys", token,
                       {"name": "bench", "scopes": ["predict"]})["secret"]
    with sqlite3.connect(data / "wisp.db") as db:
        db.execute("UPDATE plans SET key_requests_per_second = 1000000, org_requests_per_second = 1000000")
    return process, base, token, key


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wisp", type=Path)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binary = args.wisp or serving.release_binary()
    if binary is None or not shutil.which("wrk"):
        sys.exit("need a wisp binary (cargo build --release -p wisp) and `wrk` (scripts/bench-env.sh)")
    refs = json.loads((serving.FIXTURES / "references.json").read_text())
    row = refs["digits_mlp.onnx"]["inputs"]["input"]["data"][:64]
    work = Path(tempfile.mkdtemp(prefix="wisp-bench-monitoring-"))
    body = work / "mlp.json"
    body.write_text(json.dumps({"inputs": {"input": [row]}}))
    processes = []
    try:
        on = start(binary, work, "on", '[metrics]\nlisten = ""\n')
        processes.append(on[0])
        off = start(binary, work, "off", '[metrics]\nlisten = ""\nenabled = false\n\n[drift]\nenabled = false\n')
        processes.append(off[0])
        # `metrics`: metrics recorded, drift off — which of the two costs what.
        metrics = start(binary, work, "metrics", '[metrics]\nlisten = ""\n\n[drift]\nenabled = false\n')
        processes.append(metrics[0])
        servers = {"on": on, "off": off, "metrics": metrics}
        # `on` profiles every call against a reference taken from its first calls.
        reference = serving.http("PUT", f"{on[1]}/v1/orgs/bench/models/mlp/drift/reference", on[2],
                                 {"from_calls": REFERENCE_CALLS})
        assert reference["status"] == "collecting", reference
        urls = {name: f"{server[1]}/v1/orgs/bench/models/mlp/predict" for name, server in servers.items()}
        for name, server in servers.items():
            serving.see_outside_write(urls[name], body, server[3])
            serving.load(urls[name], body, 1, 3, server[3])  # warm-up
        # The collected rows reach the database with the next window flush (every 60 s).
        for _ in range(150):
            status = serving.http("GET", f"{on[1]}/v1/orgs/bench/models/mlp/drift/reference", on[2])
            if status["status"] == "ready":
                break
            serving.load(urls["on"], body, 1, 1, on[3])
        assert status["status"] == "ready", status

        print(f"wisp: {binary.relative_to(ROOT) if binary.is_relative_to(ROOT) else binary}; "
              f"{args.seconds} s per point; digits MLP, one row per request; "
              f"`on`: metrics + drift (reference of {REFERENCE_CALLS} calls, default sample rate)\n")
        names = ("on", "metrics", "off")
        results = {(name, c): [] for name in names for c in (1, 8)}
        for round_ in range(args.rounds):
            for c in (1, 8):
                order = names if round_ % 2 == 0 else tuple(reversed(names))
                for name in order:
                    results[(name, c)].append(serving.load(urls[name], body, c, args.seconds, servers[name][3]))
        print(f"{'c':>3} {'config':>6} | {'p50 ms per round':>28} | {'median p50':>10} {'median req/s':>12}")
        summary = {}
        for c in (1, 8):
            for name in names:
                runs = results[(name, c)]
                p50 = statistics.median(r[1] for r in runs)
                rps = statistics.median(r[0] for r in runs)
                summary[(name, c)] = (p50, rps)
                print(f"{c:>3} {name:>6} | {' '.join(f'{r[1]:.3f}' for r in runs):>28} | {p50:>10.3f} {rps:>12.0f}")
        for c in (1, 8):
            (p_on, r_on), (p_off, r_off) = summary[("on", c)], summary[("off", c)]
            p_m, r_m = summary[("metrics", c)]
            print(f"c={c}: p50 on/off {p_on / p_off:.3f} (overhead {100 * (p_on / p_off - 1):+.1f} %), "
                  f"throughput on/off {r_on / r_off:.3f}; metrics alone: p50 {p_m / p_off:.3f}, "
                  f"throughput {r_m / r_off:.3f}")
        drift = serving.http("GET", f"{on[1]}/v1/orgs/bench/models/mlp/drift/report", on[2])
        print(f"\ndrift report of `on` over the run: {drift['windows']} window(s), {drift.get('rows')} rows profiled "
              f"(windows are written every 60 s; rows still queued are not counted yet)")
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
