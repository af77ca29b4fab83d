#!/usr/bin/env bash
# ab-derive.sh: compare the derive stage's benchmarks (pkg/stages/derive:
# DeriveAccess, DeriveRolling, DeriveMix, PipelineShare) of two git
# revisions on a shared machine. Both test binaries are built with the
# benchmark files of the working tree (bench_test.go, share_test.go), so
# that both measure the same thing, and run alternately A B B A … ROUNDS
# times (ABBA: a drift in the machine's load hits both alike) with one
# core. Printed: each benchmark's median process CPU per record
# (cpu-ns/rec; derive-cpu-ns/rec for PipelineShare) and allocations per
# 1000 records, per revision, the ratio B/A of the medians, and the median
# of each round's B/A (steadier when load spikes hit single runs).
#
#   ./scripts/ab-derive.sh                       # main against the working tree
#   A=main B=HEAD ROUNDS=8 ./scripts/ab-derive.sh
#   BENCH='DeriveMix$' BENCHTIME=2s ./scripts/ab-derive.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-6} BENCHTIME=${BENCHTIME:-1s} BENCH=${BENCH:-'Derive|PipelineShare'} \
	PKG=./pkg/stages/derive/ CARRY="pkg/stages/derive/bench_test.go pkg/stages/derive/share_test.go" \
	METRIC='^(derive-)?cpu-ns/rec$|^allocs/krec$' OUT=${OUT:-data/ab-derive} \
	exec ./scripts/bench-stages-ab.sh
