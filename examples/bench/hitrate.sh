#!/usr/bin/env bash
# The decision cache's hit rate under the realistic mix (see README.md), by
# request count rather than by time, so the figure does not depend on how
# fast the machine is: one tokengate setup (decision cache on, audit lines
# to a file), WINDOWS windows of REQUESTS requests each, window w sent with
# loadgen -seed w. Per window it prints the hits and misses the metrics
# count, and the misses no cache could avoid: first calls of a (token,
# method) pair, counted from the audit lines (the shipped policy reads the
# method, so it is part of the key; it never reads the path).
#
#   examples/bench/hitrate.sh                      # 5 windows of 20,000 requests
#   WINDOWS=3 REQUESTS=50000 examples/bench/hitrate.sh
#   REV=8b82fb9 examples/bench/hitrate.sh          # tokengate built from another commit
#
# Needs: go, curl, python3. Listens on 127.0.0.1 only, on ports free at start.
set -euo pipefail

WINDOWS=${WINDOWS:-5}
REQUESTS=${REQUESTS:-20000}
CONNS=${CONNS:-4}
TOKENS=${TOKENS:-10000}
UNKNOWN=${UNKNOWN:-1000}
CACHE=${CACHE:-100000}
WORK=${WORK:-$(mktemp -d /tmp/tokengate-hitrate.XXXXXX)}

cd "$(dirname "$0")/../.."
REPO=$(pwd)
mkdir -p "$WORK/bin"
echo "work dir: $WORK" >&2
SRC=$REPO
if [ -n "${REV:-}" ]; then
	SRC=$WORK/src
	mkdir -p "$SRC"
	git archive "$REV" | tar -x -C "$SRC"
fi
[ -x "$WORK/bin/caddy" ] || (cd "$SRC" && go build -o "$WORK/bin/caddy" ./cmd/caddy)
for tool in upstream seed loadgen; do
	[ -x "$WORK/bin/$tool" ] || go build -o "$WORK/bin/$tool" "./examples/bench/$tool"
done

"$WORK/bin/seed" -tokens "$TOKENS" -unknown "$UNKNOWN" -service demo \
	-bolt "$WORK/tokens.db" -opa-data "$WORK/data.json" -secrets "$WORK/secrets.txt" >/dev/null

read -r UP PORT ADMIN <<<"$(python3 -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
"$WORK/bin/upstream" -addr "127.0.0.1:$UP" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
cat >"$WORK/Caddyfile" <<EOF
{
	admin 127.0.0.1:$ADMIN
	tokengate {
		store bolt $WORK/tokens.db
		decision_cache $CACHE
	}
	log default {
		exclude tokengate.audit
	}
	log audit {
		include tokengate.audit
		output file $WORK/audit.log {
			roll_disabled
		}
		format json
	}
}
http://127.0.0.1:$PORT {
	bind 127.0.0.1
	route /demo/* {
		tokengate demo
		reverse_proxy 127.0.0.1:$UP
	}
}
EOF
(cd "$WORK" && HOME="$WORK" XDG_DATA_HOME="$WORK/data" XDG_CONFIG_HOME="$WORK/config" \
	exec "$WORK/bin/caddy" run --config Caddyfile --adapter caddyfile >"$WORK/caddy.log" 2>&1) &
PIDS+=($!)
for _ in $(seq 300); do
	curl -s -o /dev/null "http://127.0.0.1:$ADMIN/metrics" && break
	sleep 0.1
done

count() { # result
	curl -s "http://127.0.0.1:$ADMIN/metrics" |
		awk -v r="$1" '$1 == "tokengate_decision_cache_total{result=\"" r "\"}" {print $2; f = 1} END {if (!f) print 0}'
}
lines() { [ -f "$WORK/audit.log" ] && wc -l <"$WORK/audit.log" || echo 0; }

printf 'window\trequests\thits\tmisses\thit_rate\tfirst_calls\tbound\n'
for w in $(seq "$WINDOWS"); do
	h0=$(count hit) m0=$(count miss) l0=$(lines)
	"$WORK/bin/loadgen" -secrets "$WORK/secrets.txt" -base "http://127.0.0.1:$PORT/demo" \
		-rate 0 -conns "$CONNS" -requests "$REQUESTS" -seed "$w" >"$WORK/loadgen.$w.txt"
	grep -q ' errors=0 unexpected=0 ' "$WORK/loadgen.$w.txt" || { echo "unexpected answers:" >&2; cat "$WORK/loadgen.$w.txt" >&2; exit 1; }
	sleep 1 # audit lines are written after each answer
	h1=$(count hit) m1=$(count miss)
	# First calls of a (token, method) pair in this run so far, among the
	# lines of this window: the misses a cache that never forgets still has.
	first=$(python3 - "$WORK/audit.log" "$l0" <<'PY'
import json, sys
seen, first = set(), 0
with open(sys.argv[1]) as f:
    for i, line in enumerate(f):
        e = json.loads(line)
        if e.get("cache") not in ("hit", "miss"):
            continue
        k = (e["token_id"], e["method"])
        if k not in seen:
            seen.add(k)
            first += i >= int(sys.argv[2])
print(first)
PY
)
	awk -v w="$w" -v n="$REQUESTS" -v h="$((h1 - h0))" -v m="$((m1 - m0))" -v f="$first" 'BEGIN {
		printf "%d\t%d\t%d\t%d\t%.1f%%\t%d\t%.1f%%\n", w, n, h, m, 100 * h / (h + m), f, 100 * (h + m - f) / (h + m) }'
done
