#!/usr/bin/env bash
# Throughput and latency of tokengate next to what people run today, side by
# side on one machine, in interleaved rounds, under the realistic mix
# (many tokens, ids in paths, mixed methods). See README.md in this folder.
#
#   examples/bench/run.sh                 # 3 rounds of 10s per setup
#   ROUNDS=5 DURATION=20s examples/bench/run.sh
#   PROFILE=1 examples/bench/run.sh      # also CPU profiles from round 1
#   PIN=1 examples/bench/run.sh          # servers on CPU 0, client on CPU 1
#   ROUNDS=0 RATE_ROUNDS=5 examples/bench/run.sh   # only the fixed-rate stage
#   WORKLOAD=single examples/bench/run.sh          # one token, one path (a cache benchmark)
#   REV=39726e4 examples/bench/run.sh               # tokengate as built from another commit
#   AUDIT_OUTPUT=tokengate_audit examples/bench/run.sh   # audit setups through the tamper-evident writer
#   ONLY="tg tg-rate" examples/bench/run.sh        # only these setups (tg-rate: a rate limit on every token)
#
# Needs: go, curl. Everything listens on 127.0.0.1, on ports free when the
# run starts.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
TOKENS=${TOKENS:-10000}
UNKNOWN=${UNKNOWN:-1000}
WORKLOAD=${WORKLOAD:-mix}
METHODS=${METHODS:-GET=80,POST=15,DELETE=5}
UNKNOWN_PCT=${UNKNOWN_PCT:-1}
ZIPF_S=${ZIPF_S:-1.1}
# The log writer of the *audit setups: file (Caddy's) or tokengate_audit
# (the tamper-evident one: a leaf hash a line, a look at the file every ms, checkpoints).
AUDIT_OUTPUT=${AUDIT_OUTPUT:-file}
# The limit every token of the tg-rate setup carries: high enough that the
# mix never reaches it, so the setup measures what counting costs.
RATE_LIMIT=${RATE_LIMIT:-1000000/1m}
WORK=${WORK:-$(mktemp -d /tmp/tokengate-bench.XXXXXX)}

cd "$(dirname "$0")/../.."
REPO=$(pwd)
mkdir -p "$WORK/bin" "$WORK/runs"
echo "work dir: $WORK" >&2
case $WORKLOAD in mix | single) ;; *) echo "WORKLOAD is mix or single" >&2; exit 2 ;; esac
for tool in go curl python3; do
	command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done

# --- build ------------------------------------------------------------------
echo "building caddy, upstream, seed, loadgen, opa (go.mod's tool)" >&2
SRC=$REPO
if [ -n "${REV:-}" ]; then
	SRC=$WORK/src
	mkdir -p "$SRC"
	git archive "$REV" | tar -x -C "$SRC"
fi
(cd "$SRC" && go build -o "$WORK/bin/caddy" ./cmd/caddy)
TREE=$(git rev-parse --short "${REV:-HEAD}")
go build -o "$WORK/bin/upstream" ./examples/bench/upstream
go build -o "$WORK/bin/seed" ./examples/bench/seed
go build -o "$WORK/bin/loadgen" ./examples/bench/loadgen
# OPA at the version go.mod pins, from go.mod's tool directive.
go build -o "$WORK/bin/opa" github.com/open-policy-agent/opa
OPA_VERSION=$(go list -m -f '{{.Version}}' github.com/open-policy-agent/opa)

# --- data -------------------------------------------------------------------
# One set of tokens, written for tokengate (bbolt) and for OPA (data.json),
# and the secrets loadgen draws from.
SECRET=$("$WORK/bin/seed" -tokens "$TOKENS" -unknown "$UNKNOWN" -service demo \
	-bolt "$WORK/tokens.db" -opa-data "$WORK/data.json" -secrets "$WORK/secrets.txt" \
	-rate-bolt "$WORK/tokens-rate.db" -rate "$RATE_LIMIT")
RO_SECRET=$(awk '$2 == "ro" {print $1; exit}' "$WORK/secrets.txt")
CIDR_SECRET=$(awk '$2 == "cidr" {print $1; exit}' "$WORK/secrets.txt")
UNKNOWN_SECRET=$(awk '$2 == "unknown" {print $1; exit}' "$WORK/secrets.txt")

# --- ports --------------------------------------------------------------------
# Ports the kernel hands out as free right now (bound and released at once;
# nothing else on this machine is expected to grab them in between).
free_ports() { # count
	python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# --- processes ----------------------------------------------------------------
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

# Setups, in the order of the table. name|description
SETUPS=(
	"caddy|Caddy reverse_proxy, no access log"
	"caddy-log|Caddy reverse_proxy, JSON access log to a file"
	"tg|tokengate cached, audit off"
	"tg-audit|tokengate cached, audit JSON to a file"
	"tg-uncached|tokengate decision_cache 0, audit off"
	"tg-uncached-audit|tokengate decision_cache 0, audit JSON to a file"
	"fa-opa|forward_auth to an OPA server (same tokens, same rules)"
	"tg-rate|tokengate cached, audit off, every token limited to $RATE_LIMIT"
)
if [ -n "${ONLY:-}" ]; then
	kept=()
	for setup in "${SETUPS[@]}"; do
		[[ " $ONLY " == *" ${setup%%|*} "* ]] && kept+=("$setup")
	done
	SETUPS=("${kept[@]}")
fi
read -r -a P <<<"$(free_ports $((2 + 2 * ${#SETUPS[@]})))"
UPSTREAM=127.0.0.1:${P[0]}
OPA_ADDR=127.0.0.1:${P[1]}
"$WORK/bin/upstream" -addr "$UPSTREAM" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
SERVER_PIDS=($!)
"$WORK/bin/opa" run --server --addr "$OPA_ADDR" --log-level error \
	--authentication=token --authorization=basic \
	"$REPO/examples/bench/opa/authz.rego" "$WORK/data.json" >"$WORK/opa.log" 2>&1 &
PIDS+=($!)
SERVER_PIDS+=($!)

declare -A PORT ADMIN PID
i=0
for setup in "${SETUPS[@]}"; do
	name=${setup%%|*}
	PORT[$name]=${P[$((2 + 2 * i))]}
	ADMIN[$name]=${P[$((3 + 2 * i))]}
	i=$((i + 1))
	dir="$WORK/$name"
	mkdir -p "$dir"
	cp "$WORK/tokens.db" "$dir/tokens.db"
	[ "$name" = tg-rate ] && cp "$WORK/tokens-rate.db" "$dir/tokens.db"
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
		output $AUDIT_OUTPUT $dir/audit.log {
			roll_disabled
		}
		format json
	}"
		fi
		handler="tokengate demo"
		;;
	fa-opa)
		handler="forward_auth $OPA_ADDR {
			uri /health?service=demo
		}"
		;;
	esac
	# Log files do not roll (Caddy rolls at 100 MB by default and gzips the
	# old file in the background): every line stays countable, and neither
	# side pays for compression during a run.
	cat >"$dir/Caddyfile" <<EOF2
{
	$global
}
http://127.0.0.1:${PORT[$name]} {
	bind 127.0.0.1
	$site_log
	route /demo/* {
		$handler
		reverse_proxy $UPSTREAM
	}
}
EOF2
	(cd "$dir" && HOME="$dir" XDG_DATA_HOME="$dir/data" XDG_CONFIG_HOME="$dir/config" \
		exec "$WORK/bin/caddy" run --config Caddyfile --adapter caddyfile >"$dir/caddy.log" 2>&1) &
	PID[$name]=$!
	PIDS+=($!)
	SERVER_PIDS+=($!)
done

status() { # name method secret [path]
	curl -s -o /dev/null -w '%{http_code}' -X "$2" -H "Authorization: Bearer $3" "http://127.0.0.1:${PORT[$1]}${4:-/demo/items/42}"
}
ready() { # name
	for _ in $(seq 300); do
		[ "$(status "$1" GET "$SECRET")" = 200 ] && return 0
		sleep 0.1
	done
	echo "$1 never answered 200; see $WORK/$1/caddy.log" >&2
	exit 1
}
for setup in "${SETUPS[@]}"; do ready "${setup%%|*}"; done
# tokengate and OPA must decide alike, or the comparison is meaningless:
# a CIDR-bound token from loopback and a read-only token reading pass, a
# read-only token writing and a never-issued one do not.
for name in tg fa-opa; do
	[ -n "${PORT[$name]:-}" ] || continue
	for check in "GET $CIDR_SECRET 200" "DELETE $CIDR_SECRET 200" "GET $RO_SECRET 200" \
		"POST $RO_SECRET 4" "DELETE $RO_SECRET 4" "GET $UNKNOWN_SECRET 401" "GET ${SECRET%?}x 401"; do
		read -r method secret want <<<"$check"
		code=$(status "$name" "$method" "$secret")
		[[ $code == "$want"* ]] || { echo "$name answered $code to $method with a ${check##* }-check token, want $want" >&2; exit 1; }
	done
done

# Servers on CPU 0, the client on CPU 1, so the client's threads never
# preempt a server mid-request (taskset).
CLIENT=()
if [ -n "${PIN:-}" ]; then
	for pid in "${SERVER_PIDS[@]}"; do taskset -a -p -c 0 "$pid" >/dev/null; done
	CLIENT=(taskset -c 1)
fi

# --- measure ------------------------------------------------------------------
# loadgen_to name args...: the workload against one setup. Plain Caddy
# checks no token, so there a never-issued secret gets 200 like the rest.
loadgen_to() {
	local name=$1
	shift
	local auth=true
	[[ $name == caddy* ]] && auth=false
	if [ "$WORKLOAD" = single ]; then
		"${CLIENT[@]}" "$WORK/bin/loadgen" -url "http://127.0.0.1:${PORT[$name]}/demo/items/42" \
			-header "Authorization: Bearer $SECRET" "$@"
	else
		"${CLIENT[@]}" "$WORK/bin/loadgen" -secrets "$WORK/secrets.txt" -base "http://127.0.0.1:${PORT[$name]}/demo" \
			-auth="$auth" -methods "$METHODS" -unknown-pct "$UNKNOWN_PCT" -zipf-s "$ZIPF_S" "$@"
	fi
}
field() { tr ' ' '\n' <"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }
lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }
cache_count() { # name result: the setup's decision-cache counter, 0 when absent
	curl -s "http://127.0.0.1:${ADMIN[$1]}/metrics" |
		awk -v r="$2" '$1 == "tokengate_decision_cache_total{result=\"" r "\"}" {print $2; found = 1} END {if (!found) print 0}'
}

RESULTS="$WORK/results.tsv"
printf 'round\tsetup\treq_s\tp50_ms\tp99_ms\trequests\tunexpected\taudit_lines\thits\tmisses\tload1\n' >"$RESULTS"

run_one() { # round name
	local round=$1 name=$2 out="$WORK/runs/$2.$1.txt" audit="$WORK/$2/audit.log"
	local before after load h0=0 m0=0 h1=0 m1=0
	before=$(lines "$audit")
	if [[ $name == tg* ]]; then h0=$(cache_count "$name" hit); m0=$(cache_count "$name" miss); fi
	load=$(cut -d' ' -f1 /proc/loadavg)
	if [ -n "${PROFILE:-}" ] && [ "$round" = 1 ]; then
		# A CPU profile of the server during the middle of the run.
		(sleep 2 && curl -s -o "$WORK/$name.cpu.pprof" \
			"http://127.0.0.1:${ADMIN[$name]}/debug/pprof/profile?seconds=5") &
	fi
	loadgen_to "$name" -rate 0 -conns "$CONNS" -duration "$DURATION" -seed "$round" >"$out"
	sleep 1 # audit lines are written after each response
	after=$(lines "$audit")
	if [[ $name == tg* ]]; then h1=$(cache_count "$name" hit); m1=$(cache_count "$name" miss); fi
	local rps p50 p99 reqs bad audited=- hits=- misses=-
	rps=$(field "$out" rate)
	p50=$(field "$out" p50_ms)
	p99=$(field "$out" p99_ms)
	reqs=$(field "$out" sent)
	bad=$(($(field "$out" unexpected) + $(field "$out" errors)))
	[[ $name == *audit ]] && audited=$((after - before))
	[[ $name == tg* ]] && { hits=$(awk -v a="$h0" -v b="$h1" 'BEGIN {print b - a}'); misses=$(awk -v a="$m0" -v b="$m1" 'BEGIN {print b - a}'); }
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$rps" "$p50" "$p99" "$reqs" "$bad" "$audited" "$hits" "$misses" "$load" >>"$RESULTS"
	printf 'round %s %-18s %9s req/s  p50 %7s ms  p99 %7s ms  unexpected %s  audit lines %s of %s  cache hits %s misses %s  load %s\n' \
		"$round" "$name" "$rps" "$p50" "$p99" "$bad" "$audited" "$reqs" "$hits" "$misses" "$load" >&2
	[ "$bad" = 0 ] || { echo "$name: unexpected answers, see $out" >&2; cat "$out" >&2; }
}

echo "warm-up (2s each)" >&2
for setup in "${SETUPS[@]}"; do
	loadgen_to "${setup%%|*}" -rate 0 -conns "$CONNS" -duration 2s -seed 0 >/dev/null
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
# does each setup add? loadgen sends evenly spaced requests open-loop and
# measures from when each was due.
RATE_ROUNDS=${RATE_ROUNDS:-3}
read -r -a RATE_SETUPS <<<"${RATE_SETUPS:-caddy caddy-log tg tg-audit tg-uncached}"
RATE_RESULTS="$WORK/rate.tsv"
printf 'round\tsetup\trate\treq_s\tp50_ms\tp99_ms\tload1\n' >"$RATE_RESULTS"
median_of() { sort -n | awk '{a[NR] = $1} END {print NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
if [ "$RATE_ROUNDS" -gt 0 ]; then
	if [ "$ROUNDS" -gt 0 ]; then
		RATE=$(awk -F'\t' '$2 == "caddy" {print $3}' "$RESULTS" | median_of | awk '{printf "%d", $1 / 2}')
	else
		PEAK=$(for s in 1 2 3; do
			loadgen_to caddy -rate 0 -conns "$CONNS" -duration 5s -seed "$s" >"$WORK/runs/peak.$s.txt"
			field "$WORK/runs/peak.$s.txt" rate
		done | median_of)
		RATE=$(awk -v p="$PEAK" 'BEGIN {printf "%d", p / 2}')
		echo "plain caddy peak $PEAK req/s (median of three 5s runs)" >&2
	fi
	for round in $(seq "$RATE_ROUNDS"); do
		for k in $(seq 0 $((${#RATE_SETUPS[@]} - 1))); do
			name=${RATE_SETUPS[$(((k + round - 1) % ${#RATE_SETUPS[@]}))]}
			out="$WORK/runs/rate.$name.$round.txt"
			load=$(cut -d' ' -f1 /proc/loadavg)
			loadgen_to "$name" -rate "$RATE" -duration "$DURATION" -conns "$CONNS" -seed "$((100 + round))" >"$out"
			rps=$(field "$out" rate)
			p50=$(field "$out" p50_ms)
			p99=$(field "$out" p99_ms)
			[ "$(field "$out" errors)" = 0 ] && [ "$(field "$out" unexpected)" = 0 ] || { echo "$name: errors in $out" >&2; cat "$out" >&2; }
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
	echo "tree: $TREE$([ -z "${REV:-}" ] && ! git -C "$REPO" diff --quiet HEAD -- . ':!examples/bench' ':!BENCHMARKS.md' && echo ' plus uncommitted changes'), OPA $OPA_VERSION"
	echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), $(go version | cut -d' ' -f3), load average before the runs: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)${PIN:+, servers pinned to CPU 0 and loadgen to CPU 1}"
	if [ "$WORKLOAD" = mix ]; then
		echo "workload: the realistic mix: $TOKENS tokens (Zipf s=$ZIPF_S popularity, a quarter read-only, 5 bound to CIDRs), /demo/items/<1..1000000>, $METHODS, $UNKNOWN_PCT% never-issued secrets"
	else
		echo "workload: one token, GET /demo/items/42"
	fi
	if [ "$(wc -l <"$RESULTS")" -gt 1 ]; then # ROUNDS=0 runs only the fixed-rate stage
	echo "loadgen closed loop, $CONNS connections, $DURATION per run, $ROUNDS interleaved rounds; medians over rounds;"
	echo "ratios are medians of the per-round ratios (each run against the caddy, caddy-log and fa-opa runs of its own round);"
	echo "hit rate: tokengate_decision_cache_total hits / (hits + misses) over the setup's runs"
	echo
	printf '| %-18s | %-55s | %8s | %7s | %7s | %7s | %7s | %7s | %8s | %s |\n' setup description "req/s" "x caddy" "x log" "x opa" "p50 ms" "p99 ms" "hit rate" "audit lines / requests"
	printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' "--------------------" "---------------------------------------------------------" "----------" "---------" "---------" "---------" "---------" "---------" "----------" "---"
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
		if ($9 != "-") { hits[$2] += $9; misses[$2] += $10 }
	}
	END {
		n = split(setups, s, "\n")
		for (i = 1; i <= n; i++) {
			split(s[i], f, "|"); name = f[1]
			xc = ""; xl = ""; xo = ""
			for (k in rounds) { xc = xc " " r[k, name] / r[k, "caddy"]; xl = xl " " r[k, name] / r[k, "caddy-log"]; xo = xo " " r[k, name] / r[k, "fa-opa"] }
			audit = (name in lines) ? sprintf("%d / %d", lines[name], reqs[name]) : "-"
			hit = (name in hits && hits[name] + misses[name] > 0) ? sprintf("%.1f%%", 100 * hits[name] / (hits[name] + misses[name])) : "-"
			printf "| %-18s | %-55s | %8.0f | %7.2f | %7.2f | %7.2f | %7.2f | %7.2f | %8s | %s |\n", name, f[2], median(rps[name]), median(xc), median(xl), median(xo), median(p50[name]), median(p99[name]), hit, audit
		}
	}' "$RESULTS"
	fi
	if [ "$(wc -l <"$RATE_RESULTS")" -gt 1 ]; then
		echo
		echo "at a fixed $RATE req/s (half of caddy's median peak), loadgen open loop (evenly spaced, up to $CONNS in flight), $RATE_ROUNDS interleaved rounds of $DURATION; medians;"
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
	echo "per-round figures: $RESULTS; raw loadgen output: $WORK/runs/"
	if [ -n "${PROFILE:-}" ]; then
		echo "CPU profiles: go tool pprof -top $WORK/bin/caddy $WORK/<setup>.cpu.pprof"
	fi
} | tee "$WORK/summary.md"
