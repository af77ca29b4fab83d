#!/usr/bin/env bash
# make bench-replay: `gwpipe replay` from S3 (moto_server) into the strict
# fakeintake, in two scenarios (issue 17, item 4):
#
#   large  one Firehose S3 backup object of LARGE_BYTES decompressed
#          (default 2 GiB of CloudWatch envelopes of JSON access logs,
#          about 300 MB as stored): events per CPU-second of gwpipe, its
#          peak RSS, and its RSS sampled every RSS_EVERY seconds (flat or
#          not);
#   small  SMALL_OBJECTS objects of SMALL_BYTES decompressed each, read with
#          --concurrency CONCURRENCY: events per CPU-second, and gwpipe's
#          CPU time over its wall time (near the cores it may use when the
#          objects in flight keep it busy; far below when round trips
#          bound it).
#
# The objects are what a Firehose delivery stream with a CloudWatch Logs
# source writes: each record a gzip member (CloudWatch compresses every
# envelope), concatenated, under the YYYY/MM/DD/HH key layout. loadgen
# -archive writes them with the generator loadgen sends (same traffic as
# make bench-e2e); they are uploaded with boto3 (moto's own dependency).
# moto_server keeps objects in memory: the large object costs it about its
# stored size.
#
# gwpipe's CPU time (user + system) and peak RSS come from GNU time around
# the process, so the figures include its start and its end; RSS over time
# from /proc/PID/status. Run it REPEAT times for a median; on a shared
# machine CPU-seconds are what to compare, not wall time.
#
#   SCENARIOS=large LARGE_BYTES=$((512<<20)) REPEAT=3 ./scripts/bench-replay.sh
#   PROFILE=1 ./scripts/bench-replay.sh   # perf profile of the large replay
#   GWPIPE_B=bin/gwpipe-new ./scripts/bench-replay.sh   # A/B: each repetition
#                                    # runs GWPIPE, then GWPIPE_B (rows "…B")
set -euo pipefail
cd "$(dirname "$0")/.."

GWPIPE=${GWPIPE:-bin/gwpipe}
GWPIPE_B=${GWPIPE_B:-}
SCENARIOS=${SCENARIOS:-large small}
LARGE_BYTES=${LARGE_BYTES:-$((2 << 30))}
SMALL_OBJECTS=${SMALL_OBJECTS:-400}
SMALL_BYTES=${SMALL_BYTES:-$((1 << 20))}
CONCURRENCY=${CONCURRENCY:-4}
REPEAT=${REPEAT:-1}
RSS_EVERY=${RSS_EVERY:-1}
PROFILE=${PROFILE:-0}
PORT_BASE=${PORT_BASE:-18280}
INTAKE=127.0.0.1:$PORT_BASE
MOTO=127.0.0.1:$((PORT_BASE + 1))
OUT=${OUT:-data/bench-replay}
BUCKET=archive
TRAFFIC=(-mix json=1 -records-per-request 10 -events-per-record 500)
mkdir -p "$OUT"

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

wait_port() { for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.05; done; echo "no listener on $1" >&2; exit 1; }
field() { grep -o "\"$2\": *[0-9.e+-]*" "$1" 2>/dev/null | head -1 | sed 's/.*: *//'; }

export AWS_ENDPOINT_URL=http://$MOTO AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
	AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN

for addr in "$MOTO" "$INTAKE"; do
	if (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null; then
		echo "$addr is taken (another bench-replay? PORT_BASE=N moves the ports)" >&2
		exit 1
	fi
done
moto_server -H "${MOTO%:*}" -p "${MOTO#*:}" > "$OUT/moto.log" 2>&1 & pids+=($!)
bin/fakeintake -listen "$INTAKE" -keep 1000 2> "$OUT/fakeintake.log" & pids+=($!)
wait_port "$MOTO"
wait_port "$INTAKE"

# upload PREFIX FILE...: the files as objects under PREFIX, Firehose-named.
upload() {
	python3 - "$BUCKET" "$@" <<'EOF'
import sys, time, uuid, boto3
from boto3.s3.transfer import TransferConfig
bucket, prefix, files = sys.argv[1], sys.argv[2], sys.argv[3:]
s3 = boto3.client("s3")
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
cfg = TransferConfig(multipart_chunksize=64 << 20, max_concurrency=2)
for f in files:
    t = time.gmtime()
    key = "%s%s/gw-logs-1-%s-%s" % (prefix, time.strftime("%Y/%m/%d/%H", t), time.strftime("%Y-%m-%d-%H-%M-%S", t), uuid.uuid4())
    s3.upload_file(f, bucket, key, Config=cfg)
EOF
}

# replay NAME PREFIX [FLAGS...]: one replay of PREFIX, measured. Prints
# the figures and leaves $OUT/NAME.{time,rss,out,log}.
replay() {
	local name=$1 prefix=$2 gwpipe=$GWPIPE
	shift 2
	case $name in *B-*) gwpipe=$GWPIPE_B ;; esac
	DD_API_KEY=bench GWPIPE_DATADOG_LOGS_URL="http://$INTAKE/api/v2/logs" GWPIPE_DATADOG_API_URL="http://$INTAKE" \
	GWPIPE_DLQ_DIR="$OUT/dlq" GWPIPE_LOG_LEVEL=warn GWPIPE_ENRICH_AWS_TAGS=false \
		/usr/bin/time -f '%U %S %M %e' -o "$OUT/$name.time" \
		"$gwpipe" replay --bucket "$BUCKET" --prefix "$prefix" --from -3h --progress=false "$@" \
		> "$OUT/$name.out" 2> "$OUT/$name.log" & local tp=$!
	local gw=""
	for _ in $(seq 1 200); do gw=$(pgrep -P "$tp" || true); [ -n "$gw" ] && break; sleep 0.01; done
	: > "$OUT/$name.rss"
	if [ -n "$gw" ]; then
		# t (s), RSS (MiB), CPU (s) of gwpipe, until it exits.
		(
			t0=$(date +%s.%N)
			while [ -r "/proc/$gw/status" ]; do
				rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$gw/status" 2>/dev/null) || break
				cpu=$(awk '{ print ($14 + $15) / 100 }' "/proc/$gw/stat" 2>/dev/null) || break
				awk -v t0="$t0" -v now="$(date +%s.%N)" -v r="$rss" -v c="$cpu" 'BEGIN { if (r != "") printf "%6.1f %7.1f %7.2f\n", now - t0, r / 1024, c }'
				sleep "$RSS_EVERY"
			done
		) > "$OUT/$name.rss" & local sp=$!
		if [ "$PROFILE" = 1 ] && [ "$name" = large-1 ]; then
			perf record -F 499 -g -p "$gw" -o "$OUT/perf.data" > /dev/null 2>&1 & pids+=($!)
		fi
	fi
	wait "$tp" || { echo "$name: gwpipe replay failed (see $OUT/$name.log)" >&2; cat "$OUT/$name.out" >&2; exit 1; }
	[ -n "$gw" ] && wait "$sp" 2>/dev/null || true
	local events
	events=$(sed -n 's/^ *logs delivered *\([0-9,]*\).*/\1/p' "$OUT/$name.out" | tr -d , | head -1)
	read -r user sys peak wall < "$OUT/$name.time"
	awk -v n="$name" -v ev="${events:-0}" -v u="$user" -v s="$sys" -v pk="$peak" -v w="$wall" 'BEGIN {
		c = u + s
		printf "%-10s %9d events  %7.2f CPU-s (user %.2f sys %.2f)  %8.0f events/CPU-s  wall %6.2f s  CPU/wall %.2f  peak RSS %6.1f MiB\n",
			n, ev, c, u, s, (c > 0 ? ev / c : 0), w, (w > 0 ? c / w : 0), pk / 1024 }' | tee -a "$OUT/results.txt"
}

# median FILTER: median of the events/CPU-s and peak RSS of results lines matching FILTER.
median() {
	grep "^$1-" "$OUT/results.txt" | awk '{ for (i = 1; i <= NF; i++) { if ($i == "events/CPU-s") e[NR] = $(i - 1); if ($i == "CPU/wall") u[NR] = $(i + 1); if ($i == "RSS") r[NR] = $(i + 1) } }
	function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }; return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
	END { n = NR; lo = hi = e[1]; for (i = 1; i <= n; i++) { if (e[i] < lo) lo = e[i]; if (e[i] > hi) hi = e[i] }
		printf "%-10s median of %d: %.0f events/CPU-s (min %.0f, max %.0f, spread %.1f%%)  CPU/wall %.2f  peak RSS %.1f MiB\n", "'"$1"'", n, med(e, n), lo, hi, (hi - lo) * 100 / med(e, n), med(u, n), med(r, n) }' | tee -a "$OUT/summary.txt"
}

: > "$OUT/results.txt"
: > "$OUT/summary.txt"
for sc in $SCENARIOS; do
	case $sc in
	large)
		rm -rf "$OUT/large"
		bin/loadgen -archive "$OUT/large" -archive-objects 1 -archive-object-bytes "$LARGE_BYTES" "${TRAFFIC[@]}" -report > "$OUT/large.json"
		echo "== large: 1 object, $(field "$OUT/large.json" decompressed_bytes) bytes decompressed, $(field "$OUT/large.json" bytes) stored, $(field "$OUT/large.json" events) events"
		upload large/ "$OUT"/large/*.gz
		rm -rf "$OUT/large" # moto holds it now
		for i in $(seq 1 "$REPEAT"); do
			replay "large-$i" large/
			[ -z "$GWPIPE_B" ] || replay "largeB-$i" large/
		done
		echo "   RSS of large-1 (t s, RSS MiB, CPU s), every ${RSS_EVERY}s:"
		awk 'NR % 5 == 1' "$OUT/large-1.rss" | sed 's/^/   /'
		awk '{ if (NR > 3 && $1 > 0) { n++; s += $2; if ($2 > m) m = $2; if (lo == "" || $2 < lo) lo = $2 } } END {
			if (n) printf "   RSS after the first 3 samples: min %.1f  mean %.1f  max %.1f MiB over %d samples\n", lo, s / n, m, n }' "$OUT/large-1.rss" | tee -a "$OUT/summary.txt"
		median large
		[ -z "$GWPIPE_B" ] || median largeB
		;;
	small)
		rm -rf "$OUT/small"
		bin/loadgen -archive "$OUT/small" -archive-objects "$SMALL_OBJECTS" -archive-object-bytes "$SMALL_BYTES" "${TRAFFIC[@]}" -seed 3 -report > "$OUT/small.json"
		echo "== small: $SMALL_OBJECTS objects, $(field "$OUT/small.json" decompressed_bytes) bytes decompressed in all, $(field "$OUT/small.json" bytes) stored, $(field "$OUT/small.json" events) events; --concurrency $CONCURRENCY"
		upload small/ "$OUT"/small/*.gz
		rm -rf "$OUT/small"
		for i in $(seq 1 "$REPEAT"); do
			replay "small-$i" small/ --concurrency "$CONCURRENCY"
			[ -z "$GWPIPE_B" ] || replay "smallB-$i" small/ --concurrency "$CONCURRENCY"
		done
		median small
		[ -z "$GWPIPE_B" ] || median smallB
		;;
	*) echo "unknown scenario $sc (large, small)" >&2; exit 2 ;;
	esac
done
if [ "$PROFILE" = 1 ] && [ -s "$OUT/perf.data" ]; then
	perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep -v '^#' | grep '%' | head -40 > "$OUT/perf-top.txt" || true
	echo "== perf profile of large-1: $OUT/perf-top.txt"
fi
