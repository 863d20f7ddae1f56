#!/usr/bin/env bash
# Overhead of one feature, measured A/B: the plain gateway (A) and the gateway
# with the feature on (B) are loaded at the same time, by two load generators,
# so whatever the machine does meanwhile hits both alike; each round starts both
# afresh, since a process keeps a few percent of speed or slowness (where its
# memory landed) for its whole life. Reports each round and the median ratio
# B / A per mode.
#
#   bash benches/run-ab.sh auth        # route auth on a Redis state backend; target (issue 3) >= 0.95x
#   bash benches/run-ab.sh telemetry   # OTLP traces + logs at sampling 1.0 to a real collector
#                                      # (rotel, on the load core); target (issue 6) >= 0.9x
#   bash benches/run-ab.sh translate   # OpenAI chat to an Anthropic provider (translated both
#                                      # ways) against OpenAI to OpenAI; target (issue 20) >= 0.85x,
#                                      # and (AB_CONNECTIONS=1) p99 at most 150 µs more
#   bash benches/run-ab.sh anthropic   # Anthropic Messages to an Anthropic provider (pass-through)
#                                      # against OpenAI to OpenAI; target (issue 20) >= 0.95x
#   bash benches/run-ab.sh budget      # route auth on Redis + a consumer cost budget (a month
#                                      # window) + the usage ledger (B) against route auth on
#                                      # Redis + a consumer token quota, no ledger (A); target (issue 21)
#                                      # >= 0.95x, and Redis calls per request the same (2:
#                                      # reserve and settle, the ledger inside the settle)
#   bash benches/run-ab.sh console     # the admin API on (server.admin_token set: the console's
#                                      # live requests and last-hour series kept per request)
#                                      # against it off; target (issue 23) >= 0.97x
#   bash benches/run-ab.sh aa          # the plain gateway against itself: what the rig reads
#                                      # when there is nothing to measure (expect 1.00x)
#   AB_BASE_REF=<git ref> bash benches/run-ab.sh build
#                                      # the gateway of another commit (A) against this
#                                      # checkout's (B), same config: what a change costs
#                                      # (AB_BASE_BIN=<path> instead reuses a built binary)
#   AB_WITH=auth-quotas AB_BASE_REF=<git ref> bash benches/run-ab.sh build
#                                      # the same, both sides with route auth on Redis and
#                                      # a route and a consumer token quota (limits far
#                                      # above the load: every request reserves and settles)
#
# Each gateway runs like a Kubernetes pod with `resources.limits.cpu`: in a cgroup
# whose CFS quota is AB_GATEWAY_CPU of a core (default 0.45; the two share core 0),
# while the load generators, the mock (and Redis or the collector) have core 1.
# Each gateway is then held by its own limit, and the ratio measures what the
# feature costs the gateway, not how the load side copes. Without a writable
# cgroup cpu controller (not root, or no such controller) the gateways run
# uncapped, sharing core 0, and the report says so.
#
# 9 rounds x (json + stream) x 8 s, with start-up: about 3 minutes.
# Environment: AB_ROUNDS (9), AB_DURATION_S (8), AB_CONNECTIONS (32 per gateway),
# AB_GATEWAY_CPU (0.45; 0 for no cap),
# AB_OTLP_PROTOCOL (grpc | http, for telemetry),
# BENCH_NO_BUILD=1 to reuse target/release binaries.
set -euo pipefail

VARIANT="${1:-}"
case "$VARIANT" in
  auth) TARGET=0.95 ;;
  telemetry) TARGET=0.9 ;;
  translate) TARGET=0.85 ;;
  anthropic) TARGET=0.95 ;;
  budget) TARGET=0.95 ;;
  console) TARGET=0.97 ;;
  aa) TARGET=0.97 ;;
  build) TARGET=0.98 ;;
  *) echo "usage: bash benches/run-ab.sh auth|telemetry|translate|anthropic|budget|console|aa|build" >&2; exit 2 ;;
esac
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release"
ROUNDS="${AB_ROUNDS:-9}"
DUR="${AB_DURATION_S:-8}"
CONNS="${AB_CONNECTIONS:-32}"
API_KEY="sk-bench-ab-key"
WORK="$(mktemp -d)"
PIDS=()
log() { echo "[$VARIANT-ab] $*" >&2; }
CGROUPS=()
# stop PID...: SIGTERM, then wait (up to 20 s) until each has exited; the
# gateways are not this shell's children, so `wait` cannot tell
stop() {
  local p i
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for i in $(seq 1 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
}
cleanup() {
  stop "${PIDS[@]}"
  wait 2>/dev/null || true
  for g in "${CGROUPS[@]}"; do rmdir "$g" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

if [[ "${BENCH_NO_BUILD:-0}" != 1 ]]; then
  (cd "$ROOT" && cargo build --release -q -p gateway -p gateway-tests -p gateway-benches)
fi
WITH="${AB_WITH:-}"
[[ -z "$WITH" || ( "$VARIANT" == build && "$WITH" == auth-quotas ) ]] \
  || { log "AB_WITH: only auth-quotas, with the build variant"; exit 2; }
if [[ "$VARIANT" == auth || "$VARIANT" == budget || -n "$WITH" ]]; then
  command -v redis-server >/dev/null || { log "redis-server is needed (apt-get install -y redis-server)"; exit 1; }
fi
# the A side's binary: this checkout's, or (build) another commit's
A_BIN="$BIN/gateway"
if [[ "$VARIANT" == build ]]; then
  if [[ -n "${AB_BASE_BIN:-}" ]]; then
    A_BIN="$AB_BASE_BIN"
  else
    [[ -n "${AB_BASE_REF:-}" ]] || { log "build: set AB_BASE_REF (a git ref) or AB_BASE_BIN"; exit 2; }
    BASE_SHA="$(git -C "$ROOT" rev-parse --short "$AB_BASE_REF")"
    # built once per commit, kept under target/ab-base/ (its own target dir,
    # so this checkout's binaries stay as they are)
    A_BIN="$ROOT/target/ab-base/gateway-$BASE_SHA"
    if [[ ! -x "$A_BIN" ]]; then
      log "building the gateway of $BASE_SHA (release)"
      tree="$WORK/base-tree"
      git -C "$ROOT" worktree add -f --detach "$tree" "$BASE_SHA" >/dev/null
      (cd "$tree" && CARGO_TARGET_DIR="$ROOT/target/ab-base/target" cargo build --release -q -p gateway)
      git -C "$ROOT" worktree remove -f "$tree"
      cp "$ROOT/target/ab-base/target/release/gateway" "$A_BIN"
    fi
  fi
  [[ -x "$A_BIN" ]] || { log "no gateway binary at $A_BIN"; exit 1; }
fi
if [[ "$(nproc)" -ge 2 ]]; then SUT=(taskset -c 0); LOAD=(taskset -c 1); else SUT=(); LOAD=(); fi
port() { "$BIN/bench-util" free-port; }

# The CPU cap: a cgroup (v1 cpu controller, or v2 with cpu enabled) per gateway.
CAP="${AB_GATEWAY_CPU:-0.45}"
CG_ROOT=""
if [[ "$CAP" != 0 ]]; then
  if [[ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]] && mkdir "/sys/fs/cgroup/cpu/ab-probe-$$" 2>/dev/null; then
    CG_ROOT=/sys/fs/cgroup/cpu
  elif grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null && mkdir "/sys/fs/cgroup/ab-probe-$$" 2>/dev/null; then
    CG_ROOT=/sys/fs/cgroup
  fi
  [[ -n "$CG_ROOT" ]] && rmdir "$CG_ROOT/ab-probe-$$"
  [[ -n "$CG_ROOT" ]] || log "no writable cgroup cpu controller: the gateways run without a CPU cap"
fi
# one cgroup per gateway, reused by each round's process
if [[ -n "$CG_ROOT" ]]; then
  quota="$(python3 -c "print(int($CAP * 100000))")"
  for name in a b; do
    g="$CG_ROOT/ab-$name-$$"
    mkdir "$g"
    CGROUPS+=("$g")
    if [[ -f "$g/cpu.cfs_quota_us" ]]; then
      echo 100000 >"$g/cpu.cfs_period_us"
      echo "$quota" >"$g/cpu.cfs_quota_us"
    else
      echo "$quota 100000" >"$g/cpu.max"
    fi
  done
  RIG="both gateways on core 0, each in a cgroup limited to $CAP CPU (CFS quota, as a pod's limits.cpu)"
else
  RIG="both gateways on core 0, uncapped"
fi
# cap_cpu PID a|b: the process (all its threads) into its gateway's cgroup
cap_cpu() {
  [[ -n "$CG_ROOT" ]] || return 0
  echo "$1" >"$CG_ROOT/ab-$2-$$/cgroup.procs"
}

# the Messages request of the anthropic variant's B side (the loadgen's default
# chat request, in Anthropic's shape)
printf '%s' '{"model":"gpt-4o-mini","max_tokens":32,"messages":[{"role":"user","content":"Say hello in one short sentence."}]}' >"$WORK/messages.json"
"${LOAD[@]}" "$BIN/mock-upstream" --listen 127.0.0.1:0 --stream-chunks 16 >"$WORK/mock.out" 2>"$WORK/mock.err" &
PIDS+=($!)
for _ in $(seq 1 100); do
  MOCK="$(sed -n 's/^LISTENING \([0-9.:]*\).*/\1/p' "$WORK/mock.out" | head -1)"
  [[ -n "$MOCK" ]] && break
  sleep 0.05
done
[[ -n "$MOCK" ]] || { log "mock-upstream did not start"; exit 1; }

if [[ "$VARIANT" == auth || "$VARIANT" == budget || -n "$WITH" ]]; then
  RPORT="$(port)"
  "${LOAD[@]}" redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no >"$WORK/redis.log" 2>&1 &
  PIDS+=($!)
  if [[ "$VARIANT" == budget ]]; then
    # each side its own Redis, so each side's calls per request can be counted
    RPORT_B="$(port)"
    "${LOAD[@]}" redis-server --port "$RPORT_B" --bind 127.0.0.1 --save "" --appendonly no >"$WORK/redis-b.log" 2>&1 &
    PIDS+=($!)
  fi
elif [[ "$VARIANT" == telemetry ]]; then
  # the collector: rotel from PyPI (the one ./scripts/test.sh --setup-only puts
  # into .venv), receiving OTLP/gRPC and dropping it (blackhole exporter)
  ROTEL="$(ls "$ROOT"/.venv/lib/python*/site-packages/rotel/rotel-agent 2>/dev/null | head -1 || true)"
  if [[ -z "$ROTEL" ]]; then
    log "installing the collector (rotel) into .venv"
    "$ROOT/scripts/test.sh" --setup-only >/dev/null
    ROTEL="$(ls "$ROOT"/.venv/lib/python*/site-packages/rotel/rotel-agent | head -1)"
  fi
  CPORT="$(port)"
  HPORT="$(port)"
  "${LOAD[@]}" "$ROTEL" start --otlp-grpc-endpoint "127.0.0.1:$CPORT" --otlp-http-endpoint "127.0.0.1:$HPORT" \
    --exporter blackhole >"$WORK/collector.log" 2>&1 &
  PIDS+=($!)
  COLLECTOR_PID=$!
fi

# start_gateway NAME EXTRA_ROUTE EXTRA_TOP [EXTRA_TELEMETRY]: starts it and waits
# until it is ready; its data-plane port, admin port and pid in $WORK/NAME.{port,admin,pid}
start_gateway() {
  local name=$1 route_extra=$2 top_extra=$3 telemetry_extra=${4:-} p a pid bin="$BIN/gateway"
  local ptype=openai-compatible
  # (budget: the A side's features are its route and top config too)
  if [[ "$VARIANT" == budget && "$name" == plain ]]; then route_extra="$A_ROUTE"; top_extra="$A_TOP"; fi
  # (translate, anthropic: the B side's provider speaks Anthropic's Messages API)
  [[ "$name" != plain && ( "$VARIANT" == translate || "$VARIANT" == anthropic ) ]] && ptype=anthropic
  [[ "$name" == plain ]] && bin="$A_BIN"
  # (build with AB_WITH: both sides get the same features)
  if [[ -n "$WITH" ]]; then route_extra="$W_ROUTE"; top_extra="$W_TOP"; fi
  p="$(port)"
  a="$(port)"
  # (console: the B side has the admin API on, which keeps the console's views)
  local server_extra=""
  [[ "$VARIANT" == console && "$name" != plain ]] && server_extra=', admin_token: "bench-admin-token"'
  # shutdown_delay_ms 0: nothing routes to it, so each round's stop is quick
  cat >"$WORK/$name.yaml" <<EOF
server: { listen: "127.0.0.1:$p", admin_listen: "127.0.0.1:$a", shutdown_delay_ms: 0$server_extra }
providers:
  - id: mock
    type: $ptype
    base_url: http://$MOCK/v1
    api_tokens: ["sk-upstream"]
routes:
  - name: bench
    match: { path_prefix: /v1 }
$route_extra
    upstreams: [ { provider: mock } ]
telemetry:
  access_log: { enabled: true, path: "$WORK/$name-access.log" }
$telemetry_extra
$top_extra
EOF
  "${SUT[@]}" "$bin" --config "$WORK/$name.yaml" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  pid=$!
  PIDS+=("$pid")
  "$BIN/bench-util" wait-http --url "http://127.0.0.1:$a/readyz" --timeout-s 30 --pid "$pid" >/dev/null \
    || { log "$name did not start:"; cat "$WORK/$name.err" >&2; exit 1; }
  echo "$p" >"$WORK/$name.port"
  echo "$a" >"$WORK/$name.admin"
  echo "$pid" >"$WORK/$name.pid"
}

B_ROUTE="" B_TOP="" B_TEL=""
W_ROUTE="    auth: { enabled: true }
    quotas: [ { name: route-tpm, by: route, strategy: total_tokens, limit: 100000000000, window: 1m } ]"
W_TOP="state: { backend: redis, redis: { url: \"redis://127.0.0.1:${RPORT:-0}/0\" }, cache_ttl_ms: 1000 }
tenants:
  - id: bench
    consumers:
      - name: load
        keys: [\"$API_KEY\"]
        quotas: [ { name: load-tpm, by: consumer, strategy: total_tokens, limit: 100000000000, window: 1m } ]"
case "$VARIANT" in
  budget)
    A_ROUTE="    auth: { enabled: true }"
    A_TOP="state: { backend: redis, redis: { url: \"redis://127.0.0.1:$RPORT/0\" }, cache_ttl_ms: 1000 }
ledger: { enabled: false }
tenants:
  - id: bench
    consumers:
      - name: load
        keys: [\"$API_KEY\"]
        quotas: [ { name: load-tpm, by: consumer, strategy: total_tokens, limit: 100000000000, window: 1m } ]"
    B_ROUTE="    auth: { enabled: true }"
    B_TOP="state: { backend: redis, redis: { url: \"redis://127.0.0.1:$RPORT_B/0\" }, cache_ttl_ms: 1000 }
tenants:
  - id: bench
    consumers:
      - name: load
        keys: [\"$API_KEY\"]
        quotas: [ { name: load-budget, by: consumer, strategy: cost, limit: 1000000, window: month } ]"
    TITLE="Cost budget and usage ledger against a token quota"
    SETUP="Both with route auth on a Redis state backend (cache_ttl_ms 1000, seeded key), each on its own Redis: a consumer token quota without the usage ledger (plain) against a consumer cost budget (a month window, the built-in price of the mock's gpt-4o-mini) with the usage ledger (budget), limits far above the load, $RIG, load generators, mock (16-event streams) and both Redis on core 1"
    ;;
  auth)
    B_ROUTE="    auth: { enabled: true }"
    B_TOP="state: { backend: redis, redis: { url: \"redis://127.0.0.1:$RPORT/0\" }, cache_ttl_ms: 1000 }
tenants: [ { id: bench, consumers: [ { name: load, keys: [\"$API_KEY\"] } ] } ]"
    TITLE="Authentication overhead"
    SETUP="Plain gateway vs gateway with route auth (Redis state backend, cache_ttl_ms 1000, seeded key), $RIG, load generators, mock (16-event streams) and Redis on core 1"
    ;;
  telemetry)
    PROTO="${AB_OTLP_PROTOCOL:-grpc}"
    if [[ "$PROTO" == http ]]; then OTLP_PORT="$HPORT"; else OTLP_PORT="$CPORT"; fi
    B_TEL="  otlp: { endpoint: \"http://127.0.0.1:$OTLP_PORT\", protocol: $PROTO, traces: true, logs: true, sampling_ratio: 1.0 }"
    TITLE="Telemetry overhead"
    SETUP="Plain gateway vs the same with OTLP traces (SERVER + CLIENT span per request) and one log record per request at sampling_ratio 1.0, over $PROTO to a real collector (rotel $("$ROTEL" --version 2>/dev/null | awk '{print $2}'), blackhole exporter), $RIG, load generators, mock (16-event streams) and the collector on core 1"
    ;;
  translate)
    TITLE="OpenAI chat translated to Anthropic's Messages API"
    SETUP="OpenAI chat requests to an openai-compatible provider (plain) against the same requests to an anthropic provider (translate: request, answer and stream translated), the tests' mock upstream answering each in its API, $RIG, load generators and mock (16-event streams) on core 1"
    ;;
  anthropic)
    TITLE="Anthropic Messages passed through"
    SETUP="OpenAI chat requests to an openai-compatible provider (plain) against Anthropic Messages requests to an anthropic provider (anthropic: pass-through), the tests' mock upstream answering each in its API, $RIG, load generators and mock (16-event streams) on core 1"
    ;;
  console)
    TITLE="The admin API and the console's views"
    SETUP="Plain gateway (no admin token: no admin API) vs the same with server.admin_token set, which keeps the console's live requests (the last 500 access-log records) and last-hour series (10-second buckets, latency and TTFT histograms) per request; both with the access log on, $RIG, load generators and mock (16-event streams) on core 1"
    ;;
  aa)
    TITLE="The A/B rig against itself"
    SETUP="The plain gateway against a second plain gateway, $RIG, load generators and mock (16-event streams) on core 1"
    ;;
  build)
    TITLE="This checkout against another build"
    SETUP="The gateway of ${BASE_SHA:-$A_BIN} (plain) against this checkout's (build), the same config (one open route), $RIG, load generators and mock (16-event streams) on core 1"
    if [[ -n "$WITH" ]]; then
      TITLE="This checkout against another build, with auth and quotas"
      SETUP="The gateway of ${BASE_SHA:-$A_BIN} (plain) against this checkout's (build), the same config: route auth on a Redis state backend (cache_ttl_ms 1000, seeded key), a route token quota and a consumer token quota (limits far above the load), $RIG, load generators, mock (16-event streams) and Redis on core 1"
    fi
    ;;
esac
B_NAME="$VARIANT"
[[ "$VARIANT" == aa ]] && B_NAME=plain2

# CPU ticks so far: of the load core (cpu1 in /proc/stat; 0 on one core), of a process
core_ticks() { awk '/^cpu1 / {print $2 + $3 + $4 + $7 + $8 + $9; f = 1} END {if (!f) print 0}' /proc/stat; }
pid_ticks() { if [[ -n "${1:-}" ]]; then awk '{print $14 + $15}' "/proc/$1/stat"; else echo 0; fi; }
HZ="$(getconf CLK_TCK)"
# run_pair MODE: both gateways loaded at once -> "a_rps a_cpu_us b_rps b_cpu_us
# load_core_busy_pct collector_cpu_us_per_b_request a_cpu_pct b_cpu_pct" (gateway CPU from loadgen,
# the load core's and the collector's from ticks over the whole run)
run_pair() {
  local name pids=() c0 p0 t0 c1 p1 t1
  c0="$(core_ticks)"; p0="$(pid_ticks "${COLLECTOR_PID:-}")"; t0="$(date +%s.%N)"
  for name in "${ORDER[@]}"; do
    local path=/v1/chat/completions extra=()
    if [[ "$VARIANT" == anthropic && "$name" != plain ]]; then
      path=/v1/messages
      extra=(--body-file "$WORK/messages.json" --header "anthropic-version: 2023-06-01")
    fi
    local args=(--url "http://127.0.0.1:$(cat "$WORK/$name.port")$path" --connections "$CONNS" "${extra[@]}"
      --duration-s "$DUR" --warmup-s 1 --header "Authorization: Bearer $API_KEY"
      --cpu-pid "$(cat "$WORK/$name.pid")" --clk-tck "$HZ")
    [[ "$1" == stream ]] && args+=(--stream)
    "${LOAD[@]}" "$BIN/loadgen" "${args[@]}" >"$WORK/$name.json" 2>>"$WORK/loadgen.log" &
    pids+=($!)
  done
  wait "${pids[@]}"
  c1="$(core_ticks)"; p1="$(pid_ticks "${COLLECTOR_PID:-}")"; t1="$(date +%s.%N)"
  python3 -c '
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
assert a["errors"] == 0 and b["errors"] == 0, (a, b)
hz, c, p, wall = (float(x) for x in sys.argv[3:7])
cpu = lambda d: round(d["sut_cpu_pct"] * 10000 / d["rps"], 1)
print(round(a["rps"]), cpu(a), round(b["rps"]), cpu(b), round(c / hz / wall * 100),
      round(p / hz / wall / b["rps"] * 1e6, 1), round(a["sut_cpu_pct"]), round(b["sut_cpu_pct"]),
      a["latency_us"]["p99"], b["latency_us"]["p99"])
' "$WORK/plain.json" "$WORK/$B_NAME.json" "$HZ" "$((c1 - c0))" "$((p1 - p0))" "$(python3 -c "print($t1 - $t0)")"
}

# redis_calls ADMIN_PORT: the gateway's calls to Redis so far (each one round trip)
redis_calls() {
  curl -s "http://127.0.0.1:$1/metrics" | awk '/^gateway_redis_calls_total/ {n += $2} END {print n + 0}'
}
# redis_cpu_us PORT: CPU time (µs) the Redis server has used so far
redis_cpu_us() {
  redis-cli -p "$1" INFO cpu | tr -d '\r' \
    | awk -F: '$1 == "used_cpu_sys" || $1 == "used_cpu_user" {n += $2} END {printf "%d\n", n * 1e6}'
}
# requests_total ADMIN_PORT: requests the gateway recorded
requests_total() {
  curl -s "http://127.0.0.1:$1/metrics" | awk '/^gateway_requests_total/ {n += $2} END {print n + 0}'
}

RESULTS="$ROOT/benches/results"
mkdir -p "$RESULTS"
OUT="$RESULTS/$VARIANT${WITH:+-$WITH}-ab-$(date -u +%Y%m%d-%H%M%S).md"
ROWS="$WORK/rows.tsv"
COUNTERS="$WORK/counters.txt"
: >"$ROWS"
: >"$COUNTERS"
for r in $(seq 1 "$ROUNDS"); do
  # which one starts (and is loaded) first alternates: the A/A rig read the
  # second one ~1% slower when the order was fixed
  if ((r % 2)); then ORDER=(plain "$B_NAME"); else ORDER=("$B_NAME" plain); fi
  for name in "${ORDER[@]}"; do
    if [[ "$name" == plain ]]; then
      start_gateway plain "" ""
      cap_cpu "$(cat "$WORK/plain.pid")" a
    else
      start_gateway "$B_NAME" "$B_ROUTE" "$B_TOP" "$B_TEL"
      cap_cpu "$(cat "$WORK/$B_NAME.pid")" b
    fi
  done
  if [[ "$VARIANT" == auth || -n "$WITH" ]]; then
    # an unknown key must be refused, or the auth rows measure nothing
    for name in "${ORDER[@]}"; do
      CODE="$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer sk-nobody-has-this' \
        -d '{"model":"m","messages":[]}' "http://127.0.0.1:$(cat "$WORK/$name.port")/v1/chat/completions" || true)"
      [[ "$CODE" == 401 ]] || { log "$name answered $CODE to an unknown key"; exit 1; }
    done
  fi
  for mode in json stream; do
    if [[ "$VARIANT" == budget ]]; then
      RA0="$(redis_calls "$(cat "$WORK/plain.admin")")"; RB0="$(redis_calls "$(cat "$WORK/$B_NAME.admin")")"
      CA0="$(redis_cpu_us "$RPORT")"; CB0="$(redis_cpu_us "$RPORT_B")"
      QA0="$(requests_total "$(cat "$WORK/plain.admin")")"; QB0="$(requests_total "$(cat "$WORK/$B_NAME.admin")")"
    fi
    read -r P PC A AC BUSY K PU AU P99 A99 <<<"$(run_pair "$mode")"
    if [[ "$VARIANT" == budget ]]; then
      sleep 1 # settlements are sent after the answers
      RA1="$(redis_calls "$(cat "$WORK/plain.admin")")"; RB1="$(redis_calls "$(cat "$WORK/$B_NAME.admin")")"
      CA1="$(redis_cpu_us "$RPORT")"; CB1="$(redis_cpu_us "$RPORT_B")"
      QA1="$(requests_total "$(cat "$WORK/plain.admin")")"; QB1="$(requests_total "$(cat "$WORK/$B_NAME.admin")")"
      echo "round $r $mode: Redis round trips per request plain $(python3 -c "print(f'{($RA1-$RA0)/max(1,$QA1-$QA0):.3f}')"), $B_NAME $(python3 -c "print(f'{($RB1-$RB0)/max(1,$QB1-$QB0):.3f}')"); Redis CPU µs per request plain $(python3 -c "print(f'{($CA1-$CA0)/max(1,$QA1-$QA0):.1f}')"), $B_NAME $(python3 -c "print(f'{($CB1-$CB0)/max(1,$QB1-$QB0):.1f}')")" >>"$COUNTERS"
    fi
    log "round $r $mode: plain $P rps ($PC µs CPU/req, p99 $P99 µs), $B_NAME $A rps ($AC µs CPU/req, p99 $A99 µs), ratio $(python3 -c "print(f'{$A/$P:.3f}')")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$mode" "$P" "$PC" "$A" "$AC" "$BUSY" "$K" "$PU" "$AU" "$P99" "$A99" >>"$ROWS"
  done
  if [[ "$VARIANT" == telemetry ]]; then
    # what the collector was sent: every request's spans and log record, none lost
    sleep 1
    curl -s "http://127.0.0.1:$(cat "$WORK/telemetry.admin")/metrics" \
      | grep -E '^gateway_otlp_(spans|logs)_(exported|failed)_total|^gateway_otlp_dropped_total|^gateway_requests_total' >>"$COUNTERS"
  fi
  stop "$(cat "$WORK/plain.pid")" "$(cat "$WORK/$B_NAME.pid")"
done

python3 - "$ROWS" "$COUNTERS" "$VARIANT" "$B_NAME" "$TARGET" "$TITLE" "$SETUP" "$CONNS" "$DUR" "$ROUNDS" \
  "$(git -C "$ROOT" rev-parse --short HEAD)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$OUT" <<'PY'
import collections, statistics, sys
rows_f, counters_f, variant, b, target, title, setup, conns, dur, rounds, git, when = sys.argv[1:]
target = float(target)
rows = [l.rstrip("\n").split("\t") for l in open(rows_f) if l.strip()]
print(f"# {title}, concurrent A/B\n")
print(f"{setup}; {conns} connections per gateway, {dur} s per run, {rounds} rounds; "
      f"both gateways loaded at the same time, both started afresh each round. git {git}, {when}.\n")
print(f"| round | mode | plain rps | {b} rps | {b} / plain | plain CPU µs/req | {b} CPU µs/req "
      f"| plain / {b} CPU used | load core busy | p99 µs plain / {b} |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
by_mode = collections.defaultdict(list)
for r, mode, p, pc, a, ac, busy, k, pu, au, p99, a99 in rows:
    ratio = float(a) / float(p)
    by_mode[mode].append((ratio, float(pc) / float(ac), float(k), float(busy), float(a99) - float(p99)))
    print(f"| {r} | {mode} | {p} | {a} | {ratio:.3f}x | {pc} | {ac} | {pu}% / {au}% | {busy}% | {p99} / {a99} |")
notes = []
for mode, v in by_mode.items():
    med = statistics.median(x[0] for x in v)
    lo, hi = min(x[0] for x in v), max(x[0] for x in v)
    cpu = statistics.median(x[1] for x in v)
    verdict = "met" if med >= target else "NOT met"
    added = statistics.median(x[4] for x in v)
    print(f"| | **{mode} median** | | | **{med:.3f}x** ({verdict} ≥ {target}x; rounds {lo:.3f}–{hi:.3f}) "
          f"| CPU per request plain / {b}: **{cpu:.3f}x** | | | | p99 {b} − plain: **{added:+.0f} µs** |")
    busy = statistics.median(x[3] for x in v)
    if variant == "telemetry":
        k = statistics.median(x[2] for x in v)
        notes.append(f"{mode}: the load core was {busy:.0f}% busy (median); the collector spent {k} µs "
                     "there per telemetry request")
    else:
        notes.append(f"{mode}: the load core was {busy:.0f}% busy (median)")
print()
for n in notes:
    print(f"- {n}")
if variant == "budget":
    print()
    print("Redis per request, each run: round trips (gateway_redis_calls_total over gateway_requests_total) and the Redis server's CPU time (INFO cpu):")
    print()
    for line in open(counters_f):
        print(f"- {line.strip()}")
if variant == "telemetry":
    tot = collections.Counter()
    for line in open(counters_f):
        name, val = line.split()
        tot[name.split("{")[0]] += int(float(val))
    print()
    print("Exporter counters of the telemetry gateways, summed over the rounds: "
          + ", ".join(f"{k} {v}" for k, v in sorted(tot.items())))
PY
cat "$OUT"
log "wrote $OUT"
