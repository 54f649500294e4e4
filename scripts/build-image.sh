#!/usr/bin/env bash
# Builds the container image of `rustkernel serve` (README "Container images").
#
#   scripts/build-image.sh           the CPU image (deploy/Containerfile): static musl binaries
#                                    of `rustkernel` and `rustkernel-worker` FROM scratch
#   scripts/build-image.sh --gpu     the GPU image (deploy/Containerfile.gpu): glibc binaries
#                                    with the CUDA worker on the files of Debian's libc6 and
#                                    libgcc-s1; needs libcuda to link (a CUDA install, or
#                                    `eval "$(scripts/cuda-stub.sh --env)"`) and apt-get
#   scripts/build-image.sh --tags    prints the two image names (CPU, then GPU) and exits
#
# Both are tagged $REGISTRY/rustkernel:<version> (GPU: <version>-gpu), the names
# deploy/kubernetes.yaml and deploy/kubernetes-gpu.yaml use; <version> is the workspace's
# version in Cargo.toml. The binaries come from one release build (target/image/), the build
# context is staged in target/image/context-{cpu,gpu}/, and nothing is pulled: no base image.
#
# Environment:
#   REGISTRY       where the images are named to be pushed (default ghcr.io/rustkernel)
#   BUILDER        buildah or docker (default: buildah when installed, else docker)
#   BUILDAH        the buildah command and its global flags (default buildah); e.g.
#                  "sudo buildah --storage-driver vfs --root DIR --runroot DIR", as
#                  scripts/image-check.sh builds in a private store
set -euo pipefail
cd "$(dirname "$0")/.."

variant=cpu
case "${1:-}" in
  "") ;;
  --gpu) variant=gpu ;;
  --tags) variant=tags ;;
  *) echo "usage: $0 [--gpu | --tags]" >&2; exit 2 ;;
esac

REGISTRY=${REGISTRY:-ghcr.io/rustkernel}
metadata=$(cargo metadata --no-deps --format-version 1 --offline)
field() {
  python3 -c 'import json, sys
packages = [p for p in json.load(sys.stdin)["packages"] if p["name"] == "rustkernel-host"]
print(packages[0][sys.argv[1]])' "$1" <<<"$metadata"
}
version=$(field version)
source_url=$(field repository)
cpu_tag="$REGISTRY/rustkernel:$version"
gpu_tag="$REGISTRY/rustkernel:$version-gpu"
if [ "$variant" = tags ]; then
  printf '%s\n%s\n' "$cpu_tag" "$gpu_tag"
  exit 0
fi

# The commit, marked -dirty when tracked files differ from it; the commit's time as the
# creation time: the same binaries built at one commit make the same image (the same ID).
revision=$(git rev-parse HEAD)
git diff --quiet HEAD -- || revision="$revision-dirty"
epoch=$(git log -1 --format=%ct)
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

target_dir=target/image
context="$target_dir/context-$variant"
export CARGO_PROFILE_RELEASE_STRIP=symbols # no symbol tables in the image (panics still name the place)

# Owner root, read and execute for everyone: the user 10001 cannot change them.
stage_rootfs() {
  local bin_dir=$1
  # var/lib/rustkernel is here so that the COPY --chown of jobs/ owns only the jobs directory
  # (a COPY gives the directories it creates its owner).
  mkdir -p "$context/rootfs/usr/local/bin" "$context/rootfs/tmp" "$context/rootfs/var/lib/rustkernel" \
    "$context/jobs"
  install -m 0555 "$bin_dir/rustkernel" "$bin_dir/rustkernel-worker" "$context/rootfs/usr/local/bin/"
  chmod 1777 "$context/rootfs/tmp"
}

rm -rf "$context"
if [ "$variant" = cpu ]; then
  triple=x86_64-unknown-linux-musl
  rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"
  # mimalloc's C source (the static binaries' allocator, host/Cargo.toml) is built with it.
  if ! command -v musl-gcc >/dev/null; then
    echo "build-image: musl-gcc is missing: apt-get install musl-tools" >&2
    exit 1
  fi
  echo "build-image: release build of rustkernel and rustkernel-worker for $triple"
  build_started=$SECONDS
  cargo build --release --locked -p rustkernel-host --bins --target "$triple" --target-dir "$target_dir"
  echo "build-image: release build took $((SECONDS - build_started)) s"
  bin_dir="$target_dir/$triple/release"
  for binary in rustkernel rustkernel-worker; do
    # Static: no program interpreter, no shared library (the image has none to give).
    if readelf --program-headers --dynamic "$bin_dir/$binary" | grep -Eq 'INTERP|\(NEEDED\)'; then
      echo "build-image: $bin_dir/$binary is not static" >&2
      exit 1
    fi
  done
  stage_rootfs "$bin_dir"
  containerfile=deploy/Containerfile
  tag=$cpu_tag
  build_args=()
else
  triple=x86_64-unknown-linux-gnu
  if [ -z "${CUDA_LIBRARY_PATH:-}${CUDA_PATH:-}" ] && ! ldconfig -p | grep -q 'libcuda\.so '; then
    echo "build-image: no libcuda to link the CUDA worker against: install CUDA, or run" >&2
    echo "  eval \"\$(scripts/cuda-stub.sh --env)\"  (a stub; the node's driver replaces it)" >&2
    exit 1
  fi
  echo "build-image: release build of rustkernel and rustkernel-worker for $triple, feature cuda"
  build_started=$SECONDS
  cargo build --release --locked -p rustkernel-host --features cuda --bins --target "$triple" \
    --target-dir "$target_dir"
  echo "build-image: release build took $((SECONDS - build_started)) s"
  bin_dir="$target_dir/$triple/release"
  stage_rootfs "$bin_dir"

  # glibc from the build machine's own Debian or Ubuntu release: the release the binaries were
  # linked against. The packages' files only (dpkg-deb -x): no maintainer scripts, no dpkg
  # database, no shell.
  # gcc-N-base holds libgcc-s1's copyright file.
  debs="$context/debs"
  mkdir -p "$debs"
  chmod 0777 "$debs" # apt-get downloads as its own user (_apt) where it can
  (cd "$debs" && apt-get download libc6 libgcc-s1)
  gcc_base=$(dpkg-deb -f "$debs"/libgcc-s1_*.deb Depends | grep -o 'gcc-[0-9]*-base' | head -1)
  (cd "$debs" && apt-get download "$gcc_base")
  for deb in "$debs"/*.deb; do
    dpkg-deb -x "$deb" "$context/rootfs"
  done
  glibc=$(dpkg-deb -f "$debs"/libc6_*.deb Version)
  rm -rf "$debs"
  # What a Rust program never loads: iconv's character sets (8 MB), glibc's debugging and
  # profiling libraries; and documentation but the copyright files (the licences travel with
  # the libraries).
  rm -rf "$context/rootfs/usr/lib/x86_64-linux-gnu/gconv" "$context/rootfs/usr/share/lintian" \
    "$context/rootfs/usr/share/locale"
  find "$context/rootfs" \( -name 'libc_malloc_debug.so*' -o -name 'libmemusage.so' \
    -o -name 'libpcprofile.so' -o -name 'libthread_db.so*' -o -name 'libBrokenLocale.so*' \) -delete
  find "$context/rootfs/usr/share/doc" -type f ! -name copyright -delete
  cp /etc/debian_version "$context/rootfs/etc/debian_version"
  mkdir -p "$context/rootfs/usr/lib/x86_64-linux-gnu" # where the toolkit mounts the driver's

  # Every library the binaries need is in the root file system, but libcuda.so.1 (the driver's).
  for binary in rustkernel rustkernel-worker; do
    readelf --dynamic "$bin_dir/$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | while read -r lib; do
      [ "$lib" = libcuda.so.1 ] && continue
      if [ -z "$(find "$context/rootfs" -name "$lib" -print -quit)" ]; then
        echo "build-image: $binary needs $lib, which the image does not have" >&2
        exit 1
      fi
    done
    # And the newest glibc symbol version it uses is one this glibc has.
    needed=$(objdump -T "$bin_dir/$binary" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
    have=${glibc%%-*}
    if [ "$(printf '%s\n%s\n' "$needed" "$have" | sort -V | tail -1)" != "$have" ]; then
      echo "build-image: $binary needs glibc $needed, the image has $have" >&2
      exit 1
    fi
  done
  containerfile=deploy/Containerfile.gpu
  tag=$gpu_tag
  build_args=(--build-arg "GLIBC=$glibc")
fi

build_args+=(
  --build-arg "VERSION=$version" --build-arg "REVISION=$revision"
  --build-arg "SOURCE=$source_url" --build-arg "CREATED=$created"
)
builder=${BUILDER:-}
if [ -z "$builder" ]; then
  if [ -n "${BUILDAH:-}" ] || command -v buildah >/dev/null; then builder=buildah; else builder=docker; fi
fi
echo "build-image: $builder builds $tag from $containerfile"
case "$builder" in
  buildah)
    read -ra buildah <<<"${BUILDAH:-buildah}"
    "${buildah[@]}" bud --isolation chroot --timestamp "$epoch" \
      "${build_args[@]}" -f "$containerfile" -t "$tag" "$context"
    ;;
  docker)
    docker build "${build_args[@]}" -f "$containerfile" -t "$tag" "$context"
    ;;
  *) echo "build-image: BUILDER must be buildah or docker, not $builder" >&2; exit 2 ;;
esac
echo "build-image: built $tag"
