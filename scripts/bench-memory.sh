#!/usr/bin/env bash
# make bench-memory: peak RSS of gwpipe (default configuration) under the
# three loads that used to exhaust its memory (issue 12):
#
#   flood  SENDERS concurrent senders of Firehose-sized requests
#          (~2.4 MB, 50,000 events each) into a fast intake;
#   slow   the same for SLOW_SECONDS into an intake that takes
#          INTAKE_LATENCY_MS per request (loadgen is stopped then: at 2,000
#          events/s the requests would take many minutes to drain);
#   bomb   BOMBS requests of BOMB_RECORDS records, each of which
#          decompresses to BOMB_RECORD_MIB MiB of well-formed events (the
#          issue's: 40 records of 32 MiB, 1.25 GiB of events);
#   fit    the same total in records that fit decode.max_decompressed_bytes
#          (FIT_RECORDS of FIT_RECORD_MIB MiB): the per-request bound and
#          the budget are what hold.
#
# Each scenario starts a fresh gwpipe and prints its peak RSS (VmHWM), the
# most bytes its memory budget held (pipeline.max_held_bytes, from /status)
# and the Firehose statuses seen. RSS hardly depends on how busy the CPU
# is, so the figures mean something on a shared machine; throughput does
# not, and is not the point here.
#
#   GWPIPE=bin/gwpipe SCENARIOS="flood slow bomb" ./scripts/bench-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."

GWPIPE=${GWPIPE:-bin/gwpipe}
SCENARIOS=${SCENARIOS:-flood slow bomb fit}
SENDERS=${SENDERS:-24}
EVENTS=${EVENTS:-1200000}       # flood: 24 requests per sender
SLOW_SECONDS=${SLOW_SECONDS:-60}
INTAKE_LATENCY_MS=${INTAKE_LATENCY_MS:-2000}
BOMBS=${BOMBS:-1}
BOMB_RECORDS=${BOMB_RECORDS:-40}
BOMB_RECORD_MIB=${BOMB_RECORD_MIB:-32}
FIT_RECORDS=${FIT_RECORDS:-168}
FIT_RECORD_MIB=${FIT_RECORD_MIB:-7.6}
PORT_BASE=${PORT_BASE:-18180}
INTAKE=127.0.0.1:$PORT_BASE
FIREHOSE=127.0.0.1:$((PORT_BASE + 8))
ADMIN=127.0.0.1:$((PORT_BASE + 9))
OUT=data/bench-memory
KEY=bench-key
mkdir -p "$OUT"

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.05; done; echo "no listener on $1" >&2; exit 1; }
peak_rss_mib() { awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
# The budget's high-water mark, when this gwpipe has one (an older build
# does not: "-").
held_peak_mib() {
	curl -fsS "http://$ADMIN/status" 2>/dev/null |
		sed -n 's/.*"memory\.peak_bytes": *\([0-9]*\).*/\1/p' | awk '{ printf "%.0f", $1 / 1048576 } END { if (NR == 0) printf "-" }'
}
# How the requests were answered: from a -report, else the last progress line.
statuses() {
	if [ -s "$1.json" ]; then
		tr -d ' \n' < "$1.json" | sed -n 's/.*"statuses":{\([^}]*\)}.*/statuses {\1}/p' | tr -d '"' | tr ',' ' '
	else
		sed -n 's/.*\(statuses {[^}]*}\).*/\1/p' "$1" | tail -1
	fi
}

bin/fakeintake -listen "$INTAKE" -keep 1000 2> "$OUT/fakeintake.log" & pids+=($!)
wait_port "$INTAKE"

start_gwpipe() {
	rm -rf "$OUT/dlq"
	DD_API_KEY=bench GWPIPE_DATADOG_LOGS_URL="http://$INTAKE/api/v2/logs" GWPIPE_DATADOG_API_URL="http://$INTAKE" \
	GWPIPE_SOURCES_FIREHOSE_LISTEN="$FIREHOSE" GWPIPE_SOURCES_FIREHOSE_ACCESS_KEYS="$KEY" \
	GWPIPE_ADMIN_LISTEN="$ADMIN" GWPIPE_DLQ_DIR="$OUT/dlq" GWPIPE_LOG_LEVEL=warn GWPIPE_ENRICH_AWS_TAGS=false \
		"$GWPIPE" run 2> "$OUT/gwpipe-$1.log" > "$OUT/gwpipe-$1.out" & GW=$!
	pids+=($GW)
	wait_port "$FIREHOSE"
}

stop_gwpipe() {
	printf '%-6s peak RSS %5s MiB   budget held at most %5s MiB   %s\n' "$1" "$(peak_rss_mib "$GW")" "$(held_peak_mib)" "$2"
	kill -TERM "$GW"; wait "$GW" || true
}

# Firehose-sized requests: 1,000 records of 50 events, ~2.4 MB on the wire.
flood_args=(-url "http://$FIREHOSE/" -access-key "$KEY" -concurrency "$SENDERS" -records-per-request 1000
	-events-per-record 50 -control-rate 0 -progress 1s -initial-backoff 200ms -max-backoff 2s)

for sc in $SCENARIOS; do
	case $sc in
	flood)
		start_gwpipe flood
		bin/loadgen "${flood_args[@]}" -events "$EVENTS" -report 2> "$OUT/loadgen-flood.log" > "$OUT/loadgen-flood.log.json" ||
			echo "flood: loadgen failed (see $OUT/loadgen-flood.log)"
		stop_gwpipe flood "$(statuses "$OUT/loadgen-flood.log")"
		;;
	slow)
		curl -fsS -X POST "http://$INTAKE/admin/fail" -d "{\"latency_ms\": $INTAKE_LATENCY_MS, \"endpoints\": [\"logs\"]}" > /dev/null
		start_gwpipe slow
		rm -f "$OUT/loadgen-slow.log.json"
		bin/loadgen "${flood_args[@]}" 2> "$OUT/loadgen-slow.log" & LG=$!
		sleep "$SLOW_SECONDS"
		kill -KILL "$LG"; wait "$LG" 2>/dev/null || true
		stop_gwpipe slow "$(statuses "$OUT/loadgen-slow.log")"
		curl -fsS -X DELETE "http://$INTAKE/admin/fail" > /dev/null
		;;
	bomb | fit)
		records=$BOMB_RECORDS mib=$BOMB_RECORD_MIB
		[ "$sc" = fit ] && records=$FIT_RECORDS mib=$FIT_RECORD_MIB
		start_gwpipe "$sc"
		bin/loadgen -url "http://$FIREHOSE/" -access-key "$KEY" -concurrency "$BOMBS" -bomb "$BOMBS" \
			-bomb-records "$records" -bomb-record-bytes "$(awk -v m="$mib" 'BEGIN { printf "%d", m * 1048576 }')" \
			-initial-backoff 200ms -max-backoff 2s 2> "$OUT/loadgen-$sc.log" || echo "$sc: loadgen failed (see $OUT/loadgen-$sc.log)"
		rm -f "$OUT/loadgen-$sc.log.json"
		stop_gwpipe "$sc" "$(statuses "$OUT/loadgen-$sc.log")"
		sed -n 's/^ *\(logs delivered.*\|dead-lettered.*\)/         \1/p' "$OUT/gwpipe-$sc.out"
		;;
	*) echo "unknown scenario $sc (flood, slow, bomb, fit)" >&2; exit 2 ;;
	esac
done
