#!/usr/bin/env bash
# Overhead of one feature, measured A/B: the plain gateway (A) and the gateway
# with the feature on (B) run side by side (both pinned to core 0), and their
# throughput runs are interleaved (A, B, A, B, ...) so that drift of the machine
# over minutes hits both alike. Reports each round and the median ratio B / A
# per mode.
#
#   bash benches/run-ab.sh auth        # route auth on a Redis state backend; target (issue 3) >= 0.95x
#   bash benches/run-ab.sh telemetry   # OTLP traces + logs at sampling 1.0 to a real collector
#                                      # (rotel, on the load core); target (issue 6) >= 0.9x
#
# Each gateway runs like a Kubernetes pod with `resources.limits.cpu`: in a cgroup
# whose CFS quota is AB_GATEWAY_CPU of a core (default 0.6), pinned to core 0,
# while the load generator, the mock (and Redis or the collector) have core 1 to
# themselves. The gateway is then the bottleneck in both runs, and the ratio
# measures what the feature costs the gateway, not how the load side copes with
# a collector sharing its core. Without a writable cgroup cpu controller (not
# root, or no such controller) the gateways run uncapped, and the report says so.
#
# 5 rounds x 2 modes x 2 targets x 8 s: about 3 minutes.
# Environment: AB_ROUNDS (5), AB_DURATION_S (8), AB_CONNECTIONS (32),
# AB_GATEWAY_CPU (0.6; 0 for no cap),
# AB_OTLP_PROTOCOL (grpc | http, for telemetry),
# BENCH_NO_BUILD=1 to reuse target/release binaries.
set -euo pipefail

VARIANT="${1:-}"
case "$VARIANT" in
  auth) TARGET=0.95 ;;
  telemetry) TARGET=0.9 ;;
  *) echo "usage: bash benches/run-ab.sh auth|telemetry" >&2; exit 2 ;;
esac
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release"
ROUNDS="${AB_ROUNDS:-5}"
DUR="${AB_DURATION_S:-8}"
CONNS="${AB_CONNECTIONS:-32}"
API_KEY="sk-bench-ab-key"
WORK="$(mktemp -d)"
PIDS=()
log() { echo "[$VARIANT-ab] $*" >&2; }
CGROUPS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  sleep 0.5 # the gateways (not children of this shell) exit after the kill
  for g in "${CGROUPS[@]}"; do rmdir "$g" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

if [[ "${BENCH_NO_BUILD:-0}" != 1 ]]; then
  (cd "$ROOT" && cargo build --release -q -p gateway -p gateway-tests -p gateway-benches)
fi
if [[ "$VARIANT" == auth ]]; then
  command -v redis-server >/dev/null || { log "redis-server is needed (apt-get install -y redis-server)"; exit 1; }
fi
if [[ "$(nproc)" -ge 2 ]]; then SUT=(taskset -c 0); LOAD=(taskset -c 1); else SUT=(); LOAD=(); fi
port() { "$BIN/bench-util" free-port; }

# The CPU cap: a cgroup (v1 cpu controller, or v2 with cpu enabled) per gateway.
CAP="${AB_GATEWAY_CPU:-0.6}"
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
# cap_cpu PID NAME: the process (all its threads) limited to $CAP of a core
cap_cpu() {
  [[ -n "$CG_ROOT" ]] || return 0
  local g="$CG_ROOT/ab-$2-$$" quota
  quota="$(python3 -c "print(int($CAP * 100000))")"
  mkdir "$g"
  CGROUPS+=("$g")
  if [[ -f "$g/cpu.cfs_quota_us" ]]; then
    echo 100000 >"$g/cpu.cfs_period_us"
    echo "$quota" >"$g/cpu.cfs_quota_us"
  else
    echo "$quota 100000" >"$g/cpu.max"
  fi
  echo "$1" >"$g/cgroup.procs"
}
if [[ -n "$CG_ROOT" ]]; then
  RIG="each gateway in a cgroup limited to $CAP CPU (CFS quota, as a pod's limits.cpu) on core 0"
else
  RIG="both gateways on core 0, uncapped"
fi

"${LOAD[@]}" "$BIN/mock-upstream" --listen 127.0.0.1:0 --stream-chunks 16 >"$WORK/mock.out" 2>"$WORK/mock.err" &
PIDS+=($!)
for _ in $(seq 1 100); do
  MOCK="$(sed -n 's/^LISTENING \([0-9.:]*\).*/\1/p' "$WORK/mock.out" | head -1)"
  [[ -n "$MOCK" ]] && break
  sleep 0.05
done
[[ -n "$MOCK" ]] || { log "mock-upstream did not start"; exit 1; }

if [[ "$VARIANT" == auth ]]; then
  RPORT="$(port)"
  "${LOAD[@]}" redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no >"$WORK/redis.log" 2>&1 &
  PIDS+=($!)
else
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

# gateway NAME EXTRA_ROUTE EXTRA_TOP [EXTRA_TELEMETRY] -> prints the data-plane port
start_gateway() {
  local name=$1 route_extra=$2 top_extra=$3 telemetry_extra=${4:-} p a
  p="$(port)"
  a="$(port)"
  cat >"$WORK/$name.yaml" <<EOF
server: { listen: "127.0.0.1:$p", admin_listen: "127.0.0.1:$a" }
providers:
  - id: mock
    type: openai-compatible
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
  "${SUT[@]}" "$BIN/gateway" --config "$WORK/$name.yaml" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  PIDS+=($!)
  "$BIN/bench-util" wait-http --url "http://127.0.0.1:$a/readyz" --timeout-s 30 --pid "$!" >/dev/null \
    || { log "$name did not start:"; cat "$WORK/$name.err" >&2; exit 1; }
  echo "$a" >"$WORK/$name.admin"
  echo "$!" >"$WORK/$name.pid"
  echo "$p"
}
PLAIN="$(start_gateway plain "" "")"
PLAIN_PID="$(cat "$WORK/plain.pid")"
PIDS+=("$PLAIN_PID") # started in a subshell: its PIDS+= was lost
cap_cpu "$PLAIN_PID" plain
if [[ "$VARIANT" == auth ]]; then
  B="$(start_gateway auth "    auth: { enabled: true }" \
    "state: { backend: redis, redis: { url: \"redis://127.0.0.1:$RPORT/0\" }, cache_ttl_ms: 1000 }
tenants: [ { id: bench, consumers: [ { name: load, keys: [\"$API_KEY\"] } ] } ]")"
  # an unknown key must be refused, or the auth rows measure nothing
  CODE="$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer sk-nobody-has-this' \
    -d '{"model":"m","messages":[]}' "http://127.0.0.1:$B/v1/chat/completions" || true)"
  [[ "$CODE" == 401 ]] || { log "auth gateway answered $CODE to an unknown key"; exit 1; }
  B_PID="$(cat "$WORK/auth.pid")"
  PIDS+=("$B_PID")
  cap_cpu "$B_PID" auth
  TITLE="Authentication overhead"
  SETUP="Plain gateway vs gateway with route auth (Redis state backend, cache_ttl_ms 1000, seeded key), $RIG, load and mock (16-event streams) and Redis on core 1"
else
  PROTO="${AB_OTLP_PROTOCOL:-grpc}"
  if [[ "$PROTO" == http ]]; then OTLP_PORT="$HPORT"; else OTLP_PORT="$CPORT"; fi
  B="$(start_gateway telemetry "" "" "  otlp: { endpoint: \"http://127.0.0.1:$OTLP_PORT\", protocol: $PROTO, traces: true, logs: true, sampling_ratio: 1.0 }")"
  B_PID="$(cat "$WORK/telemetry.pid")"
  PIDS+=("$B_PID")
  cap_cpu "$B_PID" telemetry
  TITLE="Telemetry overhead"
  SETUP="Plain gateway vs the same with OTLP traces (SERVER + CLIENT span per request) and one log record per request at sampling_ratio 1.0, over ${AB_OTLP_PROTOCOL:-grpc} to a real collector (rotel $("$ROTEL" --version 2>/dev/null | awk '{print $2}'), blackhole exporter), $RIG, load, mock (16-event streams) and the collector on core 1"
fi

# CPU ticks so far: of the load core (cpu1 in /proc/stat; 0 on one core), of a process
core_ticks() { awk '/^cpu1 / {print $2 + $3 + $4 + $7 + $8 + $9; f = 1} END {if (!f) print 0}' /proc/stat; }
pid_ticks() { if [[ -n "${1:-}" ]]; then awk '{print $14 + $15}' "/proc/$1/stat"; else echo 0; fi; }
# PORT MODE GATEWAY_PID -> "rps gateway_cpu_us load_core_cpu_us collector_cpu_us" per
# request: the gateway's CPU (all its threads) from loadgen; the load core's and the
# collector's from ticks over the whole run (warm-up included) at the measured rate
run() {
  local args=(--url "http://127.0.0.1:$1/v1/chat/completions" --connections "$CONNS" --duration-s "$DUR"
    --warmup-s 1 --header "Authorization: Bearer $API_KEY" --cpu-pid "$3" --clk-tck "$HZ")
  [[ "$2" == stream ]] && args+=(--stream)
  local c0 p0 t0 c1 p1 t1 out
  c0="$(core_ticks)"; p0="$(pid_ticks "${COLLECTOR_PID:-}")"; t0="$(date +%s.%N)"
  out="$("${LOAD[@]}" "$BIN/loadgen" "${args[@]}" 2>>"$WORK/loadgen.log")"
  c1="$(core_ticks)"; p1="$(pid_ticks "${COLLECTOR_PID:-}")"; t1="$(date +%s.%N)"
  python3 -c '
import json, sys
d = json.loads(sys.argv[1]); assert d["errors"] == 0, d
hz, c, p, wall = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
per = lambda ticks: round(ticks / hz / wall / d["rps"] * 1e6, 1)
print(round(d["rps"]), round(d["sut_cpu_pct"] * 10000 / d["rps"], 1), per(c), per(p), round(c / hz / wall * 100))
' "$out" "$HZ" "$((c1 - c0))" "$((p1 - p0))" "$(python3 -c "print($t1 - $t0)")"
}
HZ="$(getconf CLK_TCK)"

RESULTS="$ROOT/benches/results"
mkdir -p "$RESULTS"
OUT="$RESULTS/$VARIANT-ab-$(date -u +%Y%m%d-%H%M%S).md"
{
  echo "# $TITLE, interleaved A/B"
  echo
  echo "$SETUP; $CONNS connections, ${DUR} s per run, $ROUNDS rounds,"
  echo "runs interleaved plain/$VARIANT. git $(git -C "$ROOT" rev-parse --short HEAD), $(date -u +%Y-%m-%dT%H:%M:%SZ)."
  echo
  echo "| round | mode | plain rps | $VARIANT rps | $VARIANT / plain | plain CPU µs/req | $VARIANT CPU µs/req |"
  echo "|---:|---|---:|---:|---:|---:|---:|"
} >"$OUT"
LOAD_NOTES=()
for mode in json stream; do
  RATIOS=()
  CPU_RATIOS=()
  LOAD_P=()
  PLAIN_RPS=()
  BUSY_P=()
  BUSY_B=()
  LOAD_B=()
  COLL=()
  for r in $(seq 1 "$ROUNDS"); do
    read -r P PC PL _ PBUSY <<<"$(run "$PLAIN" "$mode" "$PLAIN_PID")"
    read -r A AC AL AK ABUSY <<<"$(run "$B" "$mode" "$B_PID")"
    LOAD_P+=("$PL")
    PLAIN_RPS+=("$P")
    BUSY_P+=("$PBUSY")
    BUSY_B+=("$ABUSY")
    LOAD_B+=("$AL")
    COLL+=("$AK")
    RATIO="$(python3 -c "print(f'{$A/$P:.3f}')")"
    RATIOS+=("$RATIO")
    CPU_RATIOS+=("$(python3 -c "print(f'{$PC/$AC:.3f}')")")
    log "$mode round $r: plain $P rps ($PC µs CPU/req), $VARIANT $A rps ($AC µs CPU/req), ratio $RATIO"
    echo "| $r | $mode | $P | $A | ${RATIO}x | $PC | $AC |" >>"$OUT"
  done
  MED="$(printf '%s\n' "${RATIOS[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
  CPU_MED="$(printf '%s\n' "${CPU_RATIOS[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
  med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  LP="$(med "${LOAD_P[@]}")"
  LB="$(med "${LOAD_B[@]}")"
  K="$(med "${COLL[@]}")"
  LOAD_NOTES+=("$mode: load core (load generator + mock$([[ "$VARIANT" == telemetry ]] && echo ' + collector')) CPU per request, medians: plain runs $LP µs (the core $(med "${BUSY_P[@]}")% busy), $VARIANT runs $LB µs (the core $(med "${BUSY_B[@]}")% busy)$([[ "$VARIANT" == telemetry ]] && echo ", of which the collector $K µs; so with the load core's work per request at least $(python3 -c "print(round($LP + $K, 1))") µs, the most the $VARIANT gateway could reach on this rig even if its own export cost nothing: $(python3 -c "print(f'{min(1.0, 1e6 / (($LP + $K) * $(med "${PLAIN_RPS[@]}"))):.2f}')")x"))")
  echo "| | **$mode median** | | | **${MED}x** ($( python3 -c "print('met' if $MED >= $TARGET else 'NOT met')") ≥ ${TARGET}x) | CPU per request plain / $VARIANT: **${CPU_MED}x** | |" >>"$OUT"
done
{
  echo
  for n in "${LOAD_NOTES[@]}"; do echo "- $n"; done
} >>"$OUT"
if [[ "$VARIANT" == telemetry ]]; then
  # what the collector was sent: every request's spans and log record, none lost
  TA="$(cat "$WORK/telemetry.admin")"
  sleep 1
  M="$(curl -s "http://127.0.0.1:$TA/metrics" | grep -E '^gateway_otlp_(spans|logs)_(exported|failed)_total|^gateway_otlp_dropped_total|^gateway_requests_total' | tr '\n' ' ')"
  CPU="$(ps -o time= -p "$COLLECTOR_PID" | tr -d ' ')"
  {
    echo
    echo "Exporter counters of the telemetry gateway at the end: $M"
    echo
    echo "Collector CPU time over the whole run (on the load core): $CPU"
  } >>"$OUT"
fi
cat "$OUT"
log "wrote $OUT"
