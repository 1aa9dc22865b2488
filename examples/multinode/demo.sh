#!/usr/bin/env bash
# Two tokengate nodes sharing one PostgreSQL database: a token issued on
# node A works on both nodes; revoked on node A, node B refuses it at once.
#
#   examples/multinode/demo.sh
#
# DATABASE_URL defaults to postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
# Ports (all on 127.0.0.1) can be moved with A_PORT, B_PORT, A_ADMIN, B_ADMIN,
# A_UPSTREAM and B_UPSTREAM. Set KEEP=1 to keep the nodes' folders (logs,
# audit lines) after the demo.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
A_PORT=${A_PORT:-18080} A_ADMIN=${A_ADMIN:-12019} A_UPSTREAM=${A_UPSTREAM:-19001}
B_PORT=${B_PORT:-18081} B_ADMIN=${B_ADMIN:-12020} B_UPSTREAM=${B_UPSTREAM:-19002}

say() { printf '\n== %s\n' "$*"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/tokengate-multinode.XXXXXX")
pids=()
stop_nodes() {
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [[ ${KEEP:-} == 1 ]]; then
		echo "node folders kept in $work"
	else
		rm -rf "$work"
	fi
}
trap stop_nodes EXIT

# The binary goes next to the nodes' folders, not into the repository,
# where a 100 MB file is one `git add -A` away from being committed.
caddy=$work/caddy
say "building caddy (go build -o $caddy ./cmd/caddy)"
go build -o "$caddy" ./cmd/caddy

# start_node NAME GATEWAY_PORT ADMIN_PORT UPSTREAM_PORT
start_node() {
	local dir=$work/node-$1
	mkdir -p "$dir"
	# Each node gets its own HOME and XDG folders, as separate machines would.
	(cd "$dir" && NODE=$1 GATEWAY_PORT=$2 ADMIN_PORT=$3 UPSTREAM_PORT=$4 \
		HOME=$dir XDG_DATA_HOME=$dir/data XDG_CONFIG_HOME=$dir/config \
		exec "$caddy" run --config "$repo/examples/multinode/Caddyfile.node" --adapter caddyfile \
		>"$dir/caddy.log" 2>&1) &
	pids+=($!)
	local pid=$!
	for _ in $(seq 150); do
		if curl -s -o /dev/null "http://127.0.0.1:$2/"; then
			echo "node $1: gateway http://127.0.0.1:$2, admin 127.0.0.1:$3 (pid $pid)"
			return
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "node $1 did not start:" >&2
			cat "$dir/caddy.log" >&2
			exit 1
		fi
		sleep 0.2
	done
	echo "node $1 did not answer within 30s:" >&2
	cat "$dir/caddy.log" >&2
	exit 1
}

# call NAME PORT: one request to a node's gateway with the demo token.
call() {
	local out code body
	out=$(curl -s -w '\n%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$2/demo/hello")
	code=${out##*$'\n'}
	body=${out%$'\n'*}
	printf 'node %s -> HTTP %s %s\n' "$1" "$code" "${body%$'\n'}"
}

say "starting two nodes on $(sed -E 's#://([^:@/]+):[^@/]*@#://\1:***@#' <<<"$DATABASE_URL")"
start_node a "$A_PORT" "$A_ADMIN" "$A_UPSTREAM"
start_node b "$B_PORT" "$B_ADMIN" "$B_UPSTREAM"

say "issuing a token on node A (caddy tokengate issue --address 127.0.0.1:$A_ADMIN)"
TOKEN=$("$caddy" tokengate issue --address "127.0.0.1:$A_ADMIN" \
	--owner demo --purpose "multi-node demo" --scope demo:read --service demo --ttl 1h \
	2>"$work/issue.txt")
cat "$work/issue.txt"
TOKEN_ID=$(grep -o 'tok_[A-Za-z0-9]*' "$work/issue.txt" | head -n1)
echo "secret on stdout: ${TOKEN:0:8}... (${#TOKEN} characters)"

say "calling both nodes with it"
call A "$A_PORT"
call B "$B_PORT"
call B "$B_PORT"

say "node B lists the token node A issued"
"$caddy" tokengate list --address "127.0.0.1:$B_ADMIN" --owner demo --state active

say "revoking it on node A"
"$caddy" tokengate revoke "$TOKEN_ID" --address "127.0.0.1:$A_ADMIN" --reason "multi-node demo"

say "calling node B again"
# Node B learns of the revoke through PostgreSQL LISTEN/NOTIFY, typically
# within milliseconds; wait for that (at most 2s) rather than race it.
for _ in $(seq 100); do
	code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$B_PORT/demo/hello")
	[[ $code != 200 ]] && break
	sleep 0.02
done
call B "$B_PORT"
call A "$A_PORT"

say "node B's audit line for that call"
tail -n1 "$work/node-b/audit.log"
echo
