#!/usr/bin/env bash
# Builds the CPU container image (scripts/build-image.sh, deploy/Containerfile) and checks it
# without a container runtime (none can run containers on these machines):
#   1. the image's config: user 10001:10001, entrypoint and command, port 8080/tcp, the OCI
#      labels source, revision and version; its name is the one deploy/kubernetes.yaml runs;
#   2. its root file system, mounted (buildah from + mount): exactly the two static binaries,
#      /tmp and the jobs directory; no shell; nothing the user 10001 may write but those two;
#   3. the binary run from that root file system as the pod runs it: in a mount namespace,
#      chroot into the image's files mounted read-only (readOnlyRootFilesystem), as user
#      10001, with /proc, a tmpfs on /tmp, the ConfigMap's config and a token file mounted
#      where the manifest mounts them and a directory for the jobs claim; /health/live, a
#      kernel request with and without a token, a job that checkpoints into the jobs
#      directory, /metrics, then SIGTERM and exit 0. Then again with `[gpu]` on and the CPU
#      backend: the image's rustkernel-worker answers the kernel request;
#   4. the image's size: its files, and its layer as pushed (gzip).
# Needs root or sudo (buildah's store, mount, unshare, chroot) and the Debian packages buildah,
# curl and musl-tools. The release build of the binaries is the long part.
#
# `scripts/image-check.sh --gpu` does the same for the GPU image (not in the test command: it
# downloads Debian's libc6 and libgcc-s1) against deploy/kubernetes-gpu.yaml, with the stub
# libcuda.so.1 of scripts/cuda-stub.sh mounted where the NVIDIA toolkit mounts the driver's:
# the image's CUDA worker loads it and reports "GPU unavailable: no device", and the service
# serves from the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

variant=cpu
case "${1:-}" in
  "") ;;
  --gpu) variant=gpu ;;
  *) echo "usage: $0 [--gpu]" >&2; exit 2 ;;
esac
if [ "$variant" = gpu ]; then
  manifest=deploy/kubernetes-gpu.yaml
  eval "$(./scripts/cuda-stub.sh --env)"
  stub="$CUDA_LIBRARY_PATH/lib64/libcuda.so.1"
else
  manifest=deploy/kubernetes.yaml
fi

for tool in buildah curl unshare chroot readelf python3; do
  command -v "$tool" >/dev/null || { echo "image-check: $tool is missing (apt-get install buildah curl musl-tools)" >&2; exit 1; }
done
sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi

# A private store: vfs works in any file system and needs no fuse; fresh every run.
store="$PWD/target/image/store"
"${sudo[@]}" rm -rf "$store"
buildah=("${sudo[@]}" buildah --storage-driver vfs --root "$store/root" --runroot "$store/run")
work=$(mktemp -d)
container=""
serve=""
cleanup() {
  # A service left running by a check that failed.
  if [ -n "$serve" ]; then "${sudo[@]}" kill -KILL "$serve" 2>/dev/null || true; fi
  if [ -n "$container" ]; then
    "${buildah[@]}" umount "$container" >/dev/null || true
    "${buildah[@]}" rm "$container" >/dev/null || true
  fi
  "${sudo[@]}" rm -rf "$work" "$store"
}
trap cleanup EXIT

if [ "$variant" = gpu ]; then
  BUILDAH="${buildah[*]}" ./scripts/build-image.sh --gpu
  tag=$(./scripts/build-image.sh --tags | sed -n 2p)
else
  BUILDAH="${buildah[*]}" ./scripts/build-image.sh
  tag=$(./scripts/build-image.sh --tags | sed -n 1p)
fi

echo "image-check: the image's config"
"${buildah[@]}" inspect --type image "$tag" >"$work/inspect.json"
cargo metadata --no-deps --format-version 1 --offline >"$work/metadata.json"
python3 - "$work" "$tag" "$manifest" <<'EOF'
import json, re, subprocess, sys, yaml
work, tag, manifest = sys.argv[1], sys.argv[2], sys.argv[3]
image = json.load(open(f"{work}/inspect.json"))["OCIv1"]
config = image["config"]
host = [p for p in json.load(open(f"{work}/metadata.json"))["packages"] if p["name"] == "rustkernel-host"][0]
def expect(what, got, want):
    assert got == want, f"{what}: {got!r}, expected {want!r}"
    print(f"  {what}: {got}")
expect("platform", f'{image["os"]}/{image["architecture"]}', "linux/amd64")
expect("user", config.get("User"), "10001:10001")
expect("entrypoint", config.get("Entrypoint"), ["/usr/local/bin/rustkernel"])
expect("command", config.get("Cmd"), ["serve", "--config", "/etc/rustkernel/rustkernel.toml"])
expect("exposed ports", sorted(config.get("ExposedPorts", {})), ["8080/tcp"])
labels = config.get("Labels", {})
expect("label source", labels.get("org.opencontainers.image.source"), host["repository"])
expect("label version", labels.get("org.opencontainers.image.version"), host["version"])
revision = labels.get("org.opencontainers.image.revision", "")
assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", revision), f"label revision: {revision!r}"
subprocess.run(["git", "cat-file", "-e", revision.removesuffix("-dirty") + "^{commit}"], check=True)
print(f"  label revision: {revision} (a commit of this repository)")
# The name the manifest runs.
documents = [d for d in yaml.safe_load_all(open(manifest)) if d]
deployment = [d for d in documents if d["kind"] == "Deployment"][0]
container = deployment["spec"]["template"]["spec"]["containers"][0]
expect(f"{manifest} runs", container["image"], tag)
expect("the manifest's command", container["command"], config["Entrypoint"])
EOF

echo "image-check: the image's root file system"
container=$("${buildah[@]}" from --pull-never "$tag")
rootfs=$("${buildah[@]}" mount "$container")
"${sudo[@]}" find "$rootfs" -mindepth 1 -printf '%P\t%y\t%#m\t%U:%G\n' | sort >"$work/files.txt"
python3 - "$work/files.txt" "$variant" <<'EOF'
import sys
variant = sys.argv[2]
files = {}
for line in open(sys.argv[1]):
    path, kind, mode, owner = line.rstrip("\n").split("\t")
    files[path] = (kind, int(mode, 8), owner)
want = {
    "usr": ("d", "0:0"), "usr/local": ("d", "0:0"), "usr/local/bin": ("d", "0:0"),
    "usr/local/bin/rustkernel": ("f", "0:0"), "usr/local/bin/rustkernel-worker": ("f", "0:0"),
    "tmp": ("d", "0:0"),
    "var": ("d", "0:0"), "var/lib": ("d", "0:0"), "var/lib/rustkernel": ("d", "0:0"),
    "var/lib/rustkernel/jobs": ("d", "10001:10001"),
}
if variant == "cpu":
    assert sorted(files) == sorted(want), f"files: {sorted(files)}, expected {sorted(want)}"
else:
    # glibc's files besides; still no shell and no program but the two.
    missing = sorted(set(want) - set(files))
    assert not missing, f"missing: {missing}"
    programs = [p for p in files if p.split("/")[-1] in ("sh", "bash", "dash", "busybox", "dpkg", "apt")
                or p.split("/")[0] in ("bin", "sbin") or p.startswith(("usr/bin", "usr/sbin"))]
    assert not programs, f"programs: {programs}"
for path, (kind, mode, owner) in files.items():
    want_kind, want_owner = want.get(path, (kind, "0:0"))
    assert (kind, owner) == (want_kind, want_owner), f"/{path}: {kind} {owner}"
    if path == "tmp":
        assert mode == 0o1777, f"/tmp: mode {mode:o}"
    elif path != "var/lib/rustkernel/jobs" and kind != "l":
        assert mode & 0o022 == 0, f"/{path}: mode {mode:o}, writable by others than root"
    if path.startswith("usr/local/bin/"):
        assert mode == 0o555, f"/{path}: mode {mode:o}"
print(f"  {len(files)} entries: the two binaries (root's, mode 0555), /tmp (1777), "
      "/var/lib/rustkernel/jobs (10001's); no shell; every other file root's, "
      + ("nothing else" if variant == "cpu" else "glibc's"))
EOF
for binary in rustkernel rustkernel-worker; do
  if [ "$variant" = gpu ]; then
    # scripts/build-image.sh checks that each library they need is in the image; here, that
    # they run from it: the loader, glibc and libgcc_s of the image, no host library.
    "${sudo[@]}" chroot "$rootfs" "/usr/local/bin/$binary" --version >/dev/null 2>&1 ||
      [ "$binary" = rustkernel-worker ] # it needs libcuda.so.1, which the toolkit mounts
  elif "${sudo[@]}" readelf --program-headers --dynamic "$rootfs/usr/local/bin/$binary" | grep -Eq 'INTERP|\(NEEDED\)'; then
    echo "image-check: /usr/local/bin/$binary of the image is not static" >&2
    exit 1
  fi
done
if [ "$variant" = gpu ]; then
  echo "  /usr/local/bin/rustkernel runs on the image's glibc: $("${sudo[@]}" chroot "$rootfs" /usr/local/bin/rustkernel --version)"
else
  echo "  both binaries are static (no interpreter, no shared library)"
fi

# What the pod mounts: the ConfigMap's rustkernel.toml (on a free loopback port instead of
# 0.0.0.0:8080), the Secret's token file (mode 0440, group 10001, as the kubelet makes it with
# fsGroup), the jobs claim (a directory of 10001's); and mount points the runtime would create.
token="image-check-token-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mkdir -p "$work/config" "$work/secret" "$work/jobs" "$work/root" \
  "$work/scaffold/proc" "$work/scaffold/tmp" "$work/scaffold/etc/rustkernel" \
  "$work/scaffold/var/run/secrets/rustkernel"
if [ "$variant" = gpu ]; then
  # The stub's mount point, where the NVIDIA toolkit mounts the driver's libcuda.so.1.
  mkdir -p "$work/scaffold/usr/lib/x86_64-linux-gnu"
  touch "$work/scaffold/usr/lib/x86_64-linux-gnu/libcuda.so.1"
fi
printf '%s\n' "$token" >"$work/secret/tokens"
chmod 0440 "$work/secret/tokens"
chmod 0755 "$work"
"${sudo[@]}" chown 0:10001 "$work/secret/tokens"
"${sudo[@]}" chown 10001:10001 "$work/jobs"

# Starts the image's rustkernel serve with the ConfigMap's config plus $1; sets $serve and $base.
start() {
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  python3 - "$port" "$1" "$manifest" >"$work/config/rustkernel.toml" <<'EOF'
import re, sys, yaml
port, extra, manifest = sys.argv[1], sys.argv[2], sys.argv[3]
maps = [d for d in yaml.safe_load_all(open(manifest)) if d and d["kind"] == "ConfigMap"]
text, n = re.subn(r'(?m)^address = ".*"$', f'address = "127.0.0.1:{port}"', maps[0]["data"]["rustkernel.toml"])
assert n == 1, "one address line"
print(text + extra)
EOF
  base="http://127.0.0.1:$port"
  # shellcheck disable=SC2016 # expanded by the inner shell
  "${sudo[@]}" unshare --mount --propagation private -- bash -c '
    set -e
    work=$1 rootfs=$2 root=$1/root
    # The image read-only, under the mount points a runtime makes (an overlay with no upper
    # layer is read-only).
    mount -t overlay overlay -o "lowerdir=$work/scaffold:$rootfs" "$root"
    mount -t proc proc "$root/proc"
    mount -t tmpfs -o size=16m,mode=1777 tmpfs "$root/tmp"
    mount --bind "$work/config" "$root/etc/rustkernel"
    mount -o remount,bind,ro "$root/etc/rustkernel"
    mount --bind "$work/secret" "$root/var/run/secrets/rustkernel"
    mount -o remount,bind,ro "$root/var/run/secrets/rustkernel"
    mount --bind "$work/jobs" "$root/var/lib/rustkernel/jobs"
    if [ -n "$3" ]; then mount --bind -o ro "$3" "$root/usr/lib/x86_64-linux-gnu/libcuda.so.1"; fi
    exec env -i PATH=/usr/local/bin RUST_LOG=info "$(command -v chroot)" --userspec=10001:10001 \
      "$root" /usr/local/bin/rustkernel serve --config /etc/rustkernel/rustkernel.toml
  ' image-check "$work" "$rootfs" "${stub:-}" >"$work/serve.log" 2>&1 &
  serve=$!
  for _ in $(seq 200); do
    curl -fsS "$base/health/ready" >/dev/null 2>&1 && return 0
    kill -0 "$serve" 2>/dev/null || break
    sleep 0.1
  done
  echo "image-check: the image's rustkernel serve never got ready:" >&2
  cat "$work/serve.log" >&2
  exit 1
}

# curl METHOD PATH [BODY] with the token: prints the status, then the body.
call() {
  local body=()
  if [ $# -ge 3 ]; then body=(-H 'content-type: application/json' --data "$3"); fi
  curl -sS -o "$work/body" -w '%{http_code}\n' -X "$1" -H "authorization: Bearer $token" \
    "${body[@]}" "$base$2"
  cat "$work/body"
}

# expect STATUS METHOD PATH [BODY]: fails with the log unless the answer has STATUS; keeps
# the body in $answer.
expect() {
  local want=$1 out status
  shift
  out=$(call "$@")
  status=${out%%$'\n'*}
  answer=${out#*$'\n'}
  if [ "$status" != "$want" ]; then
    echo "image-check: $1 $2 answered $status, expected $want: $answer" >&2
    cat "$work/serve.log" >&2
    exit 1
  fi
  echo "  $1 $2: $status"
}

stop() {
  # The service itself (unshare, bash and chroot exec it), or sudo, which passes SIGTERM on.
  "${sudo[@]}" kill -TERM "$serve"
  local status=0
  wait "$serve" || status=$?
  serve=""
  if [ "$status" -ne 0 ]; then
    echo "image-check: rustkernel serve exited $status after SIGTERM:" >&2
    cat "$work/serve.log" >&2
    exit 1
  fi
  if grep -Eq 'Read-only file system|Permission denied' "$work/serve.log"; then
    echo "image-check: the service tried to write where it may not:" >&2
    cat "$work/serve.log" >&2
    exit 1
  fi
  echo "  SIGTERM: drained and exited 0; nothing written outside /tmp and the jobs directory"
}

cycle='{"num_nodes": 3, "edges": [[0, 1], [1, 2], [2, 0]]}'
echo "image-check: the image's rustkernel serve, $manifest's config, read-only root, user 10001"
start ""
expect 200 GET /health/live
if [ "$variant" = gpu ]; then
  for _ in $(seq 100); do
    expect 200 GET /health >/dev/null
    case "$answer" in *"GPU unavailable: no device"*) break ;; esac
    sleep 0.1
  done
  case "$answer" in
    *"GPU unavailable: no device"*) echo "  the image's CUDA worker loaded the stub libcuda: \"GPU unavailable: no device\"" ;;
    *) echo "image-check: the gpu component: $answer" >&2; cat "$work/serve.log" >&2; exit 1 ;;
  esac
fi
expect 200 POST /v1/kernels/graph/pagerank/execute "$cycle"
python3 -c 'import json, sys
body = json.loads(sys.argv[1])
ranks = body["result"]["page_rank"]["ranks"]
assert body["backend"] == "cpu" and len(ranks) == 3, body
assert all(abs(rank - 1 / 3) < 1e-6 for rank in ranks), ranks' "$answer"
token=wrong-token-of-enough-length expect 401 POST /v1/kernels/graph/pagerank/execute "$cycle"
expect 202 POST /v1/jobs "{\"kernel\": \"graph/pagerank\", \"input\": $cycle}"
job=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["id"])' "$answer")
for _ in $(seq 100); do
  expect 200 GET "/v1/jobs/$job" >/dev/null
  state=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["state"])' "$answer")
  [ "$state" = succeeded ] && break
  sleep 0.1
done
[ "$state" = succeeded ] || { echo "image-check: job $job is $state" >&2; cat "$work/serve.log" >&2; exit 1; }
written=$("${sudo[@]}" find "$work/jobs" -type f -user 10001 | wc -l)
[ "$written" -gt 0 ] || { echo "image-check: the job wrote nothing into the jobs directory" >&2; exit 1; }
echo "  job $job succeeded; $written files of user 10001 in the jobs directory"
expect 200 GET /metrics >/dev/null
stop

if [ "$variant" = cpu ]; then
  echo "image-check: again with [gpu] on, backend cpu: the image's rustkernel-worker"
  start $'\n[gpu]\nenabled = true\nbackend = "cpu"\n'
  for _ in $(seq 100); do
    expect 200 POST /v1/kernels/linalg/matmul/execute '{"n": 2, "a": [1, 2, 3, 4], "b": [5, 6, 7, 8]}' >/dev/null
    backend=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["backend"])' "$answer")
    [ "$backend" = gpu ] && break
    sleep 0.1
  done
  [ "$backend" = gpu ] || { echo "image-check: the worker never answered" >&2; cat "$work/serve.log" >&2; exit 1; }
  python3 -c 'import json, sys
result = json.loads(sys.argv[1])["result"]["mat_mul"]
assert result["c"] == [19, 22, 43, 50], result' "$answer"
  echo "  matmul answered by the worker (backend gpu): [19, 22, 43, 50]"
  stop
fi

echo "image-check: sizes"
files=$("${sudo[@]}" du -sb --apparent-size "$rootfs" | cut -f1)
"${buildah[@]}" push --quiet "$tag" "oci:$work/oci" >/dev/null
layers=$(python3 - "$work/oci" <<'EOF'
import json, sys
oci = sys.argv[1]
index = json.load(open(f"{oci}/index.json"))
digest = index["manifests"][0]["digest"].split(":")[1]
manifest = json.load(open(f"{oci}/blobs/sha256/{digest}"))
print(sum(layer["size"] for layer in manifest["layers"]), manifest["layers"][0]["mediaType"])
EOF
)
python3 -c 'import sys
tag, files, pushed, media = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
print(f"  {tag}: {files / 2**20:.1f} MiB of files, {pushed / 2**20:.1f} MiB pushed ({media})")' \
  "$tag" "$files" "${layers% *}" "${layers#* }"
echo "image-check: ok"
