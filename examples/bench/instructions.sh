#!/usr/bin/env bash
# Instructions per request of plain Caddy and of tokengate on the same
# requests: a figure the other work on a shared machine does not move, for
# before/after comparisons where req/s are too noisy. See README.md here.
#
#   examples/bench/instructions.sh                  # 2,000 requests of the mix per setup
#   N=5000 SETUPS="caddy-log tg-audit" examples/bench/instructions.sh
#   REV=7fe8e15 examples/bench/instructions.sh      # tokengate as built from another commit
#   SRC_DIR=/tmp/tree examples/bench/instructions.sh # ... or from a source folder (a tree with a change undone)
#   CADDY_GOGC=100 examples/bench/instructions.sh         # count the garbage collector in (default: off, bytes reported)
#
# Counts with `perf stat -e instructions:u` when this machine's kernel
# exposes the counter, else with valgrind's callgrind (Debian package
# valgrind), which runs Caddy about 50 times slower: N bounds the time.
# Needs: go, curl, python3. Everything listens on 127.0.0.1, on free ports.
set -euo pipefail

N=${N:-2000}
WARMUP=${WARMUP:-1000}
CONNS=${CONNS:-4}
TOKENS=${TOKENS:-10000}
WORKLOAD=${WORKLOAD:-mix}
read -r -a SETUPS <<<"${SETUPS:-caddy caddy-log tg tg-audit tg-uncached}"
WORK=${WORK:-$(mktemp -d /tmp/tokengate-instr.XXXXXX)}
READY_TIMEOUT=${READY_TIMEOUT:-300} # seconds for Caddy to start under valgrind

cd "$(dirname "$0")/../.."
REPO=$(pwd)
mkdir -p "$WORK/bin"
echo "work dir: $WORK" >&2
for tool in go curl python3; do
	command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done

COUNTER=callgrind
if [ -z "${FORCE_CALLGRIND:-}" ] && command -v perf >/dev/null &&
	perf stat -x, -e instructions:u true 2>&1 >/dev/null | grep -q '^[0-9]'; then
	COUNTER=perf
elif ! command -v valgrind >/dev/null; then
	echo "neither perf with an instructions counter nor valgrind: apt-get install -y valgrind" >&2
	exit 1
fi
echo "counting with $COUNTER" >&2

# --- build ------------------------------------------------------------------
# Without cgo: a static binary, which valgrind runs without the signal
# trouble of cgo's thread start.
SRC=${SRC_DIR:-$REPO}
if [ -n "${REV:-}" ]; then
	SRC=$WORK/src
	mkdir -p "$SRC"
	git archive "$REV" | tar -x -C "$SRC"
fi
(cd "$SRC" && CGO_ENABLED=0 go build -o "$WORK/bin/caddy" ./cmd/caddy)
TREE=$(git -C "$REPO" rev-parse --short "${REV:-HEAD}")
[ -n "${SRC_DIR:-}" ] && [ -z "${REV:-}" ] && TREE="source folder $SRC_DIR"
go build -o "$WORK/bin/upstream" ./examples/bench/upstream
go build -o "$WORK/bin/seed" ./examples/bench/seed
go build -o "$WORK/bin/loadgen" ./examples/bench/loadgen
SECRET=$("$WORK/bin/seed" -tokens "$TOKENS" -service demo \
	-bolt "$WORK/tokens.db" -opa-data "$WORK/data.json" -secrets "$WORK/secrets.txt")

read -r -a P <<<"$(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')"
UPSTREAM=127.0.0.1:${P[0]} PORT=${P[1]} ADMIN=${P[2]}

PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT
"$WORK/bin/upstream" -addr "$UPSTREAM" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)

loadgen() { # name args...
	local name=$1 auth=true
	shift
	[[ $name == caddy* ]] && auth=false
	if [ "$WORKLOAD" = single ]; then
		"$WORK/bin/loadgen" -url "http://127.0.0.1:$PORT/demo/items/42" -header "Authorization: Bearer $SECRET" -rate 0 -conns "$CONNS" "$@"
	else
		"$WORK/bin/loadgen" -secrets "$WORK/secrets.txt" -base "http://127.0.0.1:$PORT/demo" -auth="$auth" -rate 0 -conns "$CONNS" "$@"
	fi
}
cache_count() { # result
	curl -s "http://127.0.0.1:$ADMIN/metrics" |
		awk -v r="$1" '$1 == "tokengate_decision_cache_total{result=\"" r "\"}" {print $2; f = 1} END {if (!f) print 0}'
}

# The token census reads all $TOKENS records on a wall-clock timer, and
# under callgrind's slowdown a timer packs several counts into the window:
# trees that have census_interval count once at start only.
CENSUS=""
grep -q '"census_interval"' "$SRC/caddymodule/caddyfile.go" && CENSUS="census_interval 24h"
# With the collector on, how many GC cycles fall in the window moves the
# count by more than most changes: GOGC=off (the default, CADDY_GOGC) leaves the
# collector out, and bytes allocated per request, which decides what the
# collector will cost, are reported beside. CADDY_GOGC=100 counts it in.
CADDY_GOGC=${CADDY_GOGC:-off}
alloc_bytes() {
	curl -s "http://127.0.0.1:$ADMIN/metrics" |
		awk '$1 == "go_memstats_alloc_bytes_total" {printf "%.0f", $2; f = 1} END {if (!f) print 0}'
}

RESULTS=$WORK/instructions.tsv
printf 'setup\trequests\tinstructions\tper_request\thits\tmisses\tbytes_per_request\n' >"$RESULTS"
for name in "${SETUPS[@]}"; do
	dir=$WORK/$name
	mkdir -p "$dir"
	cp "$WORK/tokens.db" "$dir/tokens.db"
	global="admin 127.0.0.1:$ADMIN" site_log="" handler=""
	case $name in
	caddy) ;;
	caddy-log) site_log="log {
		output file $dir/access.log {
			roll_disabled
		}
		format json
	}" ;;
	tg | tg-audit | tg-uncached | tg-uncached-audit)
		cache=100000
		[[ $name == tg-uncached* ]] && cache=0
		global="$global
	tokengate {
		store bolt $dir/tokens.db
		decision_cache $cache
		$CENSUS
	}
	log default {
		exclude tokengate.audit
	}"
		[[ $name == *audit ]] && global="$global
	log audit {
		include tokengate.audit
		output file $dir/audit.log {
			roll_disabled
		}
		format json
	}"
		handler="tokengate demo" ;;
	*) echo "unknown setup $name (caddy, caddy-log, tg, tg-audit, tg-uncached, tg-uncached-audit)" >&2; exit 2 ;;
	esac
	cat >"$dir/Caddyfile" <<EOF2
{
	$global
}
http://127.0.0.1:$PORT {
	bind 127.0.0.1
	$site_log
	route /demo/* {
		$handler
		reverse_proxy $UPSTREAM
	}
}
EOF2
	# Go's asynchronous preemption signals trip callgrind; the scheduler
	# still preempts at function calls. Set for perf too, so both count the
	# same program.
	env=(env HOME="$dir" XDG_DATA_HOME="$dir/data" XDG_CONFIG_HOME="$dir/config" GODEBUG=asyncpreemptoff=1 GOGC="$CADDY_GOGC")
	if [ "$COUNTER" = callgrind ]; then
		# Instrumentation off until the measured requests: start-up and
		# warm-up run at valgrind's uninstrumented speed and are not counted.
		(cd "$dir" && exec "${env[@]}" valgrind --tool=callgrind --instr-atstart=no \
			--callgrind-out-file="$dir/callgrind.out" \
			"$WORK/bin/caddy" run --config Caddyfile --adapter caddyfile >"$dir/caddy.log" 2>&1) &
	else
		(cd "$dir" && exec "${env[@]}" "$WORK/bin/caddy" run --config Caddyfile --adapter caddyfile >"$dir/caddy.log" 2>&1) &
	fi
	pid=$!
	PIDS+=("$pid")
	deadline=$((SECONDS + READY_TIMEOUT))
	until [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $SECRET" "http://127.0.0.1:$PORT/demo/items/1")" = 200 ]; do
		[ $SECONDS -lt $deadline ] && kill -0 "$pid" 2>/dev/null || { echo "$name did not start; see $dir/caddy.log" >&2; exit 1; }
		sleep 1
	done
	echo "$name: started, warming up with $WARMUP requests" >&2
	loadgen "$name" -requests "$WARMUP" -seed 0 >"$dir/warmup.txt"
	h0=$(cache_count hit) m0=$(cache_count miss) a0=$(alloc_bytes)
	if [ "$COUNTER" = callgrind ]; then
		callgrind_control -i on "$pid" >/dev/null 2>&1
		loadgen "$name" -requests "$N" -seed 1 >"$dir/load.txt"
		callgrind_control -i off "$pid" >/dev/null 2>&1
	else
		# The process's user-space instructions over the measured requests
		# only: perf attaches for their duration.
		perf stat -x, -e instructions:u -p "$(pgrep -P "$pid" -x caddy || echo "$pid")" -o "$dir/perf.txt" &
		perfpid=$!
		sleep 0.5
		loadgen "$name" -requests "$N" -seed 1 >"$dir/load.txt"
		kill -INT "$perfpid"
		wait "$perfpid" || true
	fi
	h1=$(cache_count hit) m1=$(cache_count miss) a1=$(alloc_bytes)
	kill -INT "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	bad=$(tr ' ' '\n' <"$dir/load.txt" | awk -F= '$1 == "unexpected" || $1 == "errors" {s += $2} END {print s + 0}')
	[ "$bad" = 0 ] || { echo "$name: unexpected answers: $(cat "$dir/load.txt")" >&2; exit 1; }
	if [ "$COUNTER" = callgrind ]; then
		ir=$(awk '/^totals:/ {print $2; exit}' "$dir/callgrind.out")
	else
		ir=$(awk -F, '$3 ~ /instructions/ {print $1; exit}' "$dir/perf.txt")
	fi
	hits=- misses=-
	[[ $name == tg* ]] && hits=$(awk -v a="$h0" -v b="$h1" 'BEGIN {print b - a}') misses=$(awk -v a="$m0" -v b="$m1" 'BEGIN {print b - a}')
	bpr=$(awk -v a="$a0" -v b="$a1" -v n="$N" 'BEGIN {printf "%.0f", (b - a) / n}')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$N" "$ir" "$(awk -v i="$ir" -v n="$N" 'BEGIN {printf "%.0f", i / n}')" "$hits" "$misses" "$bpr" >>"$RESULTS"
	echo "$name: $ir instructions for $N requests, cache hits $hits misses $misses, $bpr bytes allocated per request" >&2
done

{
	echo
	echo "tree: $TREE$([ -z "${REV:-}${SRC_DIR:-}" ] && ! git -C "$REPO" diff --quiet HEAD -- . ':!examples/bench' ':!BENCHMARKS.md' && echo ' plus uncommitted changes'), built with CGO_ENABLED=0, run with GODEBUG=asyncpreemptoff=1 GOGC=$CADDY_GOGC${CENSUS:+, $CENSUS}"
	echo "machine: $(nproc) cores, kernel $(uname -r), $(go version | cut -d' ' -f3), counter: $COUNTER$([ "$COUNTER" = callgrind ] && echo " ($(valgrind --version))"), load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "workload: $WORKLOAD, $WARMUP warm-up then $N measured requests, loadgen closed loop with $CONNS connections; the Caddy process only (upstream and client not counted)"
	echo
	printf '| %-18s | %14s | %12s | %8s | %8s | %14s |\n' setup instructions "per request" "x caddy" "hit rate" "bytes/request"
	printf '|%s|%s|%s|%s|%s|%s|\n' "--------------------" "----------------" "--------------" "----------" "----------" "----------------"
	awk -F'\t' 'NR > 1 {
		if ($1 == "caddy") base = $4
		hit = ($5 == "-" || $5 + $6 == 0) ? "-" : sprintf("%.1f%%", 100 * $5 / ($5 + $6))
		printf "| %-18s | %14s | %12s | %8s | %8s | %14s |\n", $1, $3, $4, base ? sprintf("%.2f", $4 / base) : "-", hit, $7
	}' "$RESULTS"
} | tee "$WORK/summary.md"
