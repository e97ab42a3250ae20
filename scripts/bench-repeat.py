#!/usr/bin/env python3
"""Repeated short loads of one model: how often a 5 s run at c=1 and c=8 has a tail.

Starts `wisp serve` (the binary given) with the digits MLP deployed, as
bench-serving.py does, then loads it with `wrk` for 5 s at concurrency 1 and 8, `rounds`
times, printing req/s, p50 and p99 of each run. A tail that comes and goes (a stall of
the whole server) shows as one run's p99 far above the others'.

    scripts/bench-repeat.py target/release/wisp [rounds]

Set TMPDIR=/dev/shm to put the server's data directory on tmpfs, WISP_CONFIG to try
runtime settings, WISP_BENCH_PAUSE=seconds to wait (printing the server's pid) before
loading, to attach a profiler. WISP_BENCH_WRITES=seconds creates an API key through the
API that often while loading: each is a write that makes every memoised row stale, as an
operator at work would. Needs what bench-serving.py needs.
"""
import importlib.util, os, sys, json, time, shutil, sqlite3, tempfile, signal, threading
from pathlib import Path

spec = importlib.util.spec_from_file_location("bs", Path(__file__).with_name("bench-serving.py"))
bs = importlib.util.module_from_spec(spec); spec.loader.exec_module(bs)
binary = Path(sys.argv[1]); rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 4
refs = json.loads((bs.FIXTURES / "references.json").read_text())
row = refs["digits_mlp.onnx"]["inputs"]["input"]["data"][:64]
work = Path(tempfile.mkdtemp(prefix="wisp-probe-"))
body = work / "mlp.json"; body.write_text(json.dumps({"inputs": {"input": [row]}}))
wisp, base = bs.start_wisp(binary, work / "data")
stop = threading.Event()
try:
    token = bs.http("POST", f"{base}/v1/auth/login", body={"email": "bench@localhost", "password": bs.PASSWORD})["access_token"]
    bs.deploy(base, token, "bench", "mlp", "digits_mlp.onnx")
    key = bs.http("POST", f"{base}/v1/orgs/bench/api-keys", token, {"name": "bench", "scopes": ["predict"]})["secret"]
    with sqlite3.connect(work / "data" / "wisp.db") as db:
        db.execute("UPDATE plans SET key_requests_per_second = 1000000, org_requests_per_second = 1000000")
    url = f"{base}/v1/orgs/bench/models/mlp/predict"
    bs.see_outside_write(url, body, key)
    if os.environ.get("WISP_BENCH_PAUSE"):
        # Time to attach a profiler: perf record -p <pid of wisp> ...
        print(f"wisp pid {wisp.pid}; loading in {os.environ['WISP_BENCH_PAUSE']} s", flush=True)
        time.sleep(float(os.environ["WISP_BENCH_PAUSE"]))
    if os.environ.get("WISP_BENCH_WRITES"):
        every = float(os.environ["WISP_BENCH_WRITES"])
        def write_while_loading():
            n = 0
            while not stop.wait(every):
                n += 1
                bs.http("POST", f"{base}/v1/orgs/bench/api-keys", token, {"name": f"operator-{n}", "scopes": ["read"]})
        threading.Thread(target=write_while_loading, daemon=True).start()
    for r in range(rounds):
        for c in (1, 8):
            w = bs.load(url, body, c, 5, key)
            print(f"round {r} c={c}: {w[0]:.0f} req/s p50 {w[1]:.2f} p99 {w[2]:.2f}", flush=True)
finally:
    stop.set()
    wisp.send_signal(signal.SIGTERM); wisp.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)
