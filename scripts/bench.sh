#!/usr/bin/env bash
# make bench-e2e: one end-to-end run on loopback, and the floor of the same
# work measured around it.
#
# gwpipe runs on its own in a process (its CPU time and peak RSS are read
# from /proc by loadgen -watch-pid), fed by loadgen flat out with JSON access
# logs in CloudWatch envelopes (CONCURRENCY senders, RECORDS records of up to
# EVENTS_PER_RECORD events per request), delivering to the strict fakeintake.
# Then a second run at half the measured maximum rate gives the
# acknowledgement latency under load.
#
# The floor (loadgen -floor, package pkg/testkit/floor) is a single-core loop
# doing only the unavoidable work on the same traffic: gunzip each envelope,
# parse it and its messages with fastjson, write Datadog logs, gzip them at
# level 1. It runs right before and right after the maximum run; the ratio
# divides gwpipe's events per CPU-second by their mean. It is run twice:
# writing the issue's minimal log (message, CloudWatch fields, the message's
# fields), and writing the output contract's whole log (also the API's tags,
# the standard attributes, the duration and the level), which is what
# gwpipe writes: about 30 % more bytes to gzip. Events per CPU-second
# (of the measured process only) are steadier than wall-clock rates on a
# shared machine; the ratio, measured in the same run, steadier still.
#
#   EVENTS=1000000 ./scripts/bench.sh
#   PROFILE=1 ./scripts/bench.sh     # also a CPU profile of gwpipe during
#                                    # the maximum run, and its per-stage
#                                    # table (scripts/profile-stages.sh)
#   GWPIPE=bin/gwpipe-old ./scripts/bench.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/.."

GWPIPE=${GWPIPE:-bin/gwpipe}
EVENTS=${EVENTS:-1000000}
MIX=${MIX:-json=1}              # the target is set on JSON access logs
CONCURRENCY=${CONCURRENCY:-8}
RECORDS=${RECORDS:-10}
EVENTS_PER_RECORD=${EVENTS_PER_RECORD:-500}
HALF_SECONDS=${HALF_SECONDS:-20}     # 0: no half-load run
FLOOR_EVENTS=${FLOOR_EVENTS:-$((EVENTS / 2))}
PROFILE=${PROFILE:-0}
PORT_BASE=${PORT_BASE:-18080}
INTAKE=127.0.0.1:$PORT_BASE
FIREHOSE=127.0.0.1:$((PORT_BASE + 8))
ADMIN=127.0.0.1:$((PORT_BASE + 9))
OUT=${OUT:-data/bench}
mkdir -p "$OUT"
KEY=bench-key
TRAFFIC=(-mix "$MIX" -records-per-request "$RECORDS" -events-per-record "$EVENTS_PER_RECORD" -control-rate 0)

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.05; done; echo "no listener on $1" >&2; exit 1; }
# field FILE KEY: the first number under "KEY" in a JSON report.
field() { grep -o "\"$2\": *[0-9.e+-]*" "$1" 2>/dev/null | head -1 | sed 's/.*: *//'; }
# p99 of the ack latency of a loadgen -report.
ack_p99() { sed -n '/"ack_latency_ms"/,/}/s/^ *"p99": \([0-9.]*\).*/\1/p' "$1" | head -1; }

# floor NAME: the issue's probe (message, CloudWatch fields, the message's
# fields), then the same loop writing the whole log of the output contract
# (also API tags, standard attributes, duration, level: what gwpipe must
# write, so the same bytes to gzip).
floor() {
	bin/loadgen -floor -events "$FLOOR_EVENTS" "${TRAFFIC[@]}" -report > "$OUT/floor-$1.json"
	bin/loadgen -floor -floor-contract -events "$FLOOR_EVENTS" "${TRAFFIC[@]}" -report > "$OUT/floor-contract-$1.json"
}

# The intake keeps only a few logs in memory: it is not what is measured.
bin/fakeintake -listen "$INTAKE" -keep 1000 2> "$OUT/fakeintake.log" & pids+=($!)
wait_port "$INTAKE"

DD_API_KEY=bench GWPIPE_DATADOG_LOGS_URL="http://$INTAKE/api/v2/logs" GWPIPE_DATADOG_API_URL="http://$INTAKE" \
GWPIPE_SOURCES_FIREHOSE_LISTEN="$FIREHOSE" GWPIPE_SOURCES_FIREHOSE_ACCESS_KEYS="$KEY" \
GWPIPE_ADMIN_LISTEN="$ADMIN" GWPIPE_ADMIN_PPROF="$([ "$PROFILE" = 1 ] && echo true || echo false)" \
GWPIPE_DLQ_DIR="$OUT/dlq" GWPIPE_LOG_LEVEL=warn GWPIPE_ENRICH_AWS_TAGS=false \
  "$GWPIPE" run 2> "$OUT/gwpipe.log" > "$OUT/gwpipe.out" & GW=$!; pids+=($GW)
wait_port "$FIREHOSE"

echo "== floor: $FLOOR_EVENTS events on one core"
floor before
echo "== max throughput: $EVENTS events, mix $MIX, $CONCURRENCY requests in flight of $RECORDS records of <= $EVENTS_PER_RECORD events"
if [ "$PROFILE" = 1 ]; then
	# Profile the middle of the run: the seconds while loadgen is busy.
	bin/loadgen -url "http://$FIREHOSE/" -access-key "$KEY" -events "$EVENTS" "${TRAFFIC[@]}" -concurrency "$CONCURRENCY" \
		-progress 0 -report -watch-pid "$GW" > "$OUT/max.json" & LG=$!
	curl -fsS -o "$OUT/cpu.pprof" "http://$ADMIN/debug/pprof/profile?seconds=${PROFILE_SECONDS:-10}" || true
	wait "$LG"
	# Allocations since the start: the maximum run's (nothing came before).
	curl -fsS -o "$OUT/allocs.pprof" "http://$ADMIN/debug/pprof/allocs" || true
else
	bin/loadgen -url "http://$FIREHOSE/" -access-key "$KEY" -events "$EVENTS" "${TRAFFIC[@]}" -concurrency "$CONCURRENCY" \
		-progress 0 -report -watch-pid "$GW" > "$OUT/max.json"
fi
floor after
rate=$(field "$OUT/max.json" events_per_second)
half=$(awk -v r="$rate" 'BEGIN { printf "%d", r / 2 }')

if [ "$HALF_SECONDS" != 0 ]; then
	echo "== half of maximum: $half events/s for ${HALF_SECONDS}s"
	bin/loadgen -url "http://$FIREHOSE/" -access-key "$KEY" -rate "$half" -duration "${HALF_SECONDS}s" "${TRAFFIC[@]}" \
		-concurrency "$CONCURRENCY" -progress 0 -report -watch-pid "$GW" -seed 2 > "$OUT/half.json"
else
	cp "$OUT/max.json" "$OUT/half.json" # no half-load run: its figures are the maximum run's
fi

curl -fsS -o "$OUT/intake.json" "http://$INTAKE/stats" || true
kill -TERM "$GW"; wait "$GW" || true
tail -n 8 "$OUT/gwpipe.out"

gw=$(field "$OUT/max.json" events_per_cpu_second)
fb=$(field "$OUT/floor-before.json" events_per_cpu_second)
fa=$(field "$OUT/floor-after.json" events_per_cpu_second)
cb=$(field "$OUT/floor-contract-before.json" events_per_cpu_second)
ca=$(field "$OUT/floor-contract-after.json" events_per_cpu_second)
logs=$(field "$OUT/intake.json" logs_accepted)
wire=$(field "$OUT/intake.json" bytes_received)
plain=$(field "$OUT/intake.json" bytes_uncompressed)
rss=$(field "$OUT/half.json" peak_rss_mib)
awk -v gw="$gw" -v fb="$fb" -v fa="$fa" -v cb="$cb" -v ca="$ca" -v cplain="$(field "$OUT/floor-contract-after.json" plain_bytes)" -v cev="$(field "$OUT/floor-contract-after.json" events)" -v p99="$(ack_p99 "$OUT/max.json")" -v h99="$(ack_p99 "$OUT/half.json")" -v rss="$rss" \
	-v logs="${logs:-0}" -v wire="${wire:-0}" -v plain="${plain:-0}" -v fout="$(field "$OUT/floor-after.json" out_bytes)" -v fplain="$(field "$OUT/floor-after.json" plain_bytes)" -v fev="$(field "$OUT/floor-after.json" events)" 'BEGIN {
	f = (fb + fa) / 2
	printf "\n== summary (reports in '"$OUT"')\n"
	printf "gwpipe           %8.0f events per CPU-second (pipeline process only)\n", gw
	printf "floor            %8.0f events per CPU-second (one core; %.0f before, %.0f after)\n", f, fb, fa
	c = (cb + ca) / 2
	printf "ratio            %8.3f (target >= 0.70)\n", gw / f
	printf "floor, contract  %8.0f events per CPU-second (the same loop writing the output contract'"'"'s whole log, %.0f bytes; %.0f before, %.0f after)\n", c, cplain / cev, cb, ca
	printf "ratio, contract  %8.3f\n", gw / c
	printf "ack p99 full     %8.1f ms (target <= 1000)\n", p99
	printf "ack p99 half     %8.1f ms (target <= 250)\n", h99
	printf "peak RSS         %8.1f MiB (target <= 256)\n", rss
	if (logs > 0) printf "intake bytes     %8.0f per log as sent, %.0f uncompressed (metrics included); floor: %.0f, %.0f\n", wire / logs, plain / logs, fout / fev, fplain / fev
}' | tee "$OUT/summary.txt"
if [ "$PROFILE" = 1 ] && [ -s "$OUT/cpu.pprof" ]; then
	nspe=$(awk -v gw="$gw" 'BEGIN { printf "%.0f", 1e9 / gw }')
	./scripts/profile-stages.sh "$OUT/cpu.pprof" "$GWPIPE" "$nspe" | tee "$OUT/stages.txt"
	# pprof totals ("... of 1.2GB total"): bytes and objects allocated per event.
	total() { go tool pprof -sample_index="$1" -top "$GWPIPE" "$OUT/allocs.pprof" 2>/dev/null | sed -n 's/.* of \([0-9.]*[kMG]*B*\) total.*/\1/p' | head -1; }
	awk -v b="$(total alloc_space)" -v o="$(total alloc_objects)" -v ev="$(field "$OUT/max.json" events_acked)" 'BEGIN {
		m = 1; if (b ~ /GB$/) m = 1e9; else if (b ~ /MB$/) m = 1e6; else if (b ~ /kB$/) m = 1e3
		n = 1; if (o ~ /M$/) n = 1e6; else if (o ~ /k$/) n = 1e3
		if (ev > 0) printf "allocated        %8.0f bytes, %.2f objects per event (maximum run)\n", (b + 0) * m / ev, (o + 0) * n / ev
	}' | tee -a "$OUT/stages.txt"
fi
