#!/usr/bin/env bash
# The upstream half alone: how much CPU libcurl itself spends per proxied request on this
# machine, beside the nginx proxy's whole request and Prism's, in the same minutes.
#
#   bash bench/floor/run.sh            (ROUNDS=3 SECONDS_EACH=6 CONNECTIONS=32)
#
# curl_floor.c sends the benchmark request to the mock upstream and reads the answer, driven as
# the gateway drives libcurl (multi socket API, epoll, handles and connections reused), with
# CONNECTIONS transfers in flight. The nginx proxy and Prism get wrk at CONNECTIONS connections.
# CPU per request is utime+stime from /proc (all processes and threads of the target) over the
# requests completed. Needs what bench/run.sh needs, a C compiler (cc, or the Swift toolchain's
# clang) and libcurl's headers (scripts/install.sh installs them).
set -euo pipefail
FLOOR_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_DIR=$(dirname "$FLOOR_DIR")
REPO_DIR=$(dirname "$BENCH_DIR")
PRISM_BIN=${PRISM_BIN:-$REPO_DIR/dist/prism-gateway}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
ROUNDS=${ROUNDS:-3} SECONDS_EACH=${SECONDS_EACH:-6} CONNECTIONS=${CONNECTIONS:-32}
MOCK_PORT=18080 PROXY_PORT=18081 PRISM_PORT=18082
for p in $MOCK_PORT $PROXY_PORT $PRISM_PORT; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "127.0.0.1:$p is in use: stop it first" >&2; exit 1; fi
done
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/prism-floor.XXXXXX")
chmod 755 "$RUN_DIR"
PRISM_PID="" MASTERS=()
cleanup() {
    [[ -z $PRISM_PID ]] || { kill "$PRISM_PID" 2>/dev/null; wait "$PRISM_PID" 2>/dev/null || true; }
    for prefix in "${MASTERS[@]}"; do "$NGINX_BIN" -p "$prefix/" -c "$prefix/nginx.conf" -s stop -q 2>/dev/null || true; done
    sleep 0.3; rm -rf "$RUN_DIR"
}
trap cleanup EXIT

compiler=${CC:-$(command -v cc || command -v clang)}   # the Swift toolchain brings clang
"$compiler" -O2 -o "$RUN_DIR/curl_floor" "$FLOOR_DIR/curl_floor.c" -lcurl

wait_http() { for _ in $(seq 100); do curl -fs -o /dev/null -m 1 "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }
start_nginx() {   # start_nginx NAME CONF PORT
    local prefix="$RUN_DIR/$1"
    mkdir -p "$prefix/logs" "$prefix/tmp"
    ln -sfn "$BENCH_DIR/mock" "$prefix/mock"
    cp "$2" "$prefix/nginx.conf"
    "$NGINX_BIN" -p "$prefix/" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log"
    MASTERS+=("$prefix")
    wait_http "http://127.0.0.1:$3/health"
}
start_nginx mock "$BENCH_DIR/nginx/mock.conf" $MOCK_PORT
start_nginx proxy "$BENCH_DIR/nginx/proxy.conf" $PROXY_PORT
cat >"$RUN_DIR/prism.yaml" <<YAML
server: {host: 127.0.0.1, port: $PRISM_PORT}
providers:
  bench-upstream:
    api_format: openai
    base_url: http://127.0.0.1:$MOCK_PORT/v1
    api_key: sk-bench-upstream-unused
    models: [gpt-4o-mini]
auth: {enabled: false}
logging: {level: warn}
spend_ledger: {path: $RUN_DIR/spend.db}
YAML
"$PRISM_BIN" --config "$RUN_DIR/prism.yaml" >"$RUN_DIR/prism.log" 2>&1 &
PRISM_PID=$!
wait_http "http://127.0.0.1:$PRISM_PORT/readyz"

pids_of() {   # the nginx master and its workers, or Prism
    if [[ $1 == prism ]]; then echo "$PRISM_PID"; return; fi
    local master; master=$(tr -dc 0-9 <"$RUN_DIR/$1/nginx.pid")
    echo "$master $(pgrep -P "$master" | tr '\n' ' ')"
}
ticks() { local t=0 p rest; for p in "$@"; do rest=$(sed 's/.*) //' "/proc/$p/stat"); set -- $rest; t=$((t + ${12} + ${13})); done; echo $t; }
hz=$(getconf CLK_TCK)
export BENCH_BODY=$BENCH_DIR/chat_request.json
printf '%-6s %-14s %10s %14s\n' round target "req/s" "CPU µs/req"
for round in $(seq "$ROUNDS"); do
    read -r requests rps user sys < <("$RUN_DIR/curl_floor" "http://127.0.0.1:$MOCK_PORT/v1/chat/completions" \
        "$BENCH_BODY" "$CONNECTIONS" "$SECONDS_EACH" | sed 's/[a-z_]*=//g')
    printf '%-6s %-14s %10s %14.1f\n' "$round" "libcurl alone" "$rps" "$(awk -v u="$user" -v s="$sys" 'BEGIN{print u + s}')"
    for target in proxy prism; do
        port=$([[ $target == proxy ]] && echo $PROXY_PORT || echo $PRISM_PORT)
        pids=$(pids_of $target)
        t0=$(ticks $pids)
        out=$(wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" -s "$BENCH_DIR/chat.lua" "http://127.0.0.1:$port/v1/chat/completions" | grep BENCH_RESULT)
        t1=$(ticks $pids)
        requests=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$out"); rps=$(sed 's/.*rps=\([0-9.]*\).*/\1/' <<<"$out")
        printf '%-6s %-14s %10.0f %14.1f\n' "$round" "$([[ $target == proxy ]] && echo nginx-proxy || echo prism)" "$rps" \
            "$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$requests" 'BEGIN{print d * 1e6 / hz / n}')"
    done
done
