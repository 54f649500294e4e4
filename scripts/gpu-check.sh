#!/usr/bin/env bash
# The GPU check, one script (issue 25). Runs on a machine with an NVIDIA GPU from binaries built
# elsewhere (no cargo needed there; python3 with numpy is):
#
#   scripts/gpu-check.sh [--bin-dir DIR] [--budget SECONDS] [--cpu-rehearsal] [--small] [--runs N]
#
#   --bin-dir DIR     rustkernel, rustkernel-worker (built with --features cuda) and optionally
#                     worker_roundtrip (in DIR or DIR/examples); default target/release
#   --budget S        total time budget in seconds (default 300), checked between steps
#   --cpu-rehearsal   the worker's CPU backend instead of CUDA: the whole flow without a GPU
#   --small           smaller inputs (10k-node/100k-edge PageRank, matmul 512 instead of 1M
#                     edges and 4096): for slow CPUs and rehearsals
#   --runs N          runs per case and service, median reported (default 3; long runs once)
#
# Steps: 1 driver, GPU and PTX ISA; 2 a GPU service ([gpu] enabled) and a CPU-only service on
# loopback, GPU component healthy; 3 PageRank and matmul binary bodies to both, results compared
# (1e-6 relative) and timed; 4 the gpu-oob and gpu-hang faults: the faulty request still
# answered, the worker replaced, the next request on the GPU; 5 worker_roundtrip. A summary table
# at the end; exit 1 if a step failed. The services are killed on exit.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

BIN_DIR=target/release
BUDGET=300
REHEARSAL=0
SMALL=0
RUNS=3
usage() { sed -n '2,20s/^# \{0,1\}//p' "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) BIN_DIR="${2:?--bin-dir needs a directory}"; shift 2 ;;
    --budget) BUDGET="${2:?--budget needs seconds}"; shift 2 ;;
    --cpu-rehearsal) REHEARSAL=1; shift ;;
    --small) SMALL=1; shift ;;
    --runs) RUNS="${2:?--runs needs a number}"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "gpu-check: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$BUDGET$RUNS" in *[!0-9]*) echo "gpu-check: --budget and --runs take whole numbers" >&2; exit 2 ;; esac

BIN_DIR="$(cd "$BIN_DIR" 2>/dev/null && pwd)" || { echo "gpu-check: no directory $BIN_DIR" >&2; exit 2; }
SERVICE="$BIN_DIR/rustkernel"
WORKER="$BIN_DIR/rustkernel-worker"
ROUNDTRIP=""
for candidate in "$BIN_DIR/worker_roundtrip" "$BIN_DIR/examples/worker_roundtrip"; do
  if [ -x "$candidate" ]; then ROUNDTRIP="$candidate"; break; fi
done
HELPER="$PWD/scripts/gpu-check.py"
for needed in "$SERVICE" "$WORKER"; do
  [ -x "$needed" ] || { echo "gpu-check: $needed is missing or not executable" >&2; exit 2; }
done
command -v python3 >/dev/null || { echo "gpu-check: python3 is needed" >&2; exit 2; }
python3 -c 'import numpy' 2>/dev/null || { echo "gpu-check: python3 needs numpy" >&2; exit 2; }

BACKEND=cuda
[ "$REHEARSAL" = 1 ] && BACKEND=cpu
START=$(date +%s)
END=$((START + BUDGET))
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")"
RESULTS="$WORK/results"
: >"$RESULTS"
GPU_PID=""
CPU_PID=""
GPU_URL=""
CPU_URL=""

stop_pid() { # pid: SIGTERM, then SIGKILL after 5 s
  local pid="$1"
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
# shellcheck disable=SC2329 # called by the EXIT trap
cleanup() {
  stop_pid "$GPU_PID"
  stop_pid "$CPU_PID"
  if [ "${KEEP_WORK:-0}" = 1 ]; then
    echo "gpu-check: logs and configs kept in $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

row() { printf '%s|%s|%s\n' "$1" "$2" "$3" >>"$RESULTS"; }
left() { echo $((END - $(date +%s))); }
# step_time MAX: the seconds a step may take (MAX or what the budget has left), 0 when spent.
step_time() {
  local rest
  rest=$(left)
  if [ "$rest" -lt 5 ]; then echo 0; elif [ "$rest" -lt "$1" ]; then echo "$rest"; else echo "$1"; fi
}
section() { printf '\n== %s (%ss of budget left)\n' "$1" "$(left)"; }

# write_config FILE PORT GPU(true|false) [FAULT_KIND]
write_config() {
  local file="$1" port="$2" gpu="$3" fault="${4:-}"
  {
    echo '[server]'
    echo "address = \"127.0.0.1:$port\""
    echo 'body_limit_bytes = 536870912'
    echo '[limits]'
    echo 'per_client_rate = 0'
    echo '[resilience.health_check]'
    echo 'interval = "200ms"'
    echo 'timeout = "150ms"'
    echo '[resilience.timeout]'
    echo 'default_timeout = "300s"'
    echo 'max_timeout = "600s"'
    echo '[resilience.retry]'
    echo 'max_attempts = 1'
    echo '[gpu]'
    echo "enabled = $gpu"
    if [ "$gpu" = true ]; then
      echo "worker = \"$WORKER\""
      echo "backend = \"$BACKEND\""
      [ -n "$fault" ] && echo "fault = { kind = \"$fault\" }"
    fi
  } >"$file"
}

# start_service NAME GPU [FAULT]: sets STARTED_PID and STARTED_URL.
start_service() {
  local name="$1" gpu="$2" fault="${3:-}" port
  port=$(python3 "$HELPER" port) || return 1
  write_config "$WORK/$name.toml" "$port" "$gpu" "$fault"
  "$SERVICE" serve --config "$WORK/$name.toml" >"$WORK/$name.log" 2>&1 &
  STARTED_PID=$!
  STARTED_URL="http://127.0.0.1:$port"
  echo "  $name: pid $STARTED_PID on $STARTED_URL (gpu $gpu${fault:+, fault $fault}), log $WORK/$name.log"
}

# wait_gpu NAME SECONDS: the GPU service ready with its gpu component healthy.
wait_gpu() {
  timeout "$(($2 + 5))" python3 "$HELPER" wait-ready "$GPU_URL" --gpu --timeout "$2" --pid "$GPU_PID" \
    --results "$RESULTS" --name "$1"
}

show_log() { # a failed service's last lines
  [ -f "$WORK/$1.log" ] && { echo "  --- last lines of $1.log"; tail -n 15 "$WORK/$1.log" | sed 's/^/  | /'; }
}

# --- 1. driver, GPU, PTX ----------------------------------------------------------------------
section "1. driver, GPU, PTX ISA"
if command -v nvidia-smi >/dev/null; then
  if gpu_line=$(timeout 15 nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1); then
    echo "  GPU, driver: $gpu_line"
    row "driver and GPU" PASS "$(echo "$gpu_line" | head -n 1)"
  else
    echo "  nvidia-smi failed: $gpu_line"
    row "driver and GPU" "$([ "$REHEARSAL" = 1 ] && echo SKIP || echo FAIL)" "nvidia-smi failed: $(echo "$gpu_line" | head -n 1)"
  fi
else
  echo "  nvidia-smi not found"
  row "driver and GPU" "$([ "$REHEARSAL" = 1 ] && echo SKIP || echo FAIL)" "nvidia-smi not found"
fi
ptx_isa="unknown"
if compgen -G "host/cuda/ptx/*.ptx" >/dev/null; then
  ptx_isa=$(grep -h -m1 '^[[:space:]]*\.version' host/cuda/ptx/*.ptx | awk '{print $2}' | sort -u | paste -sd, -)
  ptx_target=$(grep -h -m1 '^[[:space:]]*\.target' host/cuda/ptx/*.ptx | awk '{print $2}' | sort -u | paste -sd, -)
  echo "  PTX ISA of the embedded PTX (host/cuda/ptx): ${ptx_isa:-unknown}, target ${ptx_target:-unknown}"
else
  echo "  PTX ISA: unknown (host/cuda/ptx/*.ptx not found)"
fi
echo "  backend: $BACKEND$([ "$REHEARSAL" = 1 ] && echo ' (CPU rehearsal: no GPU used)'); binaries: $BIN_DIR"

# --- 2. services --------------------------------------------------------------------------------
section "2. services"
t=$(step_time 60)
if [ "$t" = 0 ]; then
  row "services start" SKIP "budget spent"
else
  start_service gpu-service true && { GPU_PID=$STARTED_PID; GPU_URL=$STARTED_URL; }
  start_service cpu-service false && { CPU_PID=$STARTED_PID; CPU_URL=$STARTED_URL; }
  if [ -z "$GPU_PID" ] || [ -z "$CPU_PID" ]; then
    row "services start" FAIL "could not start the services"
  else
    wait_gpu "gpu service: gpu component" "$t" || show_log gpu-service
    if timeout "$(($(step_time 30) + 5))" python3 "$HELPER" wait-ready "$CPU_URL" --pid "$CPU_PID" --timeout "$(step_time 30)"; then
      row "cpu-only service" PASS "ready"
    else
      row "cpu-only service" FAIL "not ready"
      show_log cpu-service
    fi
  fi
fi
services_up() { grep -q '^gpu service: gpu component|PASS|' "$RESULTS" && grep -q '^cpu-only service|PASS|' "$RESULTS"; }

# --- 3. results and times -----------------------------------------------------------------------
section "3. GPU vs CPU: results and times"
t=$(step_time 100000)
if ! services_up; then
  row "compare" SKIP "services not up"
elif [ "$t" -lt 20 ]; then
  row "compare" SKIP "budget spent"
else
  # Leave time for the fault checks and the round trip (about 60 s) unless the budget is tiny.
  reserve=60
  [ "$t" -lt 120 ] && reserve=$((t / 3))
  bench_end=$(($(date +%s) + t - reserve))
  small_flag=()
  [ "$SMALL" = 1 ] && small_flag=(--small)
  timeout "$((t - reserve + 30))" python3 "$HELPER" bench --gpu "$GPU_URL" --cpu "$CPU_URL" \
    --deadline "$bench_end" --runs "$RUNS" "${small_flag[@]}" --results "$RESULTS"
  rc=$?
  if [ "$rc" = 124 ]; then row "compare" FAIL "timed out"; fi
  if [ "$rc" != 0 ] && ! grep -q '^compare.*|FAIL|' "$RESULTS"; then row "compare" FAIL "helper exit $rc"; fi
fi
stop_pid "$CPU_PID"
CPU_PID=""

# --- 4. GPU faults ------------------------------------------------------------------------------
for kind in gpu-oob gpu-hang; do
  section "4. fault $kind"
  t=$(step_time 75)
  if [ -z "$GPU_PID" ]; then
    row "fault $kind" SKIP "no GPU service"
    continue
  elif [ "$t" -lt 15 ]; then
    row "fault $kind" SKIP "budget spent"
    continue
  fi
  stop_pid "$GPU_PID"
  GPU_PID=""
  start_service "gpu-$kind" true "$kind" && { GPU_PID=$STARTED_PID; GPU_URL=$STARTED_URL; }
  if ! wait_gpu "fault $kind: start" "$((t / 2))"; then
    show_log "gpu-$kind"
    continue
  fi
  sed -i "/^fault $kind: start|PASS|/d" "$RESULTS"
  t=$(step_time 75)
  timeout "$((t + 10))" python3 "$HELPER" fault --url "$GPU_URL" --kind "$kind" \
    --deadline "$(($(date +%s) + t))" --hang-timeout-ms 2000 --results "$RESULTS"
  rc=$?
  if [ "$rc" != 0 ]; then
    grep -q "^fault $kind|" "$RESULTS" || row "fault $kind" FAIL "helper exit $rc"
    show_log "gpu-$kind"
  fi
done
stop_pid "$GPU_PID"
GPU_PID=""

# --- 5. worker round trip ---------------------------------------------------------------------
section "5. worker round trip"
t=$(step_time 120)
if [ -z "$ROUNDTRIP" ]; then
  row "worker_roundtrip" SKIP "not in $BIN_DIR or $BIN_DIR/examples"
elif [ "$t" -lt 10 ]; then
  row "worker_roundtrip" SKIP "budget spent"
else
  # It looks for the worker at ../rustkernel-worker from its own directory (CPU backend: the
  # frames and pipes, not the GPU).
  mkdir -p "$WORK/rt/examples"
  cp "$ROUNDTRIP" "$WORK/rt/examples/worker_roundtrip"
  cp "$WORKER" "$WORK/rt/rustkernel-worker"
  out=$(timeout "$t" "$WORK/rt/examples/worker_roundtrip" 2>&1)
  rc=$?
  if [ "$rc" = 0 ]; then
    printf '%s\n' "$out" | sed 's/^/  /' # an indent on each line
    row "worker_roundtrip" PASS "$(echo "$out" | grep -E '^ *(executor|pipe):' | sed -E 's/ +/ /g; s/^ //' | paste -sd ';' -)"
  else
    echo "$out" | tail -n 15 | sed 's/^/  /'
    why=$(printf '%s\n' "$out" | grep -m2 -E 'panicked|error|assert' | sed -E 's/^ +//' | paste -sd ' ' -)
    row "worker_roundtrip" FAIL "exit status $rc (timeout ${t}s) ${why}"
  fi
fi

# --- summary ------------------------------------------------------------------------------------
printf '\n== summary (%s backend, %ss of %ss budget used)\n' "$BACKEND" "$(($(date +%s) - START))" "$BUDGET"
failed=0
while IFS='|' read -r name status figures; do
  printf '  %-4s  %-34s %s\n' "$status" "$name" "$figures"
  [ "$status" = FAIL ] && failed=1
done <"$RESULTS"
if [ "$failed" = 1 ]; then
  KEEP_WORK=1
  echo "gpu-check: FAILED"
  exit 1
fi
echo "gpu-check: all steps passed or skipped"
exit 0
