#!/usr/bin/env bash
# bench-stages-ab.sh: compare the in-process benchmarks of a package in two
# git revisions on a shared machine — by default the stage benchmarks
# (pkg/testkit/floor BenchmarkStages, CPU-ns per event on one core). The
# benchmark files (CARRY) are taken from the working tree for both
# revisions, so that both measure the same thing; the test binaries run
# alternately A B B A … ROUNDS times (ABBA: a drift in the machine's load
# hits both alike) with one core. Printed: each sub-benchmark's median per
# revision of every METRIC column, the ratio B/A of the medians, and the
# median of each round's B/A (steadier when load spikes hit single runs).
#
#   A=main B=HEAD ROUNDS=5 ./scripts/bench-stages-ab.sh
#   B=worktree ...   # the working tree, uncommitted changes included
#
# Other packages: PKG, CARRY (paths copied from the working tree into both
# builds), METRIC (an awk regex of the unit columns kept), OUT — see
# scripts/ab-derive.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
A=${A:-main} B=${B:-worktree} ROUNDS=${ROUNDS:-5} BENCH=${BENCH:-Stages} BENCHTIME=${BENCHTIME:-3x}
PKG=${PKG:-./pkg/testkit/floor/} CARRY=${CARRY:-pkg/testkit/floor} METRIC=${METRIC:-'^cpu-ns/event$'}
OUT=${OUT:-data/bench-stages-ab}
mkdir -p "$OUT"
build() { # build REV NAME
	local dir; dir=$(mktemp -d)
	if [ "$1" = worktree ]; then
		git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$dir" 2>/dev/null || true
	else
		git archive "$1" | tar -x -C "$dir"
		for p in $CARRY; do rm -rf "${dir:?}/$p"; mkdir -p "$dir/$(dirname "$p")"; cp -r "$p" "$dir/$p"; done
	fi
	(cd "$dir" && go test -c -o "$OLDPWD/$OUT/$2.test" "$PKG") >&2
	rm -rf "$dir"
}
build "$A" A
build "$B" B
run() { # run NAME ROUND
	"$OUT/$1.test" -test.run '^$' -test.bench "$BENCH" -test.benchtime "$BENCHTIME" -test.cpu 1 -test.benchmem |
		awk -v x="$1" -v r="$2" -v m="$METRIC" '/^Benchmark/ { for (i = 3; i < NF; i++) if ($(i + 1) ~ m) print x, r, $1, $(i + 1), $i }'
}
for r in $(seq 1 "$ROUNDS"); do
	if [ $((r % 2)) = 1 ]; then run A "$r"; run B "$r"; else run B "$r"; run A "$r"; fi
done | tee "$OUT/runs.txt" | awk -v a="$A" -v b="$B" '
{ k = $3 " " $4; v[k, $1] = v[k, $1] " " $5; keys[k] = 1; x[k, $1, $2] = $5; if ($2 > nr) nr = $2 }
function median(s,   n, x, i, j, t) {
	n = split(s, x, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (x[j] + 0 < x[i] + 0) { t = x[i]; x[i] = x[j]; x[j] = t }
	return n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
}
END {
	printf "%-42s %-18s %10s %10s %7s %10s\n", "#benchmark", "metric", "A=" a, "B=" b, "B/A", "pairs B/A"
	for (k in keys) {
		split(k, p, " "); ma = median(v[k, "A"]); mb = median(v[k, "B"])
		pr = ""
		for (r = 1; r <= nr; r++) if (x[k, "A", r] > 0) pr = pr " " x[k, "B", r] / x[k, "A", r]
		printf "%-42s %-18s %10.1f %10.1f %7.3f %10.3f\n", p[1], p[2], ma, mb, (ma > 0 ? mb / ma : 0), median(pr)
	}
}' | LC_ALL=C sort
