#!/usr/bin/env bash
# The project's test command: ./scripts/test.sh
#
# Installs what the tests need (redis-server, prometheus and promtool, Debian's
# chromium and chromium-driver, a .venv with the official `openai` and `anthropic`
# Python packages and the `rotel` OTLP collector), then runs the module-graph
# checker's self-test, rustfmt, clippy, the config schema check, the deploy/ checks
# (scripts/check-deploy.sh) and the whole workspace's tests.
# Idempotent: a second run skips every install step that is already done.
# Works from any cwd. Exits non-zero on the first failure.
#
#   ./scripts/test.sh               setup + fmt + clippy + build + tests
#   ./scripts/test.sh --setup-only  only the install steps (packages, .venv)
set -euo pipefail

SETUP_ONLY=0
for arg in "$@"; do
    case "$arg" in
        --setup-only) SETUP_ONLY=1 ;;
        -h | --help)
            sed -n '2,13p' "$0"
            exit 0
            ;;
        *)
            echo "test.sh: unknown argument: $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

OPENAI_SPEC='openai>=1.50,<3'
# the official Anthropic SDK, as a client of the gateway's /v1/messages
ANTHROPIC_SPEC='anthropic>=0.40,<3'
# a real OTLP collector (a Rust binary shipped on PyPI) for the telemetry tests
ROTEL_SPEC='rotel==0.0.1a15'
VENV="$REPO_ROOT/.venv"

section() {
    printf '\n==== %s ====\n' "$*"
}

die() {
    printf 'test.sh: error: %s\n' "$*" >&2
    exit 1
}

# shellcheck source=scripts/lib.sh
. "$REPO_ROOT/scripts/lib.sh"

# ---------------------------------------------------------------- tools
section "setup: system packages"
if command -v redis-server >/dev/null 2>&1; then
    echo "redis-server: $(command -v redis-server) (present)"
else
    echo "redis-server missing: installing it with apt-get"
    apt_install redis-server || die "could not install redis-server (apt-get install -y redis-server)"
    command -v redis-server >/dev/null 2>&1 || die "redis-server still missing after install"
    echo "redis-server: $(command -v redis-server) (installed)"
fi
# Debian's prometheus and promtool (one package) for tests/tests/prometheus_dashboard.rs
# (which reads $GATEWAY_TEST_PROMETHEUS / $GATEWAY_TEST_PROMTOOL when set)
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    echo "prometheus: $(command -v prometheus) (present)"
else
    echo "prometheus missing: installing it with apt-get"
    apt_install --no-install-recommends prometheus ||
        die "could not install prometheus (apt-get install -y --no-install-recommends prometheus)"
    command -v promtool >/dev/null 2>&1 || die "prometheus/promtool still missing after install"
    echo "prometheus: $(command -v prometheus) (installed)"
fi

# Debian's headless Chromium and its WebDriver for the console's browser test
# (tests/tests/console_browser.rs); GATEWAY_TEST_CHROMIUM and
# GATEWAY_TEST_CHROMEDRIVER name other binaries instead.
browser_missing=()
if [ -z "${GATEWAY_TEST_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
    browser_missing+=(chromium)
fi
if [ -z "${GATEWAY_TEST_CHROMEDRIVER:-}" ] && ! command -v chromedriver >/dev/null 2>&1; then
    browser_missing+=(chromium-driver)
fi
if [ "${#browser_missing[@]}" -eq 0 ]; then
    echo "chromium: ${GATEWAY_TEST_CHROMIUM:-$(command -v chromium)} (present)"
    echo "chromedriver: ${GATEWAY_TEST_CHROMEDRIVER:-$(command -v chromedriver)} (present)"
else
    echo "${browser_missing[*]} missing: installing with apt-get"
    apt_install "${browser_missing[@]}" ||
        die "could not install ${browser_missing[*]} (apt-get install -y ${browser_missing[*]})"
    command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 ||
        die "chromium or chromedriver still missing after installing ${browser_missing[*]}"
    echo "chromium, chromedriver: installed"
fi

section "setup: rust toolchain"
command -v cargo >/dev/null 2>&1 || die "cargo not found on PATH (install a Rust toolchain with rustup)"
missing_components=()
cargo fmt --version >/dev/null 2>&1 || missing_components+=(rustfmt)
cargo clippy --version >/dev/null 2>&1 || missing_components+=(clippy)
if [ "${#missing_components[@]}" -gt 0 ]; then
    command -v rustup >/dev/null 2>&1 || die "missing ${missing_components[*]} and no rustup to add them"
    echo "adding rustup components: ${missing_components[*]}"
    rustup component add "${missing_components[@]}"
fi
cargo --version
cargo fmt --version
cargo clippy --version

# ---------------------------------------------------------------- python venv
section "setup: python venv (.venv with $OPENAI_SPEC)"
find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3 python3.11 python; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 8) else 1)' >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

venv_ok() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1
}

openai_ok() {
    "$VENV/bin/python" - <<'PY' >/dev/null 2>&1
import sys
import openai
major = int(openai.__version__.split(".")[0])
sys.exit(0 if 1 <= major < 3 and tuple(int(x) for x in openai.__version__.split(".")[:2]) >= (1, 50) else 1)
PY
}

if venv_ok; then
    echo ".venv: present ($("$VENV/bin/python" --version 2>&1))"
else
    HOST_PYTHON="$(find_python)" || die "no python3 found on PATH (need Python >= 3.8 with venv)"
    rm -rf "$VENV"
    if ! "$HOST_PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
        # Debian's system python needs the python3-venv package for `-m venv`.
        echo "python -m venv failed; installing python3-venv"
        rm -rf "$VENV"
        apt_install python3-venv || die "could not install python3-venv"
        "$HOST_PYTHON" -m venv "$VENV" || die "could not create $VENV"
    fi
    venv_ok || die "$VENV was created but its python does not run"
    echo ".venv: created with $HOST_PYTHON ($("$VENV/bin/python" --version 2>&1))"
fi

if openai_ok; then
    echo "openai: $("$VENV/bin/python" -c 'import openai; print(openai.__version__)') (present)"
else
    echo "installing $OPENAI_SPEC into .venv"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$OPENAI_SPEC" ||
        die "pip install '$OPENAI_SPEC' failed"
    openai_ok || die "openai package still not importable from $VENV/bin/python"
    echo "openai: $("$VENV/bin/python" -c 'import openai; print(openai.__version__)') (installed)"
fi

anthropic_ok() {
    "$VENV/bin/python" -c 'import anthropic, sys; v = tuple(int(x) for x in anthropic.__version__.split(".")[:2]); sys.exit(0 if (0, 40) <= v < (3, 0) else 1)' >/dev/null 2>&1
}
if anthropic_ok; then
    echo "anthropic: $("$VENV/bin/python" -c 'import anthropic; print(anthropic.__version__)') (present)"
else
    echo "installing $ANTHROPIC_SPEC into .venv"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$ANTHROPIC_SPEC" ||
        die "pip install '$ANTHROPIC_SPEC' failed"
    anthropic_ok || die "anthropic package still not importable from $VENV/bin/python"
    echo "anthropic: $("$VENV/bin/python" -c 'import anthropic; print(anthropic.__version__)') (installed)"
fi

export GATEWAY_TEST_PYTHON="$VENV/bin/python"
echo "GATEWAY_TEST_PYTHON=$GATEWAY_TEST_PYTHON"

rotel_bin() {
    "$VENV/bin/python" -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))' 2>/dev/null
}
if ROTEL="$(rotel_bin)" && [ -x "$ROTEL" ]; then
    echo "rotel: $ROTEL (present)"
else
    echo "installing $ROTEL_SPEC into .venv"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$ROTEL_SPEC" ||
        die "pip install '$ROTEL_SPEC' failed"
    ROTEL="$(rotel_bin)" && [ -x "$ROTEL" ] || die "rotel-agent not found in $VENV after install"
    echo "rotel: $ROTEL (installed)"
fi
export GATEWAY_TEST_ROTEL="$ROTEL"

if [ "$SETUP_ONLY" -eq 1 ]; then
    section "setup done (--setup-only)"
    exit 0
fi

# ---------------------------------------------------------------- checks
# A one-off build gains nothing from incremental compilation, whose caches
# would add ~2 GB to target/ (CI runs on a clean clone with a small disk).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# scripts/module_cycles.py finds import cycles between gateway/src's top-level
# modules; its self-test runs it on a planted cycle and on a DAG.
section "module graph checker (scripts/module_cycles.py --self-test)"
"$VENV/bin/python" "$REPO_ROOT/scripts/module_cycles.py" --self-test

# gateway/src's top-level modules form layers (README, "Inside gateway/src"):
# an import cycle between them fails the suite.
section "module graph of gateway/src (scripts/module_cycles.py)"
"$VENV/bin/python" "$REPO_ROOT/scripts/module_cycles.py" "$REPO_ROOT/gateway/src"

section "cargo fmt --all -- --check"
cargo fmt --all -- --check

section "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# deploy/gateway.schema.json is what shared/src/config produces, and every
# config shipped in deploy/ validates against it (also part of cargo test).
section "config schema (cargo test -p shared --test config_schema)"
cargo test -p shared --test config_schema

# Integration tests (tests/) start the gateway binary as a process: build it first.
section "cargo build --workspace --bins"
cargo build --workspace --bins

# deploy/: container, compose, Kubernetes manifests, Helm chart (installs its
# own tools into .venv; uses the gateway just built for --check-config)
section "deploy/ checks (scripts/check-deploy.sh)"
"$REPO_ROOT/scripts/check-deploy.sh"

section "cargo test --workspace --no-fail-fast"
cargo test --workspace --no-fail-fast

section "all checks passed"
