#!/usr/bin/env python3
"""Fleet benchmark: several `wisp serve` nodes on one libSQL server (sqld), same machine.

1. Fleet-wide rate-limit accuracy: one API key of an organisation on the Pro plan (50
   requests per second per key), called at twice that rate for `--seconds`, spread evenly
   over two nodes (paced, open-loop: 50 req/s at each node). Prints admitted ÷ allowed
   (allowed = the plan's rate × the seconds).
2. Predict throughput (iris, one row, API key; plan rates lifted, the Pro plan's calls quota
   claimed in blocks): one node on sqld, then two nodes on the same sqld loaded at once
   (one `wrk` per node, each at `--concurrency`), and the ratio two ÷ one. Also one node on
   an embedded file, and, with `--before PATH`, the same with another build (the single-node
   embedded mode before the fleet work), with their ratio.
3. The usage drain's rate on sqld with the node otherwise idle (`--drain`, alone): sqld is
   stopped, the node serves `--seconds` of load into its outbox (warm inference needs no
   database; the organisation is on a plan with no calls quota), sqld starts again, and the
   events are counted on sqld until all are stored: events ÷ seconds to store them.

    scripts/bench-fleet.py [--wisp PATH] [--before PATH] [--seconds 10] [--concurrency 8]
    scripts/bench-fleet.py --drain [--wisp PATH] [--seconds 10] [--concurrency 8]

Needs `wrk` (Debian) and `sqld` ($WISP_SQLD, PATH, or ~/.cache/wisp/bin/sqld, as
scripts/test-env.sh provides it). Everything listens on 127.0.0.1, and every run stops by
itself.
"""

import argparse
import importlib.util
import http.client as http_client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
PASSWORD = "bench-password-123"
EMAIL = "bench@localhost"
SECRET = "a fleet benchmark jwt secret, 32 bytes or more"
BODY = json.dumps({"inputs": {"input": [[5.1, 3.5, 1.4, 0.2]]}})


# The HTTP helpers of the serving benchmark, not copies of them.
_spec = importlib.util.spec_from_file_location("bench_serving", ROOT / "scripts" / "bench-serving.py")
_serving = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_serving)
free_port, http, wait_ready = _serving.free_port, _serving.http, _serving.wait_ready


def sqld_binary():
    if os.environ.get("WISP_SQLD"):
        return os.environ["WISP_SQLD"]
    found = shutil.which("sqld")
    if found:
        return found
    cached = Path.home() / ".cache/wisp/bin/sqld"
    if cached.exists():
        return str(cached)
    sys.exit("sqld is missing: run scripts/test-env.sh or set WISP_SQLD")


def start_sqld(work, port=None):
    port = port or free_port()
    process = subprocess.Popen([sqld_binary(), "--http-listen-addr", f"127.0.0.1:{port}", "--no-welcome",
                                "-d", str(work / "sqld")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/health", process, "sqld")
    return process, url


def sql(url, statement):
    """Runs one statement on sqld (Hrana over HTTP): what an operator's shell would do;
    returns the first row of its result, if any."""
    answer = http("POST", f"{url}/v2/pipeline", body={"requests": [
        {"type": "execute", "stmt": {"sql": statement}}, {"type": "close"}]})
    rows = answer["results"][0]["response"]["result"]["rows"]
    return [cell.get("value") for cell in rows[0]] if rows else None


def start_wisp(binary, data, database_url=None):
    port = free_port()
    data.mkdir(parents=True, exist_ok=True)
    config = data / "wisp.toml"
    config.write_text(f'[object_store]\nkind = "local"\npath = "{data.parent / "blobs"}"\n')
    env = dict(os.environ, WISP_DATA=str(data), WISP_LISTEN=f"127.0.0.1:{port}",
               WISP_ADMIN_EMAIL=EMAIL, WISP_ADMIN_PASSWORD=PASSWORD, WISP_ORG="bench",
               WISP_JWT_SECRET=SECRET, WISP_PLATFORM_OPERATORS=EMAIL, WISP_METRICS_LISTEN="",
               WISP_CONFIG=str(config), RUST_LOG="warn,wasmtime_wasi_nn=off")
    if database_url:
        env["WISP_DATABASE_URL"] = database_url
    process = subprocess.Popen([str(binary), "serve"], env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_ready(f"{base}/healthz", process, "wisp serve")
    return process, base


def set_up(base, pro=True, plan="pro"):
    """Signs in, deploys iris, moves the organisation to `plan` (Pro); returns a predict key."""
    token = http("POST", f"{base}/v1/auth/login", body={"email": EMAIL, "password": PASSWORD})["access_token"]
    http("POST", f"{base}/v1/orgs/bench/models", token, {"name": "iris"})
    http("POST", f"{base}/v1/orgs/bench/models/iris/versions", token,
         raw=(FIXTURES / "iris_logreg.onnx").read_bytes(), content_type="application/octet-stream")
    deployed = http("PUT", f"{base}/v1/orgs/bench/models/iris/deployment", token, {"version": 1, "wait": True})
    assert deployed["status"] == "ready", deployed
    if pro:
        http("PUT", f"{base}/v1/platform/orgs/bench/plan", token, {"plan": plan})
    return http("POST", f"{base}/v1/orgs/bench/api-keys", token, {"name": "bench", "scopes": ["predict"]})["secret"]


def paced(base, key, rate, seconds, counts):
    """Calls predict `rate` times a second for `seconds` on one keep-alive connection,
    counting answers by status."""
    host, port = base.removeprefix("http://").split(":")
    conn = http_client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    start = time.monotonic()
    for i in range(rate * seconds):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            conn.request("POST", "/v1/orgs/bench/models/iris/predict", BODY, headers)
            response = conn.getresponse()
            response.read()
        except (ConnectionError, http_client.HTTPException):
            # The server may close a connection after a refusal: open another and go on.
            conn.close()
            conn = http_client.HTTPConnection(host, int(port), timeout=30)
            counts["closed"] = counts.get("closed", 0) + 1
            continue
        counts[response.status] = counts.get(response.status, 0) + 1


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = os.getenv("WISP_BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("WISP_BENCH_TOKEN")
"""


def wrk(url, key, concurrency, seconds, script):
    command = ["wrk", "-t", "1", "-c", str(concurrency), "-d", f"{seconds}s", "--timeout", "30s",
               "-s", str(script), url]
    env = dict(os.environ, WISP_BENCH_BODY=BODY, WISP_BENCH_TOKEN=key)
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)


def rps(process, url):
    out, _ = process.communicate()
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out) or "Socket errors" in out:
        sys.exit(f"errors from {url}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def throughput(bases, key, concurrency, seconds, script):
    """Loads every node at once; returns the summed req/s."""
    urls = [f"{base}/v1/orgs/bench/models/iris/predict" for base in bases]
    running = [wrk(url, key, concurrency, seconds, script) for url in urls]
    return sum(rps(process, url) for process, url in zip(running, urls))


def lift_rates_and_wait(execute, base, key):
    """Lifts the plans' request rates (this measures serving, not the 429s at the door) and
    waits until the nodes see it (memoised plans are read again once a second)."""
    execute("UPDATE plans SET key_requests_per_second = 1000000, org_requests_per_second = 1000000")
    time.sleep(1.5)
    for b in base:
        try:
            http("POST", f"{b}/v1/orgs/bench/models/iris/predict", key, raw=BODY.encode())
        except Exception:
            pass
    time.sleep(0.5)


def embedded(binary, work, name, concurrency, seconds, script):
    import sqlite3
    process, base = start_wisp(binary, work / name / "node")
    try:
        key = set_up(base)
        def execute(statement):
            with sqlite3.connect(work / name / "node" / "wisp.db") as db:
                db.execute(statement)
        lift_rates_and_wait(execute, [base], key)
        return throughput([base], key, concurrency, seconds, script)
    finally:
        process.terminate()
        process.wait()


def drain_rate(binary, work, concurrency, seconds, script):
    """Measurement 3: fills the outbox during a database outage, then times its drain."""
    sqld, url = start_sqld(work / "drain")
    port = int(url.rsplit(":", 1)[1])
    node, base = start_wisp(binary, work / "drain" / "node", url)
    try:
        key = set_up(base, plan="enterprise")
        lift_rates_and_wait(lambda s: sql(url, s), [base], key)
        time.sleep(1.5)  # the last set-up calls are stored
        before = int(sql(url, "SELECT COUNT(*) FROM usage_events")[0])
        sqld.terminate()
        sqld.wait()
        process = wrk(f"{base}/v1/orgs/bench/models/iris/predict", key, concurrency, seconds, script)
        out, _ = process.communicate()
        served = int(re.search(r"(\d+) requests in", out).group(1))
        failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        print(f"during the outage: {served:,} calls served in {seconds} s"
              f" ({int(failed.group(1)) if failed else 0} not 2xx), into the outbox")
        sqld, url = start_sqld(work / "drain", port)
        started = time.monotonic()
        stored = before
        while stored < before + served and time.monotonic() - started < 600:
            time.sleep(0.05)
            try:
                stored = int(sql(url, "SELECT COUNT(*) FROM usage_events")[0])
            except Exception:
                continue
        took = time.monotonic() - started
        drained = stored - before
        print(f"usage drain on sqld, node idle: {drained:,} of {served:,} events stored "
              f"{took:.1f} s after sqld came back: {drained / took:,.0f} events/s "
              f"(reconnection included)")
    finally:
        node.terminate()
        node.wait()
        sqld.terminate()
        sqld.wait()


def release_binary():
    metadata = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout
    binary = Path(json.loads(metadata)["target_directory"]) / "release" / "wisp"
    return binary if binary.exists() else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wisp", type=Path)
    parser.add_argument("--before", type=Path, help="another build, for the embedded single-node ratio")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--drain", action="store_true", help="measure the usage drain's rate only")
    args = parser.parse_args()
    binary = args.wisp or release_binary()
    if binary is None or not shutil.which("wrk"):
        sys.exit("need a wisp binary (cargo build --release -p wisp) and `wrk`")
    work = Path(tempfile.mkdtemp(prefix="wisp-bench-fleet-"))
    script = work / "predict.lua"
    script.write_text(WRK_SCRIPT)
    if args.drain:
        try:
            drain_rate(binary, work, args.concurrency, args.seconds, script)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    processes = []
    try:
        sqld, url = start_sqld(work)
        processes.append(sqld)
        a, base_a = start_wisp(binary, work / "fleet" / "a", url)
        processes.append(a)
        key = set_up(base_a)
        b, base_b = start_wisp(binary, work / "fleet" / "b", url)
        processes.append(b)
        time.sleep(2.5)  # both nodes heartbeat and count each other

        # 1. Rate-limit accuracy: the Pro plan's 50 req/s per key, called at 100 req/s over two nodes.
        plan_rate = 50
        counts = [{}, {}]
        threads = [threading.Thread(target=paced, args=(base, key, plan_rate, args.seconds, c))
                   for base, c in zip([base_a, base_b], counts)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        admitted = sum(c.get(200, 0) for c in counts)
        refused = sum(c.get(429, 0) for c in counts)
        other = sum(n for c in counts for s, n in c.items() if s not in (200, 429, "closed"))
        closed = sum(c.get("closed", 0) for c in counts)
        allowed = plan_rate * args.seconds
        print(f"rate-limit accuracy: {admitted} admitted, {refused} refused ({other} other, {closed} on a closed connection) of "
              f"{2 * allowed} calls at 2x the plan's {plan_rate}/s over 2 nodes for {args.seconds} s")
        print(f"  admitted / allowed = {admitted} / {allowed} = {admitted / allowed:.3f}")

        # 2. Throughput: one node on sqld, then both.
        lift_rates_and_wait(lambda s: sql(url, s), [base_a, base_b], key)
        one = throughput([base_a], key, args.concurrency, args.seconds, script)
        two = throughput([base_a, base_b], key, args.concurrency, args.seconds, script)
        print(f"predict throughput on one sqld: one node {one:,.0f} req/s, two nodes {two:,.0f} req/s, "
              f"ratio {two / one:.2f} (c={args.concurrency} per node)")
        for p in reversed(processes):  # the nodes before their database
            p.terminate()
            p.wait()
        processes.clear()

        # One node on sqld with the --before build: whether the fleet work changed it.
        if args.before:
            (work / "before").mkdir()
            sqld, url = start_sqld(work / "before")
            processes.append(sqld)
            node, base = start_wisp(args.before, work / "before" / "a", url)
            processes.append(node)
            before_key = set_up(base)
            lift_rates_and_wait(lambda s: sql(url, s), [base], before_key)
            before_one = throughput([base], before_key, args.concurrency, args.seconds, script)
            print(f"one node on sqld, --before build: {before_one:,.0f} req/s; "
                  f"this build / before = {one / before_one:.2f}")
            for p in reversed(processes):
                p.terminate()
                p.wait()
            processes.clear()

        # 3. The single-node embedded mode.
        now = embedded(binary, work, "embedded-now", args.concurrency, args.seconds, script)
        print(f"single node, embedded file: {now:,.0f} req/s")
        if args.before:
            before = embedded(args.before, work, "embedded-before", args.concurrency, args.seconds, script)
            print(f"single node, embedded file, --before build: {before:,.0f} req/s; "
                  f"this build / before = {now / before:.2f}")
    finally:
        for p in reversed(processes):
            p.terminate()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
