#!/usr/bin/env bash
# What the cache and the rate limiter add to an answer, over HTTP with wrk (one connection, so the
# figures are per-request latency, not throughput). Three gateways answer the same chat request
# without any network call behind them:
#   bare       the `mock` provider answers (no middleware)            -- the reference
#   cache-hit  cache enabled and warmed: the cache middleware answers (every request a hit)
#   limited    rate_limit with a global and a per-key window (in memory), then the mock answers
#   governed   keys, limits (global, per key, per user) and budgets (org, key, each user) all on,
#              with a price for the model so every answer adds to three budgets
# and, when redis-server is installed, the same on Redis:
#   cache-hit-redis, limited-redis, governed-redis
# Each is measured at one connection (latency) and at 32 (throughput, compared with bare).
# Budgets (issue 6): a cache hit adds <= 50 µs over the bare answer; an in-memory limit check
# <= 2 µs (see bench/state for the isolated figure); a Redis-backed check one round trip.
# Governance (issue 16): budgets add <= 3 µs in memory, one Redis round trip when shared; with
# keys, limits and budgets all on, throughput falls <= 10 %.
#
#   bench/middleware.sh            # DURATION=10s by default; needs dist/ (make build) and wrk
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
BIN=${PRISM_BIN:-dist/prism-gateway}
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [[ -n ${redis_pid:-} ]] && kill "$redis_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

body='{"model":"mock-gpt","messages":[{"role":"user","content":"What is the capital of France? Answer in one word."}],"stream":false,"user":"bench-user"}'
printf '%s\n' "$body" >"$work/request.json"

redis_port=
if command -v redis-server >/dev/null; then
    redis_port=16399
    redis-server --port $redis_port --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
    redis_pid=$!
    sleep 0.5
fi

config() { # name port
    local redis=""
    [[ $1 == *-redis ]] && redis="redis: {enabled: true, address: \"127.0.0.1:$redis_port\"}"
    cat <<EOF
server: {port: $2, host: 127.0.0.1}
providers:
  mock: {type: mock, models: [mock-gpt]}
auth:
  enabled: true
  keys: [{name: bench, key: sk-prism-bench, rate_limit_rpm: 1000000000, rate_limit_tpm: 0}]
logging: {level: error}
$redis
EOF
    case $1 in
        bare) echo "middleware: [auth]" ;;
        cache-hit*) echo "cache: {enabled: true}"; echo "middleware: [auth, cache]" ;;
        limited*) echo "rate_limiting: {enabled: true, global_rpm: 1000000000}"; echo "middleware: [auth, rate_limit]" ;;
        governed*)
            echo "rate_limiting: {enabled: true, global_rpm: 1000000000, per_user: {rpm: 1000000000}}"
            echo "cost_tracking: {custom_pricing: {mock-gpt: {input_per_mtok: 0.01, output_per_mtok: 0.01}}}"
            echo "budgets: {org: {limit: 1000000}, keys: {bench: {limit: 1000000}}, users: {'*': {limit: 1000000}}}"
            echo "middleware: [auth, rate_limit]" ;;
    esac
}

targets=(bare cache-hit limited governed)
[[ -n $redis_port ]] && targets+=(cache-hit-redis limited-redis governed-redis)
port=18190
printf '| target | req/s (1 conn) | p50 | p99 | p50 vs bare | req/s (32 conn) | vs bare |\n|---|---:|---:|---:|---:|---:|---:|\n'
bare_p50=
bare_rps32=
for target in "${targets[@]}"; do
    port=$((port + 1))
    config "$target" "$port" >"$work/$target.yaml"
    "$BIN" --config "$work/$target.yaml" >"$work/$target.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.05; done
    url="http://127.0.0.1:$port/v1/chat/completions"
    # Warm up (and fill the cache).
    curl -sf "$url" -H 'authorization: Bearer sk-prism-bench' -H 'content-type: application/json' -d "$body" >/dev/null
    (cd "$work" && BENCH_BODY=request.json wrk -t1 -c8 -d2s -s "$OLDPWD/bench/chat.lua" "$url" >/dev/null)
    out=$(cd "$work" && BENCH_BODY=request.json wrk -t1 -c1 -d"$DURATION" -s "$OLDPWD/bench/chat.lua" "$url")
    line=$(grep BENCH_RESULT <<<"$out")
    value() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$line"; }
    p50=$(value p50_us)
    [[ $target == bare ]] && bare_p50=$p50
    delta=$(awk -v a="$p50" -v b="$bare_p50" 'BEGIN { printf "%+.0f µs", a - b }')
    rps1=$(value rps) p99=$(value p99_us) non2xx=$(value non2xx)
    out32=$(cd "$work" && BENCH_BODY=request.json wrk -t2 -c32 -d"$DURATION" -s "$OLDPWD/bench/chat.lua" "$url")
    line=$(grep BENCH_RESULT <<<"$out32")
    rps32=$(value rps)
    [[ $target == bare ]] && bare_rps32=$rps32
    ratio=$(awk -v a="$rps32" -v b="$bare_rps32" 'BEGIN { printf "%.2f×", a / b }')
    printf '| %s | %s | %s µs | %s µs | %s | %s | %s |\n' "$target" "$rps1" "$p50" "$p99" "$delta" "$rps32" "$ratio"
    if [[ $non2xx != 0 || $(value non2xx) != 0 ]]; then echo "warning: $target had non-2xx answers" >&2; fi
    case $target in cache-hit*)
        curl -s -D - -o /dev/null "$url" -H 'authorization: Bearer sk-prism-bench' -H 'content-type: application/json' -d "$body" |
            grep -qi 'x-prism-cache: hit' || echo "warning: $target did not answer from the cache" >&2 ;;
    governed*)
        curl -s -D - -o /dev/null "$url" -H 'authorization: Bearer sk-prism-bench' -H 'content-type: application/json' -d "$body" |
            grep -qi 'x-prism-cost: 0\.0' || echo "warning: $target answers carry no cost: budgets would add nothing" >&2 ;;
    esac
done
