# Functions of benches/run-load.sh for its rows with Redis (gateway + auth,
# + quota, + health, full-featured): starting such a gateway, measuring it
# with Redis INFO and /metrics snapshots around each run, its checks, the
# optional MONITOR sample, the OTLP collector, the quota / health A/B rounds.
# Sourced by run-load.sh (it uses that script's variables and helpers); not
# meant to run on its own.
# shellcheck shell=bash

# metric NAME FILE: a counter or gauge of the gateway's /metrics text
# (NAME may carry labels: 'gateway_upstream_healthy{provider="mock"}').
metric() { sed -n "s/^$1 \([0-9][0-9]*\)\$/\1/p" "$2" | head -1; }

# json_escape TEXT: TEXT as the inside of a JSON string (backslashes, quotes).
json_escape() {
  local s=${1//\\/\\\\}
  printf '%s' "${s//\"/\\\"}"
}

# wait_settled ADMIN_PORT FILE LABEL: quota settlements and OTLP records are
# sent off the request path; waits until the gateway's settle queue and OTLP
# queue are empty (then a little more for what was already taken off them)
# and leaves its last /metrics in FILE.
wait_settled() {
  local q="" o=""
  for _ in $(seq 1 100); do
    "$BIN/bench-util" get --url "http://127.0.0.1:$1/metrics" >"$2" 2>/dev/null || true
    q="$(metric gateway_quota_settle_queue "$2")"
    o="$(metric gateway_otlp_queue "$2")"
    [[ "${q:-0}" == 0 && "${o:-0}" == 0 ]] && break
    sleep 0.1
  done
  [[ "${q:-0}" == 0 && "${o:-0}" == 0 ]] || log "warning: $3: queues not empty after 10 s (quota settle $q, OTLP $o)"
  sleep 0.5
  "$BIN/bench-util" get --url "http://127.0.0.1:$1/metrics" >"$2" 2>/dev/null || true
}

# redis_run NAME BASE CONNECTIONS DURATION MODE ADMIN_PORT PID: one run
# between two snapshots of Redis's INFO all and the gateway's /metrics
# ($RAW/NAME.{redis,metrics}-{before,after}.txt), the after ones once the
# gateway's queues are empty.
redis_run() {
  local name=$1 base=$2 c=$3 dur=$4 mode=$5 admin=$6 pid=$7
  "$BIN/bench-util" get --url "http://127.0.0.1:$admin/metrics" >"$RAW/$name.metrics-before.txt" 2>/dev/null || true
  redis_snapshot "$RAW/$name.redis-before.txt"
  load_side_snapshot "$RAW/$name.load-side-before.txt"
  run_load "$name" "$base/v1/chat/completions" "$c" "$dur" "$mode" --cpu-pid "$pid" || true
  wait_settled "$admin" "$RAW/$name.metrics-after.txt" "$name"
  redis_snapshot "$RAW/$name.redis-after.txt"
  load_side_snapshot "$RAW/$name.load-side-after.txt"
}

# load_side_snapshot FILE: the clock tick rate and the /proc/<pid>/stat lines of
# the mock upstream and (when running) the OTLP collector, which share the load
# core with loadgen and Redis: "hz N", "mock <stat>", "collector <stat>".
load_side_snapshot() {
  {
    echo "hz $(getconf CLK_TCK)"
    [[ -n "${MOCK_PID:-}" && -r /proc/$MOCK_PID/stat ]] && echo "mock $(cat /proc/"$MOCK_PID"/stat)"
    [[ -n "${COLLECTOR_PID:-}" && -r /proc/$COLLECTOR_PID/stat ]] && echo "collector $(cat /proc/"$COLLECTOR_PID"/stat)"
    true
  } >"$1" 2>/dev/null
}

# measure_redis TARGET BASE ADMIN_PORT PID: measure's runs, each a redis_run
# (run once more when disturbed: attempt).
measure_redis() {
  local target=$1 base=$2 admin=$3 pid=$4 mode c dur
  for mode in json stream; do
    for c in "${LEVELS[@]}" 1; do
      if [[ "$c" == 1 ]]; then dur=$LAT_DUR; else dur=$DUR; fi
      attempt "$target-$mode-c$c" redis_run "$target-$mode-c$c" "$base" "$c" "$dur" "$mode" "$admin" "$pid"
    done
  done
}

# monitor_sample TARGET BASE ADMIN_PORT LABEL (BENCH_RT_SAMPLE > 0): a
# cross-check of the round trips counted from INFO commandstats. MONITOR
# marks the commands run inside scripts as "[0 lua]"; it records RT_SAMPLE
# JSON and RT_SAMPLE stream requests at 1 connection after the measured runs
# (MONITOR slows Redis, so never during them). Each mode gets a 1 s window
# (loadgen waits for its end), short, so that time-based commands (the state
# monitor's checks) weigh little against the requests. Sets RT_REQUESTS (0
# when it could not run).
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

# start_redis_gateway NAME CONSUMER_EXTRA [PROVIDER_EXTRA] [TELEMETRY_EXTRA]:
# writes $WORK/NAME.yaml, the plain gateway's config plus auth on the bench
# Redis (CONSUMER_EXTRA is appended to the seeded consumer's entry,
# PROVIDER_EXTRA goes into the provider's, TELEMETRY_EXTRA into the
# telemetry map), and starts that gateway. Sets RG_PID, RG_PORT and RG_ADMIN;
# returns 1 (the gateway stopped) when it does not become ready.
start_redis_gateway() {
  local name=$1 extra=$2 pextra=${3:-} textra=${4:-}
  RG_PORT="$("$BIN/bench-util" free-port)"
  RG_ADMIN="$("$BIN/bench-util" free-port)"
  gateway_config "$WORK/$name.yaml" "$RG_PORT" "$RG_ADMIN" "$WORK/$name-access.log" \
    "    auth: { enabled: true }" \
    "state: { backend: redis, redis: { url: \"redis://127.0.0.1:$REDIS_PORT/0\" }, cache_ttl_ms: 1000 }
tenants: [ { id: bench, consumers: [ { name: load, keys: [\"$API_KEY\"]$extra } ] } ]" \
    "$pextra" "$textra"
  "${SUT_PIN[@]}" "$GATEWAY_BIN" --config "$WORK/$name.yaml" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  RG_PID=$!
  PIDS+=("$RG_PID")
  if ! "$BIN/bench-util" wait-http --url "http://127.0.0.1:$RG_ADMIN/readyz" --timeout-s 30 --pid "$RG_PID"; then
    log "$name did not become ready; stderr:"
    tail -20 "$WORK/$name.err" >&2 || true
    stop_pid "$RG_PID"
    return 1
  fi
}

# redis_scenario TARGET LABEL CONSUMER_EXTRA [PROVIDER_EXTRA] [TELEMETRY_EXTRA]:
# starts the gateway with auth on the bench Redis (start_redis_gateway),
# checks that an unknown key gets 401, resets Redis's stats, measures with
# snapshots around each run (measure_redis), reads the gateway's counters
# after its runs (quota admitted and limited with CONSUMER_EXTRA; health
# probes and the provider's health with PROVIDER_EXTRA; OTLP export and the
# access log with TELEMETRY_EXTRA), takes the MONITOR sample (with
# CONSUMER_EXTRA and BENCH_RT_SAMPLE > 0), writes $RAW/TARGET.meta.json.
# Sets SCEN_OK (0/1) and SCEN_CHECK.
redis_scenario() {
  local target=$1 label=$2 extra=$3 pextra=${4:-} textra=${5:-}
  SCEN_OK=0
  SCEN_CHECK="not run"
  log "scenario: $label -> mock (redis pid $REDIS_PID)"
  local port admin pid base
  start_redis_gateway "$target" "$extra" "$pextra" "$textra" || return 0
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
  measure_redis "$target" "$base" "$admin" "$pid"
  # The row's counters after all its runs (the last run left its queues empty).
  wait_settled "$admin" "$RAW/$target.metrics-after.txt" "$label"
  RT_REQUESTS=0
  [[ -z "$extra" || "$RT_SAMPLE" -eq 0 ]] || monitor_sample "$target" "$base" "$admin" "$label"
  local admitted="null" limited="null" a0 a1 l0 l1
  a0="$(metric gateway_quota_admitted_total "$RAW/$target.metrics-before.txt")"
  a1="$(metric gateway_quota_admitted_total "$RAW/$target.metrics-after.txt")"
  l0="$(metric gateway_quota_limited_total "$RAW/$target.metrics-before.txt")"
  l1="$(metric gateway_quota_limited_total "$RAW/$target.metrics-after.txt")"
  [[ -n "$a0" && -n "$a1" ]] && admitted=$((a1 - a0))
  [[ -n "$l0" && -n "$l1" ]] && limited=$((l1 - l0))
  local after="$RAW/$target.metrics-after.txt"
  if [[ -n "$extra" ]]; then
    # The quota must really be on and never refuse.
    if [[ "$admitted" != null && "$admitted" -gt 0 && "$limited" == 0 ]]; then
      SCEN_CHECK="$SCEN_CHECK; $admitted requests admitted by the quota, 0 limited"
    else
      SCEN_CHECK="$SCEN_CHECK; WARNING: the quota admitted $admitted, limited $limited"
      log "warning: $label: the quota admitted $admitted, limited $limited"
    fi
  fi
  local probes="" probes_failed="" healthy=""
  if [[ -n "$pextra" ]]; then
    # Health must really be on: probes ran (the first one at start, then one
    # per interval) and the provider is not ejected, as /metrics says right
    # after the measured runs.
    local healthy_metric='gateway_upstream_healthy{provider="mock"}'
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
  if [[ -n "$textra" ]]; then
    # Telemetry must really be on: every request's spans and log record went
    # to the collector (none failed or dropped), and the access log was written.
    local spans logs sfail lfail dropped lines
    spans="$(metric gateway_otlp_spans_exported_total "$after")"
    logs="$(metric gateway_otlp_logs_exported_total "$after")"
    sfail="$(metric gateway_otlp_spans_failed_total "$after")"
    lfail="$(metric gateway_otlp_logs_failed_total "$after")"
    dropped="$(metric gateway_otlp_dropped_total "$after")"
    lines="$(wc -l <"$WORK/$target-access.log" 2>/dev/null || echo 0)"
    local otlp="gateway_otlp_spans_exported_total ${spans:-missing}, gateway_otlp_logs_exported_total ${logs:-missing}, failed ${sfail:-?} / ${lfail:-?}, gateway_otlp_dropped_total ${dropped:-?}; access log $lines lines"
    if [[ "${spans:-0}" -gt 0 && "${logs:-0}" -gt 0 && "${sfail:-0}" == 0 && "${lfail:-0}" == 0 && "${dropped:-0}" == 0 && "$lines" -gt 0 ]]; then
      SCEN_CHECK="$SCEN_CHECK; $otlp"
    else
      SCEN_CHECK="$SCEN_CHECK; WARNING: $otlp"
      log "warning: $label: $otlp"
    fi
  fi
  log "$label: quota admitted $admitted, limited $limited"
  printf '{"rss_kib": %s, "pids": "%s", "redis_pid": %s, "redis_version": "%s", "cache_ttl_ms": 1000, "quota_admitted": %s, "quota_limited": %s, "rt_sample_requests": %s, "health_probes": %s, "health_probe_failures": %s, "upstream_healthy": %s, "check": "%s"}\n' \
    "${rss:-null}" "$pid" "$REDIS_PID" "$REDIS_VERSION" "$admitted" "$limited" "$RT_REQUESTS" \
    "${probes:-null}" "${probes_failed:-null}" "${healthy:-null}" "$(json_escape "$SCEN_CHECK")" \
    >"$RAW/$target.meta.json"
  stop_pid "$pid"
}

# start_collector: the full-featured row's OTLP collector on free ports
# (pinned with the load side). Sets COLLECTOR_PID and FULL_TELEMETRY; returns
# 1 when it does not come up.
start_collector() {
  local cport hport
  cport="$("$BIN/bench-util" free-port)"
  hport="$("$BIN/bench-util" free-port)"
  ROTEL_VERSION="$("$ROTEL" --version 2>/dev/null | awk '{print $2}' || true)"
  log "starting the OTLP collector (rotel ${ROTEL_VERSION:-?}, blackhole exporter) on 127.0.0.1:$cport (gRPC), :$hport (HTTP)"
  "${LOAD_PIN[@]}" "$ROTEL" start --otlp-grpc-endpoint "127.0.0.1:$cport" --otlp-http-endpoint "127.0.0.1:$hport" \
    --exporter blackhole >"$WORK/collector.log" 2>&1 &
  COLLECTOR_PID=$!
  PIDS+=("$COLLECTOR_PID")
  if ! "$BIN/bench-util" wait-http --url "http://127.0.0.1:$hport/" --any-status --timeout-s 20 --pid "$COLLECTOR_PID"; then
    log "the collector did not start:"
    tail -20 "$WORK/collector.log" >&2 || true
    stop_pid "$COLLECTOR_PID"
    COLLECTOR_PID=""
    return 1
  fi
  AUX_PIDS+=("$COLLECTOR_PID")
  local port=$cport
  [[ "$OTLP_PROTOCOL" == http ]] && port=$hport
  FULL_TELEMETRY=", otlp: { endpoint: \"http://127.0.0.1:$port\", protocol: $OTLP_PROTOCOL, traces: true, logs: true, sampling_ratio: 1.0 }"
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
      --cpu-pid "$RG_PID" || true
  done
  wait_settled "$RG_ADMIN" "$RAW/$name.metrics-after.txt" "$name"
  stop_pid "$RG_PID"
}
