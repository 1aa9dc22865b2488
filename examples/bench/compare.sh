#!/usr/bin/env bash
# Go benchmarks of the request path, before and after a change, run
# alternately so that both see the same machine load:
#
#   examples/bench/compare.sh <base-rev> [rounds]
#
# The base tree is <base-rev> of this repository with today's benchmark
# files copied in (internal/testutil, the gateway and handler benchmarks),
# so both sides run the same benchmarks. Prints, per benchmark and side, the
# median and minimum of ns/op and cpu-ns/op over the rounds.
set -euo pipefail
BASE=${1:?usage: compare.sh <base-rev> [rounds]}
ROUNDS=${2:-6}
BENCHTIME=${BENCHTIME:-1s}

cd "$(dirname "$0")/../.."
REPO=$(pwd)
WORK=$(mktemp -d /tmp/tokengate-compare.XXXXXX)
trap 'rm -rf "$WORK/base"' EXIT

mkdir "$WORK/base"
git archive "$BASE" | tar -x -C "$WORK/base"
rm -rf "$WORK/base/internal/benchdata" "$WORK/base/internal/testutil"
mkdir -p "$WORK/base/internal/testutil"
cp -r internal/testutil/benchdata internal/testutil/benchtokens internal/testutil/pgtest "$WORK/base/internal/testutil/"
cp internal/gateway/gate_bench_test.go "$WORK/base/internal/gateway/"
cp caddymodule/handler_bench_test.go "$WORK/base/caddymodule/"

for side in base new; do
	dir=$REPO
	[ "$side" = base ] && dir=$WORK/base
	(cd "$dir" && go test -c -o "$WORK/gateway.$side" ./internal/gateway/ && go test -c -o "$WORK/handler.$side" ./caddymodule/)
done

for round in $(seq "$ROUNDS"); do
	for side in base new; do
		(cd internal/gateway && "$WORK/gateway.$side" -test.run '^$' -test.bench 'Authorize/(cached|uncached)$' -test.benchtime "$BENCHTIME") |
			awk -v s="$side" '/^Benchmark/ {print s, $0}' >>"$WORK/results.txt"
		(cd caddymodule && "$WORK/handler.$side" -test.run '^$' -test.bench 'ServeHTTP' -test.benchtime "$BENCHTIME") |
			awk -v s="$side" '/^Benchmark/ {print s, $0}' >>"$WORK/results.txt"
	done
	echo "round $round of $ROUNDS done, load $(cut -d' ' -f1 /proc/loadavg)" >&2
done

sort -k2,2 -s "$WORK/results.txt" | awk '
function med(list,   a, m, x, y, t) {
	m = split(list, a, " ")
	for (x = 1; x <= m; x++) for (y = x + 1; y <= m; y++) if (a[y] + 0 < a[x] + 0) { t = a[x]; a[x] = a[y]; a[y] = t }
	lo = a[1]
	return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
{
	key = $2 " " $1
	for (i = 3; i <= NF; i++) {
		if ($i == "ns/op") ns[key] = ns[key] " " $(i - 1)
		if ($i == "cpu-ns/op") cpu[key] = cpu[key] " " $(i - 1)
		if ($i == "allocs/op") allocs[key] = $(i - 1)
	}
	if (!(key in seen)) { seen[key] = 1; keys[++n] = key }
}
END {
	printf "%-48s %-4s | %12s %12s | %12s %12s | %s\n", "benchmark", "side", "ns/op med", "min", "cpu-ns/op med", "min", "allocs/op"
	for (i = 1; i <= n; i++) {
		k = keys[i]; split(k, kk, " ")
		w = med(ns[k]); wl = lo; c = med(cpu[k]); cl = lo
		printf "%-48s %-4s | %12.0f %12.0f | %12.0f %12.0f | %s\n", kk[1], kk[2], w, wl, c, cl, allocs[k]
	}
}'
echo "raw results: $WORK/results.txt" >&2
