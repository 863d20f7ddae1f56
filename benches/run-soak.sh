#!/usr/bin/env bash
# Soak bench: 2 gateway replicas (release build) on a real redis-server and
# the mock upstream, under steady mixed traffic (JSON, streams, streams cut by
# the client or by the upstream, clients gone before the answer, upstream 503s
# and stalls, a quota that refuses, rotating and unknown keys) with config
# reloads and key churn through the admin API; every 10 s each replica's RSS,
# open FDs and tokio tasks and Redis's used_memory and DBSIZE are sampled.
# Writes benches/results/soak-<UTC date>.md with an SVG plot per series next
# to it. See benches/README.md, "Soak".
#
# Usage: bash benches/run-soak.sh                 (15 minutes after the build)
#        SOAK_MINUTES=2 SOAK_RESULTS_DIR=/tmp/soak bash benches/run-soak.sh   (a check of the harness)
#
# Environment knobs (all optional):
#   SOAK_MINUTES      minutes of traffic                          (default 15)
#   SOAK_WARMUP_S     warm-up seconds before the verdict's baseline (default 20% of the run)
#   SOAK_SAMPLE_S     seconds between samples                     (default 10)
#   SOAK_REPLICAS     gateway replicas                            (default 2)
#   SOAK_RPS          requests per second, all clients together   (default 200)
#   SOAK_CLIENTS      concurrent clients                          (default 48)
#   SOAK_RELOAD_S     seconds between config reloads              (default 30)
#   SOAK_KEYS_S       seconds between key cycles                  (default 15)
#   SOAK_USERS        distinct x-soak-user values (a route quota counts each) (default 500)
#   SOAK_SEED         seed of the request mix                     (default 24)
#   SOAK_RESULTS_DIR  where soak-<date>.md and its SVGs go        (default benches/results)
#   SOAK_NO_BUILD     1 = reuse the existing release binaries
#
# Exit status: 0 when every replica's RSS and FDs stayed flat (within 10% of
# their level at the end of the warm-up), no replica panicked or stopped;
# 3 otherwise (the report says which); 1 or 2 when the run itself failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/release"
RESULTS_DIR="${SOAK_RESULTS_DIR:-$ROOT/benches/results}"
log() { printf '[run-soak] %s\n' "$*" >&2; }

if [[ "${SOAK_NO_BUILD:-0}" != 1 ]]; then
  log "building release binaries (gateway, soak)"
  cargo build --release -p gateway --bin gateway -p gateway-benches --bin soak >&2
fi
for b in gateway soak; do
  [[ -x "$BIN/$b" ]] || { log "error: missing $BIN/$b"; exit 1; }
done
if ! command -v redis-server >/dev/null && [[ -z "${REDIS_SERVER_BIN:-}" ]]; then
  log "installing redis-server"
  sudo apt-get install -y redis-server >&2 || apt-get install -y redis-server >&2 \
    || { log "error: redis-server is needed"; exit 1; }
fi

args=(--minutes "${SOAK_MINUTES:-15}" --sample-s "${SOAK_SAMPLE_S:-10}"
  --replicas "${SOAK_REPLICAS:-2}" --rps "${SOAK_RPS:-200}" --clients "${SOAK_CLIENTS:-48}"
  --reload-s "${SOAK_RELOAD_S:-30}" --keys-s "${SOAK_KEYS_S:-15}" --users "${SOAK_USERS:-500}"
  --seed "${SOAK_SEED:-24}" --out-dir "$RESULTS_DIR")
[[ -z "${SOAK_WARMUP_S:-}" ]] || args+=(--warmup-s "$SOAK_WARMUP_S")
CPU_MODEL="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
GIT_REV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
DIRTY="$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo ", with uncommitted changes" || true)"
LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)"
log "soak: ${SOAK_MINUTES:-15} minutes; report in $RESULTS_DIR"
set +e
GATEWAY_BIN="$BIN/gateway" "$BIN/soak" "${args[@]}" \
  --info "git $GIT_REV$DIRTY" \
  --info "machine: $(nproc) cores, $CPU_MODEL, $(uname -r); nothing pinned" \
  --info "load average before the run: $LOADAVG (1/5/15 min)" \
  --info "redis-server $(redis-server --version 2>/dev/null | sed -n 's/.* v=\([^ ]*\).*/\1/p')"
rc=$?
set -e
log "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $rc
