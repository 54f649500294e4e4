#!/usr/bin/env bash
# Checks deploy/kubernetes.yaml and its GPU variant deploy/kubernetes-gpu.yaml offline:
#   1. kubernetes-validate (pinned; installed with pip when missing) validates every document
#      strictly against the bundled Kubernetes schemas (no cluster, no network);
#   2. each ConfigMap's rustkernel.toml passes the real binary's `rustkernel config check`;
#   3. each Deployment's image is the name scripts/build-image.sh tags (--tags);
#   4. host/tests/deploy_manifest.rs starts the service with each config and GETs every probe
#      path and the scrape path, and checks ports, the Secret mount, the grace period, the
#      jobs claim, selectors and the GPU variant's request, runtime class and node selector.
set -euo pipefail
cd "$(dirname "$0")/.."

MANIFESTS=(deploy/kubernetes.yaml deploy/kubernetes-gpu.yaml)
KUBERNETES_VALIDATE_VERSION=1.37.0   # its schemas go up to Kubernetes 1.37
KUBERNETES_VERSION=1.30.0            # the oldest we support: preStop `sleep` is beta (on) from 1.30

installed=$(python3 -m pip show kubernetes-validate 2>/dev/null | sed -n 's/^Version: //p' || true)
if [ "$installed" != "$KUBERNETES_VALIDATE_VERSION" ]; then
  python3 -m pip install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

echo "k8s-check: schemas of Kubernetes $KUBERNETES_VERSION and $KUBERNETES_VALIDATE_VERSION (strict)"
for version in "$KUBERNETES_VERSION" "$KUBERNETES_VALIDATE_VERSION"; do
  python3 -m kubernetes_validate --strict --kubernetes-version "$version" "${MANIFESTS[@]}"
done

# Each ConfigMap's config, checked by the real binary. The token file it names is the Secret's
# mount point in the pod (/var/run/secrets/rustkernel/tokens), which does not exist here: the
# copy names a temporary token file instead, of mode 0440 as the kubelet makes the Secret's
# file in a pod with an fsGroup (so allow_readable_token_file is exercised too). Every other
# line is checked as written; the Rust test checks that the real path is inside the Secret.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Also writes images.txt: each Deployment's image, one a line, in the order of MANIFESTS.
python3 - "$work" "${MANIFESTS[@]}" <<'EOF'
import re, sys, yaml
work, manifests = sys.argv[1], sys.argv[2:]
tokens = f"{work}/tokens"
images = []
for index, manifest in enumerate(manifests):
    documents = [d for d in yaml.safe_load_all(open(manifest)) if d]
    maps = [d for d in documents if d.get("kind") == "ConfigMap"]
    assert len(maps) == 1, f"{manifest}: expected one ConfigMap, found {len(maps)}"
    text = maps[0]["data"]["rustkernel.toml"]
    text, n = re.subn(r'(?m)^token_file = ".*"$', f'token_file = "{tokens}"', text)
    assert n == 1, f"{manifest}: expected one token_file line in rustkernel.toml, found {n}"
    open(f"{work}/rustkernel-{index}.toml", "w").write(text)
    deployments = [d for d in documents if d.get("kind") == "Deployment"]
    assert len(deployments) == 1, f"{manifest}: expected one Deployment, found {len(deployments)}"
    images += [c["image"] for c in deployments[0]["spec"]["template"]["spec"]["containers"]]
open(tokens, "w").write("k8s-check-temporary-token-0123456789\n")
open(f"{work}/images.txt", "w").write("".join(f"{image}\n" for image in images))
EOF
chmod 0440 "$work/tokens"
for index in "${!MANIFESTS[@]}"; do
  echo "k8s-check: rustkernel config check of ${MANIFESTS[$index]}'s ConfigMap"
  cargo run --quiet -p rustkernel-host --bin rustkernel -- config check "$work/rustkernel-$index.toml"
done

# The images the Deployments run are the ones scripts/build-image.sh builds (CPU, then GPU).
if ! diff -u <(./scripts/build-image.sh --tags) "$work/images.txt"; then
  echo "k8s-check: the manifests' images (+) are not what scripts/build-image.sh tags (-)" >&2
  exit 1
fi
echo "k8s-check: images $(paste -sd' ' "$work/images.txt") are what scripts/build-image.sh tags"

cargo test --quiet -p rustkernel-host --test deploy_manifest
