#!/usr/bin/env bash
# Checks deploy/kubernetes.yaml offline:
#   1. kubernetes-validate (pinned; installed with pip when missing) validates every document
#      strictly against the bundled Kubernetes schemas (no cluster, no network);
#   2. the ConfigMap's rustkernel.toml passes the real binary's `rustkernel config check`;
#   3. host/tests/deploy_manifest.rs starts the service with that config and GETs every probe
#      path and the scrape path, and checks ports, the Secret mount and the grace period.
set -euo pipefail
cd "$(dirname "$0")/.."

MANIFEST=deploy/kubernetes.yaml
KUBERNETES_VALIDATE_VERSION=1.37.0   # its schemas go up to Kubernetes 1.37
KUBERNETES_VERSION=1.30.0            # the oldest we support: preStop `sleep` is beta (on) from 1.30

installed=$(python3 -m pip show kubernetes-validate 2>/dev/null | sed -n 's/^Version: //p' || true)
if [ "$installed" != "$KUBERNETES_VALIDATE_VERSION" ]; then
  python3 -m pip install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

echo "k8s-check: schemas of Kubernetes $KUBERNETES_VERSION and $KUBERNETES_VALIDATE_VERSION (strict)"
for version in "$KUBERNETES_VERSION" "$KUBERNETES_VALIDATE_VERSION"; do
  python3 -m kubernetes_validate --strict --kubernetes-version "$version" "$MANIFEST"
done

# The ConfigMap's config, checked by the real binary. The token file it names is the Secret's
# mount point in the pod (/var/run/secrets/rustkernel/tokens), which does not exist here: the
# copy names a temporary token file instead, of mode 0440 as the kubelet makes the Secret's
# file in a pod with an fsGroup (so allow_readable_token_file is exercised too). Every other
# line is checked as written; the Rust test checks that the real path is inside the Secret.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$MANIFEST" "$work" <<'EOF'
import re, sys, yaml
manifest, work = sys.argv[1], sys.argv[2]
maps = [d for d in yaml.safe_load_all(open(manifest)) if d and d.get("kind") == "ConfigMap"]
assert len(maps) == 1, f"expected one ConfigMap, found {len(maps)}"
text = maps[0]["data"]["rustkernel.toml"]
tokens = f"{work}/tokens"
text, n = re.subn(r'(?m)^token_file = ".*"$', f'token_file = "{tokens}"', text)
assert n == 1, f"expected one token_file line in rustkernel.toml, found {n}"
open(f"{work}/rustkernel.toml", "w").write(text)
open(tokens, "w").write("k8s-check-temporary-token-0123456789\n")
EOF
chmod 0440 "$work/tokens"
cargo run --quiet -p rustkernel-host --bin rustkernel -- config check "$work/rustkernel.toml"

cargo test --quiet -p rustkernel-host --test deploy_manifest
