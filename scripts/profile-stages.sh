#!/usr/bin/env bash
# profile-stages.sh CPU.pprof [BINARY] [NS_PER_EVENT]: where gwpipe's CPU
# goes, by stage. Every sample of a CPU profile is given to the innermost
# frame of its stack that belongs to a known part of the pipeline (the rules
# below, first match from the leaf up; the HTTP sender shared by the sinks
# goes to its caller); GC's background workers and the
# scheduler have their own rows. With NS_PER_EVENT (the run's pipeline CPU
# per event, from /proc) each share is also shown in CPU-ns per event.
set -euo pipefail
prof=$1 bin=${2:-} nspe=${3:-0}
go tool pprof -traces $bin "$prof" 2>/dev/null | awk -v nspe="$nspe" '
function stage(fn) {
	if (fn ~ /gwpipe\/pkg\/sources\/firehose/) return "source: firehose (body, base64)"
	if (fn ~ /gwpipe\/pkg\/stages\/decode|gwpipe\/pkg\/formats\/cwlogs/) return "decode (gunzip, envelope)"
	if (fn ~ /gwpipe\/pkg\/formats\/apigw|gwpipe\/pkg\/stages\/parse|pipeline\.parseStage/) return "parse"
	if (fn ~ /gwpipe\/pkg\/stages\/filter/) return "filter"
	if (fn ~ /gwpipe\/pkg\/stages\/enrich|pipeline\.enrich/) return "enrich"
	if (fn ~ /gwpipe\/pkg\/stages\/derive/) return "derive"
	if (fn ~ /gwpipe\/pkg\/sinks\/ddmetrics/) return "deliver-metrics"
	if (fn ~ /gwpipe\/pkg\/sinks\/ddlogs\.\(\*renderer\)|gwpipe\/pkg\/sinks\/ddlogs\.AppendLog|ddlogs\.append/) return "deliver-logs: render JSON"
	if (fn ~ /gwpipe\/pkg\/sinks\/ddlogs|pipeline\.\(\*deliverStage\)/) return "deliver-logs: batch, gzip, HTTP"
	if (fn ~ /gwpipe\/pkg\/sinks\/dlq/) return "dlq"
	if (fn ~ /gwpipe\/pkg\/runtime\/|ThreeDotsLabs\/watermill/) return "runtime (topics, ack)"
	if (fn ~ /gwpipe\/pkg\/telemetry/) return "telemetry"
	if (fn ~ /^net\/http\.\(\*conn\)\.serve|^net\/http\.\(\*persistConn\)/) return "net/http (both ends)"
	if (fn ~ /^runtime\.gcBgMarkWorker/) return "GC (background)"
	if (fn ~ /^runtime\.(mcall|morestack|schedule|findRunnable)|^runtime\.bgsweep|^runtime\.bgscavenge|^runtime\.sysmon/) return "scheduler, sweeper"
	return ""
}
function flush() {
	if (val == 0) return
	s = ""
	for (i = 1; i <= n && s == ""; i++) s = stage(frames[i])
	if (s == "") s = "other (" frames[n] ")"
	if (gc) gcv += val
	by[s] += val; total += val; val = 0; n = 0; gc = 0
}
/^-+\+-+$/ { flush(); next }
/^ +[0-9.]+(ms|s|us|ns) +/ {
	flush()
	v = $1; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
	val = v * (u == "s" ? 1e9 : u == "ms" ? 1e6 : u == "us" ? 1e3 : 1)
	frames[++n] = $2; if ($2 ~ /^runtime\.(mallocgc|gcAssist|gcDrain)/) gc = 1
	next
}
/^ +[^ ]/ && val > 0 { frames[++n] = $1; if ($1 ~ /^runtime\.(gcAssistAlloc|gcDrain)/) gc = 1; next }
END {
	flush()
	printf "\n%-40s %7s %12s\n", "stage (CPU profile of the run)", "share", (nspe > 0 ? "CPU-ns/event" : "")
	m = 0
	for (s in by) keys[++m] = s
	for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (by[keys[j]] > by[keys[i]]) { t = keys[i]; keys[i] = keys[j]; keys[j] = t }
	for (i = 1; i <= m; i++) {
		sh = by[keys[i]] / total
		if (sh < 0.005) { rest += sh; continue }
		if (nspe > 0) printf "%-40s %6.1f%% %12.0f\n", keys[i], 100 * sh, sh * nspe
		else printf "%-40s %6.1f%%\n", keys[i], 100 * sh
	}
	if (rest > 0) printf "%-40s %6.1f%% %12s\n", "(each below 0.5%)", 100 * rest, (nspe > 0 ? sprintf("%.0f", rest * nspe) : "")
	printf "%-40s %6.1f%% %12s\n", "total", 100, (nspe > 0 ? sprintf("%.0f", nspe) : "")
	printf "GC work (background marking + assists + malloc): %.1f%% of CPU\n", 100 * gcv / total
}'
