#!/usr/bin/env bash
# make pgo: refresh services/gwpipe/default.pgo, the CPU profile `go build`
# uses to optimise gwpipe (profile-guided optimisation: hot calls inlined,
# hot code laid out together). It profiles two make bench runs of the
# current build, one of JSON access logs (the benchmark's traffic) and one
# of every format (JSON, CLF and execution logs, for the parser's other
# paths), and merges them. Run it after changes to the hot paths, then
# compare the builds with scripts/bench-ab.sh before committing the profile.
#
#   ./scripts/pgo.sh
#   EVENTS=3000000 PROFILE_SECONDS=30 ./scripts/pgo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export EVENTS=${EVENTS:-1500000} PROFILE_SECONDS=${PROFILE_SECONDS:-15} HALF_SECONDS=0 PROFILE=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make -s build
for mix in json=1 json=2,clf=1,exec=1; do
	OUT="$tmp/$mix" MIX=$mix ./scripts/bench.sh > "$tmp/$mix.log" 2>&1 || { cat "$tmp/$mix.log"; exit 1; }
	profiles+=("$tmp/$mix/cpu.pprof")
done
go tool pprof -proto "${profiles[@]}" > services/gwpipe/default.pgo
echo "services/gwpipe/default.pgo: $(wc -c < services/gwpipe/default.pgo) bytes from ${profiles[*]##*/}"
