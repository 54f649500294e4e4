#!/usr/bin/env bash
# Loopback load benchmark of a release build of `rustkernel serve`; writes the measured part of
# docs/loadbench.md (between its loadbench:begin/end markers; the rest of the file is kept).
#
#   (a) GET /health/ready at full load             wrk  (goal >= 30k requests/s)
#   (b) GET /health/ready at a fixed 20k requests/s oha -q, latency corrected (goal p99 < 5 ms)
#   (c) POST /v1/kernels/graph/pagerank/execute (small input) at full load   wrk
#   (d) the service's cost per kernel request over the bare kernel: the criterion bench
#       host/benches/service_overhead.rs (goal <= 50 us at p50)
#   (e) the service against its floor: a bare axum server with the same kernels and no
#       resilience (host/examples/floor.rs), alternated with the service ROUNDS times (5) on
#       (a)'s and (c)'s loads; prints the median ratios (goals: >= 0.95 on /health/ready,
#       >= 0.9 on the POST, p99 no worse). `scripts/loadbench.sh floor` runs (e) alone.
#
# Only loopback traffic (127.0.0.1), each run bounded by DURATION. The service runs with the
# rate limit off and a high concurrency limit (see CONFIG below).
#
# Tools: wrk (Debian: apt-get install -y wrk) and oha (cargo install --locked
# --no-default-features --features native-tls oha: its default rustls feature builds
# aws-lc-sys, a long C build, and it does not build with no TLS feature); installed when missing.
#
#   scripts/loadbench.sh                 # everything, 10 s per run
#   DURATION=5s SKIP_BENCH=1 scripts/loadbench.sh
#   DURATION=5s scripts/loadbench.sh floor   # (e) only: the service against its floor
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
PORT=${PORT:-18080}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-1}
FIXED_RATE=${FIXED_RATE:-20000}
OHA_VERSION=1.16.0
REPORT=docs/loadbench.md
BASE="http://127.0.0.1:$PORT"
TARGET_DIR=${CARGO_TARGET_DIR:-target}

if ! command -v wrk >/dev/null; then
  apt-get install -y wrk >/dev/null
fi
if [ "${1:-}" != floor ] && ! command -v oha >/dev/null; then
  cargo install --locked --no-default-features --features native-tls "oha@$OHA_VERSION"
fi

cargo build --release -p rustkernel-host
BIN="$TARGET_DIR/release/rustkernel"

work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

CONFIG="$work/loadbench.toml"
cat >"$CONFIG" <<EOF
preset = "production"
[server]
address = "127.0.0.1:$PORT"
[limits]
per_client_rate = 0        # the rate limit off: one client address sends everything
max_concurrency = 100000   # never shed
EOF

RUST_LOG=warn "$BIN" serve --config "$CONFIG" 2>"$work/server.log" &
server=$!
for _ in $(seq 1 100); do
  if curl -fsS "$BASE/health/ready" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
curl -fsS "$BASE/health/ready" >/dev/null

BODY='{"num_nodes":3,"edges":[[0,1],[1,2],[2,0]]}'
cat >"$work/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
EOF
curl -fsS -X POST -H 'Content-Type: application/json' -d "$BODY" \
  "$BASE/v1/kernels/graph/pagerank/execute" >"$work/post-answer.json"

load() { cut -d' ' -f1-3 /proc/loadavg; }

# (e) The service against its floor, alternated ROUNDS times; prints median ratios.
floor_bench() {
  local rounds=${ROUNDS:-5} floor_port=$((PORT + 1))
  cargo build --release -p rustkernel-host --example floor
  "$TARGET_DIR/release/examples/floor" "127.0.0.1:$floor_port" 2>"$work/floor.log" &
  local floor=$!
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$floor_port/health/ready" >/dev/null 2>&1; then break; fi
    sleep 0.1
  done
  : >"$work/floor.tsv"
  for round in $(seq 1 "$rounds"); do
    for who in service floor; do
      local base=$BASE
      [ "$who" = floor ] && base="http://127.0.0.1:$floor_port"
      wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$base/health/ready" >"$work/e-ready-$who-$round.txt"
      (cd "$work" && wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s post.lua \
        "$base/v1/kernels/graph/pagerank/execute") >"$work/e-post-$who-$round.txt"
      echo "round $round: $who done"
    done
  done
  kill "$floor" 2>/dev/null || true
  wait "$floor" 2>/dev/null || true
  ROUNDS=$rounds python3 - "$work" <<'PY'
import re, statistics, sys, os
work = sys.argv[1]
rounds = int(os.environ["ROUNDS"])
def wrk(path):
    text = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return rps, float(p99.group(1)) * scale, int(non2xx.group(1)) if non2xx else 0
for route, goal in (("ready", 0.95), ("post", 0.90)):
    ratios, p99s, p99f, errors = [], [], [], 0
    for r in range(1, rounds + 1):
        s, sp, se = wrk(f"{work}/e-{route}-service-{r}.txt")
        f, fp, fe = wrk(f"{work}/e-{route}-floor-{r}.txt")
        ratios.append(s / f); p99s.append(sp); p99f.append(fp); errors += se + fe
    name = "GET /health/ready" if route == "ready" else "POST /v1/kernels/graph/pagerank/execute (3 nodes)"
    ratio = statistics.median(ratios)
    print(f"(e) {name}: service/floor median {ratio:.3f} over {rounds} rounds "
          f"(each: {', '.join(f'{x:.3f}' for x in ratios)}); goal >= {goal}: "
          f"{'met' if ratio >= goal else 'missed by ' + format(goal - ratio, '.3f')}; "
          f"p99 median service {statistics.median(p99s):.2f} ms, floor {statistics.median(p99f):.2f} ms; "
          f"non-2xx {errors}")
PY
}

if [ "${1:-}" = floor ]; then
  floor_bench | tee "$work/floor.txt"
  exit 0
fi

echo "loadbench: (a) GET /health/ready at full load"
load_a=$(load)
cmd_a="wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency $BASE/health/ready"
$cmd_a | tee "$work/a.txt"

echo "loadbench: (b) GET /health/ready at a fixed $FIXED_RATE requests/s"
load_b=$(load)
cmd_b="oha -z $DURATION -q $FIXED_RATE -c $CONNECTIONS --latency-correction --no-tui --output-format json $BASE/health/ready"
$cmd_b >"$work/b.json"

echo "loadbench: (c) POST pagerank at full load"
load_c=$(load)
cmd_c="wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency -s post.lua $BASE/v1/kernels/graph/pagerank/execute"
(cd "$work" && $cmd_c) | tee "$work/c.txt"

if [ -z "${SKIP_FLOOR:-}" ]; then
  echo "loadbench: (e) the service against its floor"
  floor_bench | tee "$work/e.txt"
fi

kill "$server"
wait "$server" || true
server=""

if [ -z "${SKIP_BENCH:-}" ]; then
  echo "loadbench: (d) the service's cost per kernel request (criterion)"
  load_d=$(load)
  cargo bench -p rustkernel-host --bench service_overhead -- --warm-up-time 2 --measurement-time 8 \
    | tee "$work/d.txt"
else
  load_d="skipped"
fi

export work load_a load_b load_c load_d cmd_a cmd_b cmd_c DURATION CONNECTIONS FIXED_RATE TARGET_DIR REPORT
python3 - <<'EOF'
import json, os, re, subprocess, datetime

env = os.environ
work = env["work"]

def wrk(path):
    text = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    pct = {}
    for p, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M):
        pct[p] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket = re.search(r"Socket errors: (.*)", text)
    return rps, pct, (errors.group(1) if errors else "0"), (socket.group(1) if socket else "none")

def sh(command):
    return subprocess.run(command, shell=True, capture_output=True, text=True).stdout.strip()

a_rps, a_pct, a_non2xx, a_sock = wrk(f"{work}/a.txt")
c_rps, c_pct, c_non2xx, c_sock = wrk(f"{work}/c.txt")
b = json.load(open(f"{work}/b.json"))
b_summary = b["summary"]
b_pct = {k: v * 1000.0 for k, v in b["latencyPercentiles"].items()}
b_codes = b.get("statusCodeDistribution", {})
b_errors = b.get("errorDistribution", {})

def ms(x):
    return f"{x:.2f} ms" if x >= 1 else f"{x * 1000:.0f} µs"

lines = []
add = lines.append
add(f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit `{sh('git rev-parse --short HEAD')}`"
    f"{' (with uncommitted changes)' if sh('git status --porcelain --untracked-files=no') else ''}.")
add("")
cpu_model = sh("lscpu | sed -n 's/^Model name: *//p'")
memory = sh("free -g | awk '/Mem:/ {print $2}'")
wrk_version = sh("wrk -v 2>&1 | head -1 | cut -d' ' -f2")
add(f"Machine: {sh('nproc')} CPUs ({cpu_model}), {memory} GiB memory, Linux {sh('uname -r')}; "
    f"the load generator runs on the same CPUs. wrk {wrk_version}, {sh('oha --version')}, "
    f"{sh('rustc --version')}.")
add("")
add("Load average (1, 5, 15 min) at the start of each run, from `/proc/loadavg`: "
    f"(a) {env['load_a']}; (b) {env['load_b']}; (c) {env['load_c']}; (d) {env['load_d']}.")
add("")
add("| run | goal | result | p50 | p90 | p99 | errors |")
add("|---|---|---|---|---|---|---|")
add(f"| (a) `GET /health/ready`, full load, {env['CONNECTIONS']} connections | ≥ 30,000 req/s | "
    f"**{a_rps:,.0f} req/s** | {ms(a_pct['50'])} | {ms(a_pct['90'])} | {ms(a_pct['99'])} | "
    f"non-2xx {a_non2xx}, socket {a_sock} |")
add(f"| (b) `GET /health/ready`, fixed {int(env['FIXED_RATE']):,} req/s | p99 < 5 ms | "
    f"{b_summary['requestsPerSec']:,.0f} req/s achieved | {ms(b_pct['p50'])} | {ms(b_pct['p90'])} | "
    f"**{ms(b_pct['p99'])}** | codes {json.dumps(b_codes)}, errors {json.dumps(b_errors)} |")
add(f"| (c) `POST /v1/kernels/graph/pagerank/execute` (3 nodes), full load | — | "
    f"**{c_rps:,.0f} req/s** | {ms(c_pct['50'])} | {ms(c_pct['90'])} | {ms(c_pct['99'])} | "
    f"non-2xx {c_non2xx}, socket {c_sock} |")
add("")

d_path = f"{env['TARGET_DIR']}/criterion/service_overhead"
if env["load_d"] != "skipped" and os.path.isdir(d_path):
    def median_us(name):
        estimates = json.load(open(f"{d_path}/{name}/new/estimates.json"))
        return estimates["median"]["point_estimate"] / 1000.0
    k = median_us("kernel_run_cpu")
    j = median_us("kernel_json_and_run")
    live = median_us("http_get_live")
    post = median_us("http_post_pagerank")
    add("(d) Service cost per kernel request, criterion medians, one request at a time "
        "(`host/benches/service_overhead.rs`):")
    add("")
    add("| figure | median |")
    add("|---|---|")
    add(f"| bare kernel `run_cpu` (K) | {k:.2f} µs |")
    add(f"| JSON parse + validate + `run_cpu` + serialize, no HTTP | {j:.2f} µs |")
    add(f"| HTTP round trip `GET /health/live` (L: client, loopback, hyper, routing) | {live:.2f} µs |")
    add(f"| HTTP round trip `POST .../graph/pagerank/execute` (E) | {post:.2f} µs |")
    add(f"| **service cost beyond the HTTP floor, E − L − K** (goal ≤ 50 µs) | **{post - live - k:.2f} µs** |")
    add(f"| whole cost over the bare kernel, E − K (HTTP and client included) | {post - k:.2f} µs |")
    add("")

if os.path.exists(f"{work}/e.txt"):
    add("(e) The service against its floor (`host/examples/floor.rs`: the same axum, tokio and "
        "kernels, no resilience), alternated, median ratios:")
    add("")
    for line in open(f"{work}/e.txt"):
        if line.startswith("(e)"):
            add("- " + line.strip()[4:])
    add("")

add("Commands (the service: `rustkernel serve --config loadbench.toml`, release build, "
    "`RUST_LOG=warn`; config: `[server] address = \"127.0.0.1:PORT\"`, "
    "`[limits] per_client_rate = 0` (rate limit off), `max_concurrency = 100000`):")
add("")
add("```")
for key in ("cmd_a", "cmd_b", "cmd_c"):
    add(env[key])
add("cargo bench -p rustkernel-host --bench service_overhead -- --warm-up-time 2 --measurement-time 8")
add("```")

report = env["REPORT"]
begin, end = "<!-- loadbench:begin -->", "<!-- loadbench:end -->"
text = open(report).read() if os.path.exists(report) else f"# Load benchmark\n\n{begin}\n{end}\n"
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(report, "w").write(head + begin + "\n" + "\n".join(lines) + "\n" + end + tail)
print(f"loadbench: wrote {report}")
EOF
