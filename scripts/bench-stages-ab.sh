#!/usr/bin/env bash
# bench-stages-ab.sh: compare the in-process stage benchmarks
# (pkg/testkit/floor BenchmarkStages, CPU-ns per event on one core) of two
# git revisions, running their test binaries alternately ROUNDS times, and
# print each sub-benchmark's median per revision. The benchmark's own
# package is taken from the working tree for both, so that both measure the
# same thing.
#
#   A=main B=HEAD ROUNDS=5 ./scripts/bench-stages-ab.sh
#   B=worktree ...   # the working tree, uncommitted changes included
set -euo pipefail
cd "$(dirname "$0")/.."
A=${A:-main} B=${B:-worktree} ROUNDS=${ROUNDS:-5} BENCH=${BENCH:-Stages} BENCHTIME=${BENCHTIME:-3x}
OUT=data/bench-stages-ab
mkdir -p "$OUT"
build() { # build REV NAME
	local dir; dir=$(mktemp -d)
	if [ "$1" = worktree ]; then
		git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$dir" 2>/dev/null || true
	else
		git archive "$1" | tar -x -C "$dir"
		rm -rf "$dir/pkg/testkit/floor"; cp -r pkg/testkit/floor "$dir/pkg/testkit/floor"
	fi
	(cd "$dir" && go test -c -o "$OLDPWD/$OUT/$2.test" ./pkg/testkit/floor/) >&2
	rm -rf "$dir"
}
build "$A" A
build "$B" B
for r in $(seq 1 "$ROUNDS"); do
	for x in A B; do
		"$OUT/$x.test" -test.run '^$' -test.bench "$BENCH" -test.benchtime "$BENCHTIME" -test.cpu 1 | grep cpu-ns/event |
			awk -v x="$x" '{ for (i = 1; i <= NF; i++) if ($(i + 1) == "cpu-ns/event") print x, $1, $i }'
	done
done | tee "$OUT/runs.txt" | awk '{ v[$1 " " $2] = v[$1 " " $2] " " $3 } END {
	for (k in v) { n = split(v[k], a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		printf "%s median %6.0f cpu-ns/event  (runs:%s)\n", k, (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2), v[k] }
}' | sort -k2,2 -k1,1
