#!/usr/bin/env bash
# Throughput and latency of tokengate next to what people run today, side by
# side on one machine, in interleaved rounds. See README.md in this folder.
#
#   examples/bench/run.sh                 # 3 rounds of 10s per setup
#   ROUNDS=5 DURATION=20s examples/bench/run.sh
#   PROFILE=1 examples/bench/run.sh      # also CPU profiles from round 1
#   PIN=1 ROUNDS=0 RATE_ROUNDS=5 examples/bench/run.sh   # only the fixed-rate
#                                         # latency stage, servers and client pinned
#
# Needs: go, wrk (Debian package wrk), curl. Everything listens on 127.0.0.1.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
TOKENS=${TOKENS:-1000}
PORT_BASE=${PORT_BASE:-18000}
WORK=${WORK:-$(mktemp -d /tmp/tokengate-bench.XXXXXX)}

cd "$(dirname "$0")/../.."
REPO=$(pwd)
mkdir -p "$WORK/bin" "$WORK/wrk"
echo "work dir: $WORK" >&2

for tool in go wrk curl; do
	command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk curl)" >&2; exit 1; }
done

# --- build ------------------------------------------------------------------
echo "building caddy, upstream, seed" >&2
go build -o "$WORK/bin/caddy" ./cmd/caddy
go build -o "$WORK/bin/upstream" ./examples/bench/upstream
go build -o "$WORK/bin/seed" ./examples/bench/seed
go build -o "$WORK/bin/loadgen" ./examples/bench/loadgen
OPA_VERSION=$(go list -m -f '{{.Version}}' github.com/open-policy-agent/opa)
if [ ! -x "$WORK/bin/opa" ]; then
	echo "building opa $OPA_VERSION from the Go module proxy" >&2
	# Outside this module: OPA's CLI needs modules tokengate does not.
	(cd "$WORK" && GOBIN="$WORK/bin" GOFLAGS= go install "github.com/open-policy-agent/opa@$OPA_VERSION")
fi

# --- data -------------------------------------------------------------------
# One set of tokens, written for tokengate (bbolt) and for OPA (data.json).
SECRET=$("$WORK/bin/seed" -tokens "$TOKENS" -bolt "$WORK/tokens.db" -opa-data "$WORK/data.json")

# --- processes ----------------------------------------------------------------
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

UPSTREAM=127.0.0.1:$((PORT_BASE + 1))
OPA_ADDR=127.0.0.1:$((PORT_BASE + 181))
"$WORK/bin/upstream" -addr "$UPSTREAM" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
"$WORK/bin/opa" run --server --addr "$OPA_ADDR" --log-level error \
	--authentication=token --authorization=basic \
	"$REPO/examples/bench/opa/authz.rego" "$WORK/data.json" >"$WORK/opa.log" 2>&1 &
PIDS+=($!)

# Setups, in the order of the table. name|description
SETUPS=(
	"caddy|Caddy reverse_proxy, no access log"
	"caddy-log|Caddy reverse_proxy, JSON access log to a file"
	"tg|tokengate cached, audit off"
	"tg-audit|tokengate cached, audit JSON to a file"
	"tg-uncached|tokengate decision_cache 0, audit off"
	"tg-uncached-audit|tokengate decision_cache 0, audit JSON to a file"
	"fa-opa|forward_auth to an OPA server (same tokens, same rules)"
)

declare -A PORT ADMIN PID
i=0
for setup in "${SETUPS[@]}"; do
	name=${setup%%|*}
	i=$((i + 1))
	PORT[$name]=$((PORT_BASE + 100 + i))
	ADMIN[$name]=$((PORT_BASE + 200 + i))
	dir="$WORK/$name"
	mkdir -p "$dir"
	cp "$WORK/tokens.db" "$dir/tokens.db"
	global="admin 127.0.0.1:${ADMIN[$name]}"
	site_log=""
	handler=""
	case $name in
	caddy-log)
		site_log="log {
		output file $dir/access.log {
			roll_disabled
		}
		format json
	}"
		;;
	tg*)
		cache=100000
		[[ $name == tg-uncached* ]] && cache=0
		global="$global
	tokengate {
		store bolt $dir/tokens.db
		decision_cache $cache
	}
	log default {
		exclude tokengate.audit
	}"
		if [[ $name == *audit ]]; then
			global="$global
	log audit {
		include tokengate.audit
		output file $dir/audit.log {
			roll_disabled
		}
		format json
	}"
		fi
		handler="tokengate billing"
		;;
	fa-opa)
		handler="forward_auth $OPA_ADDR {
			uri /health?service=billing
		}"
		;;
	esac
	cat >"$dir/Caddyfile" <<EOF
{
	$global
}
http://127.0.0.1:${PORT[$name]} {
	bind 127.0.0.1
	$site_log
	route /billing/* {
		$handler
		reverse_proxy $UPSTREAM
	}
}
EOF
	(cd "$dir" && HOME="$dir" XDG_DATA_HOME="$dir/data" XDG_CONFIG_HOME="$dir/config" \
		exec "$WORK/bin/caddy" run --config Caddyfile --adapter caddyfile >"$dir/caddy.log" 2>&1) &
	PID[$name]=$!
	PIDS+=($!)
done

# Log files do not roll (Caddy rolls at 100 MB by default and gzips the old
# file in the background): every line stays countable, and neither side
# pays for compression during a run.
URL_PATH=/billing/invoices
ready() { # name
	local url="http://127.0.0.1:${PORT[$1]}$URL_PATH"
	for _ in $(seq 300); do
		if [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $SECRET" "$url")" = 200 ]; then
			return 0
		fi
		sleep 0.1
	done
	echo "$1 never answered 200 at $url; see $WORK/$1/caddy.log" >&2
	exit 1
}
for setup in "${SETUPS[@]}"; do ready "${setup%%|*}"; done
# A wrong token must be refused, or the comparison is meaningless.
for name in tg fa-opa; do
	code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${SECRET%?}x" "http://127.0.0.1:${PORT[$name]}$URL_PATH")
	[ "$code" = 401 ] || { echo "$name answered $code to a wrong token" >&2; exit 1; }
done

# --- measure ------------------------------------------------------------------
to_ms() { # wrk latency such as 812.00us, 1.20ms, 1.01s
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
		else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
		else print v }'
}

lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }

RESULTS="$WORK/results.tsv"
printf 'round\tsetup\treq_s\tp50_ms\tp99_ms\trequests\tnon2xx\taudit_lines\tload1\n' >"$RESULTS"

run_one() { # round name
	local round=$1 name=$2 out="$WORK/wrk/$2.$1.txt" audit="$WORK/$2/audit.log"
	local before after load
	before=$(lines "$audit")
	load=$(cut -d' ' -f1 /proc/loadavg)
	if [ -n "${PROFILE:-}" ] && [ "$round" = 1 ]; then
		# A CPU profile of the server during the middle of the run.
		(sleep 2 && curl -s -o "$WORK/$name.cpu.pprof" \
			"http://127.0.0.1:${ADMIN[$name]}/debug/pprof/profile?seconds=5") &
	fi
	wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency \
		-H "Authorization: Bearer $SECRET" "http://127.0.0.1:${PORT[$name]}$URL_PATH" >"$out"
	sleep 1 # audit lines are written after each response
	after=$(lines "$audit")
	local rps p50 p99 reqs non2xx
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
	reqs=$(awk '/requests in/ {print $1}' "$out")
	non2xx=$(awk '/Non-2xx/ {print $NF}' "$out")
	local audited=-
	[[ $name == *audit ]] && audited=$((after - before))
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$rps" "$p50" "$p99" "$reqs" "${non2xx:-0}" "$audited" "$load" >>"$RESULTS"
	printf 'round %s %-18s %10s req/s  p50 %8s ms  p99 %8s ms  non-2xx %s  audit lines %s of %s  load %s\n' \
		"$round" "$name" "$rps" "$p50" "$p99" "${non2xx:-0}" "$audited" "$reqs" "$load" >&2
}

echo "warm-up (2s each)" >&2
for setup in "${SETUPS[@]}"; do
	wrk -t"$THREADS" -c"$CONNS" -d2s -H "Authorization: Bearer $SECRET" \
		"http://127.0.0.1:${PORT[${setup%%|*}]}$URL_PATH" >/dev/null
done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
n=${#SETUPS[@]}
for round in $(seq "$ROUNDS"); do
	# Each round starts one setup later, so no setup always runs first.
	for k in $(seq 0 $((n - 1))); do
		setup=${SETUPS[$(((k + round - 1) % n))]}
		run_one "$round" "${setup%%|*}"
	done
done

# --- latency at a fixed rate ---------------------------------------------------------
# At half of plain Caddy's peak (median req/s above), how much p99 latency
# does each setup add? wrk cannot hold a rate; loadgen (./loadgen) sends
# evenly spaced requests open-loop and measures from when each was due.
# (hey -q, used before, fires its workers in bursts whose queueing decided
# the p99.)
#
# PIN=1 takes the scheduler out of the comparison: for this stage every
# server (all Caddys and the upstream) runs on CPU 0 and the client on
# CPU 1, so the client's threads never preempt a server mid-request, and
# the rate is half of plain Caddy's peak measured under the same pinning
# (wrk -t1 on CPU 1, median of three 5s runs).
RATE_ROUNDS=${RATE_ROUNDS:-3}
read -r -a RATE_SETUPS <<<"${RATE_SETUPS:-caddy caddy-log tg tg-audit tg-uncached}"
RATE_RESULTS="$WORK/rate.tsv"
printf 'round\tsetup\trate\treq_s\tp50_ms\tp99_ms\tload1\n' >"$RATE_RESULTS"
median_of() { sort -n | awk '{a[NR] = $1} END {print NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
CLIENT=()
if [ "$RATE_ROUNDS" -gt 0 ]; then
	if [ -n "${PIN:-}" ]; then
		for pid in "${PIDS[@]}"; do taskset -a -p -c 0 "$pid" >/dev/null; done
		CLIENT=(taskset -c 1)
		PINNED_PEAK=$(for _ in 1 2 3; do
			"${CLIENT[@]}" wrk -t1 -c"$CONNS" -d5s -H "Authorization: Bearer $SECRET" \
				"http://127.0.0.1:${PORT[caddy]}$URL_PATH" | awk '/^Requests\/sec:/ {print $2}'
		done | median_of)
		RATE=$(awk -v p="$PINNED_PEAK" 'BEGIN {printf "%d", p / 2}')
		echo "pinned: servers on CPU 0, client on CPU 1; plain caddy peak $PINNED_PEAK req/s" >&2
	else
		RATE=$(awk -F'\t' '$2 == "caddy" {print $3}' "$RESULTS" | median_of | awk '{printf "%d", $1 / 2}')
	fi
	for round in $(seq "$RATE_ROUNDS"); do
		for k in $(seq 0 $((${#RATE_SETUPS[@]} - 1))); do
			name=${RATE_SETUPS[$(((k + round - 1) % ${#RATE_SETUPS[@]}))]}
			out="$WORK/wrk/loadgen.$name.$round.txt"
			load=$(cut -d' ' -f1 /proc/loadavg)
			"${CLIENT[@]}" "$WORK/bin/loadgen" -rate "$RATE" -duration "$DURATION" -conns "$CONNS" \
				-header "Authorization: Bearer $SECRET" -url "http://127.0.0.1:${PORT[$name]}$URL_PATH" >"$out"
			field() { tr ' ' '\n' <"$out" | awk -F= -v k="$1" '$1 == k {print $2}'; }
			rps=$(field rate)
			p50=$(field p50_ms)
			p99=$(field p99_ms)
			[ "$(field errors)" = 0 ] && [ "$(field non2xx)" = 0 ] || { echo "$name: errors in $out" >&2; cat "$out" >&2; }
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$RATE" "$rps" "$p50" "$p99" "$load" >>"$RATE_RESULTS"
			printf 'rate round %s %-12s target %s req/s: got %s, p50 %s ms, p99 %s ms, load %s\n' "$round" "$name" "$RATE" "$rps" "$p50" "$p99" "$load" >&2
		done
	done
fi

# --- metrics ------------------------------------------------------------------
# What Prometheus would scrape from the cached setup after all its runs,
# checked with promtool (Debian package prometheus) when it is installed.
curl -s "http://127.0.0.1:${ADMIN[tg]}/metrics" >"$WORK/tg.metrics"
grep -E '^(# (HELP|TYPE) )?tokengate_' "$WORK/tg.metrics" >"$WORK/tg.tokengate.metrics" || true
PROMTOOL="promtool not installed"
if command -v promtool >/dev/null; then
	if out=$(promtool check metrics <"$WORK/tg.tokengate.metrics" 2>&1); then
		PROMTOOL="promtool check metrics: no problems"
	else
		PROMTOOL="promtool check metrics: $out"
	fi
fi

# --- report -------------------------------------------------------------------
{
	echo
	echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3), load average before the runs: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
	if [ "$(wc -l <"$RESULTS")" -gt 1 ]; then # ROUNDS=0 runs only the fixed-rate stage
	echo "wrk -t$THREADS -c$CONNS -d$DURATION, $ROUNDS interleaved rounds, $TOKENS tokens; medians over rounds;"
	echo "ratios are medians of the per-round ratios (each run against the caddy and caddy-log runs of its own round)"
	echo
	printf '| %-18s | %-55s | %9s | %8s | %8s | %8s | %8s | %s |\n' setup description "req/s" "x caddy" "x log" "p50 ms" "p99 ms" "audit lines / requests"
	printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' "--------------------" "---------------------------------------------------------" "-----------" "----------" "----------" "----------" "----------" "---"
	awk -F'\t' -v setups="$(printf '%s\n' "${SETUPS[@]}")" '
	function median(list,   a, n, i, j, t) {
		n = split(list, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	NR > 1 {
		rps[$2] = rps[$2] " " $3; p50[$2] = p50[$2] " " $4; p99[$2] = p99[$2] " " $5
		r[$1, $2] = $3; rounds[$1] = 1
		if ($8 != "-") { lines[$2] += $8; reqs[$2] += $6 }
	}
	END {
		n = split(setups, s, "\n")
		for (i = 1; i <= n; i++) {
			split(s[i], f, "|"); name = f[1]
			xc = ""; xl = ""
			for (k in rounds) { xc = xc " " r[k, name] / r[k, "caddy"]; xl = xl " " r[k, name] / r[k, "caddy-log"] }
			audit = (name in lines) ? sprintf("%d / %d", lines[name], reqs[name]) : "-"
			printf "| %-18s | %-55s | %9.0f | %8.2f | %8.2f | %8.2f | %8.2f | %s |\n", name, f[2], median(rps[name]), median(xc), median(xl), median(p50[name]), median(p99[name]), audit
		}
	}' "$RESULTS"
	fi
	if [ "$(wc -l <"$RATE_RESULTS")" -gt 1 ]; then
		echo
		pinning="unpinned"
		[ -n "${PIN:-}" ] && pinning="servers pinned to CPU 0 and loadgen to CPU 1 (PIN=1), caddy's pinned peak $PINNED_PEAK req/s"
		echo "at a fixed $RATE req/s (half of caddy's median peak), loadgen (open loop, evenly spaced, up to $CONNS in flight), $RATE_ROUNDS interleaved rounds of $DURATION, $pinning; medians;"
		echo "added = this setup's p99 minus caddy's (caddy-log's for tg-audit) in the same round"
		echo
		printf '| %-12s | %9s | %8s | %8s | %9s |\n' setup "req/s" "p50 ms" "p99 ms" "added p99"
		printf '|%s|%s|%s|%s|%s|\n' "--------------" "-----------" "----------" "----------" "-----------"
		awk -F'\t' -v setups="${RATE_SETUPS[*]}" '
		function median(list,   a, n, i, j, t) {
			n = split(list, a, " ")
			for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
			return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		}
		NR > 1 { rps[$2] = rps[$2] " " $4; p50[$2] = p50[$2] " " $5; p99[$2] = p99[$2] " " $6; r[$1, $2] = $6; rounds[$1] = 1 }
		END {
			n = split(setups, s, " ")
			for (i = 1; i <= n; i++) {
				name = s[i]; base = (name == "tg-audit") ? "caddy-log" : "caddy"; added = ""
				for (k in rounds) added = added " " r[k, name] - r[k, base]
				printf "| %-12s | %9.0f | %8.2f | %8.2f | %9.2f |\n", name, median(rps[name]), median(p50[name]), median(p99[name]), median(added)
			}
		}' "$RATE_RESULTS"
	fi
	echo
	echo "peak RSS (VmHWM):"
	for setup in "${SETUPS[@]}"; do
		name=${setup%%|*}
		printf '  %-18s %s\n' "$name" "$(awk '/VmHWM/ {print $2, $3}' "/proc/${PID[$name]}/status" 2>/dev/null || echo '?')"
	done
	echo
	echo "tokengate metrics of the tg setup ($WORK/tg.tokengate.metrics), $PROMTOOL:"
	grep -E '^tokengate_(decisions_total|decision_cache_total|policy_eval_seconds_(count|sum)|store_seconds_count)' "$WORK/tg.tokengate.metrics" | grep -v ' 0$' | sed 's/^/  /'
	echo
	echo "per-round figures: $RESULTS; raw wrk output: $WORK/wrk/"
	if [ -n "${PROFILE:-}" ]; then
		echo "CPU profiles: go tool pprof -top $WORK/bin/caddy $WORK/<setup>.cpu.pprof"
	fi
} | tee "$WORK/summary.md"
