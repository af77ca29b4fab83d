#!/usr/bin/env bash
# make bench-e2e: one end-to-end run on loopback. gwpipe runs on its own in
# a process (its CPU time and peak RSS are read from /proc by loadgen), fed
# by loadgen flat out, delivering to fakeintake. Then a second run at half
# the measured maximum rate gives the acknowledgement latency under load.
#
#   EVENTS=1000000 MIX=json=1 ./scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${EVENTS:-1000000}
MIX=${MIX:-json=1}              # the target is set on JSON access logs
CONCURRENCY=${CONCURRENCY:-8}
HALF_SECONDS=${HALF_SECONDS:-20}
PORT_BASE=${PORT_BASE:-18080}
INTAKE=127.0.0.1:$PORT_BASE
FIREHOSE=127.0.0.1:$((PORT_BASE + 8))
ADMIN=127.0.0.1:$((PORT_BASE + 9))
OUT=data/bench
mkdir -p "$OUT"
KEY=bench-key

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.05; done; echo "no listener on $1" >&2; exit 1; }

# The intake keeps only a few logs in memory: it is not what is measured.
bin/fakeintake -listen "$INTAKE" -keep 1000 2> "$OUT/fakeintake.log" & pids+=($!)
wait_port "$INTAKE"

DD_API_KEY=bench GWPIPE_DATADOG_LOGS_URL="http://$INTAKE/api/v2/logs" GWPIPE_DATADOG_API_URL="http://$INTAKE" \
GWPIPE_SOURCES_FIREHOSE_LISTEN="$FIREHOSE" GWPIPE_SOURCES_FIREHOSE_ACCESS_KEYS="$KEY" \
GWPIPE_ADMIN_LISTEN="$ADMIN" GWPIPE_DLQ_DIR="$OUT/dlq" GWPIPE_LOG_LEVEL=warn GWPIPE_ENRICH_AWS_TAGS=false \
  bin/gwpipe run 2> "$OUT/gwpipe.log" > "$OUT/gwpipe.out" & GW=$!; pids+=($GW)
wait_port "$FIREHOSE"

echo "== max throughput: $EVENTS events, mix $MIX, $CONCURRENCY requests in flight"
bin/loadgen -url "http://$FIREHOSE/" -access-key "$KEY" -events "$EVENTS" -mix "$MIX" -concurrency "$CONCURRENCY" \
  -control-rate 0 -progress 0 -report -watch-pid "$GW" > "$OUT/max.json"
rate=$(sed -n 's/^ *"events_per_second": \([0-9.]*\).*/\1/p' "$OUT/max.json" | head -1)
half=$(awk -v r="$rate" 'BEGIN { printf "%d", r / 2 }')

echo "== half of maximum: $half events/s for ${HALF_SECONDS}s"
bin/loadgen -url "http://$FIREHOSE/" -access-key "$KEY" -rate "$half" -duration "${HALF_SECONDS}s" -mix "$MIX" \
  -concurrency "$CONCURRENCY" -control-rate 0 -progress 0 -report -watch-pid "$GW" -seed 2 > "$OUT/half.json"

echo "== reports: $OUT/max.json $OUT/half.json"
kill -TERM "$GW"; wait "$GW" || true
tail -n 8 "$OUT/gwpipe.out"
