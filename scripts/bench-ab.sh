#!/usr/bin/env bash
# bench-ab.sh: compare two gwpipe builds on a shared machine. Runs
# scripts/bench.sh (maximum run and floor, no half-load run) ROUNDS times
# for each, interleaved A B A B ..., and prints each run's events per
# CPU-second and ratio to the floor, then the medians. The ratio, measured
# in the same run as its floor, is the figure to compare.
#
#   A=main B=HEAD ./scripts/bench-ab.sh          # git revisions, built here
#   A=bin/gwpipe-old B=bin/gwpipe ROUNDS=5 ./scripts/bench-ab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
A=${A:-main} B=${B:-HEAD} ROUNDS=${ROUNDS:-3}
export EVENTS=${EVENTS:-600000} HALF_SECONDS=0
OUT=data/bench-ab
mkdir -p "$OUT"

# binary REF NAME: REF itself when it is a file, else gwpipe built from the
# git revision REF.
binary() {
	if [ -f "$1" ]; then echo "$1"; return; fi
	local dir; dir=$(mktemp -d)
	git archive "$1" | tar -x -C "$dir"
	(cd "$dir" && go build -trimpath -o "$OLDPWD/$OUT/gwpipe-$2" ./services/gwpipe) >&2
	rm -rf "$dir"
	echo "$OUT/gwpipe-$2"
}
make -s build
declare -A bins
bins[A]=$(binary "$A" A)
bins[B]=$(binary "$B" B)

declare -A ratios gws cratios
for r in $(seq 1 "$ROUNDS"); do
	for x in A B; do
		OUT="$OUT/$x-$r" GWPIPE="${bins[$x]}" ./scripts/bench.sh > "$OUT/$x-$r.log" 2>&1
		s="$OUT/$x-$r/summary.txt"
		gw=$(awk '$1 == "gwpipe" { print $2 }' "$s"); fl=$(awk '$1 == "floor" { print $2 }' "$s"); ra=$(awk '$1 == "ratio" { print $2 }' "$s")
		rc=$(awk '$1 == "ratio," { print $3 }' "$s")
		printf "round %d %s (%s): gwpipe %7s ev/CPU-s  floor %7s  ratio %s  ratio (contract floor) %s  load %s\n" "$r" "$x" "${bins[$x]}" "$gw" "$fl" "$ra" "$rc" "$(cut -d' ' -f1 /proc/loadavg)"
		ratios[$x]+="$ra "; gws[$x]+="$gw "; cratios[$x]+="$rc "
	done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
for x in A B; do
	printf "%s: median ratio %s (contract floor %s), median gwpipe %s ev/CPU-s (ratios: %s)\n" "$x" "$(echo "${ratios[$x]}" | median)" "$(echo "${cratios[$x]}" | median)" "$(echo "${gws[$x]}" | median)" "${ratios[$x]}"
done
