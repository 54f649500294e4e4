#!/usr/bin/env python3
"""What operators look at, proven against the real thing (issue 30).

1. `promtool check rules` and `promtool test rules` on deploy/prometheus/ (the `for:` durations
   are proven there, not by waiting).
2. Three real `rustkernel serve` processes on loopback, scraped every second by a real
   Prometheus that loads the alert rules:
   - `faults`: seeded kernel faults (errors, added latency, hangs past the clients' deadlines),
     a small retry budget, one kernel's breaker in metrics-only (shadow) mode;
   - `gpu`: the GPU path through the worker's CPU backend, whose workers crash on their third
     request (restarts, the recovery ladder's escalation, CPU failover), and edge ingest fed a
     recorded firmware run (tests/golden/telemetry/v2) that then falls silent;
   - `flap`: both kernels failing in bursts, so readiness goes down and up.
   Clients drive them for SCENARIO_SECONDS (default 40); then every expression of every panel
   of deploy/grafana/rustkernel.json (template variables as "All", `$__rate_interval` 15s) must
   return data over the run through Prometheus's HTTP API, and every alert the scenario
   should trigger must have reached pending or firing (the ALERTS series).
3. The status page in headless Chromium (`--dump-dom`, virtual time): a kernel's breaker
   driven open by real failures shows as open with its reason.
4. README's curl lines (between its `curl-examples` markers) against `rustkernel serve` on its
   defaults: each answers what README shows, latencies and timestamps aside.

Binaries: target/debug/rustkernel and rustkernel-worker (built by the tests step), or
RUSTKERNEL_BIN_DIR. Exits non-zero naming every check that failed.
"""

import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN_DIR = os.environ.get("RUSTKERNEL_BIN_DIR", os.path.join(ROOT, "target", "debug"))
RULES = os.path.join(ROOT, "deploy", "prometheus", "alerts.yaml")
RULE_TESTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.test.yaml")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "rustkernel.json")
RECORDING = os.path.join(ROOT, "tests", "golden", "telemetry", "v2", "frames.bin")
SCENARIO_SECONDS = float(os.environ.get("SCENARIO_SECONDS", "40"))

PAGERANK = json.dumps({"num_nodes": 3, "edges": [[0, 1], [1, 2], [2, 0]], "damping": 0.85})
MATMUL = json.dumps({"n": 2, "a": [1, 2, 3, 4], "b": [5, 6, 7, 8]})

# The alerts the scenario drives (the rest of alerts.yaml is proven by its unit tests only).
EXPECTED_ALERTS = {
    "RustkernelBreakerOpen": "a breaker of `faults` or `flap` stays out of closed",
    "RustkernelKernelFailingOverToCpu": "`gpu` answers from the CPU while its workers crash",
    "RustkernelGpuWorkerCrashLooping": "`gpu` restarts its worker again and again",
    "RustkernelGpuEscalated": "`gpu`'s ladder degrades to probation",
    "RustkernelReadinessFlapping": "`flap` loses and regains readiness",
    "RustkernelEdgeDeviceSilent": "the recorded device stops talking",
    "RustkernelEdgeOperatorCalled": "the recording escalates to notify_operator",
    "RustkernelRetryBudgetExhausted": "`faults` sheds retries past its budget",
}

failures = []


def fail(message):
    failures.append(message)
    print(f"    FAIL {message}", flush=True)


def step(message):
    print(f"\n--> {message}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url, body=None, headers=None, timeout=10.0):
    """(status, text) of one HTTP request; (0, reason) when nothing answered."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, headers=headers or {})
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        return 0, str(error)


def wait_for(what, condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


class Service:
    def __init__(self, name, workdir, config, extra_args=(), port=None):
        self.name = name
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        path = os.path.join(workdir, f"{name}.toml")
        with open(path, "w") as f:
            f.write(config)
        self.log = open(os.path.join(workdir, f"{name}.log"), "w")
        self.process = subprocess.Popen(
            [os.path.join(BIN_DIR, "rustkernel"), "serve", "--config", path,
             "--address", f"127.0.0.1:{self.port}", *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(f"{name} ready", lambda: request(self.base + "/health/ready", timeout=2)[0] == 200)

    def execute(self, kernel, body, timeout_ms=300):
        return request(f"{self.base}/v1/kernels/{kernel}/execute", body,
                       {"x-request-timeout-ms": str(timeout_ms)}, timeout=5)[0]

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


BASE_CONFIG = """
preset = "development"
[limits]
per_client_rate = 0
max_concurrency = 256
[metrics]
latency_buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]
"""

FAULTS = BASE_CONFIG + """
[resilience.retry_budget]
min_retries_per_second = 1
retry_ratio = 0.05
[kernels."graph/pagerank".faults]
error_rate = 0.5
latency = "2ms"
seed = 1
[kernels."linalg/matmul".faults]
error_rate = 0.2
latency = "20ms"
hang_probability = 0.3
seed = 2
"""

GPU = BASE_CONFIG + """
[gpu]
enabled = true
backend = "cpu"
worker = "{worker}"
restart_delay = "200ms"
max_restarts = 2
restart_window = "10s"
probation_restart_delay = "1s"
startup_timeout = "10s"
[gpu.fault]
kind = "crash"
on_request = 3
workers = 1000
[telemetry]
unknown_after = "3s"
unhealthy_after = "6s"
"""

FLAP = BASE_CONFIG + """
[kernels."graph/pagerank".faults]
error_rate = 1.0
seed = 3
[kernels."linalg/matmul".faults]
error_rate = 1.0
seed = 4
"""


def drive(services, seconds):
    """Clients: steady traffic on `faults` and `gpu`, bursts on `flap`."""
    stop = time.monotonic() + seconds
    faults, gpu, flap = services

    def steady(service, kernel, body, pause):
        while time.monotonic() < stop:
            service.execute(kernel, body)
            time.sleep(pause)

    def bursts():
        while time.monotonic() < stop:
            for _ in range(8):
                flap.execute("graph/pagerank", PAGERANK)
                flap.execute("linalg/matmul", MATMUL)
            # Quiet past the breakers' 5 s wait: they go half-open and readiness returns.
            time.sleep(7)

    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        jobs = [pool.submit(steady, faults, "graph/pagerank", PAGERANK, 0.02) for _ in range(2)]
        jobs += [pool.submit(steady, faults, "linalg/matmul", MATMUL, 0.05) for _ in range(3)]
        jobs += [pool.submit(steady, gpu, "graph/pagerank", PAGERANK, 0.1) for _ in range(2)]
        jobs.append(pool.submit(bursts))
        for job in jobs:
            job.result()


def prometheus_query_range(base, expr, start, end):
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": "1"})
    status, text = request(f"{base}/api/v1/query_range?{query}", timeout=30)
    if status != 200:
        return None, f"HTTP {status}: {text[:300]}"
    answer = json.loads(text)
    return answer["data"]["result"], None


def substitute(expr):
    return (expr.replace("$__rate_interval", "15s").replace("$instance", ".*")
            .replace("$kernel", ".*"))


def check_panels(prometheus, start, end):
    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    checked = 0
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = substitute(target["expr"])
            result, error = prometheus_query_range(prometheus, expr, start, end)
            checked += 1
            label = f'panel "{panel["title"]}" {target["refId"]}'
            if error:
                fail(f"{label}: {error}")
            elif not any(series.get("values") for series in result):
                fail(f"{label}: no data for {expr}")
            else:
                print(f"    ok   {label}: {len(result)} series")
    return checked


def check_alerts(prometheus, start, end):
    result, error = prometheus_query_range(
        prometheus, 'max by (alertname, alertstate) (ALERTS{alertname=~"Rustkernel.*"})', start, end)
    if error:
        fail(f"ALERTS: {error}")
        return
    reached = {}
    for series in result:
        name = series["metric"]["alertname"]
        reached.setdefault(name, set()).add(series["metric"]["alertstate"])
    for name, why in EXPECTED_ALERTS.items():
        if name in reached:
            print(f"    ok   {name}: {', '.join(sorted(reached[name]))} ({why})")
        else:
            fail(f"alert {name} never pending or firing ({why})")


def check_status_page(flap, workdir):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        fail("chromium is not installed (Debian: apt-get install chromium)")
        return
    # Real failures, in a row, open pagerank's breaker (consecutive rule, 3).
    wait_for("flap's pagerank breaker open", lambda: (
        flap.execute("graph/pagerank", PAGERANK) == 503
        and '"state":"open"' in request(flap.base + "/health")[1]), timeout=30)
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               f"--user-data-dir={os.path.join(workdir, 'chromium')}",
               "--virtual-time-budget=3000", "--dump-dom", flap.base + "/status"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    dom = run.stdout
    row = 'data-kernel="graph/pagerank" data-state="open"'
    if run.returncode != 0 or row not in dom:
        fail(f"the status page in Chromium does not show pagerank open (exit {run.returncode}): "
             f"{dom[:600]} {run.stderr[-600:]}")
        return
    start = dom.index(row)
    shown = dom[start:dom.index("</tr>", start)]
    why = shown.split('class="why">', 1)[-1].split("</td>", 1)[0]
    reasons = ("consecutive failures", "failure rate", "probe failed", "slow call rate")
    if not any(reason in why for reason in reasons):
        fail(f"the page shows pagerank open but not why: {shown}")
    else:
        print(f"    ok   Chromium shows graph/pagerank open: {why}")
    if 'data-ready=' not in dom:
        fail("the page shows no readiness banner")


README = os.path.join(ROOT, "README.md")


def normalize(text):
    """An answer without what changes from run to run: latencies, times."""
    import re
    text = re.sub(r'"(latency_ms|elapsed_ms)":[0-9.]+', r'"\1":N', text)
    return re.sub(r'"last_check":"[^"]*"', '"last_check":T', text)


def check_readme_curls(workdir):
    """README's curl lines, run against `rustkernel serve` on its defaults (another port)."""
    with open(README) as f:
        text = f.read()
    block = text.split("<!-- curl-examples: begin -->", 1)[1].split("<!-- curl-examples: end -->", 1)[0]
    lines = block.strip().strip("`").split("\n")[1:]  # drop the fence's language line
    examples = []
    for line in lines:
        if line.startswith("$ "):
            examples.append((line[2:], []))
        elif examples and line and line != "```":
            examples[-1][1].append(line)
    service = Service("defaults", workdir, "")
    try:
        for command, expected in examples:
            run = subprocess.run(["bash", "-c", command.replace("localhost:8080", f"127.0.0.1:{service.port}")],
                                 capture_output=True, text=True, timeout=30)
            got = normalize(run.stdout).strip().split("\n")
            want = [normalize(line) for line in expected]
            matches = len(got) == len(want) and all(
                g.startswith(w[:-len("...]}")]) if w.endswith("...]}") else g == w
                for g, w in zip(got, want))
            if matches:
                print(f"    ok   $ {command[:90]}")
            else:
                fail(f"README's `{command}` answered {got}, README shows {want}")
    finally:
        service.stop()


def main():
    for tool in ("promtool", "prometheus"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (Debian: apt-get install prometheus)")
    for binary in ("rustkernel", "rustkernel-worker"):
        if not os.path.exists(os.path.join(BIN_DIR, binary)):
            raise SystemExit(f"{BIN_DIR}/{binary} is missing: cargo build -p rustkernel-host --bins")

    step("promtool: check and unit-test the alert rules")
    subprocess.run(["promtool", "check", "rules", RULES], check=True)
    subprocess.run(["promtool", "test", "rules", RULE_TESTS], check=True)

    workdir = tempfile.mkdtemp(prefix="rustkernel-observability-")
    services = []
    prometheus = None
    try:
        step("README's curl lines against `rustkernel serve` on its defaults")
        check_readme_curls(workdir)

        step("a Prometheus that scrapes three services every second, then the services")
        ports = {name: free_port() for name in ("faults", "gpu", "flap")}
        prom_port = free_port()
        prom_base = f"http://127.0.0.1:{prom_port}"
        config = os.path.join(workdir, "prometheus.yml")
        with open(config, "w") as f:
            targets = ", ".join(f'"127.0.0.1:{port}"' for port in ports.values())
            f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{RULES}"]
scrape_configs:
  - job_name: rustkernel
    static_configs:
      - targets: [{targets}]
""")
        prom_log = open(os.path.join(workdir, "prometheus.log"), "w")
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={config}",
             f"--storage.tsdb.path={os.path.join(workdir, 'tsdb')}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
            stdout=prom_log, stderr=subprocess.STDOUT)
        wait_for("Prometheus ready", lambda: request(prom_base + "/-/ready")[0] == 200)
        start = time.time()
        # Started while Prometheus scrapes, so it sees their first failures too.
        faults = Service("faults", workdir, FAULTS, port=ports["faults"])
        services.append(faults)
        worker = os.path.join(BIN_DIR, "rustkernel-worker")
        gpu = Service("gpu", workdir, GPU.format(worker=worker), ["--telemetry", RECORDING],
                      port=ports["gpu"])
        services.append(gpu)
        flap = Service("flap", workdir, FLAP, port=ports["flap"])
        services.append(flap)
        # The shadow breaker: pagerank of `faults` decides but never refuses.
        status, text = request(f"{faults.base}/v1/admin/kernels/graph/pagerank/metrics-only", b"")
        if status != 200:
            fail(f"metrics-only: {status} {text}")

        step(f"the scenario: {SCENARIO_SECONDS:.0f} s of traffic through faults")
        drive(services, SCENARIO_SECONDS)
        time.sleep(3)  # a last scrape and rule evaluation
        end = time.time()
        status, text = request(prom_base + "/api/v1/targets")
        health = [t["health"] for t in json.loads(text)["data"]["activeTargets"]] if status == 200 else []
        if health != ["up"] * len(services):
            fail(f"Prometheus's targets are not all up: {health}")

        step("every dashboard panel's expression returns data")
        checked = check_panels(prom_base, start, end)
        step("the alerts the scenario drives reached pending or firing")
        check_alerts(prom_base, start, end)
        step("the status page in headless Chromium shows an open breaker")
        check_status_page(flap, workdir)
        print(f"\n{checked} panel expressions, {len(EXPECTED_ALERTS)} alerts checked; "
              f"{len(failures)} failure(s)")
    finally:
        for service in services:
            service.stop()
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=30)
        if failures and os.environ.get("KEEP_LOGS"):
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if failures:
        print("\nobservability check failed:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
