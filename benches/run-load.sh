#!/usr/bin/env bash
# Load harness: direct -> mock, nginx -> mock, and the gateway -> mock from
# plain to full-featured: plain, + consumer-key auth against a real Redis,
# + a consumer token quota (reserve + settle on every request), + upstream
# health (passive outlier detection + active probes), and the full-featured
# row (all of that, the access log, OTLP traces and logs at sampling ratio 1.0
# to a real collector); non-streaming and streaming; requests/s at 32 and 256
# connections, added latency at 1 connection, CPU per request, and for the
# rows with Redis the round trips, commands and Redis CPU per request from
# Redis's own statistics. See benches/README.md.
#
# Usage: bash benches/run-load.sh
#        smoke test of the harness (about 4 minutes after the build, results
#        kept out of the repository):
#        BENCH_DURATION_S=2 BENCH_WARMUP_S=1 BENCH_WAIT_QUIET_S=0 BENCH_RESULTS_DIR=/tmp/bench-smoke bash benches/run-load.sh
#        health vs quota throughput, alternating rounds (see BENCH_AB_ROUNDS):
#        BENCH_AB_ROUNDS=5 bash benches/run-load.sh
#
# Environment knobs (all optional):
#   BENCH_DURATION_S     measured seconds per throughput run    (default 10)
#   BENCH_LAT_DURATION_S measured seconds per latency run       (default BENCH_DURATION_S)
#   BENCH_WARMUP_S       warm-up seconds before each run        (default 2)
#   BENCH_CONNECTIONS    connections of the throughput runs     (default 32)
#   BENCH_CONNECTIONS_HIGH  connections of the second throughput runs; 0 = none (default 256)
#   BENCH_STREAM_CHUNKS  SSE chunks per streamed mock response  (default 16)
#   BENCH_NGINX          1 = include nginx, 0 = skip it         (default 1)
#   BENCH_NGINX_ACCESS_LOG  buffered | unbuffered | off         (default buffered)
#   BENCH_HYPER          1 = include "hyper alone" (hyper-proxy: hyper's server and
#                        pooled client with nothing between them, the gateway's
#                        stack without the gateway), 0 = skip it  (default 1)
#   BENCH_GATEWAY_ACCESS_LOG  1 = gateway writes its access log (default 1; the
#                        full-featured row always does)
#   BENCH_AUTH           1 = include gateway + auth (Redis), 0 = skip (default 1)
#   BENCH_QUOTAS         1 = include gateway + auth + quota (Redis), 0 = skip (default 1)
#   BENCH_HEALTH         1 = include gateway + auth + quota + health (Redis), 0 = skip (default 1)
#   BENCH_FULL           1 = include the full-featured row (Redis, collector), 0 = skip (default 1)
#   BENCH_OTLP_PROTOCOL  grpc | http: the full-featured row's OTLP export (default grpc)
#   BENCH_RT_SAMPLE      N > 0 = after each row with a quota, a MONITOR sample of N JSON
#                        and N stream requests at 1 connection, a cross-check of the
#                        round trips counted from INFO commandstats (default 0: none)
#   BENCH_AB_ROUNDS      N > 1 = after the rows, N - 1 more rounds of the quota and the
#                        health row's throughput runs, alternating (quota, health, ...;
#                        Redis flushed before each); the report gives the median
#                        requests/s of each over the N rounds (round 1 = the table's
#                        rows) and the ratio of the medians     (default 1)
#   BENCH_MAX_LOAD       the 1-minute load average above which the machine counts as
#                        busy before the runs                   (default 1.5)
#   BENCH_WAIT_QUIET_S   how long to wait for a busy machine to quiet down before the
#                        runs (they start anyway after it; the report gives the load
#                        average either way)                    (default 600)
#   BENCH_RETRY_OTHER_CPU  a run during which processes outside the benchmark used more
#                        than this % of a core is run once more (its first report kept
#                        aside and listed); 0 = never             (default 25)
#   BENCH_RESULTS_DIR    where load-<date>.md/.json go          (default benches/results)
#   BENCH_NO_BUILD       1 = reuse the existing release binaries
#   BENCH_KEEP_WORKDIR   1 = keep the temp dir with configs and logs
#   BENCH_GATEWAY_BIN    the gateway binary measured (default target/release/gateway,
#                        built by the script): e.g. an older build, for a before/after
#   BENCH_LUA_DIR        the lua/ folder of that build (default lua/)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DUR="${BENCH_DURATION_S:-10}"
LAT_DUR="${BENCH_LAT_DURATION_S:-$DUR}"
WARM="${BENCH_WARMUP_S:-2}"
CONNS="${BENCH_CONNECTIONS:-32}"
CONNS_HIGH="${BENCH_CONNECTIONS_HIGH:-256}"
CHUNKS="${BENCH_STREAM_CHUNKS:-16}"
WITH_NGINX="${BENCH_NGINX:-1}"
WITH_HYPER="${BENCH_HYPER:-1}"
NGINX_LOG="${BENCH_NGINX_ACCESS_LOG:-buffered}"
GW_LOG="${BENCH_GATEWAY_ACCESS_LOG:-1}"
WITH_AUTH="${BENCH_AUTH:-1}"
WITH_QUOTAS="${BENCH_QUOTAS:-1}"
WITH_HEALTH="${BENCH_HEALTH:-1}"
WITH_FULL="${BENCH_FULL:-1}"
OTLP_PROTOCOL="${BENCH_OTLP_PROTOCOL:-grpc}"
RT_SAMPLE="${BENCH_RT_SAMPLE:-0}"
AB_ROUNDS="${BENCH_AB_ROUNDS:-1}"
MAX_LOAD="${BENCH_MAX_LOAD:-1.5}"
WAIT_QUIET_S="${BENCH_WAIT_QUIET_S:-600}"
RETRY_OTHER_CPU="${BENCH_RETRY_OTHER_CPU:-25}"
RESULTS_DIR="${BENCH_RESULTS_DIR:-$ROOT/benches/results}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/release"
GATEWAY_BIN="${BENCH_GATEWAY_BIN:-$BIN/gateway}"
# The scripts that binary embeds: their redis.call names tell commands run inside
# a script from round trips.
LUA_DIR="${BENCH_LUA_DIR:-$ROOT/lua}"
# Sent by loadgen on every request; also the seeded consumer key of the
# gateway + auth scenario, where the gateway requires at least 8 characters.
API_KEY="sk-bench"
[[ ${#API_KEY} -ge 8 ]] || { echo "[run-load] error: API_KEY must be at least 8 characters" >&2; exit 1; }

log() { printf '[run-load] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ "$AB_ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_AB_ROUNDS must be a whole number >= 1 (got '$AB_ROUNDS')"
[[ "$CONNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONNECTIONS must be a whole number >= 1 (got '$CONNS')"
[[ "$CONNS_HIGH" =~ ^[0-9]+$ ]] || die "BENCH_CONNECTIONS_HIGH must be a whole number (got '$CONNS_HIGH')"
[[ "$RT_SAMPLE" =~ ^[0-9]+$ ]] || die "BENCH_RT_SAMPLE must be a whole number (got '$RT_SAMPLE')"
[[ "$RETRY_OTHER_CPU" =~ ^[0-9]+$ ]] || die "BENCH_RETRY_OTHER_CPU must be a whole number (% of a core; 0 = never) (got '$RETRY_OTHER_CPU')"
[[ "$WAIT_QUIET_S" =~ ^[0-9]+$ ]] || die "BENCH_WAIT_QUIET_S must be a whole number of seconds (got '$WAIT_QUIET_S')"
[[ "$OTLP_PROTOCOL" == grpc || "$OTLP_PROTOCOL" == http ]] || die "BENCH_OTLP_PROTOCOL must be grpc or http (got '$OTLP_PROTOCOL')"
# The throughput runs' connections: BENCH_CONNECTIONS, then BENCH_CONNECTIONS_HIGH.
LEVELS=("$CONNS")
[[ "$CONNS_HIGH" -eq 0 ]] || LEVELS+=("$CONNS_HIGH")

WORK="$(mktemp -d /tmp/gateway-bench.XXXXXX)"
RAW="$WORK/raw"
mkdir -p "$RAW" "$RESULTS_DIR"
PIDS=()

cleanup() {
  local rc=$?
  set +e
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null
    fi
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [[ "${BENCH_KEEP_WORKDIR:-0}" == 1 || $rc -ne 0 ]]; then
    log "work dir (configs, logs, raw JSON) kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Stops one process started by this script and forgets it.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local keep=()
  for p in "${PIDS[@]}"; do [[ "$p" == "$pid" ]] || keep+=("$p"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}

# ---------------------------------------------------------------- pinning
NPROC="$(nproc)"
if [[ "$NPROC" -ge 2 ]] && command -v taskset >/dev/null; then
  SUT_PIN=(taskset -c 0)   # nginx / gateway (one at a time)
  LOAD_PIN=(taskset -c 1)  # mock upstream, load generator, Redis, collector
  PINNING="system under test (nginx or the gateway, one at a time) on core 0; mock upstream, loadgen, Redis and the OTLP collector on core 1"
else
  SUT_PIN=()
  LOAD_PIN=()
  PINNING="none (nproc=$NPROC or no taskset)"
fi
log "pinning: $PINNING"

# ---------------------------------------------------------------- build
if [[ "${BENCH_NO_BUILD:-0}" != 1 ]]; then
  log "building release binaries (gateway, mock-upstream, loadgen, bench-util, hyper-proxy)"
  cargo build --release -p gateway-benches --bin loadgen --bin bench-util --bin hyper-proxy >&2
  cargo build --release -p gateway-tests --bin mock-upstream >&2
  cargo build --release -p gateway --bin gateway >&2 \
    || log "warning: the gateway did not build; its rows will be n/a"
fi
for b in mock-upstream loadgen bench-util; do
  [[ -x "$BIN/$b" ]] || die "missing $BIN/$b"
done

# ---------------------------------------------------------------- nginx
NGINX=""
if [[ "$WITH_NGINX" == 1 ]]; then
  if command -v nginx >/dev/null; then
    NGINX="$(command -v nginx)"
  elif [[ -x /usr/sbin/nginx ]]; then
    NGINX=/usr/sbin/nginx
  else
    log "nginx not found: apt-get install -y nginx-light"
    if { apt-get install -y nginx-light >&2 || { apt-get update >&2 && apt-get install -y nginx-light >&2; }; } \
      && [[ -x /usr/sbin/nginx ]]; then
      NGINX=/usr/sbin/nginx
    else
      log "warning: could not install nginx-light; nginx rows will be n/a"
    fi
  fi
  # The Debian package starts a system nginx on :80; it plays no part here.
fi

# ---------------------------------------------------------------- redis
# Run as root directly, otherwise through sudo when it is there (as
# scripts/test.sh does).
as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo -n "$@"
  else
    return 1
  fi
}
REDIS_SERVER=""
REDIS_CLI=""
if [[ "$WITH_AUTH" == 1 || "$WITH_QUOTAS" == 1 || "$WITH_HEALTH" == 1 || "$WITH_FULL" == 1 ]]; then
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    log "redis-server/redis-cli not found: apt-get install -y redis-server"
    export DEBIAN_FRONTEND=noninteractive
    { as_root apt-get install -y redis-server >&2 \
      || { as_root apt-get update >&2 && as_root apt-get install -y redis-server >&2; }; } \
      || log "warning: apt-get install -y redis-server failed"
    # The Debian package may start a system redis on :6379; it plays no part here.
  fi
  if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
    REDIS_SERVER="$(command -v redis-server)"
    REDIS_CLI="$(command -v redis-cli)"
  else
    log "warning: no redis-server/redis-cli; the rows with Redis will be n/a"
  fi
fi

# ---------------------------------------------------------------- collector
# The full-featured row's OTLP collector: rotel (a Rust binary on PyPI; the
# one GATEWAY_TEST_ROTEL names, else the one ./scripts/test.sh --setup-only
# puts into .venv), receiving and dropping everything (blackhole exporter).
ROTEL=""
if [[ "$WITH_FULL" == 1 ]]; then
  ROTEL="${GATEWAY_TEST_ROTEL:-}"
  [[ -n "$ROTEL" && -x "$ROTEL" ]] || ROTEL="$(ls "$ROOT"/.venv/lib/python*/site-packages/rotel/rotel-agent 2>/dev/null | head -1 || true)"
  if [[ -z "$ROTEL" ]]; then
    log "no OTLP collector (rotel): ./scripts/test.sh --setup-only"
    "$ROOT/scripts/test.sh" --setup-only >&2 || log "warning: ./scripts/test.sh --setup-only failed"
    ROTEL="$(ls "$ROOT"/.venv/lib/python*/site-packages/rotel/rotel-agent 2>/dev/null | head -1 || true)"
  fi
  [[ -n "$ROTEL" ]] || log "warning: no rotel (set GATEWAY_TEST_ROTEL); the full-featured rows will be n/a"
fi

CLK_TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"

# ---------------------------------------------------------------- helpers
# Processes of the benchmark besides the system under test and loadgen (the
# mock, then Redis and the collector once started): their CPU is not counted
# as the machine's noise ("other CPU").
AUX_PIDS=()

# run_load NAME URL CONNECTIONS DURATION MODE [--cpu-pid PID ...]
run_load() {
  local name=$1 url=$2 conns=$3 dur=$4 mode=$5
  shift 5
  local args=(--url "$url" --connections "$conns" --duration-s "$dur" --warmup-s "$WARM"
    --header "Authorization: Bearer $API_KEY" --clk-tck "$CLK_TCK" --label "$name")
  local p
  for p in "${AUX_PIDS[@]}"; do args+=(--aux-pid "$p"); done
  [[ "$mode" == stream ]] && args+=(--stream)
  "${LOAD_PIN[@]}" "$BIN/loadgen" "${args[@]}" "$@" >"$RAW/$name.json" 2>>"$WORK/loadgen.log" \
    || { log "loadgen failed for $name (see $WORK/loadgen.log)"; tail -3 "$WORK/loadgen.log" >&2; return 1; }
  tail -1 "$WORK/loadgen.log" >&2
}

# attempt NAME COMMAND...: runs COMMAND, which measures run NAME (loadgen's
# report in $RAW/NAME.json). When processes outside the benchmark used more
# than BENCH_RETRY_OTHER_CPU % of a core during it (a build, another
# benchmark), the run was disturbed: its report is kept aside as
# NAME.disturbed.json (the report lists it) and, after 5 s, COMMAND runs once
# more, whatever that second run meets.
attempt() {
  local name=$1 other
  shift
  "$@" || return 0
  [[ "$RETRY_OTHER_CPU" != 0 && -f "$RAW/$name.json" ]] || return 0
  other="$(sed -n 's/.*"foreign_cpu_pct": *\([0-9.]*\).*/\1/p' "$RAW/$name.json" | head -1)"
  [[ -n "$other" ]] || return 0
  if awk -v o="$other" -v m="$RETRY_OTHER_CPU" 'BEGIN { exit !(o > m) }'; then
    log "$name: other CPU $(printf "%.0f" "$other")% of a core > ${RETRY_OTHER_CPU}%: disturbed; running it once more in 5 s"
    mv "$RAW/$name.json" "$RAW/$name.disturbed.json"
    sleep 5
    "$@" || true
  fi
}

# measure TARGET BASE_URL [--cpu-pid PID ...]: both modes, the throughput
# runs (BENCH_CONNECTIONS, BENCH_CONNECTIONS_HIGH), then 1 connection.
measure() {
  local target=$1 base=$2
  shift 2
  local mode c
  for mode in json stream; do
    for c in "${LEVELS[@]}"; do
      attempt "$target-$mode-c$c" run_load "$target-$mode-c$c" "$base/v1/chat/completions" "$c" "$DUR" "$mode" "$@"
    done
    attempt "$target-$mode-c1" run_load "$target-$mode-c1" "$base/v1/chat/completions" 1 "$LAT_DUR" "$mode" "$@"
  done
}

# A few requests of each kind, so that idle RSS is measured after start-up
# and first use, before load.
touch_target() {
  local base=$1
  "${LOAD_PIN[@]}" "$BIN/loadgen" --url "$base/v1/chat/completions" --connections 1 --requests 10 \
    --warmup-s 0 --duration-s 5 --header "Authorization: Bearer $API_KEY" >/dev/null 2>>"$WORK/loadgen.log" || true
  "${LOAD_PIN[@]}" "$BIN/loadgen" --url "$base/v1/chat/completions" --connections 1 --requests 10 \
    --warmup-s 0 --duration-s 5 --stream --header "Authorization: Bearer $API_KEY" >/dev/null 2>>"$WORK/loadgen.log" || true
  sleep 1
}

# Snapshot of the bench Redis's counters (INFO all: server time, cpu, stats,
# commandstats) into FILE.
redis_snapshot() {
  "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" INFO all 2>/dev/null | tr -d '\r' >"$1" || true
}

write_meta() { # TARGET RSS_KIB PIDS...
  local target=$1 rss=$2
  shift 2
  printf '{"rss_kib": %s, "pids": "%s"}\n' "${rss:-null}" "$*" >"$RAW/$target.meta.json"
}

# Other busy processes on the machine skew every number: wait a while for a
# busy machine to quiet down, and say in the results how busy it was.
loadavg1() { cut -d' ' -f1 /proc/loadavg; }
busy() { awk -v l="$(loadavg1)" -v m="$MAX_LOAD" 'BEGIN { exit !(l > m) }'; }
LOADAVG_START="$(cut -d' ' -f1-3 /proc/loadavg)"
WAITED=0
if busy && [[ "$WAIT_QUIET_S" -gt 0 ]]; then
  log "load average $LOADAVG_START > $MAX_LOAD: waiting up to ${WAIT_QUIET_S}s for the machine to quiet down"
  while busy && [[ "$WAITED" -lt "$WAIT_QUIET_S" ]]; do
    sleep 10
    WAITED=$((WAITED + 10))
  done
fi
LOADAVG_BENCH="$(cut -d' ' -f1-3 /proc/loadavg)"
QUIET_NOTE="waited ${WAITED}s for the 1-minute load average to fall to ${MAX_LOAD} or below (it was $LOADAVG_START)"
busy && QUIET_NOTE="$QUIET_NOTE; still above it when the runs started"
log "load average before the runs: $LOADAVG_BENCH ($QUIET_NOTE; anything else busy on the machine skews the results)"

# ---------------------------------------------------------------- mock
log "starting mock-upstream ($CHUNKS stream chunks)"
"${LOAD_PIN[@]}" "$BIN/mock-upstream" --listen 127.0.0.1:0 --stream-chunks "$CHUNKS" \
  >"$WORK/mock.out" 2>"$WORK/mock.err" &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
AUX_PIDS+=("$MOCK_PID")
MOCK_ADDR=""
for _ in $(seq 1 200); do
  MOCK_ADDR="$(sed -n 's/^LISTENING \([0-9.:]*\).*/\1/p' "$WORK/mock.out" | head -1)"
  [[ -n "$MOCK_ADDR" ]] && break
  kill -0 "$MOCK_PID" 2>/dev/null || { cat "$WORK/mock.err" >&2; die "mock-upstream exited"; }
  sleep 0.05
done
[[ -n "$MOCK_ADDR" ]] || die "mock-upstream did not print LISTENING"
log "mock-upstream on $MOCK_ADDR (pid $MOCK_PID)"

# ---------------------------------------------------------------- direct
log "scenario: direct -> mock"
measure direct "http://$MOCK_ADDR" --cpu-pid "$MOCK_PID"

# ---------------------------------------------------------------- nginx
NGINX_VERSION="n/a"
if [[ -n "$NGINX" ]]; then
  NGINX_VERSION="$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
  NGX="$WORK/nginx"
  mkdir -p "$NGX/client_body" "$NGX/proxy"
  NGINX_PORT="$("$BIN/bench-util" free-port)"
  case "$NGINX_LOG" in
    off) NGINX_ACCESS="access_log off;" ;;
    unbuffered) NGINX_ACCESS="access_log $NGX/access.log combined;" ;;
    *) NGINX_ACCESS="access_log $NGX/access.log combined buffer=64k flush=1s;" ;;
  esac
  cat >"$NGX/nginx.conf" <<EOF
# Plain reverse proxy to the mock upstream, upstream keep-alive.
user root;
worker_processes 1;
daemon off;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events { worker_connections 4096; }
http {
  $NGINX_ACCESS
  client_body_temp_path $NGX/client_body;
  proxy_temp_path $NGX/proxy;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  upstream mock {
    server $MOCK_ADDR;
    keepalive 1024;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
  log "scenario: nginx -> mock ($NGINX_VERSION, access log: $NGINX_LOG)"
  "${SUT_PIN[@]}" "$NGINX" -p "$NGX/" -c "$NGX/nginx.conf" >"$NGX/stdout.log" 2>&1 &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  if "$BIN/bench-util" wait-http --url "http://127.0.0.1:$NGINX_PORT/" --any-status --timeout-s 20 --pid "$NGINX_PID"; then
    touch_target "http://127.0.0.1:$NGINX_PORT"
    NGINX_PIDS=("$NGINX_PID" $(pgrep -P "$NGINX_PID" || true))
    NGINX_RSS="$("$BIN/bench-util" rss "${NGINX_PIDS[@]/#/--pid=}" 2>/dev/null || echo null)"
    write_meta nginx "$NGINX_RSS" "${NGINX_PIDS[@]}"
    CPU_ARGS=()
    for p in "${NGINX_PIDS[@]}"; do CPU_ARGS+=(--cpu-pid "$p"); done
    measure nginx "http://127.0.0.1:$NGINX_PORT" "${CPU_ARGS[@]}"
  else
    log "nginx did not start:"; cat "$NGX/error.log" "$NGX/stdout.log" >&2 || true
  fi
  stop_pid "$NGINX_PID"
fi

# ---------------------------------------------------------------- hyper alone
# The floor of the gateway's HTTP stack: hyper's HTTP/1 server and
# hyper-util's pooled client (the gateway's), nothing between them.
if [[ "$WITH_HYPER" == 1 && -x "$BIN/hyper-proxy" ]]; then
  log "scenario: hyper alone -> mock"
  "${SUT_PIN[@]}" "$BIN/hyper-proxy" --listen 127.0.0.1:0 --upstream "$MOCK_ADDR" \
    >"$WORK/hyper.out" 2>"$WORK/hyper.err" &
  HYPER_PID=$!
  PIDS+=("$HYPER_PID")
  HYPER_ADDR=""
  for _ in $(seq 1 200); do
    HYPER_ADDR="$(sed -n 's/^LISTENING \([0-9.:]*\).*/\1/p' "$WORK/hyper.out" | head -1)"
    [[ -n "$HYPER_ADDR" ]] && break
    kill -0 "$HYPER_PID" 2>/dev/null || break
    sleep 0.05
  done
  if [[ -n "$HYPER_ADDR" ]]; then
    touch_target "http://$HYPER_ADDR"
    write_meta hyper "$("$BIN/bench-util" rss --pid "$HYPER_PID" 2>/dev/null || echo null)" "$HYPER_PID"
    measure hyper "http://$HYPER_ADDR" --cpu-pid "$HYPER_PID"
  else
    log "hyper-proxy did not start:"; cat "$WORK/hyper.err" >&2 || true
  fi
  stop_pid "$HYPER_PID"
elif [[ "$WITH_HYPER" == 1 ]]; then
  log "no $BIN/hyper-proxy; the hyper alone rows will be n/a"
fi

# ---------------------------------------------------------------- gateway
log "scenario: gateway -> mock"
GW_PORT="$("$BIN/bench-util" free-port)"
GW_ADMIN_PORT="$("$BIN/bench-util" free-port)"
if [[ "$GW_LOG" == 1 ]]; then GW_ACCESS="true"; else GW_ACCESS="false"; fi
# gateway_config FILE PORT ADMIN_PORT ACCESS_LOG ROUTE_EXTRA TOP_EXTRA [PROVIDER_EXTRA] [TELEMETRY_EXTRA]:
# the gateway's bench config; the rows with Redis add their route and
# top-level lines, the health rows their lines in the provider's entry, the
# full-featured row its OTLP export in the telemetry map (and its access log
# is on whatever BENCH_GATEWAY_ACCESS_LOG says).
gateway_config() {
  local access=$GW_ACCESS
  [[ -z "${8:-}" ]] || access=true
  cat >"$1" <<EOF
server: { listen: "127.0.0.1:$2", admin_listen: "127.0.0.1:$3" }
$6
providers:
  - id: mock
    type: openai-compatible
    base_url: http://$MOCK_ADDR/v1
    api_tokens: ["$API_KEY"]
${7:-}
routes:
  - name: bench
    match: { path_prefix: /v1 }
$5
    upstreams: [ { provider: mock } ]
telemetry: { access_log: { enabled: $access, path: "$4" }${8:-} }
EOF
}
gateway_config "$WORK/gateway.yaml" "$GW_PORT" "$GW_ADMIN_PORT" "$WORK/gateway-access.log" "" ""
GATEWAY_OK=0
GW_PID=""
if [[ -x "$GATEWAY_BIN" ]]; then
  "${SUT_PIN[@]}" "$GATEWAY_BIN" --config "$WORK/gateway.yaml" >"$WORK/gateway.out" 2>"$WORK/gateway.err" &
  GW_PID=$!
  PIDS+=("$GW_PID")
fi
if [[ -n "$GW_PID" ]] && "$BIN/bench-util" wait-http --url "http://127.0.0.1:$GW_ADMIN_PORT/readyz" --timeout-s 30 --pid "$GW_PID"; then
  GATEWAY_OK=1
  touch_target "http://127.0.0.1:$GW_PORT"
  GW_RSS="$("$BIN/bench-util" rss --pid "$GW_PID" 2>/dev/null || echo null)"
  write_meta gateway "$GW_RSS" "$GW_PID"
  log "gateway pid $GW_PID, idle RSS ${GW_RSS} KiB"
  measure gateway "http://127.0.0.1:$GW_PORT" --cpu-pid "$GW_PID"
elif [[ -z "$GW_PID" ]]; then
  log "no gateway binary at $GATEWAY_BIN; gateway rows will be n/a"
else
  log "gateway did not become ready; stderr:"
  tail -20 "$WORK/gateway.err" >&2 || true
fi
[[ -z "$GW_PID" ]] || stop_pid "$GW_PID"

# ---------------------------------------------------------------- rows with Redis
# The plain gateway's config plus consumer-key auth on the route, state in a
# real Redis (started here, pinned with the load side) and one seeded consumer
# whose key is the one loadgen sends. The quota row is the same with a
# consumer token quota that never refuses, so every request reserves and
# settles. The health row is the quota row plus upstream health on the
# provider (passive outlier detection and active probes of GET /v1/models,
# which the mock answers). The full-featured row is the health row plus OTLP
# traces and logs at sampling ratio 1.0 to a real collector (rotel, pinned
# with the load side), its access log on. Around each run of these rows the
# harness snapshots Redis's INFO all and the gateway's /metrics: the report
# counts round trips, commands and Redis CPU per request from them.
AUTH_OK=0
AUTH_CHECK="not run"
QUOTA_OK=0
QUOTA_CHECK="not run"
HEALTH_OK=0
HEALTH_CHECK="not run"
FULL_OK=0
FULL_CHECK="not run"
AB_DONE=0
REDIS_VERSION="n/a"
ROTEL_VERSION="n/a"
COLLECTOR_PID=""
# A limit no run can reach (the consumer's window holds at most a minute of
# reservations), a whole number well below 2^53.
QUOTA_LIMIT=1000000000000
QUOTA_EXTRA=", quotas: [ { name: bench-tpm, by: consumer, strategy: total_tokens, limit: $QUOTA_LIMIT, window: 1m } ]"
# The health rows' lines in the provider's entry: health reads on the request
# path are local mirrors (refreshed every cache_ttl_ms off it), and traffic
# reports only failures, so health should add no Redis round trip per request.
HEALTH_PROVIDER="    passive: { failures: 5, window_s: 30, ejection_s: 30 }
    checks: { active: { http_path: /models, interval_s: 5, timeout_ms: 1000 } }"
FULL_TELEMETRY=""

# The rows' functions (redis_scenario, start_collector, ab_round, ...).
# shellcheck source=benches/run-load-redis.sh
source "$ROOT/benches/run-load-redis.sh"

if [[ "$WITH_AUTH" != 1 && "$WITH_QUOTAS" != 1 && "$WITH_HEALTH" != 1 && "$WITH_FULL" != 1 ]]; then
  log "the rows with Redis skipped (BENCH_AUTH=0, BENCH_QUOTAS=0, BENCH_HEALTH=0, BENCH_FULL=0); they will be n/a"
elif [[ -z "$REDIS_SERVER" ]]; then
  log "the rows with Redis skipped: no redis-server; they will be n/a"
elif [[ ! -x "$GATEWAY_BIN" ]]; then
  log "the rows with Redis skipped: no gateway binary; they will be n/a"
else
  REDIS_VERSION="$("$REDIS_SERVER" --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')"
  REDIS_PORT="$("$BIN/bench-util" free-port)"
  mkdir -p "$WORK/redis"
  log "starting redis-server $REDIS_VERSION on 127.0.0.1:$REDIS_PORT"
  "${LOAD_PIN[@]}" "$REDIS_SERVER" --save "" --appendonly no --port "$REDIS_PORT" --bind 127.0.0.1 \
    --dir "$WORK/redis" --logfile "$WORK/redis.log" &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  REDIS_UP=0
  for _ in $(seq 1 100); do
    if [[ "$("$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" PING 2>/dev/null)" == PONG ]]; then
      REDIS_UP=1
      break
    fi
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.05
  done
  if [[ "$REDIS_UP" != 1 ]]; then
    log "redis-server did not start; the rows with Redis will be n/a"
    tail -20 "$WORK/redis.log" >&2 || true
  else
    AUX_PIDS+=("$REDIS_PID")
    if [[ "$WITH_AUTH" == 1 ]]; then
      redis_scenario gateway-auth "gateway + auth" ""
      AUTH_OK=$SCEN_OK
      AUTH_CHECK=$SCEN_CHECK
    else
      log "gateway + auth skipped (BENCH_AUTH=0); its rows will be n/a"
    fi
    if [[ "$WITH_QUOTAS" == 1 ]]; then
      # A clean Redis: the quota row starts from an empty window.
      "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" FLUSHALL >/dev/null 2>&1 || true
      redis_scenario gateway-quota "gateway + auth + quota" "$QUOTA_EXTRA"
      QUOTA_OK=$SCEN_OK
      QUOTA_CHECK=$SCEN_CHECK
    else
      log "gateway + auth + quota skipped (BENCH_QUOTAS=0); its rows will be n/a"
    fi
    if [[ "$WITH_HEALTH" == 1 ]]; then
      # The quota row's configuration plus health on the provider, on a clean
      # Redis as well.
      "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" FLUSHALL >/dev/null 2>&1 || true
      redis_scenario gateway-health "gateway + auth + quota + health" "$QUOTA_EXTRA" "$HEALTH_PROVIDER"
      HEALTH_OK=$SCEN_OK
      HEALTH_CHECK=$SCEN_CHECK
    else
      log "gateway + auth + quota + health skipped (BENCH_HEALTH=0); its rows will be n/a"
    fi
    if [[ "$WITH_FULL" != 1 ]]; then
      log "the full-featured row skipped (BENCH_FULL=0); its rows will be n/a"
    elif [[ -z "$ROTEL" ]]; then
      FULL_CHECK="no OTLP collector (rotel)"
      log "the full-featured row skipped: no rotel; its rows will be n/a"
    elif start_collector; then
      # The health row's configuration plus the access log and OTLP, on a
      # clean Redis as well.
      "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" FLUSHALL >/dev/null 2>&1 || true
      redis_scenario gateway-full "full-featured" "$QUOTA_EXTRA" "$HEALTH_PROVIDER" "$FULL_TELEMETRY"
      FULL_OK=$SCEN_OK
      FULL_CHECK=$SCEN_CHECK
      stop_pid "$COLLECTOR_PID"
    else
      FULL_CHECK="the OTLP collector did not start"
    fi
    # Rounds 2..N of the quota / health A/B (round 1: the two rows above,
    # which ran one after the other, quota first).
    if [[ "$AB_ROUNDS" -gt 1 ]]; then
      if [[ "$QUOTA_OK" == 1 && "$HEALTH_OK" == 1 ]]; then
        for ((round = 2; round <= AB_ROUNDS; round++)); do
          ab_round "$round" gateway-quota "$QUOTA_EXTRA"
          ab_round "$round" gateway-health "$QUOTA_EXTRA" "$HEALTH_PROVIDER"
        done
        AB_DONE=1
      else
        log "warning: BENCH_AB_ROUNDS=$AB_ROUNDS needs the quota and the health rows (quota ready=$QUOTA_OK, health ready=$HEALTH_OK); no further rounds"
      fi
    fi
  fi
  stop_pid "$REDIS_PID"
fi
stop_pid "$MOCK_PID"

# ---------------------------------------------------------------- report
STAMP="$(date -u +%Y%m%d-%H%M%S)"
MD="$RESULTS_DIR/load-$STAMP.md"
JSON="$RESULTS_DIR/load-$STAMP.json"
CPU_MODEL="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
GIT_REV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
LEVELS_TEXT="$CONNS"
[[ "$CONNS_HIGH" -eq 0 ]] || LEVELS_TEXT="$CONNS and $CONNS_HIGH"
"$BIN/bench-util" report --raw-dir "$RAW" --connections "$CONNS" --connections-high "$CONNS_HIGH" \
  --out-json "$JSON" --lua-dir "$LUA_DIR" \
  --ab-rounds "$( [[ "$AB_DONE" == 1 ]] && echo "$AB_ROUNDS" || echo 1 )" \
  --info "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --info "git=$GIT_REV$( [[ "$GATEWAY_BIN" == "$BIN/gateway" ]] || echo "; gateway binary $GATEWAY_BIN (BENCH_GATEWAY_BIN)" )" \
  --info "machine=$NPROC cores, $CPU_MODEL, $(uname -r)" \
  --info "pinning=$PINNING" \
  --info "load average=$LOADAVG_BENCH before the runs, $(cut -d' ' -f1-3 /proc/loadavg) after (1/5/15 min; the runs themselves add about 2; $QUIET_NOTE)" \
  --info "runs=${WARM}s warm-up, then ${DUR}s at $LEVELS_TEXT connections and ${LAT_DUR}s at 1 connection, per row and mode; a run during which processes outside the benchmark used more than ${RETRY_OTHER_CPU}% of a core ran once more (0: never)" \
  --info "load=loadgen (hyper http1, one keep-alive connection per worker, closed loop, 1-thread runtime); POST /v1/chat/completions, small chat body" \
  --info "mock=mock-upstream, $CHUNKS SSE chunks per stream, no delay" \
  --info "nginx=$NGINX_VERSION, worker_processes 1, upstream keepalive 1024, proxy_buffering off, access log $NGINX_LOG" \
  --info "hyper alone=hyper-proxy (benches/src/bin/hyper-proxy.rs): hyper's HTTP/1 server and hyper-util's pooled client, as the gateway uses them, forwarding every request to the mock with nothing between them (no routing, auth, metering, logs); the floor of the gateway's HTTP stack; streams: each event written as it comes" \
  --info "gateway=access log $( [[ "$GW_LOG" == 1 ]] && echo on || echo off ), ready=$GATEWAY_OK" \
  --info "gateway + auth=the gateway's config plus route auth (consumer key = the Bearer key loadgen sends), state.backend redis (redis-server $REDIS_VERSION, --save \"\" --appendonly no, pinned with the load side), cache_ttl_ms 1000; CONFIG RESETSTAT before each row with Redis, INFO all and /metrics before and after each run; ready=$AUTH_OK; check: $AUTH_CHECK" \
  --info "gateway + auth + quota=gateway + auth plus a consumer token quota (bench-tpm: total_tokens, by consumer, limit $QUOTA_LIMIT, window 1m: never refuses), so every request reserves and settles (hash tag {t:bench}); Redis flushed before the row, the settle queue drained before each after-snapshot$( [[ "$RT_SAMPLE" -gt 0 ]] && echo ", then a MONITOR sample over $RT_SAMPLE JSON + $RT_SAMPLE stream requests at 1 connection" ); ready=$QUOTA_OK; check: $QUOTA_CHECK" \
  --info "gateway + auth + quota + health=gateway + auth + quota plus upstream health on the provider: passive { failures: 5, window_s: 30, ejection_s: 30 } and checks.active { http_path: /models (GET /v1/models on the mock), interval_s: 5, timeout_ms: 1000 }; health reads are local mirrors refreshed every cache_ttl_ms and traffic reports only failures, so no Redis round trip is added per request; Redis flushed before the row; ready=$HEALTH_OK; check: $HEALTH_CHECK" \
  --info "full-featured=gateway + auth + quota + health plus the access log (on whatever BENCH_GATEWAY_ACCESS_LOG says) and telemetry.otlp { protocol: $OTLP_PROTOCOL, traces: true, logs: true, sampling_ratio: 1.0 } to a real collector (rotel $ROTEL_VERSION, blackhole exporter, pinned with the load side): a SERVER and a CLIENT span and a log record per request; Redis flushed before the row; ready=$FULL_OK; check: $FULL_CHECK" \
  --info "health vs quota=$( if [[ "$AB_DONE" == 1 ]]; then echo "$AB_ROUNDS alternating rounds (quota, health, ...; Redis flushed and the gateway started afresh before each; round 1 = the table's rows, rounds 2..$AB_ROUNDS their ${WARM}s + ${DUR}s throughput runs at $CONNS connections only); the target (health >= 0.95x quota requests/s) is judged on the ratio of the medians"; else echo "the table's two rows, one after the other (BENCH_AB_ROUNDS=$AB_ROUNDS); the target (health >= 0.95x quota requests/s) is judged on them"; fi )" \
  --info "added latency=row percentile minus direct percentile at 1 connection (same mode)" \
  --info "SUT CPU=CPU time of the system under test (nginx master+worker / the gateway, every thread; the mock for direct) over the measured window, % of one core; Redis and the collector count with the load side" \
  >"$MD"
cp "$MD" "$RESULTS_DIR/latest.md"
cat "$MD"
log "wrote $MD, $JSON and $RESULTS_DIR/latest.md"
[[ "$GATEWAY_OK" == 1 ]] || exit 2
