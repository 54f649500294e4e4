#!/usr/bin/env python3
"""The HTTP side of scripts/gpu-check.sh (issue 25): waits for the services' health, builds
binary request bodies (docs/binary-body.md) with NumPy, posts them to the GPU and the CPU-only
service, compares the results and times them, and drives the GPU fault checks.

Every subcommand appends rows `name|STATUS|figures` to --results (the summary table of
gpu-check.sh) and exits 1 when one of its checks failed. Needs python3 and numpy only.

  gpu-check.py port
  gpu-check.py wait-ready URL --timeout S [--gpu] [--results F --name N]
  gpu-check.py bench --gpu URL --cpu URL --deadline EPOCH [--small] [--runs N] --results F
  gpu-check.py fault --url URL --kind gpu-oob|gpu-hang --deadline EPOCH --results F
"""

import argparse
import http.client
import json
import re
import socket
import statistics
import struct
import sys
import time
import urllib.parse

import numpy as np

CONTENT_TYPE = "application/vnd.rustkernel.kernel-input.v1"
TOLERANCE = 1e-6
SEED = 25


def log(*parts):
    print(*parts, flush=True)


def add_row(results, name, status, figures):
    figures = " ".join(str(figures).split())
    with open(results, "a", encoding="utf-8") as out:
        out.write(f"{name}|{status}|{figures}\n")


# --- HTTP -------------------------------------------------------------------------------------


def _conn(url, timeout):
    parts = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def get(url, path, timeout=2.0):
    """(status, body bytes) or (None, error text)."""
    try:
        conn = _conn(url, timeout)
        conn.request("GET", path)
        answer = conn.getresponse()
        body = answer.read()
        conn.close()
        return answer.status, body
    except (OSError, http.client.HTTPException) as error:
        return None, str(error).encode()


def gpu_component(url):
    """(status, message) of the `gpu` health component, or (None, why)."""
    code, body = get(url, "/health")
    if code is None:
        return None, body.decode(errors="replace")
    try:
        for component in json.loads(body)["components"]:
            if component["name"] == "gpu":
                return component["status"], component["message"]
    except (ValueError, KeyError, TypeError) as error:
        return None, f"unreadable /health ({error})"
    return None, "no gpu component in /health"


def gpu_restarts(url):
    """rustkernel_recovery_actions_total{kernel="gpu0",action="restart"} from /metrics (0 when
    absent), or None."""
    code, body = get(url, "/metrics")
    if code != 200:
        return None
    pattern = re.compile(
        r'^rustkernel_recovery_actions_total\{(?=[^}]*kernel="gpu0")(?=[^}]*action="restart")[^}]*\}\s+([0-9.e+]+)',
        re.M,
    )
    found = pattern.search(body.decode(errors="replace"))
    return int(float(found.group(1))) if found else 0


class Answer:
    """One execute call: HTTP status, the timing, and the response's head fields."""

    def __init__(self, status, seconds, body):
        self.status = status
        self.seconds = seconds
        self.body = body
        head = body[:600].decode(errors="replace")
        backend = re.search(r'"backend"\s*:\s*"([^"]*)"', head)
        elapsed = re.search(r'"elapsed_ms"\s*:\s*([0-9.eE+-]+)', head)
        self.backend = backend.group(1) if backend else None
        self.elapsed_ms = float(elapsed.group(1)) if elapsed else None

    def result(self):
        """The `result` object (`{"page_rank": ...}` or `{"mat_mul": ...}`) unwrapped."""
        result = json.loads(self.body)["result"]
        return next(iter(result.values()))

    def error(self):
        try:
            parsed = json.loads(self.body)
            return f"{parsed.get('error')}: {parsed.get('message')}"
        except ValueError:
            return self.body[:200].decode(errors="replace")


def execute(url, kernel, body, timeout_ms):
    """POSTs a binary body; the clock runs from sending to the last response byte."""
    conn = _conn(url, timeout_ms / 1000.0 + 30.0)
    headers = {
        "Content-Type": CONTENT_TYPE,
        "x-request-timeout-ms": str(int(timeout_ms)),
        "Content-Length": str(len(body)),
    }
    started = time.perf_counter()
    try:
        conn.request("POST", f"/v1/kernels/{kernel}/execute", body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        status = answer.status
    except (OSError, http.client.HTTPException) as error:
        return Answer(None, time.perf_counter() - started, str(error).encode())
    finally:
        conn.close()
    return Answer(status, time.perf_counter() - started, data)


# --- Inputs -----------------------------------------------------------------------------------


def pagerank_case(nodes, edges, seed=SEED):
    rng = np.random.default_rng(seed)
    # A skewed graph (some nodes far more linked to than others), fixed by the seed.
    src = rng.integers(0, nodes, size=edges, dtype=np.uint32)
    dst = (rng.pareto(1.5, size=edges) * nodes / 50).astype(np.uint64) % nodes
    pairs = np.empty((edges, 2), dtype="<u4")
    pairs[:, 0] = src
    pairs[:, 1] = dst.astype(np.uint32)
    head = struct.pack("<4sHHIIQdd", b"RKIN", 1, 1, nodes, 100, edges, 0.85, 1e-10)
    return head + pairs.tobytes(), None


def matmul_case(n, seed=SEED):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n))
    b = rng.standard_normal((n, n))
    body = struct.pack("<4sHHII", b"RKIN", 1, 2, n, 0) + a.astype("<f8").tobytes() + b.astype("<f8").tobytes()
    return body, (a, b)


def rel_diff(got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf")
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    diff = float(np.max(np.abs(got - want))) if want.size else 0.0
    return diff / scale if scale > 0 else diff


def compare(kernel, gpu_answer, cpu_answer):
    """(ok, text) comparing the two services' results."""
    gpu = gpu_answer.result()
    cpu = cpu_answer.result()
    if kernel == "graph/pagerank":
        rel = rel_diff(gpu["ranks"], cpu["ranks"])
        same_iter = gpu["iterations"] == cpu["iterations"]
        ok = rel <= TOLERANCE and same_iter
        text = f"rel {rel:.2e}, iterations gpu {gpu['iterations']} cpu {cpu['iterations']}"
        return ok, text
    rel = rel_diff(gpu["c"], cpu["c"])
    return rel <= TOLERANCE, f"rel {rel:.2e}"


# --- Subcommands ------------------------------------------------------------------------------


def cmd_port(_args):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        print(sock.getsockname()[1])
    return 0


def alive(pid):
    """Whether the process runs (a zombie, exited but not reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cmd_wait_ready(args):
    """Waits for /health/ready, and with --gpu for the gpu component to be healthy."""
    end = time.monotonic() + args.timeout
    started = time.monotonic()
    last = "no answer"
    while time.monotonic() < end:
        if args.pid and not alive(args.pid):
            last = f"the service (pid {args.pid}) exited"
            break
        code, body = get(args.url, "/health/ready")
        if code == 200:
            if not args.gpu:
                log(f"  {args.url}: ready after {time.monotonic() - started:.1f} s")
                return 0
            status, message = gpu_component(args.url)
            last = f"gpu {status}: {message}"
            if status == "healthy":
                took = time.monotonic() - started
                log(f"  {args.url}: gpu component healthy after {took:.1f} s: {message}")
                if args.results:
                    add_row(args.results, args.name, "PASS", f"{took:.1f} s; {message}")
                return 0
        else:
            last = f"/health/ready {code}: {body[:200].decode(errors='replace')}"
        time.sleep(0.1)
    took = time.monotonic() - started
    log(f"  {args.url}: not ready after {took:.1f} s; last: {last}")
    if args.results:
        add_row(args.results, args.name, "FAIL", f"not healthy after {took:.1f} s; {last}")
    return 1


def cmd_bench(args):
    if args.small:
        cases = [
            ("pagerank 1k nodes/10k edges", "graph/pagerank", lambda: pagerank_case(1_000, 10_000)),
            ("matmul 64", "linalg/matmul", lambda: matmul_case(64)),
            ("pagerank 10k nodes/100k edges", "graph/pagerank", lambda: pagerank_case(10_000, 100_000)),
            ("matmul 512", "linalg/matmul", lambda: matmul_case(512)),
        ]
    else:
        cases = [
            ("pagerank 1k nodes/10k edges", "graph/pagerank", lambda: pagerank_case(1_000, 10_000)),
            ("matmul 64", "linalg/matmul", lambda: matmul_case(64)),
            ("matmul 512", "linalg/matmul", lambda: matmul_case(512)),
            ("pagerank 100k nodes/1M edges", "graph/pagerank", lambda: pagerank_case(100_000, 1_000_000)),
            ("matmul 4096", "linalg/matmul", lambda: matmul_case(4096)),
        ]
    failed = False
    log("  kernel-only: not reported by the service (figures below are end-to-end and the")
    log("  service's elapsed_ms: body parse + scheduling + kernel + worker pipes, not the HTTP body)")
    header = f"  {'case':<30} {'svc':<4} {'runs':>4} {'e2e med s':>10} {'elapsed_ms med':>15} {'backend':>8}"
    log(header)
    for name, kernel, build in cases:
        remaining = args.deadline - time.time()
        if remaining < 5:
            add_row(args.results, f"compare {name}", "SKIP", "budget spent")
            log(f"  {name}: SKIP (budget spent)")
            continue
        body, _ = build()
        timeout_ms = max(1000, min(300_000, int((args.deadline - time.time()) * 1000)))
        answers = {"gpu": [], "cpu": []}
        problems = []
        for run in range(args.runs):
            for svc, url in (("gpu", args.gpu), ("cpu", args.cpu)):
                if run > 0:
                    # Repeat only cheap runs, and only while the budget allows.
                    last = answers[svc][-1].seconds if answers[svc] else 0.0
                    if last > 10.0 or time.time() + 2 * last + 5 > args.deadline:
                        continue
                answer = execute(url, kernel, body, timeout_ms)
                if answer.status != 200:
                    problems.append(f"{svc} run {run + 1}: HTTP {answer.status} {answer.error()}")
                    continue
                answers[svc].append(answer)
        stats = {}
        for svc in ("gpu", "cpu"):
            got = answers[svc]
            if not got:
                continue
            e2e = statistics.median(a.seconds for a in got)
            elapsed = statistics.median(a.elapsed_ms for a in got if a.elapsed_ms is not None)
            backends = sorted({a.backend for a in got})
            stats[svc] = (e2e, elapsed)
            log(f"  {name:<30} {svc:<4} {len(got):>4} {e2e:>10.3f} {elapsed:>15.1f} {','.join(backends):>8}")
        if set(stats) != {"gpu", "cpu"}:
            failed = True
            add_row(args.results, f"compare {name}", "FAIL", "; ".join(problems) or "no answer")
            log(f"  {name}: FAIL {'; '.join(problems)}")
            continue
        wrong_backend = [a.backend for a in answers["gpu"] if a.backend != "gpu"]
        if wrong_backend:
            problems.append(f"the GPU service answered from {wrong_backend[0]}")
        if any(a.backend != "cpu" for a in answers["cpu"]):
            problems.append("the CPU service answered from the GPU")
        ok, text = compare(kernel, answers["gpu"][-1], answers["cpu"][-1])
        if not ok:
            problems.append(f"results differ ({text}, tolerance {TOLERANCE:g})")
        ratio_e2e = stats["cpu"][0] / stats["gpu"][0] if stats["gpu"][0] > 0 else float("inf")
        ratio_svc = stats["cpu"][1] / stats["gpu"][1] if stats["gpu"][1] > 0 else float("inf")
        figures = (
            f"{text}; e2e gpu {stats['gpu'][0] * 1000:.1f} ms cpu {stats['cpu'][0] * 1000:.1f} ms"
            f" (cpu/gpu {ratio_e2e:.2f}x); elapsed_ms gpu {stats['gpu'][1]:.1f} cpu {stats['cpu'][1]:.1f}"
            f" (cpu/gpu {ratio_svc:.2f}x); runs {len(answers['gpu'])}/{len(answers['cpu'])}"
        )
        if problems:
            failed = True
            figures = "; ".join(problems) + "; " + figures
        add_row(args.results, f"compare {name}", "FAIL" if problems else "PASS", figures)
        log(f"  {name}: {'FAIL' if problems else 'PASS'} {figures}")
    return 1 if failed else 0


def cmd_fault(args):
    """The service was started with `fault = { kind = args.kind }`: the first request meets it."""
    name = f"fault {args.kind}"
    body, (a, b) = matmul_case(256, seed=SEED + 1)
    want = a @ b
    before = gpu_restarts(args.url)
    hang = args.kind == "gpu-hang"
    timeout_ms = args.hang_timeout_ms if hang else 30_000
    first = execute(args.url, "linalg/matmul", body, timeout_ms)
    figures = []
    failed = False
    if first.status == 200:
        rel = rel_diff(first.result()["c"], want.ravel())
        figures.append(f"faulty request 200 from {first.backend} in {first.seconds * 1000:.0f} ms, rel {rel:.1e}")
        if first.backend != "cpu" or rel > TOLERANCE:
            failed = True
            figures.append("expected backend cpu and the right result")
    elif first.status == 504 and hang:
        figures.append(f"faulty request 504 (deadline {timeout_ms} ms spent) in {first.seconds * 1000:.0f} ms")
    else:
        failed = True
        figures.append(f"faulty request HTTP {first.status}: {first.error()}")
    log(f"  {figures[-1]}")
    # The worker must be replaced: the restart counter goes up, then the gpu component is
    # healthy again.
    started = time.monotonic()
    end = min(time.monotonic() + args.recover_timeout, time.monotonic() + max(1.0, args.deadline - time.time()))
    restarted = False
    status, message = None, ""
    seen = []
    while time.monotonic() < end:
        now = gpu_restarts(args.url)
        if before is not None and now is not None and now > before:
            restarted = True
        status, message = gpu_component(args.url)
        if status != "healthy" and message and (not seen or seen[-1] != message):
            seen.append(message)
        if restarted and status == "healthy":
            break
        time.sleep(0.1)
    took = time.monotonic() - started
    if restarted and status == "healthy":
        figures.append(f"worker restarted, gpu healthy again {took:.1f} s later")
    else:
        failed = True
        figures.append(f"worker not back in {took:.0f} s (restarted {restarted}; gpu {status}: {message})")
    log(f"  {figures[-1]}")
    if seen:
        log(f"  gpu component meanwhile: {' | '.join(seen[:4])}")
    if restarted and status == "healthy":
        second = execute(args.url, "linalg/matmul", body, 30_000)
        if second.status == 200:
            rel = rel_diff(second.result()["c"], want.ravel())
            figures.append(f"next request from {second.backend}, rel {rel:.1e}")
            if second.backend != "gpu" or rel > TOLERANCE:
                failed = True
        else:
            failed = True
            figures.append(f"next request HTTP {second.status}: {second.error()}")
        log(f"  {figures[-1]}")
    add_row(args.results, name, "FAIL" if failed else "PASS", "; ".join(figures))
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("port")
    ready = sub.add_parser("wait-ready")
    ready.add_argument("url")
    ready.add_argument("--timeout", type=float, default=60.0)
    ready.add_argument("--gpu", action="store_true")
    ready.add_argument("--pid", type=int, help="the service's process: stop waiting when it exits")
    ready.add_argument("--results")
    ready.add_argument("--name", default="startup")
    bench = sub.add_parser("bench")
    bench.add_argument("--gpu", required=True)
    bench.add_argument("--cpu", required=True)
    bench.add_argument("--deadline", type=float, required=True, help="epoch seconds")
    bench.add_argument("--runs", type=int, default=3)
    bench.add_argument("--small", action="store_true")
    bench.add_argument("--results", required=True)
    fault = sub.add_parser("fault")
    fault.add_argument("--url", required=True)
    fault.add_argument("--kind", required=True, choices=["gpu-oob", "gpu-hang"])
    fault.add_argument("--deadline", type=float, required=True, help="epoch seconds")
    fault.add_argument("--hang-timeout-ms", type=int, default=2000)
    fault.add_argument("--recover-timeout", type=float, default=45.0)
    fault.add_argument("--results", required=True)
    args = parser.parse_args()
    handlers = {"port": cmd_port, "wait-ready": cmd_wait_ready, "bench": cmd_bench, "fault": cmd_fault}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
