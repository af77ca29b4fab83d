#!/usr/bin/env bash
# The worker fleet on NATS JetStream against the single process, on the
# same machine: 2 worker processes per stage joined by nats-server, fed by
# loadgen flat out, delivering to fakeintake. Prints events/s for both, and
# the CPU and peak RSS of every process.
#
#   EVENTS=600000 ./scripts/bench-fleet.sh                      # one stage per worker
#   FUSED=1 EVENTS=600000 ./scripts/bench-fleet.sh              # three tiers
#   FUSED=1 FUSED_GROUPS="ingest,decode,parse,enrich,derive deliver-logs,deliver-metrics" \
#     EVENTS=600000 ./scripts/bench-fleet.sh                    # two tiers, shared port
#
# Each worker is sized to one core (GOMAXPROCS=1, WORKER_GOMAXPROCS to
# change), as a CPU limit of 1 sizes it in a container: two workers per
# stage then add up to the machine's two cores, like the single process.
# Knobs for experiments: SUBSCRIBERS, COMPRESSION (s2|none), GOGC,
# GOMEMLIMIT, GODEBUG, FAKEINTAKE_PROFILE (a CPU profile of the intake),
# FAKEINTAKE_PPROF (its pprof address), INTAKE_LATENCY_MS and
# LOGS_CONCURRENCY (a slow intake, where delivery is bound by latency: then
# adding workers raises throughput even on two cores).
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${EVENTS:-300000}
WORKERS=${WORKERS:-2}
MIX=${MIX:-json=1}
OUT=data/bench-fleet
mkdir -p "$OUT"
KEY=bench-key
NATS_BIN=$(command -v nats-server || true)
if [ -z "$NATS_BIN" ]; then
  GOBIN="$PWD/bin" go install github.com/nats-io/nats-server/v2@v2.15.2
  NATS_BIN=$PWD/bin/nats-server
fi

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.05; done; echo "no listener on $1" >&2; exit 1; }

bin/fakeintake -listen 127.0.0.1:18180 -keep 1000 ${FAKEINTAKE_PROFILE:+-cpuprofile $FAKEINTAKE_PROFILE} ${FAKEINTAKE_PPROF:+-pprof-listen $FAKEINTAKE_PPROF} 2> "$OUT/fakeintake.log" & intake=$!; pids+=($intake)
cpu_of() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }
rm -rf "$OUT/nats"; "$NATS_BIN" -a 127.0.0.1 -p 18222 -js -sd "$OUT/nats" > "$OUT/nats.log" 2>&1 & pids+=($!)
wait_port 127.0.0.1:18180; wait_port 127.0.0.1:18222
if [ -n "${INTAKE_LATENCY_MS:-}" ]; then # a slow intake: delivery bound by latency, not CPU
  curl -sf -X POST -d "{\"latency_ms\": $INTAKE_LATENCY_MS, \"endpoints\": [\"logs\"]}" http://127.0.0.1:18180/admin/fail >/dev/null
fi

common=(${GOGC:+GOGC=$GOGC} ${GODEBUG:+GODEBUG=$GODEBUG} ${GOMEMLIMIT:+GOMEMLIMIT=$GOMEMLIMIT} ${COMPRESSION:+GWPIPE_TRANSPORT_NATS_COMPRESSION=$COMPRESSION} ${LOGS_CONCURRENCY:+GWPIPE_DATADOG_LOGS_CONCURRENCY=$LOGS_CONCURRENCY} DD_API_KEY=bench GWPIPE_DATADOG_LOGS_URL=http://127.0.0.1:18180/api/v2/logs GWPIPE_DATADOG_API_URL=http://127.0.0.1:18180
  GWPIPE_SOURCES_FIREHOSE_ACCESS_KEYS=$KEY GWPIPE_LOG_LEVEL=warn GWPIPE_TRANSPORT_SUBSCRIBERS=${SUBSCRIBERS:-8} GWPIPE_ENRICH_AWS_TAGS=false GWPIPE_ADMIN_LISTEN= GWPIPE_DLQ_DIR=$OUT/dlq)

run_load() { # name
  bin/loadgen -url http://127.0.0.1:18188/ -access-key "$KEY" -events "$EVENTS" -mix "$MIX" -concurrency 8 \
    -control-rate 0 -progress 0 -report > "$OUT/$1.json"
  sed -n 's/^ *"events_per_second": \([0-9.]*\).*/\1/p' "$OUT/$1.json" | head -1
}
wait_drained() { # the intake has every event
  for _ in $(seq 1 600); do
    n=$(curl -s http://127.0.0.1:18180/stats | sed -n 's/.*"logs_accepted": *\([0-9]*\).*/\1/p')
    [ "${n:-0}" -ge "$1" ] && return 0; sleep 0.1
  done
}

echo "== single process"
env "${common[@]}" GWPIPE_ADMIN_LISTEN=127.0.0.1:18299 GWPIPE_SOURCES_FIREHOSE_LISTEN=127.0.0.1:18188 bin/gwpipe run 2> "$OUT/single.log" & single=$!; pids+=($single)
wait_port 127.0.0.1:18188
fi0=$(cpu_of $intake)
start=$(date +%s.%N); single_rate=$(run_load single); wait_drained "$EVENTS"; end=$(date +%s.%N)
fi1=$(cpu_of $intake)
single_e2e=$(awk -v n="$EVENTS" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", n / (b - a) }')
single_cpu=$(awk '{ printf "%.2f", ($14 + $15) / 100 }' /proc/$single/stat)
single_hwm=$(awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' /proc/$single/status)
kill -TERM $single; wait $single || true
curl -s -X POST http://127.0.0.1:18180/admin/reset >/dev/null

echo "== fleet: $WORKERS workers per stage${FUSED:+ (fused groups)} on NATS"
: > "$OUT/workers.txt"
fleet=("${common[@]}" GOMAXPROCS=${WORKER_GOMAXPROCS:-1} GWPIPE_TRANSPORT_KIND=nats GWPIPE_TRANSPORT_NATS_URL=nats://127.0.0.1:18222)
port=18300
case "${FUSED_GROUPS:-}" in
ingest,*) ;; # the groups take the Firehose port themselves (SO_REUSEPORT)
*) env "${fleet[@]}" GWPIPE_SOURCES_FIREHOSE_LISTEN=127.0.0.1:18188 bin/gwpipe run --stages ingest 2> "$OUT/ingest.log" & pids+=($!) ;;
esac
# FUSED=1: three tiers: ingest, processing (decode, parse, enrich and
# derive, handed from stage to stage in memory) and delivery. Enriched
# batches are published for deliver-logs alone (derive ran in memory) and
# metrics for deliver-metrics.
groups="decode parse enrich deliver-logs derive deliver-metrics"
[ -n "${FUSED:-}" ] && groups="${FUSED_GROUPS:-decode,parse,enrich,derive deliver-logs,deliver-metrics}"
for s in $groups; do
  for i in $(seq 1 "$WORKERS"); do
    # Each worker's admin endpoint (status, pprof) on its own port.
    env "${fleet[@]}" GWPIPE_ADMIN_LISTEN=127.0.0.1:$port GWPIPE_SOURCES_FIREHOSE_LISTEN=127.0.0.1:18188 GWPIPE_SOURCES_FIREHOSE_REUSE_PORT=true \
      bin/gwpipe run --stages "$s" 2> "$OUT/$s-$i.log" & pids+=($!)
    echo "$s-$i admin 127.0.0.1:$port" >> "$OUT/workers.txt"
    port=$((port + 1))
  done
done
wait_port 127.0.0.1:18188
fi2=$(cpu_of $intake)
start=$(date +%s.%N); fleet_rate=$(run_load fleet); wait_drained "$EVENTS"; end=$(date +%s.%N)
fi3=$(cpu_of $intake)
fleet_e2e=$(awk -v n="$EVENTS" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", n / (b - a) }')
echo "CPU seconds and peak RSS per process (fleet run):"
for pid in $(pgrep -f 'bin/(gwpipe run|nats-server|fakeintake)'); do
  hwm=$(awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' /proc/$pid/status)
  awk -v hwm="$hwm" -v args="$(tr '\0' ' ' < /proc/$pid/cmdline)" '{ printf "  %6.2f s %5d MiB  %s\n", ($14 + $15) / 100, hwm, args }' /proc/$pid/stat
done

fleet_cpu=$(for pid in $(pgrep -f 'bin/gwpipe run'); do awk '{ print ($14 + $15) / 100 }' /proc/$pid/stat; done | awk '{ s += $1 } END { printf "%.2f", s }')
awk -v a="$fi0" -v b="$fi1" -v c="$fi2" -v d="$fi3" 'BEGIN { printf "fakeintake CPU seconds: single run %.2f, fleet run %.2f\n", b - a, d - c }'
echo "gwpipe CPU seconds: single $single_cpu (peak RSS $single_hwm MiB), fleet $fleet_cpu (all workers)"
echo "single process: $single_e2e events/s end to end (ingest acknowledged at $single_rate/s)"
echo "fleet ($WORKERS per stage): $fleet_e2e events/s end to end (ingest acknowledged at $fleet_rate/s)"
awk -v a="$fleet_e2e" -v b="$single_e2e" 'BEGIN { printf "fleet / single = %.0f%%\n", 100 * a / b }'
