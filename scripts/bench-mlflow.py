#!/usr/bin/env python3
"""wisp's MLflow API against the real `mlflow server` (SQLite backend), in one run.

Measures, on both servers, with the same requests over HTTP on 127.0.0.1:

1. log_batch throughput: sequential `runs/log-batch` calls of 1,000 metrics each
   (10 keys x 100 steps), metrics per second.
2. search_runs latency over 100,000 runs with a filter on a metric and a param
   (`metrics.accuracy > 0.999 and params.model = 'tree'`, max_results 100): p50 of
   repeated calls, after one warm-up call.

The 100,000 runs (each with one metric, two params, one tag) are written straight into
each server's database file while it is stopped: through either REST API this would take
most of an hour against `mlflow server`, and the searches are what is measured. Each
server then starts on its seeded file.

Prints each measurement and the ratio wisp / MLflow. Needs the `mlflow` package (the full
server, not mlflow-skinny) in the interpreter that runs this script, and a `wisp` binary:

    python3 -m venv .venv && .venv/bin/pip install mlflow==3.17.2
    cargo build --release -p wisp
    .venv/bin/python scripts/bench-mlflow.py --wisp target/release/wisp
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import requests

RUNS = 100_000
BATCHES = 30
SEARCH_REPEATS = 7
FILTER = "metrics.accuracy > 0.999 and params.model = 'tree'"
PASSWORD = "a long enough password"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, process, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited early ({process.returncode}); see its log")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    raise SystemExit(f"{url} did not answer within {timeout}s")


def stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Wisp:
    name = "wisp"

    def __init__(self, binary, root):
        self.binary, self.data = binary, os.path.join(root, "wisp")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(root, "wisp.log"), "w")
        self.process = None

    def start(self):
        env = {
            **os.environ,
            "WISP_DATA": self.data,
            "WISP_LISTEN": f"127.0.0.1:{self.port}",
            "WISP_ADMIN_EMAIL": "bench@example.com",
            "WISP_ADMIN_PASSWORD": PASSWORD,
            "WISP_ORG": "bench",
            "RUST_LOG": "warn,wasmtime_wasi_nn=off",
        }
        self.process = subprocess.Popen(
            [self.binary, "serve"], env=env, stdout=self.log, stderr=self.log
        )
        wait_http(f"{self.base}/healthz", self.process)

    def stop(self):
        stop(self.process)

    def session(self):
        login = requests.post(
            f"{self.base}/v1/auth/login",
            json={"email": "bench@example.com", "password": PASSWORD},
        ).json()
        key = requests.post(
            f"{self.base}/v1/orgs/bench/api-keys",
            headers={"Authorization": f"Bearer {login['access_token']}"},
            json={"name": "bench", "scopes": ["models:write"]},
        ).json()["secret"]
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        return session

    def seed(self, experiment_id, runs):
        db = sqlite3.connect(os.path.join(self.data, "wisp.db"))
        (org_id,) = db.execute("SELECT id FROM orgs WHERE slug = 'bench'").fetchone()
        with db:
            db.executemany(
                "INSERT INTO mlflow_runs (run_uuid, org_id, experiment_id, name, user_id, status,"
                " start_time, end_time, artifact_uri) VALUES (?, ?, ?, ?, 'bench', 'FINISHED', ?, ?, ?)",
                [
                    (r["id"], org_id, int(experiment_id), r["name"], r["start"], r["start"] + 1000,
                     f"mlflow-artifacts:/{experiment_id}/{r['id']}/artifacts")
                    for r in runs
                ],
            )
            db.executemany(
                "INSERT INTO mlflow_latest_metrics (run_uuid, key, value, timestamp, step)"
                " VALUES (?, 'accuracy', ?, ?, 0)",
                [(r["id"], r["accuracy"], r["start"]) for r in runs],
            )
            db.executemany(
                "INSERT INTO mlflow_metrics (run_uuid, key, value, timestamp, step)"
                " VALUES (?, 'accuracy', ?, ?, 0)",
                [(r["id"], r["accuracy"], r["start"]) for r in runs],
            )
            db.executemany(
                "INSERT INTO mlflow_params (run_uuid, key, value) VALUES (?, ?, ?)",
                [(r["id"], k, v) for r in runs for k, v in r["params"].items()],
            )
            db.executemany(
                "INSERT INTO mlflow_tags (run_uuid, key, value) VALUES (?, ?, ?)",
                [(r["id"], "mlflow.runName", r["name"]) for r in runs],
            )
        db.close()


class Mlflow:
    name = "mlflow server"

    def __init__(self, root):
        self.root = os.path.join(root, "mlflow")
        os.makedirs(self.root)
        self.db = os.path.join(self.root, "mlflow.db")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(root, "mlflow.log"), "w")
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "mlflow", "server",
                "--host", "127.0.0.1", "--port", str(self.port),
                "--backend-store-uri", f"sqlite:///{self.db}",
                "--artifacts-destination", os.path.join(self.root, "artifacts"),
            ],
            stdout=self.log, stderr=self.log,
        )
        wait_http(f"{self.base}/health", self.process)

    def stop(self):
        stop(self.process)

    def session(self):
        return requests.Session()

    def seed(self, experiment_id, runs):
        db = sqlite3.connect(self.db)
        columns = {row[1]: row for row in db.execute("PRAGMA table_info(runs)")}
        values = {
            "run_uuid": lambda r: r["id"], "name": lambda r: r["name"],
            "source_type": lambda r: "LOCAL", "source_name": lambda r: "",
            "entry_point_name": lambda r: "", "user_id": lambda r: "bench",
            "status": lambda r: "FINISHED", "start_time": lambda r: r["start"],
            "end_time": lambda r: r["start"] + 1000, "source_version": lambda r: "",
            "lifecycle_stage": lambda r: "active",
            "artifact_uri": lambda r: f"mlflow-artifacts:/{experiment_id}/{r['id']}/artifacts",
            "experiment_id": lambda r: int(experiment_id), "deleted_time": lambda r: None,
        }
        names = [c for c in columns if c in values]
        missing = [c for c, row in columns.items() if c not in values and row[3] and row[4] is None]
        if missing:
            raise SystemExit(f"mlflow's runs table has required columns this script does not fill: {missing}")
        with db:
            db.executemany(
                f"INSERT INTO runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                [tuple(values[c](r) for c in names) for r in runs],
            )
            db.executemany(
                "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid)"
                " VALUES ('accuracy', ?, ?, 0, 0, ?)",
                [(r["accuracy"], r["start"], r["id"]) for r in runs],
            )
            db.executemany(
                "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
                " VALUES ('accuracy', ?, ?, ?, 0, 0)",
                [(r["accuracy"], r["start"], r["id"]) for r in runs],
            )
            db.executemany(
                "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                [(k, v, r["id"]) for r in runs for k, v in r["params"].items()],
            )
            db.executemany(
                "INSERT INTO tags (key, value, run_uuid) VALUES ('mlflow.runName', ?, ?)",
                [(r["name"], r["id"]) for r in runs],
            )
        db.close()


def api(session, base, path, body):
    response = session.post(f"{base}/api/2.0/mlflow/{path}", json=body)
    if response.status_code != 200:
        raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
    return response.json()


def log_batch_throughput(server, session):
    experiment = api(session, server.base, "experiments/create", {"name": "throughput"})
    run = api(session, server.base, "runs/create", {"experiment_id": experiment["experiment_id"], "start_time": 0})
    run_id = run["run"]["info"]["run_id"]
    batches = []
    for b in range(BATCHES + 1):
        batches.append([
            {"key": f"m{k}", "value": random.random(), "timestamp": 1_700_000_000_000 + b, "step": b * 100 + s}
            for k in range(10) for s in range(100)
        ])
    api(session, server.base, "runs/log-batch", {"run_id": run_id, "metrics": batches[0]})  # warm-up
    started = time.perf_counter()
    for metrics in batches[1:]:
        api(session, server.base, "runs/log-batch", {"run_id": run_id, "metrics": metrics})
    elapsed = time.perf_counter() - started
    return BATCHES * 1000 / elapsed, elapsed / BATCHES


def search_latency(server, session, experiment_id):
    body = {"experiment_ids": [experiment_id], "filter": FILTER, "max_results": 100}
    first = api(session, server.base, "runs/search", body)
    latencies = []
    for _ in range(SEARCH_REPEATS):
        started = time.perf_counter()
        result = api(session, server.base, "runs/search", body)
        latencies.append(time.perf_counter() - started)
    return statistics.median(latencies), len(first.get("runs", [])), result


def make_runs(seed):
    rng = random.Random(seed)
    runs = []
    for i in range(RUNS):
        runs.append({
            "id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "name": f"run-{i}",
            "start": 1_700_000_000_000 + i,
            "accuracy": rng.random(),
            "params": {"model": rng.choice(["tree", "linear", "mlp"]), "seed": str(i)},
        })
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wisp", required=True, help="path to the wisp binary")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="bench-mlflow-")
    runs = make_runs(42)
    expected = sum(1 for r in runs if r["accuracy"] > 0.999 and r["params"]["model"] == "tree")
    results = {}
    try:
        for server in (Wisp(args.wisp, root), Mlflow(root)):
            print(f"== {server.name}", flush=True)
            server.start()
            session = server.session()
            throughput, per_call = log_batch_throughput(server, session)
            print(f"log_batch: {throughput:,.0f} metrics/s ({per_call * 1000:.1f} ms per 1,000-metric call)", flush=True)
            experiment_id = api(session, server.base, "experiments/create", {"name": "search"})["experiment_id"]
            server.stop()
            started = time.perf_counter()
            server.seed(experiment_id, runs)
            print(f"seeded {RUNS:,} runs in {time.perf_counter() - started:.1f} s", flush=True)
            server.start()
            # The key is in the database and survives the restart; the pooled connections do not.
            headers = session.headers
            session = requests.Session()
            session.headers.update(headers)
            latency, found, _ = search_latency(server, session, experiment_id)
            print(f"search_runs ({FILTER}) over {RUNS:,} runs: p50 {latency * 1000:.1f} ms, {found} runs (expected {min(expected, 100)})", flush=True)
            if found != min(expected, 100):
                raise SystemExit(f"{server.name} found {found} runs, expected {min(expected, 100)}")
            server.stop()
            results[server.name] = {"log_batch_metrics_per_s": throughput, "search_p50_s": latency}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    wisp, mlflow = results["wisp"], results["mlflow server"]
    print("== ratios (wisp / mlflow server)")
    print(f"log_batch throughput: {wisp['log_batch_metrics_per_s'] / mlflow['log_batch_metrics_per_s']:.1f}x (goal >= 10x)")
    print(f"search_runs latency: wisp {wisp['search_p50_s'] * 1000:.1f} ms vs mlflow {mlflow['search_p50_s'] * 1000:.1f} ms "
          f"-> {mlflow['search_p50_s'] / wisp['search_p50_s']:.1f}x faster (goal < 1 s)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
