#!/usr/bin/env bash
# Load harness: direct -> mock, nginx -> mock, gateway -> mock, gateway with
# consumer-key auth against a real Redis -> mock, the same with two
# consumer quotas (reserve + settle on every request) -> mock, and the same
# with upstream health (passive outlier detection + active probes) -> mock;
# non-streaming and streaming; requests/s at 32 connections, added latency at
# 1 connection and Redis commands per request. See benches/README.md.
#
# Usage: bash benches/run-load.sh
#        smoke test of the harness (about 3 minutes after the build, results
#        kept out of the repository):
#        BENCH_DURATION_S=2 BENCH_WARMUP_S=1 BENCH_RESULTS_DIR=/tmp/bench-smoke bash benches/run-load.sh
#        health vs quotas throughput, alternating rounds (see BENCH_AB_ROUNDS):
#        BENCH_AB_ROUNDS=5 bash benches/run-load.sh
#
# Environment knobs (all optional):
#   BENCH_DURATION_S     measured seconds per throughput run    (default 10)
#   BENCH_LAT_DURATION_S measured seconds per latency run       (default BENCH_DURATION_S)
#   BENCH_WARMUP_S       warm-up seconds before each run        (default 2)
#   BENCH_CONNECTIONS    connections of the throughput runs     (default 32)
#   BENCH_STREAM_CHUNKS  SSE chunks per streamed mock response  (default 16)
#   BENCH_NGINX          1 = include nginx, 0 = skip it         (default 1)
#   BENCH_NGINX_ACCESS_LOG  buffered | unbuffered | off         (default buffered)
#   BENCH_GATEWAY_ACCESS_LOG  1 = gateway writes its access log (default 1)
#   BENCH_AUTH           1 = include gateway + auth (Redis), 0 = skip (default 1)
#   BENCH_QUOTAS         1 = include gateway + auth + quotas (Redis), 0 = skip (default 1)
#   BENCH_HEALTH         1 = include gateway + auth + quotas + health (Redis), 0 = skip (default 1)
#   BENCH_RT_SAMPLE      requests per mode of the quotas / health rows' MONITOR sample (default 500)
#   BENCH_AB_ROUNDS      N > 1 = after the rows, N - 1 more rounds of the quotas and the
#                        health row's throughput runs, alternating (quotas, health, ...;
#                        Redis flushed before each); the report gives the median
#                        requests/s of each over the N rounds (round 1 = the table's
#                        rows) and the ratio of the medians     (default 1)
#   BENCH_RESULTS_DIR    where load-<date>.md/.json go          (default benches/results)
#   BENCH_NO_BUILD       1 = reuse the existing release binaries
#   BENCH_KEEP_WORKDIR   1 = keep the temp dir with configs and logs
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DUR="${BENCH_DURATION_S:-10}"
LAT_DUR="${BENCH_LAT_DURATION_S:-$DUR}"
WARM="${BENCH_WARMUP_S:-2}"
CONNS="${BENCH_CONNECTIONS:-32}"
CHUNKS="${BENCH_STREAM_CHUNKS:-16}"
WITH_NGINX="${BENCH_NGINX:-1}"
NGINX_LOG="${BENCH_NGINX_ACCESS_LOG:-buffered}"
GW_LOG="${BENCH_GATEWAY_ACCESS_LOG:-1}"
WITH_AUTH="${BENCH_AUTH:-1}"
WITH_QUOTAS="${BENCH_QUOTAS:-1}"
WITH_HEALTH="${BENCH_HEALTH:-1}"
RT_SAMPLE="${BENCH_RT_SAMPLE:-500}"
AB_ROUNDS="${BENCH_AB_ROUNDS:-1}"
RESULTS_DIR="${BENCH_RESULTS_DIR:-$ROOT/benches/results}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/release"
# Sent by loadgen on every request; also the seeded consumer key of the
# gateway + auth scenario, where the gateway requires at least 8 characters.
API_KEY="sk-bench"
[[ ${#API_KEY} -ge 8 ]] || { echo "[run-load] error: API_KEY must be at least 8 characters" >&2; exit 1; }

log() { printf '[run-load] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ "$AB_ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_AB_ROUNDS must be a whole number >= 1 (got '$AB_ROUNDS')"

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
  LOAD_PIN=(taskset -c 1)  # mock upstream + load generator
  PINNING="system under test on core 0; mock upstream and loadgen on core 1"
else
  SUT_PIN=()
  LOAD_PIN=()
  PINNING="none (nproc=$NPROC or no taskset)"
fi
log "pinning: $PINNING"

# ---------------------------------------------------------------- build
if [[ "${BENCH_NO_BUILD:-0}" != 1 ]]; then
  log "building release binaries (gateway, mock-upstream, loadgen, bench-util)"
  cargo build --release -p gateway-benches --bin loadgen --bin bench-util >&2
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
if [[ "$WITH_AUTH" == 1 || "$WITH_QUOTAS" == 1 || "$WITH_HEALTH" == 1 ]]; then
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
    log "warning: no redis-server/redis-cli; gateway + auth (+ quotas, + health) rows will be n/a"
  fi
fi

CLK_TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"

# ---------------------------------------------------------------- helpers
# run_load NAME URL CONNECTIONS DURATION MODE [--cpu-pid PID ...]
run_load() {
  local name=$1 url=$2 conns=$3 dur=$4 mode=$5
  shift 5
  local args=(--url "$url" --connections "$conns" --duration-s "$dur" --warmup-s "$WARM"
    --header "Authorization: Bearer $API_KEY" --clk-tck "$CLK_TCK" --label "$name" --aux-pid "$MOCK_PID")
  [[ "$mode" == stream ]] && args+=(--stream)
  "${LOAD_PIN[@]}" "$BIN/loadgen" "${args[@]}" "$@" >"$RAW/$name.json" 2>>"$WORK/loadgen.log" \
    || { log "loadgen failed for $name (see $WORK/loadgen.log)"; tail -3 "$WORK/loadgen.log" >&2; return 1; }
  tail -1 "$WORK/loadgen.log" >&2
}

# measure TARGET BASE_URL [--cpu-pid PID ...]: both modes, C and 1 connection.
measure() {
  local target=$1 base=$2
  shift 2
  local mode
  for mode in json stream; do
    run_load "$target-$mode-c$CONNS" "$base/v1/chat/completions" "$CONNS" "$DUR" "$mode" "$@" || true
    run_load "$target-$mode-c1" "$base/v1/chat/completions" 1 "$LAT_DUR" "$mode" "$@" || true
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

# Snapshot of the bench Redis's counters (INFO all: stats and commandstats)
# into FILE; prints total_commands_processed, which does not yet count this
# INFO itself (the next snapshot does).
redis_snapshot() {
  "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" INFO all 2>/dev/null | tr -d '\r' >"$1" || true
  sed -n 's/^total_commands_processed:\([0-9]*\).*/\1/p' "$1"
}

write_meta() { # TARGET RSS_KIB PIDS...
  local target=$1 rss=$2
  shift 2
  printf '{"rss_kib": %s, "pids": "%s"}\n' "${rss:-null}" "$*" >"$RAW/$target.meta.json"
}

# Other busy processes on the machine skew every number: say so in the results.
LOADAVG_BENCH="$(cut -d' ' -f1-3 /proc/loadavg)"
log "load average before the runs: $LOADAVG_BENCH (anything else busy on the machine skews the results)"

# ---------------------------------------------------------------- mock
log "starting mock-upstream ($CHUNKS stream chunks)"
"${LOAD_PIN[@]}" "$BIN/mock-upstream" --listen 127.0.0.1:0 --stream-chunks "$CHUNKS" \
  >"$WORK/mock.out" 2>"$WORK/mock.err" &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
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
    keepalive 64;
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

# ---------------------------------------------------------------- gateway
log "scenario: gateway -> mock"
GW_PORT="$("$BIN/bench-util" free-port)"
GW_ADMIN_PORT="$("$BIN/bench-util" free-port)"
if [[ "$GW_LOG" == 1 ]]; then GW_ACCESS="true"; else GW_ACCESS="false"; fi
# gateway_config FILE PORT ADMIN_PORT ACCESS_LOG ROUTE_EXTRA TOP_EXTRA [PROVIDER_EXTRA]:
# the gateway's bench config; the auth scenario adds its route and top-level
# lines, the health row its lines in the provider's entry.
gateway_config() {
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
telemetry: { access_log: { enabled: $GW_ACCESS, path: "$4" } }
EOF
}
gateway_config "$WORK/gateway.yaml" "$GW_PORT" "$GW_ADMIN_PORT" "$WORK/gateway-access.log" "" ""
GATEWAY_OK=0
GW_PID=""
if [[ -x "$BIN/gateway" ]]; then
  "${SUT_PIN[@]}" "$BIN/gateway" --config "$WORK/gateway.yaml" >"$WORK/gateway.out" 2>"$WORK/gateway.err" &
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
  log "no gateway binary at $BIN/gateway; gateway rows will be n/a"
else
  log "gateway did not become ready; stderr:"
  tail -20 "$WORK/gateway.err" >&2 || true
fi
[[ -z "$GW_PID" ]] || stop_pid "$GW_PID"

# ---------------------------------------------------------------- gateway + auth (+ quotas, + health)
# The plain gateway's config plus consumer-key auth on the route, state in a
# real Redis (started here, pinned with the load side) and one seeded consumer
# whose key is the one loadgen sends. The quotas row is the same with two
# consumer quotas that never refuse, so every request reserves and settles.
# The health row is the quotas row plus upstream health on the provider
# (passive outlier detection and active probes of GET /v1/models, which the
# mock answers). Redis commands sent by the gateway during each row's measured
# runs are counted from INFO (stats and commandstats), reset with CONFIG
# RESETSTAT before the row.
AUTH_OK=0
AUTH_CHECK="not run"
QUOTA_OK=0
QUOTA_CHECK="not run"
HEALTH_OK=0
HEALTH_CHECK="not run"
AB_DONE=0
REDIS_VERSION="n/a"
# Limits no run can reach (the consumer's windows hold at most a minute of
# reservations), whole numbers well below 2^53.
QUOTA_LIMIT=1000000000000
QUOTA_EXTRA=", quotas: [ { name: bench-tpm, by: consumer, strategy: total_tokens, limit: $QUOTA_LIMIT, window: 1m }, { name: bench-rpm, by: consumer, strategy: requests, limit: $QUOTA_LIMIT, window: 1m } ]"
# The health row's lines in the provider's entry: health reads on the request
# path are local mirrors (refreshed every cache_ttl_ms off it), and traffic
# reports only failures, so health should add no Redis round trip per request.
HEALTH_PROVIDER="    passive: { failures: 5, window_s: 30, ejection_s: 30 }
    checks: { active: { http_path: /models, interval_s: 5, timeout_ms: 1000 } }"

# metric NAME FILE: a counter or gauge of the gateway's /metrics text
# (NAME may carry labels: 'gateway_upstream_healthy{provider="mock"}').
metric() { sed -n "s/^$1 \([0-9][0-9]*\)\$/\1/p" "$2" | head -1; }

# json_escape TEXT: TEXT as the inside of a JSON string (backslashes, quotes).
json_escape() {
  local s=${1//\\/\\\\}
  printf '%s' "${s//\"/\\\"}"
}

# wait_settled ADMIN_PORT FILE LABEL: settlements are sent off the request
# path; waits until the gateway's settle queue is empty (then a little more
# for those already taken off it) and leaves its last /metrics in FILE.
wait_settled() {
  local q=""
  for _ in $(seq 1 100); do
    "$BIN/bench-util" get --url "http://127.0.0.1:$1/metrics" >"$2" 2>/dev/null || true
    q="$(metric gateway_quota_settle_queue "$2")"
    [[ "$q" == 0 ]] && break
    sleep 0.1
  done
  [[ "$q" == 0 ]] || log "warning: $3: quota settle queue not empty after 10 s ($q)"
  sleep 0.5
  "$BIN/bench-util" get --url "http://127.0.0.1:$1/metrics" >"$2" 2>/dev/null || true
}

# monitor_sample TARGET BASE ADMIN_PORT LABEL: INFO counts the commands the
# Lua scripts run inside Redis as well, so round trips are counted from
# MONITOR (it marks those as "[0 lua]"), over RT_SAMPLE JSON and RT_SAMPLE
# stream requests at 1 connection after the measured runs; MONITOR slows
# Redis, so never during them. Each mode gets a 1 s window (loadgen waits for
# its end), short, so that time-based commands (the state monitor's checks)
# weigh little against the requests. Sets RT_REQUESTS (0 when it could not run).
monitor_sample() {
  local target=$1 base=$2 admin=$3 label=$4 mon ok=0 mode out n
  RT_REQUESTS=0
  "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" MONITOR >"$RAW/$target.monitor.txt" 2>/dev/null &
  mon=$!
  PIDS+=("$mon")
  for _ in $(seq 1 40); do
    if [[ "$(head -c 2 "$RAW/$target.monitor.txt" 2>/dev/null)" == OK ]]; then
      ok=1
      break
    fi
    sleep 0.05
  done
  if [[ "$ok" == 1 ]]; then
    for mode in json stream; do
      local args=(--url "$base/v1/chat/completions" --connections 1 --requests "$RT_SAMPLE"
        --warmup-s 0 --duration-s 1 --header "Authorization: Bearer $API_KEY")
      [[ "$mode" == stream ]] && args+=(--stream)
      out="$("${LOAD_PIN[@]}" "$BIN/loadgen" "${args[@]}" 2>>"$WORK/loadgen.log" || true)"
      for f in requests errors; do
        n="$(printf '%s' "$out" | sed -n "s/.*\"$f\": *\([0-9][0-9]*\).*/\1/p" | head -1)"
        RT_REQUESTS=$((RT_REQUESTS + ${n:-0}))
      done
    done
    wait_settled "$admin" "$RAW/$target.metrics-sample.txt" "$label"
  else
    log "warning: $label: redis-cli MONITOR did not start; no round-trip sample"
  fi
  stop_pid "$mon"
  log "$label: MONITOR sample over $RT_REQUESTS requests: $(grep -c '^[0-9.]* \[[0-9]* [0-9]' "$RAW/$target.monitor.txt" || true) client commands, $(grep -c '^[0-9.]* \[[0-9]* lua\]' "$RAW/$target.monitor.txt" || true) inside scripts"
}

# start_redis_gateway NAME CONSUMER_EXTRA [PROVIDER_EXTRA]: writes
# $WORK/NAME.yaml, the plain gateway's config plus auth on the bench Redis
# (CONSUMER_EXTRA is appended to the seeded consumer's entry, PROVIDER_EXTRA
# goes into the provider's), and starts that gateway. Sets RG_PID, RG_PORT and
# RG_ADMIN; returns 1 (the gateway stopped) when it does not become ready.
start_redis_gateway() {
  local name=$1 extra=$2 pextra=${3:-}
  RG_PORT="$("$BIN/bench-util" free-port)"
  RG_ADMIN="$("$BIN/bench-util" free-port)"
  gateway_config "$WORK/$name.yaml" "$RG_PORT" "$RG_ADMIN" "$WORK/$name-access.log" \
    "    auth: { enabled: true }" \
    "state: { backend: redis, redis: { url: \"redis://127.0.0.1:$REDIS_PORT/0\" }, cache_ttl_ms: 1000 }
tenants: [ { id: bench, consumers: [ { name: load, keys: [\"$API_KEY\"]$extra } ] } ]" \
    "$pextra"
  "${SUT_PIN[@]}" "$BIN/gateway" --config "$WORK/$name.yaml" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  RG_PID=$!
  PIDS+=("$RG_PID")
  if ! "$BIN/bench-util" wait-http --url "http://127.0.0.1:$RG_ADMIN/readyz" --timeout-s 30 --pid "$RG_PID"; then
    log "$name did not become ready; stderr:"
    tail -20 "$WORK/$name.err" >&2 || true
    stop_pid "$RG_PID"
    return 1
  fi
}

# redis_scenario TARGET LABEL CONSUMER_EXTRA [PROVIDER_EXTRA]: starts the
# gateway with auth on the bench Redis (start_redis_gateway), checks that an
# unknown key gets 401, resets Redis's stats, measures, waits for the quota
# settle queue to drain, snapshots INFO and the gateway's quota counters (and,
# with PROVIDER_EXTRA, checks that health probes ran and the provider is
# healthy), takes the MONITOR sample (with CONSUMER_EXTRA), writes
# $RAW/TARGET.meta.json. Sets SCEN_OK (0/1) and SCEN_CHECK.
redis_scenario() {
  local target=$1 label=$2 extra=$3 pextra=${4:-}
  SCEN_OK=0
  SCEN_CHECK="not run"
  log "scenario: $label -> mock (redis pid $REDIS_PID)"
  local port admin pid base
  start_redis_gateway "$target" "$extra" "$pextra" || return 0
  port=$RG_PORT
  admin=$RG_ADMIN
  pid=$RG_PID
  SCEN_OK=1
  base="http://127.0.0.1:$port"
  touch_target "$base"
  # Auth must really be on: a key nobody holds is refused with 401.
  local bad
  bad="$("${LOAD_PIN[@]}" "$BIN/loadgen" --url "$base/v1/chat/completions" --connections 1 \
    --requests 1 --warmup-s 0 --duration-s 5 --header "Authorization: Bearer sk-bench-unknown-key" \
    2>>"$WORK/loadgen.log" || true)"
  if [[ "$bad" == *'"first_error": "status 401"'* || "$bad" == *'"first_error":"status 401"'* ]]; then
    SCEN_CHECK="unknown key refused with 401"
  else
    SCEN_CHECK="WARNING: an unknown key was not refused with 401"
    log "warning: $label did not refuse an unknown key with 401: $bad"
  fi
  local rss
  rss="$("$BIN/bench-util" rss --pid "$pid" 2>/dev/null || echo null)"
  log "$label pid $pid, idle RSS ${rss} KiB; $SCEN_CHECK"
  "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" CONFIG RESETSTAT >/dev/null 2>&1 \
    || log "warning: CONFIG RESETSTAT failed; counting by difference only"
  "$BIN/bench-util" get --url "http://127.0.0.1:$admin/metrics" >"$RAW/$target.metrics-before.txt" 2>/dev/null || true
  local cmds_before cmds_after t_before t_after
  cmds_before="$(redis_snapshot "$RAW/$target.redis-before.txt")"
  t_before="$(date +%s.%N)"
  measure "$target" "$base" --cpu-pid "$pid" --aux-pid "$REDIS_PID"
  # Every admitted request's settle must be in the counts.
  wait_settled "$admin" "$RAW/$target.metrics-after.txt" "$label"
  cmds_after="$(redis_snapshot "$RAW/$target.redis-after.txt")"
  t_after="$(date +%s.%N)"
  RT_REQUESTS=0
  [[ -z "$extra" ]] || monitor_sample "$target" "$base" "$admin" "$label"
  # The first INFO counts itself once it has run: subtract it. bench-util
  # reads the two snapshots for the per-command breakdown.
  local cmds="null" window admitted="null" limited="null" a0 a1 l0 l1
  if [[ -n "$cmds_before" && -n "$cmds_after" ]]; then
    cmds=$((cmds_after - cmds_before - 1))
  fi
  window="$(awk -v a="$t_before" -v b="$t_after" 'BEGIN { printf "%.3f", b - a }')"
  a0="$(metric gateway_quota_admitted_total "$RAW/$target.metrics-before.txt")"
  a1="$(metric gateway_quota_admitted_total "$RAW/$target.metrics-after.txt")"
  l0="$(metric gateway_quota_limited_total "$RAW/$target.metrics-before.txt")"
  l1="$(metric gateway_quota_limited_total "$RAW/$target.metrics-after.txt")"
  [[ -n "$a0" && -n "$a1" ]] && admitted=$((a1 - a0))
  [[ -n "$l0" && -n "$l1" ]] && limited=$((l1 - l0))
  if [[ -n "$extra" ]]; then
    # The quotas must really be on and never refuse.
    if [[ "$admitted" != null && "$admitted" -gt 0 && "$limited" == 0 ]]; then
      SCEN_CHECK="$SCEN_CHECK; $admitted requests admitted by the quotas, 0 limited"
    else
      SCEN_CHECK="$SCEN_CHECK; WARNING: quotas admitted $admitted, limited $limited"
      log "warning: $label: quotas admitted $admitted, limited $limited"
    fi
  fi
  local probes="" probes_failed="" healthy=""
  if [[ -n "$pextra" ]]; then
    # Health must really be on: probes ran (the first one at start, then one
    # per interval) and the provider is not ejected, as /metrics says right
    # after the measured runs.
    local after="$RAW/$target.metrics-after.txt" healthy_metric='gateway_upstream_healthy{provider="mock"}'
    probes="$(metric gateway_health_probes_total "$after")"
    probes_failed="$(metric gateway_health_probe_failures_total "$after")"
    healthy="$(metric "$healthy_metric" "$after")"
    if [[ -n "$probes" && "$probes" -gt 0 && "$healthy" == 1 ]]; then
      SCEN_CHECK="$SCEN_CHECK; gateway_health_probes_total $probes (> 0; ${probes_failed:-?} failed), $healthy_metric 1"
    else
      SCEN_CHECK="$SCEN_CHECK; WARNING: gateway_health_probes_total ${probes:-missing}, $healthy_metric ${healthy:-missing}"
      log "warning: $label: gateway_health_probes_total ${probes:-missing}, $healthy_metric ${healthy:-missing}"
    fi
  fi
  log "redis commands during the $label runs: $cmds in ${window}s (quota admitted $admitted, limited $limited)"
  printf '{"rss_kib": %s, "pids": "%s", "redis_pid": %s, "redis_version": "%s", "redis_commands": %s, "redis_window_s": %s, "cache_ttl_ms": 1000, "quota_admitted": %s, "quota_limited": %s, "rt_sample_requests": %s, "health_probes": %s, "health_probe_failures": %s, "upstream_healthy": %s, "check": "%s"}\n' \
    "${rss:-null}" "$pid" "$REDIS_PID" "$REDIS_VERSION" "$cmds" "$window" "$admitted" "$limited" "$RT_REQUESTS" \
    "${probes:-null}" "${probes_failed:-null}" "${healthy:-null}" "$(json_escape "$SCEN_CHECK")" \
    >"$RAW/$target.meta.json"
  stop_pid "$pid"
}

# ab_round ROUND TARGET CONSUMER_EXTRA [PROVIDER_EXTRA]: one more round of a
# row's throughput runs for BENCH_AB_ROUNDS: Redis flushed, the row's gateway
# started afresh, its JSON and stream runs at BENCH_CONNECTIONS into
# $RAW/abROUND.TARGET-<mode>-c<N>.json, settle queue drained, gateway stopped.
ab_round() {
  local round=$1 target=$2 name="ab$1.$2" mode base
  "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" FLUSHALL >/dev/null 2>&1 || true
  log "A/B round $round of $AB_ROUNDS: $target (throughput runs only)"
  start_redis_gateway "$name" "$3" "${4:-}" || return 0
  base="http://127.0.0.1:$RG_PORT"
  touch_target "$base"
  for mode in json stream; do
    run_load "$name-$mode-c$CONNS" "$base/v1/chat/completions" "$CONNS" "$DUR" "$mode" \
      --cpu-pid "$RG_PID" --aux-pid "$REDIS_PID" || true
  done
  wait_settled "$RG_ADMIN" "$RAW/$name.metrics-after.txt" "$name"
  stop_pid "$RG_PID"
}

if [[ "$WITH_AUTH" != 1 && "$WITH_QUOTAS" != 1 && "$WITH_HEALTH" != 1 ]]; then
  log "gateway + auth (+ quotas, + health) skipped (BENCH_AUTH=0, BENCH_QUOTAS=0, BENCH_HEALTH=0); their rows will be n/a"
elif [[ -z "$REDIS_SERVER" ]]; then
  log "gateway + auth (+ quotas, + health) skipped: no redis-server; their rows will be n/a"
elif [[ ! -x "$BIN/gateway" ]]; then
  log "gateway + auth (+ quotas, + health) skipped: no gateway binary; their rows will be n/a"
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
    log "redis-server did not start; gateway + auth (+ quotas, + health) rows will be n/a"
    tail -20 "$WORK/redis.log" >&2 || true
  else
    if [[ "$WITH_AUTH" == 1 ]]; then
      redis_scenario gateway-auth "gateway + auth" ""
      AUTH_OK=$SCEN_OK
      AUTH_CHECK=$SCEN_CHECK
    else
      log "gateway + auth skipped (BENCH_AUTH=0); its rows will be n/a"
    fi
    if [[ "$WITH_QUOTAS" == 1 ]]; then
      # A clean Redis: the quotas row starts from empty windows.
      "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" FLUSHALL >/dev/null 2>&1 || true
      redis_scenario gateway-quota "gateway + auth + quotas" "$QUOTA_EXTRA"
      QUOTA_OK=$SCEN_OK
      QUOTA_CHECK=$SCEN_CHECK
    else
      log "gateway + auth + quotas skipped (BENCH_QUOTAS=0); its rows will be n/a"
    fi
    if [[ "$WITH_HEALTH" == 1 ]]; then
      # The quotas row's configuration plus health on the provider, on a clean
      # Redis as well.
      "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" FLUSHALL >/dev/null 2>&1 || true
      redis_scenario gateway-health "gateway + auth + quotas + health" "$QUOTA_EXTRA" "$HEALTH_PROVIDER"
      HEALTH_OK=$SCEN_OK
      HEALTH_CHECK=$SCEN_CHECK
    else
      log "gateway + auth + quotas + health skipped (BENCH_HEALTH=0); its rows will be n/a"
    fi
    # Rounds 2..N of the quotas / health A/B (round 1: the two rows above,
    # which ran one after the other, quotas first).
    if [[ "$AB_ROUNDS" -gt 1 ]]; then
      if [[ "$QUOTA_OK" == 1 && "$HEALTH_OK" == 1 ]]; then
        for ((round = 2; round <= AB_ROUNDS; round++)); do
          ab_round "$round" gateway-quota "$QUOTA_EXTRA"
          ab_round "$round" gateway-health "$QUOTA_EXTRA" "$HEALTH_PROVIDER"
        done
        AB_DONE=1
      else
        log "warning: BENCH_AB_ROUNDS=$AB_ROUNDS needs the quotas and the health rows (quotas ready=$QUOTA_OK, health ready=$HEALTH_OK); no further rounds"
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
"$BIN/bench-util" report --raw-dir "$RAW" --connections "$CONNS" --out-json "$JSON" \
  --ab-rounds "$( [[ "$AB_DONE" == 1 ]] && echo "$AB_ROUNDS" || echo 1 )" \
  --info "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --info "git=$GIT_REV" \
  --info "machine=$NPROC cores, $CPU_MODEL, $(uname -r)" \
  --info "pinning=$PINNING" \
  --info "load average=$LOADAVG_BENCH before the runs, $(cut -d' ' -f1-3 /proc/loadavg) after (1/5/15 min; the runs themselves add about 2)" \
  --info "runs=${WARM}s warm-up, then ${DUR}s at $CONNS connections and ${LAT_DUR}s at 1 connection, per scenario and mode" \
  --info "load=loadgen (hyper http1, one keep-alive connection per worker, closed loop, 1-thread runtime); POST /v1/chat/completions, small chat body" \
  --info "mock=mock-upstream, $CHUNKS SSE chunks per stream, no delay" \
  --info "nginx=$NGINX_VERSION, worker_processes 1, upstream keepalive 64, proxy_buffering off, access log $NGINX_LOG" \
  --info "gateway=access log $( [[ "$GW_LOG" == 1 ]] && echo on || echo off ), ready=$GATEWAY_OK" \
  --info "gateway + auth=the gateway's config plus route auth (consumer key = the Bearer key loadgen sends), state.backend redis (redis-server $REDIS_VERSION, --save \"\" --appendonly no, pinned with the load side), cache_ttl_ms 1000; ready=$AUTH_OK; check: $AUTH_CHECK" \
  --info "gateway + auth + quotas=gateway + auth plus two quotas on the consumer (bench-tpm: total_tokens, bench-rpm: requests; by consumer, limit $QUOTA_LIMIT, window 1m: never refuse), so every request reserves and settles (one EVALSHA each, hash tag {t:bench}); Redis flushed before the row, CONFIG RESETSTAT before each Redis row, settle queue drained before the last INFO, then round trips sampled with MONITOR over $RT_SAMPLE JSON + $RT_SAMPLE stream requests at 1 connection; ready=$QUOTA_OK; check: $QUOTA_CHECK" \
  --info "gateway + auth + quotas + health=gateway + auth + quotas plus upstream health on the provider: passive { failures: 5, window_s: 30, ejection_s: 30 } and checks.active { http_path: /models (GET /v1/models on the mock), interval_s: 5, timeout_ms: 1000 }; health reads are local mirrors refreshed every cache_ttl_ms and traffic reports only failures, so no Redis round trip is added per request; Redis flushed before the row, same counting and MONITOR sample as the quotas row; ready=$HEALTH_OK; check: $HEALTH_CHECK" \
  --info "health vs quotas=$( if [[ "$AB_DONE" == 1 ]]; then echo "$AB_ROUNDS alternating rounds (quotas, health, ...; Redis flushed and the gateway started afresh before each; round 1 = the table's rows, rounds 2..$AB_ROUNDS their ${WARM}s + ${DUR}s throughput runs at $CONNS connections only); the target (health >= 0.95x quotas requests/s) is judged on the ratio of the medians"; else echo "the table's two rows, one after the other (BENCH_AB_ROUNDS=$AB_ROUNDS); the target (health >= 0.95x quotas requests/s) is judged on them"; fi )" \
  --info "added latency=scenario percentile minus direct percentile at 1 connection (same mode)" \
  --info "SUT CPU=CPU time of the proxy (nginx master+worker / gateway; mock for direct) over the window, % of one core (Redis counts with the load side, not the SUT)" \
  >"$MD"
cp "$MD" "$RESULTS_DIR/latest.md"
cat "$MD"
log "wrote $MD, $JSON and $RESULTS_DIR/latest.md"
[[ "$GATEWAY_OK" == 1 ]] || exit 2
