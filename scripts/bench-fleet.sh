#!/usr/bin/env bash
# The worker fleet on NATS JetStream against the single process, on the
# same machine: 2 worker processes per stage joined by nats-server, fed by
# loadgen flat out, delivering to fakeintake. Prints events/s for both, and
# the CPU and peak RSS of every process.
#
#   EVENTS=600000 ./scripts/bench-fleet.sh                      # one stage per worker
#   FUSED=1 EVENTS=600000 ./scripts/bench-fleet.sh              # three tiers
#   FUSED=1 FUSED_GROUPS="ingest,decode,parse,enrich,derive deliver-logs,deliver-metrics" \
#     EVENTS=600000 ./scripts/bench-fleet.sh                    # two tiers, hop before delivery
#   FUSED=1 FUSED_GROUPS="ingest decode,parse,enrich,derive,deliver-logs,deliver-metrics" \
#     EVENTS=600000 ./scripts/bench-fleet.sh                    # two tiers, hop after ingest (nats-tiers)
#
# Each worker is sized to one core (GOMAXPROCS=1, WORKER_GOMAXPROCS to
# change), as a CPU limit of 1 sizes it in a container: two workers per
# stage then add up to the machine's two cores, like the single process.
# Knobs for experiments: SUBSCRIBERS, COMPRESSION (s2|none), GOGC,
# GOMEMLIMIT, GODEBUG, FAKEINTAKE_PROFILE (a CPU profile of the intake),
# FAKEINTAKE_PPROF (its pprof address), INTAKE_LATENCY_MS and
# LOGS_CONCURRENCY (a slow intake, where delivery is bound by latency: then
# adding workers raises throughput even on two cores). PROFILE=dir writes a
# CPU profile of every gwpipe process and of nats-server, PROFILE_SECONDS
# long (6) from the start of each run, into dir (look with go tool pprof).
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
workers=() # this run's gwpipe workers (other gwpipes may run on the machine)
# The workers drain first, while nats-server and the intake still answer:
# stopped together, a worker's last metric points find no intake and are
# counted lost in its summary, and it waits out its drain deadline.
cleanup() {
  for p in "${workers[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${workers[@]}"; do wait "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM
wait_port() { for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.05; done; echo "no listener on $1" >&2; exit 1; }

bin/fakeintake -listen 127.0.0.1:18180 -keep 1000 ${FAKEINTAKE_PROFILE:+-cpuprofile $FAKEINTAKE_PROFILE} ${FAKEINTAKE_PPROF:+-pprof-listen $FAKEINTAKE_PPROF} 2> "$OUT/fakeintake.log" & intake=$!; pids+=($intake)
cpu_of() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }
rm -rf "$OUT/nats"; "$NATS_BIN" -a 127.0.0.1 -p 18222 -m 18224 ${PROFILE:+--profile 18223} -js -sd "$OUT/nats" > "$OUT/nats.log" 2>&1 & natspid=$!; pids+=($natspid)
[ -n "${PROFILE:-}" ] && mkdir -p "$PROFILE"
profile() { # name address: a CPU profile in the background
  [ -z "${PROFILE:-}" ] && return 0
  curl -s -o "$PROFILE/$1.pprof" "http://$2/debug/pprof/profile?seconds=${PROFILE_SECONDS:-6}" & profs+=($!)
}
profs=()
wait_port 127.0.0.1:18180; wait_port 127.0.0.1:18222
if [ -n "${INTAKE_LATENCY_MS:-}" ]; then # a slow intake: delivery bound by latency, not CPU
  curl -sf -X POST -d "{\"latency_ms\": $INTAKE_LATENCY_MS, \"endpoints\": [\"logs\"]}" http://127.0.0.1:18180/admin/fail >/dev/null
fi

common=(${GOGC:+GOGC=$GOGC} ${GODEBUG:+GODEBUG=$GODEBUG} ${GOMEMLIMIT:+GOMEMLIMIT=$GOMEMLIMIT} ${COMPRESSION:+GWPIPE_TRANSPORT_NATS_COMPRESSION=$COMPRESSION} ${LOGS_CONCURRENCY:+GWPIPE_DATADOG_LOGS_CONCURRENCY=$LOGS_CONCURRENCY} DD_API_KEY=bench GWPIPE_DATADOG_LOGS_URL=http://127.0.0.1:18180/api/v2/logs GWPIPE_DATADOG_API_URL=http://127.0.0.1:18180
  GWPIPE_SOURCES_FIREHOSE_ACCESS_KEYS=$KEY GWPIPE_LOG_LEVEL=warn GWPIPE_TRANSPORT_SUBSCRIBERS=${SUBSCRIBERS:-8} GWPIPE_ENRICH_AWS_TAGS=false GWPIPE_ADMIN_LISTEN= GWPIPE_DLQ_DIR=$OUT/dlq ${PROFILE:+GWPIPE_ADMIN_PPROF=true})

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
wait_port 127.0.0.1:18299; profile single 127.0.0.1:18299
fi0=$(cpu_of $intake)
start=$(date +%s.%N); single_rate=$(run_load single); wait_drained "$EVENTS"; end=$(date +%s.%N)
fi1=$(cpu_of $intake)
single_e2e=$(awk -v n="$EVENTS" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", n / (b - a) }')
single_cpu=$(awk '{ printf "%.2f", ($14 + $15) / 100 }' /proc/$single/stat)
single_hwm=$(awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' /proc/$single/status)
[ ${#profs[@]} -gt 0 ] && wait "${profs[@]}"; profs=()
kill -TERM $single; wait $single || true
curl -s -X POST http://127.0.0.1:18180/admin/reset >/dev/null

echo "== fleet: $WORKERS workers per stage${FUSED:+ (fused groups)} on NATS"
: > "$OUT/workers.txt"
fleet=("${common[@]}" GOMAXPROCS=${WORKER_GOMAXPROCS:-1} GWPIPE_TRANSPORT_KIND=nats GWPIPE_TRANSPORT_NATS_URL=nats://127.0.0.1:18222)
port=18300
first_group=${FUSED_GROUPS:-}; first_group=${first_group%% *}
case ",$first_group," in
*,ingest,*) ;; # the first group takes the Firehose port itself (SO_REUSEPORT)
*) # its own admin endpoint: PROFILE=dir profiles it too (pprof needs one)
   env "${fleet[@]}" GWPIPE_ADMIN_LISTEN=127.0.0.1:18298 GWPIPE_SOURCES_FIREHOSE_LISTEN=127.0.0.1:18188 bin/gwpipe run --stages ingest 2> "$OUT/ingest.log" & pids+=($!); workers+=($!)
   echo "ingest-1 admin 127.0.0.1:18298" >> "$OUT/workers.txt" ;;
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
      bin/gwpipe run --stages "$s" 2> "$OUT/$s-$i.log" & pids+=($!); workers+=($!)
    echo "$s-$i admin 127.0.0.1:$port" >> "$OUT/workers.txt"
    port=$((port + 1))
  done
done
wait_port 127.0.0.1:18188
if [ -n "${PROFILE:-}" ]; then
  while read -r name _ addr; do wait_port "$addr"; profile "$name" "$addr"; done < "$OUT/workers.txt"
  profile nats-server 127.0.0.1:18223
fi
fi2=$(cpu_of $intake)
# What the fleet spent before any event (starting, provisioning, idle pulls).
idle_cpu=$(for pid in $natspid "${workers[@]}"; do cpu_of $pid; echo; done | awk '{ s += $1 } END { printf "%.2f", s }')
idle_nats=$(cpu_of $natspid)
start=$(date +%s.%N); fleet_rate=$(run_load fleet); wait_drained "$EVENTS"; end=$(date +%s.%N)
fi3=$(cpu_of $intake)
[ ${#profs[@]} -gt 0 ] && wait "${profs[@]}"
fleet_e2e=$(awk -v n="$EVENTS" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", n / (b - a) }')
echo "CPU seconds and peak RSS per process (fleet run):"
for pid in $intake $natspid "${workers[@]}"; do
  hwm=$(awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' /proc/$pid/status)
  awk -v hwm="$hwm" -v args="$(tr '\0' ' ' < /proc/$pid/cmdline)" '{ printf "  %6.2f s %5d MiB  %s\n", ($14 + $15) / 100, hwm, args }' /proc/$pid/stat
done

# What crossed the broker: batches published per stream, and the bytes
# and messages the server took in (publishes, acknowledgements, pulls).
curl -s -o "$OUT/jsz.json" 'http://127.0.0.1:18224/jsz?streams=true'; curl -s -o "$OUT/varz.json" http://127.0.0.1:18224/varz
python3 - "$OUT/jsz.json" "$OUT/varz.json" <<'PY' || true
import json, sys
jsz, varz = (json.load(open(f)) for f in sys.argv[1:3])
for a in jsz.get("account_details", []):
    for d in a.get("stream_detail", []):
        if d["state"]["last_seq"]:
            print("  stream %-14s %6d batches published" % (d["name"], d["state"]["last_seq"]))
print("  nats-server took in %d messages, %.1f MiB; sent %d messages, %.1f MiB" % (varz["in_msgs"], varz["in_bytes"] / 2**20, varz["out_msgs"], varz["out_bytes"] / 2**20))
PY
fleet_cpu=$(for pid in "${workers[@]}"; do awk '{ print ($14 + $15) / 100 }' /proc/$pid/stat; done | awk '{ s += $1 } END { printf "%.2f", s }')
awk -v a="$fi0" -v b="$fi1" -v c="$fi2" -v d="$fi3" 'BEGIN { printf "fakeintake CPU seconds: single run %.2f, fleet run %.2f\n", b - a, d - c }'
echo "gwpipe CPU seconds: single $single_cpu (peak RSS $single_hwm MiB), fleet $fleet_cpu (all workers)"
echo "single process: $single_e2e events/s end to end (ingest acknowledged at $single_rate/s)"
echo "fleet ($WORKERS per stage): $fleet_e2e events/s end to end (ingest acknowledged at $fleet_rate/s)"
awk -v a="$fleet_e2e" -v b="$single_e2e" 'BEGIN { printf "fleet / single = %.0f%%\n", 100 * a / b }'
# The cost: events per CPU-second of the pipeline (every worker and
# nats-server, not the load generator or the intake).
nats_cpu=$(cpu_of $natspid)
echo "fleet CPU seconds before the load: $idle_cpu (nats-server $idle_nats)"
awk -v n="$EVENTS" -v s="$single_cpu" -v f="$fleet_cpu" -v b="$nats_cpu" 'BEGIN {
  printf "events per CPU-second: single %.0f, fleet %.0f (workers %.2f + nats-server %.2f CPU-s) = %.1f%% of single\n", n / s, n / (f + b), f, b, 100 * s / (f + b) }'
