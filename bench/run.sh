#!/usr/bin/env bash
# Prism overhead benchmark: mock upstream vs plain nginx proxy vs Prism, in one bounded run.
#
#   bench/run.sh                      # full run (about 4-5 minutes with the defaults)
#   DURATION=3s REPEAT=1 bench/run.sh # quick check
#   SKIP_PRISM=1 bench/run.sh         # only direct + nginx-proxy (no gateway binary needed)
#
# What it does, all on 127.0.0.1, every process it starts stopped again on exit (trap):
#   1. starts the mock OpenAI upstream (nginx + echo module, :18080, bench/nginx/mock.conf)
#      and a plain nginx reverse proxy in front of it (:18081, bench/nginx/proxy.conf),
#      each under its own prefix in a temporary RUN_DIR;
#   2. writes a Prism config routing gpt-4o-mini to http://127.0.0.1:18080/v1 (provider
#      api_format openai, auth off, logging warn), starts
#      `$PRISM_BIN --config <it> --port 18082`, waits for /readyz and reads the idle
#      gateway's VmRSS (all plugins beside the binary are loaded);
#   3. checks one request per target and mode with curl (chat.completion JSON, or
#      chat.completion.chunk events ending in `data: [DONE]`);
#   4. after an unmeasured warm-up, for REPEAT rounds, each mode and each load profile, runs
#      the same wrk load against direct (:18080), nginx-proxy (:18081) and prism (:18082) in
#      turn: throughput `wrk -t2 -c32 -d$DURATION` and one-connection latency `wrk -t1 -c1`,
#      recording the CPU time each target's processes spent per request (/proc/PID/stat);
#   5. reads Prism's peak RSS (VmHWM), prints a Markdown report with the budget verdicts and
#      writes it to bench/results/latest.md (plus a time-stamped copy and the raw runs).
#
# Environment:
#   DURATION=10s        length of each measured wrk run (wrk syntax: 10s, 1m)
#   REPEAT=2            rounds; each table cell is the median of its REPEAT runs
#   MODES="json sse"    json: non-streaming; sse: "stream": true
#   WARMUP=2s           unmeasured wrk run (8 connections) per target and mode
#   PRISM_BIN=dist/prism-gateway   gateway binary (plugins: dist/plugins/ beside it)
#   PRISM_PLUGINS_DIR=DIR          pass --plugins-dir DIR to the gateway
#   PRISM_BENCH_CONFIG=FILE        use this gateway config instead of the generated one
#                                  (it must route gpt-4o-mini to http://127.0.0.1:18080/v1)
#   SKIP_PRISM=1        measure direct and nginx-proxy only
#   PRISM_OTEL=1        also measure prism-otel (:18083): the same gateway with OpenTelemetry on, every
#                       request sampled, exporting to a closed port (a dead collector, :18089)
#   STRICT=1            exit 3 when a budget is not met
#   NGINX_BIN=/usr/sbin/nginx   BENCH_KEY=sk-prism-bench (bearer token sent)
#   BENCH_RUN_DIR=DIR   work directory (default: a new /tmp/prism-bench.XXXXXX, removed after
#                       a successful run; kept when something fails, or with KEEP_RUN_DIR=1)
#   RESULTS_DIR=bench/results
#
# Budgets (verdict printed as met / not met with the figure):
#   prism req/s >= 0.5 x nginx-proxy req/s at -c32;  prism p50 - direct p50 <= 0.1 ms at -c1;
#   prism RSS when idle <= 40 MiB.
# The numbers share the machine's cores with wrk, the mock and anything else running; the
# "other CPU %" column of the raw table shows how disturbed each run was.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")

DURATION=${DURATION:-10s}
REPEAT=${REPEAT:-2}
MODES=${MODES:-"json sse"}
WARMUP=${WARMUP:-2s}
PRISM_BIN=${PRISM_BIN:-$REPO_DIR/dist/prism-gateway}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
ECHO_MODULE=/usr/lib/nginx/modules/ngx_http_echo_module.so
SKIP_PRISM=${SKIP_PRISM:-0}
PRISM_OTEL=${PRISM_OTEL:-0}
BENCH_KEY=${BENCH_KEY:-sk-prism-bench}
RESULTS_DIR=${RESULTS_DIR:-$BENCH_DIR/results}
REQUEST_FILE=$BENCH_DIR/chat_request.json

MOCK_PORT=18080
PROXY_PORT=18081
PRISM_PORT=18082
PRISM_OTEL_PORT=18083
DEAD_COLLECTOR_PORT=18089
# name:threads:connections -- throughput and one-request-at-a-time latency
PROFILES="c32:2:32 c1:1:1"
BUDGET_RPS_RATIO=0.5
BUDGET_ADDED_P50_MS=0.1
BUDGET_RSS_MIB=40

die() { echo "bench: error: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

# ---- arguments and tools ----------------------------------------------------------------
to_secs() {   # wrk duration -> whole seconds
    [[ $1 =~ ^([0-9]+)(s|m)?$ ]] || return 1
    if [[ ${BASH_REMATCH[2]} == m ]]; then echo $((BASH_REMATCH[1] * 60)); else echo "${BASH_REMATCH[1]}"; fi
}
DUR_S=$(to_secs "$DURATION") && ((DUR_S > 0)) || die "DURATION must look like 10s or 1m (got '$DURATION')"
WARMUP_S=$(to_secs "$WARMUP") || die "WARMUP must look like 2s (got '$WARMUP')"
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "REPEAT must be a positive integer (got '$REPEAT')"
for m in $MODES; do [[ $m == json || $m == sse ]] || die "MODES may only hold json and sse (got '$m')"; done
[[ -n ${MODES// /} ]] || die "MODES is empty"

command -v wrk >/dev/null || die "wrk not found: run 'bash scripts/install.sh' (Debian package wrk)"
command -v curl >/dev/null || die "curl not found: run 'bash scripts/install.sh'"
[[ -x $NGINX_BIN ]] || die "nginx not found at $NGINX_BIN: run 'bash scripts/install.sh' (nginx-light) or set NGINX_BIN"
[[ -r $ECHO_MODULE ]] || die "nginx echo module missing ($ECHO_MODULE): run 'bash scripts/install.sh' (libnginx-mod-http-echo)"
if [[ $SKIP_PRISM != 1 ]]; then
    [[ -x $PRISM_BIN ]] || die "gateway binary not found at $PRISM_BIN: run 'make build' (or set PRISM_BIN, or SKIP_PRISM=1)"
    [[ -z ${PRISM_BENCH_CONFIG:-} || -r $PRISM_BENCH_CONFIG ]] || die "PRISM_BENCH_CONFIG=$PRISM_BENCH_CONFIG is not readable"
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $MOCK_PORT $PROXY_PORT $PRISM_PORT $PRISM_OTEL_PORT $DEAD_COLLECTOR_PORT; do
    ! port_in_use "$p" || die "127.0.0.1:$p is already in use; stop whatever listens there first"
done

CLK_TCK=$(getconf CLK_TCK)
NCPU=$(getconf _NPROCESSORS_ONLN)

if [[ -n ${BENCH_RUN_DIR:-} ]]; then
    RUN_DIR=$BENCH_RUN_DIR; OWN_RUN_DIR=0; mkdir -p "$RUN_DIR"
else
    RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/prism-bench.XXXXXX"); OWN_RUN_DIR=1
fi
chmod 755 "$RUN_DIR"   # nginx workers run as nobody when started by root: they must reach the files

# ---- process bookkeeping and cleanup ----------------------------------------------------
MOCK_PIDS="" PROXY_PIDS="" PRISM_PID="" PRISM_OTEL_PID="" WRK_PID="" NGINX_PREFIXES=()

# alive PID -- the process exists and is not a zombie (nginx masters are reparented to init)
alive() {
    local line
    [[ -n ${1:-} ]] && { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
    line=${line##*) }
    [[ ${line:0:1} != Z ]]
}

# stop_pids PID... -- TERM the first (the parent), wait up to 5 s, then KILL any still alive.
stop_pids() {
    local first=$1 p i
    kill -TERM "$first" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do alive "$first" || break; sleep 0.1; done
    for p in "$@"; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
    return 0
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if alive "$WRK_PID"; then kill -TERM "$WRK_PID" 2>/dev/null; wait "$WRK_PID" 2>/dev/null || true; fi
    if [[ -n $PRISM_PID ]]; then stop_pids "$PRISM_PID"; wait "$PRISM_PID" 2>/dev/null || true; fi
    if [[ -n $PRISM_OTEL_PID ]]; then stop_pids "$PRISM_OTEL_PID"; wait "$PRISM_OTEL_PID" 2>/dev/null || true; fi
    local prefix master
    for prefix in "${NGINX_PREFIXES[@]}"; do   # the proxy first, then the mock
        master=$(tr -dc 0-9 <"$prefix/nginx.pid" 2>/dev/null) || continue
        # shellcheck disable=SC2046
        alive "$master" && stop_pids "$master" $(children_of "$master")
    done
    if ((rc == 0)) && [[ $OWN_RUN_DIR == 1 && ${KEEP_RUN_DIR:-0} != 1 ]]; then
        rm -rf "$RUN_DIR"
    else
        note "logs and raw files kept in $RUN_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# children_of PID -- direct children of PID (from the ppid field of /proc/*/stat)
children_of() {
    local parent=$1 s line rest
    for s in /proc/[0-9]*/stat; do
        { read -r line <"$s"; } 2>/dev/null || continue
        rest=${line##*) }
        set -- $rest   # $1 state, $2 ppid
        if [[ $2 == "$parent" ]]; then echo "${line%% *}"; fi
    done
    return 0
}

# ticks PID... -- utime+stime (clock ticks) summed over the processes (all their threads)
ticks() {
    local t=0 p line rest
    for p in "$@"; do
        { read -r line <"/proc/$p/stat"; } 2>/dev/null || continue
        rest=${line##*) }
        set -- $rest
        t=$((t + ${12} + ${13}))
    done
    echo "$t"
}
# waited-for children of this shell (wrk via timeout, curl, ...): cutime+cstime
child_ticks() { local line rest; read -r line </proc/$$/stat; rest=${line##*) }; set -- $rest; echo $((${14} + ${15})); }
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
status_kib() { awk -v k="$2:" '$1 == k {print $2; exit}' "/proc/$1/status"; }   # status_kib PID VmRSS

wait_http() {   # wait_http URL SECONDS [PID that must stay alive]
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        curl -fs -o /dev/null -m 1 "$1" && return 0
        [[ -z ${3:-} ]] || alive "$3" || return 1
        sleep 0.1
    done
    return 1
}

# ---- start the mock and the nginx proxy ---------------------------------------------------
start_nginx() {   # start_nginx NAME CONF PORT -> sets REPLY to "master worker..."
    local name=$1 conf=$2 port=$3 prefix="$RUN_DIR/$1" master
    mkdir -p "$prefix/logs" "$prefix/tmp"
    ln -sfn "$BENCH_DIR/mock" "$prefix/mock"
    "$NGINX_BIN" -t -q -p "$prefix/" -c "$conf" -e "$prefix/logs/error.log" \
        || die "$name: nginx rejects $conf"
    NGINX_PREFIXES=("$prefix" "${NGINX_PREFIXES[@]}")
    "$NGINX_BIN" -p "$prefix/" -c "$conf" -e "$prefix/logs/error.log" \
        || die "$name: nginx failed to start (see $prefix/logs/error.log)"
    wait_http "http://127.0.0.1:$port/health" 10 \
        || die "$name: no answer on 127.0.0.1:$port (see $prefix/logs/error.log)"
    master=$(tr -dc 0-9 <"$prefix/nginx.pid")
    REPLY="$master $(children_of "$master" | tr '\n' ' ')"
    note "$name: pids $REPLY(127.0.0.1:$port)"
}

start_nginx mock "$BENCH_DIR/nginx/mock.conf" $MOCK_PORT;   MOCK_PIDS=$REPLY
start_nginx proxy "$BENCH_DIR/nginx/proxy.conf" $PROXY_PORT; PROXY_PIDS=$REPLY

names=(direct nginx-proxy)
urls=("http://127.0.0.1:$MOCK_PORT/v1/chat/completions" "http://127.0.0.1:$PROXY_PORT/v1/chat/completions")
pidsets=("$MOCK_PIDS" "$PROXY_PIDS")

# ---- start Prism ----------------------------------------------------------------------------
RSS_IDLE="" RSS_WARM="" RSS_AFTER="" HWM_AFTER="" PLUGINS_LINE="skipped (SKIP_PRISM=1)"
if [[ $SKIP_PRISM != 1 ]]; then
    plugin_args=()
    [[ -n ${PRISM_PLUGINS_DIR:-} ]] && plugin_args=(--plugins-dir "$PRISM_PLUGINS_DIR")
    plugins_out=$("$PRISM_BIN" plugins "${plugin_args[@]}" 2>&1) || die "'$PRISM_BIN plugins' failed: $plugins_out"
    n_loaded=$(grep -c ' abi=' <<<"$plugins_out" || true)
    n_refused=$(grep -c '^refused ' <<<"$plugins_out" || true)
    PLUGINS_LINE="$n_loaded loaded ($(awk '/ abi=/{printf "%s%s", (n++ ? "," : ""), $1}' <<<"$plugins_out")), $n_refused refused"
    ((n_loaded > 0)) || note "warning: the gateway loads no plugin: $plugins_out"
    ((n_refused == 0)) || note "warning: refused plugins: $(grep '^refused ' <<<"$plugins_out")"

    if [[ -n ${PRISM_BENCH_CONFIG:-} ]]; then
        prism_config=$PRISM_BENCH_CONFIG
    else
        prism_config=$RUN_DIR/prism.yaml
        cat >"$prism_config" <<EOF
# Written by bench/run.sh: one OpenAI-format provider pointing at the mock upstream.
server:
  host: 127.0.0.1
  port: $PRISM_PORT
  shutdown_timeout: 2s
providers:
  bench-upstream:
    api_format: openai
    base_url: http://127.0.0.1:$MOCK_PORT/v1
    api_key: sk-bench-upstream-unused
    models:
      - gpt-4o-mini
auth:
  enabled: false
logging:
  level: warn
EOF
    fi
    "$PRISM_BIN" --config "$prism_config" --port $PRISM_PORT --host 127.0.0.1 "${plugin_args[@]}" \
        >"$RUN_DIR/prism.log" 2>&1 &
    PRISM_PID=$!
    if ! wait_http "http://127.0.0.1:$PRISM_PORT/readyz" 30 "$PRISM_PID"; then
        why="not ready on 127.0.0.1:$PRISM_PORT/readyz within 30 s"
        if ! alive "$PRISM_PID"; then
            rc=0; wait "$PRISM_PID" 2>/dev/null || rc=$?
            why="exited with status $rc before /readyz answered"; PRISM_PID=""
        fi
        die "prism: $why ($PRISM_BIN --config $prism_config); log tail:
$(tail -n 20 "$RUN_DIR/prism.log")"
    fi
    sleep 1
    RSS_IDLE=$(status_kib "$PRISM_PID" VmRSS)
    note "prism: pid $PRISM_PID ready, idle VmRSS $RSS_IDLE kB, plugins: $PLUGINS_LINE"
    names+=(prism); urls+=("http://127.0.0.1:$PRISM_PORT/v1/chat/completions"); pidsets+=("$PRISM_PID")

    if [[ $PRISM_OTEL == 1 ]]; then
        # The same gateway with every request traced and its spans sent to a closed port.
        otel_config=$RUN_DIR/prism-otel.yaml
        { cat "$prism_config"; printf '\ntelemetry:\n  enabled: true\n  otlp_endpoint: "http://127.0.0.1:%s"\n  sample_rate: 1\n' \
            "$DEAD_COLLECTOR_PORT"; } >"$otel_config"
        "$PRISM_BIN" --config "$otel_config" --port $PRISM_OTEL_PORT --host 127.0.0.1 "${plugin_args[@]}" \
            >"$RUN_DIR/prism-otel.log" 2>&1 &
        PRISM_OTEL_PID=$!
        wait_http "http://127.0.0.1:$PRISM_OTEL_PORT/readyz" 30 "$PRISM_OTEL_PID" \
            || die "prism-otel: not ready on 127.0.0.1:$PRISM_OTEL_PORT; log tail:
$(tail -n 20 "$RUN_DIR/prism-otel.log")"
        note "prism-otel: pid $PRISM_OTEL_PID ready (telemetry to the dead collector 127.0.0.1:$DEAD_COLLECTOR_PORT)"
        names+=(prism-otel); urls+=("http://127.0.0.1:$PRISM_OTEL_PORT/v1/chat/completions"); pidsets+=("$PRISM_OTEL_PID")
    fi
fi

# ---- precheck: one request per target and mode --------------------------------------------
request_body() {   # request_body MODE
    local body
    body=$(<"$REQUEST_FILE")
    [[ $1 == sse ]] && body=${body/'"stream":false'/'"stream":true'}
    printf '%s' "$body"
}

precheck() {   # precheck NAME URL MODE
    local name=$1 url=$2 mode=$3 out="$RUN_DIR/precheck-$1-$3.out" meta code ctype last chunks
    meta=$(request_body "$mode" | curl -sS -m 10 -o "$out" -w '%{http_code} %{content_type}' \
        -X POST "$url" -H 'Content-Type: application/json' -H "Authorization: Bearer $BENCH_KEY" \
        --data-binary @-) || die "precheck $name/$mode: curl failed ($url)"
    code=${meta%% *}; ctype=${meta#* }
    [[ $code == 200 ]] || die "precheck $name/$mode: HTTP $code from $url: $(head -c 300 "$out")"
    if [[ $mode == json ]]; then
        [[ $ctype == application/json* ]] || die "precheck $name/json: content-type '$ctype'"
        grep -Eq '"object" *: *"chat\.completion"' "$out" && grep -q '"choices"' "$out" \
            || die "precheck $name/json: not a chat.completion: $(head -c 300 "$out")"
        note "precheck $name/json: ok (200, chat.completion, $(wc -c <"$out") bytes)"
    else
        [[ $ctype == text/event-stream* ]] || die "precheck $name/sse: content-type '$ctype'"
        chunks=$(grep -Ec '^data: \{.*"object" *: *"chat\.completion\.chunk"' "$out" || true)
        last=$(grep -v '^[[:space:]]*$' "$out" | tail -n 1 | tr -d '\r')
        ((chunks > 0)) || die "precheck $name/sse: no chat.completion.chunk event: $(head -c 300 "$out")"
        [[ $last == 'data: [DONE]' ]] || die "precheck $name/sse: stream does not end with 'data: [DONE]' (last line: ${last:0:200})"
        ! grep -q '^data: {"error"' "$out" || die "precheck $name/sse: error event in stream: $(grep '^data: {"error"' "$out" | head -c 300)"
        note "precheck $name/sse: ok (200, $chunks chunks, ends with [DONE])"
    fi
}

for i in "${!names[@]}"; do
    for mode in $MODES; do precheck "${names[$i]}" "${urls[$i]}" "$mode"; done
done
[[ -n $PRISM_PID ]] && RSS_WARM=$(status_kib "$PRISM_PID" VmRSS)

# ---- load ------------------------------------------------------------------------------------
stamp=$(date -u +%Y%m%dT%H%M%SZ)
RUNS_TSV=$RUN_DIR/runs.tsv
printf 'target\tmode\tprofile\trep\trps\tp50_us\tp90_us\tp99_us\terrors\trequests\tcpu_us_per_req\tother_cpu_pct\tload1\n' >"$RUNS_TSV"

# wrk_run URL MODE THREADS CONNS DURATION OUTFILE -- bounded; in the background so traps fire at once
wrk_run() {
    BENCH_BODY=$REQUEST_FILE BENCH_STREAM=$([[ $2 == sse ]] && echo 1 || echo 0) BENCH_KEY=$BENCH_KEY \
        timeout -k 5 $(($(to_secs "$5") + 30)) \
        wrk -t"$3" -c"$4" -d"$5" --timeout 10s -s "$BENCH_DIR/chat.lua" "$1" >"$6" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || true
    WRK_PID=""
}

measure() {   # measure INDEX MODE PROFILE REP
    local i=$1 mode=$2 prof=$3 rep=$4 pname t c out t0 t1 m0 m1 b0 b1 s0 s1 w0 w1 load1 res
    local requests rps p50_us p90_us p99_us errors cpu other
    IFS=: read -r pname t c <<<"$prof"
    out="$RUN_DIR/wrk-${names[$i]}-$mode-$pname-$rep.out"
    load1=$(cut -d' ' -f1 /proc/loadavg)
    # shellcheck disable=SC2086
    t0=$(ticks ${pidsets[$i]}); m0=$(ticks $MOCK_PIDS); s0=$(child_ticks); b0=$(busy_ticks); w0=$(date +%s.%N)
    wrk_run "${urls[$i]}" "$mode" "$t" "$c" "$DURATION" "$out"
    # shellcheck disable=SC2086
    t1=$(ticks ${pidsets[$i]}); m1=$(ticks $MOCK_PIDS); s1=$(child_ticks); b1=$(busy_ticks); w1=$(date +%s.%N)
    res=$(grep '^BENCH_RESULT ' "$out" || true)
    if [[ -z $res ]]; then
        note "wrk failed for ${names[$i]} $mode $pname: $(head -c 400 "$out")"
        printf '%s\t%s\t%s\t%s\tNA\tNA\tNA\tNA\tNA\t0\tNA\tNA\t%s\n' "${names[$i]}" "$mode" "$pname" "$rep" "$load1" >>"$RUNS_TSV"
        return
    fi
    requests=$(grep -o ' requests=[0-9]*' <<<"$res" | cut -d= -f2)
    rps=$(grep -o ' rps=[0-9.]*' <<<"$res" | cut -d= -f2)
    p50_us=$(grep -o ' p50_us=[0-9]*' <<<"$res" | cut -d= -f2)
    p90_us=$(grep -o ' p90_us=[0-9]*' <<<"$res" | cut -d= -f2)
    p99_us=$(grep -o ' p99_us=[0-9]*' <<<"$res" | cut -d= -f2)
    errors=$(grep -o ' errors=[0-9]*' <<<"$res" | cut -d= -f2)
    [[ ${names[$i]} == direct ]] && m1=$m0   # the mock is the target itself there
    read -r cpu other < <(awk -v d=$((t1 - t0)) -v m=$((m1 - m0)) -v s=$((s1 - s0)) -v b=$((b1 - b0)) \
        -v n="$requests" -v hz="$CLK_TCK" -v ncpu="$NCPU" -v w0="$w0" -v w1="$w1" 'BEGIN {
            cpu = (n > 0) ? sprintf("%.1f", d * 1e6 / hz / n) : "NA"
            o = (b - d - m - s) / ((w1 - w0) * hz * ncpu) * 100; if (o < 0) o = 0
            printf "%s %.0f\n", cpu, o }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${names[$i]}" "$mode" "$pname" "$rep" \
        "$rps" "$p50_us" "$p90_us" "$p99_us" "$errors" "$requests" "$cpu" "$other" "$load1" >>"$RUNS_TSV"
    note "$(printf '%-11s %-4s %-3s rep %s: %9s req/s  p50 %7s us  p99 %8s us  errors %s  cpu/req %s us  other cpu %s%%' \
        "${names[$i]}" "$mode" "$pname" "$rep" "$rps" "$p50_us" "$p99_us" "$errors" "$cpu" "$other")"
}

n_modes=$(wc -w <<<"$MODES"); n_prof=$(wc -w <<<"$PROFILES")
est=$(( ${#names[@]} * n_modes * (WARMUP_S + REPEAT * n_prof * DUR_S) ))
note "targets: ${names[*]}; modes: $MODES; $REPEAT x $n_prof profiles x ${DURATION}; about ${est}s of load"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

if ((WARMUP_S > 0)); then
    for i in "${!names[@]}"; do
        for mode in $MODES; do wrk_run "${urls[$i]}" "$mode" 1 8 "$WARMUP" "$RUN_DIR/warmup.out"; done
    done
fi
for rep in $(seq 1 "$REPEAT"); do
    for mode in $MODES; do
        for prof in $PROFILES; do
            for i in "${!names[@]}"; do measure "$i" "$mode" "$prof" "$rep"; done
        done
    done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

PROXY_HWM=0
for p in $PROXY_PIDS; do PROXY_HWM=$((PROXY_HWM + $(status_kib "$p" VmHWM))); done
if [[ -n $PRISM_PID ]]; then
    alive "$PRISM_PID" || die "prism exited during the benchmark; log tail:
$(tail -n 20 "$RUN_DIR/prism.log")"
    HWM_AFTER=$(status_kib "$PRISM_PID" VmHWM)
    RSS_AFTER=$(status_kib "$PRISM_PID" VmRSS)
    THREADS=$(status_kib "$PRISM_PID" Threads)
fi
OTEL_NOTE=""
if [[ -n $PRISM_OTEL_PID ]]; then
    alive "$PRISM_OTEL_PID" || die "prism-otel exited during the benchmark; log tail:
$(tail -n 20 "$RUN_DIR/prism-otel.log")"
    OTEL_NOTE=$(curl -fsS -m 5 "http://127.0.0.1:$PRISM_OTEL_PORT/-/metrics" | awk '
        /^prism_trace_spans_exported_total/ {e += $NF} /^prism_trace_spans_dropped_total/ {d += $NF}
        /^prism_trace_export_failures_total/ {f += $NF}
        END {printf "spans exported %d, dropped %d, failed exports %d", e, d, f}') || OTEL_NOTE="metrics unavailable"
fi

# ---- report ------------------------------------------------------------------------------------
report() {
    local prism_bin_note="skipped (SKIP_PRISM=1)"
    [[ $SKIP_PRISM == 1 ]] || prism_bin_note="\`$PRISM_BIN\` (pid $PRISM_PID, ${THREADS:-?} threads after load); plugins: $PLUGINS_LINE"
    cat <<EOF
# Prism benchmark ($(date -u +'%Y-%m-%d %H:%M UTC'))

- Machine: $NCPU CPUs ($(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)), kernel $(uname -r);
  load average at start $LOAD_START, at end $LOAD_END. wrk, the mock, the proxy under test and
  anything else running share these cores: compare figures from the same run.
- Tools: nginx $("$NGINX_BIN" -v 2>&1 | sed 's|.*nginx/||'), wrk $(wrk -v 2>&1 | awk 'NR==1{print $2}').
- Prism: $prism_bin_note.
- Targets: **direct** = mock upstream 127.0.0.1:$MOCK_PORT (nginx, 1 worker, static answers);
  **nginx-proxy** = nginx reverse proxy 127.0.0.1:$PROXY_PORT (1 worker, upstream keepalive, proxy_buffering off);
  **prism** = 127.0.0.1:$PRISM_PORT, provider api_format openai -> http://127.0.0.1:$MOCK_PORT/v1, auth off, logging warn.$(
  [[ -z $PRISM_OTEL_PID ]] || printf '\n  **prism-otel** = 127.0.0.1:%s, the same with telemetry on (sample_rate 1) exporting to a closed port (%s).' \
      "$PRISM_OTEL_PORT" "$OTEL_NOTE")
- Load: $(wc -c <"$REQUEST_FILE") B chat request (\`bench/chat_request.json\`) via \`bench/chat.lua\`; profiles
  **c32** = \`wrk -t2 -c32 -d$DURATION\` (throughput) and **c1** = \`wrk -t1 -c1 -d$DURATION\` (latency);
  modes: $MODES (sse = "stream": true, 18-event SSE answer, latency to the end of the stream).
  Targets interleaved, $REPEAT round(s) after a ${WARMUP} warm-up; each cell is the median of its runs.

EOF
    awk -F'\t' -v modes="$MODES" -v profiles="c32 c1" -v targets="${names[*]}" \
        -v rss_idle="$RSS_IDLE" -v rss_warm="$RSS_WARM" -v rss_after="$RSS_AFTER" -v hwm_after="$HWM_AFTER" \
        -v proxy_hwm="$PROXY_HWM" -v b_ratio="$BUDGET_RPS_RATIO" -v b_p50="$BUDGET_ADDED_P50_MS" \
        -v b_rss="$BUDGET_RSS_MIB" '
    function med(name, k, cnt,   i, j, v, a) {
        for (i = 1; i <= cnt; i++) {
            v = vals[name, k, i] + 0
            for (j = i - 1; j >= 1 && a[j] > v; j--) a[j + 1] = a[j]
            a[j + 1] = v
        }
        if (cnt == 0) return ""
        return (cnt % 2) ? a[(cnt + 1) / 2] : (a[cnt / 2] + a[cnt / 2 + 1]) / 2
    }
    function mib(kib) { return sprintf("%.1f MiB", kib / 1024) }
    NR == 1 { next }
    {
        k = $1 SUBSEP $2 SUBSEP $3
        raw[++nraw] = $0
        if ($5 == "NA") { failed[k]++; next }
        n[k]++; vals["rps", k, n[k]] = $5; vals["p50", k, n[k]] = $6; vals["p99", k, n[k]] = $8
        err[k] += $9
        if ($11 != "NA") { nc[k]++; vals["cpu", k, nc[k]] = $11 }
    }
    END {
        nm = split(modes, M, " "); np = split(profiles, P, " "); nt = split(targets, T, " ")
        for (a = 1; a <= nm; a++) for (b = 1; b <= np; b++) for (c = 1; c <= nt; c++) {
            k = T[c] SUBSEP M[a] SUBSEP P[b]
            RPS[k] = med("rps", k, n[k]); P50[k] = med("p50", k, n[k]); P99[k] = med("p99", k, n[k])
            CPU[k] = med("cpu", k, nc[k])
        }
        print "## Results\n"
        print "| target | mode | profile | req/s | p50 ms | p99 ms | added p50 vs direct (ms) | req/s vs nginx-proxy | CPU µs/req | errors |"
        print "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"
        for (a = 1; a <= nm; a++) for (b = 1; b <= np; b++) for (c = 1; c <= nt; c++) {
            k = T[c] SUBSEP M[a] SUBSEP P[b]; d = "direct" SUBSEP M[a] SUBSEP P[b]; x = "nginx-proxy" SUBSEP M[a] SUBSEP P[b]
            if (n[k] == 0) { printf "| %s | %s | %s | failed | | | | | | %d failed runs |\n", T[c], M[a], P[b], failed[k]; continue }
            added = (T[c] == "direct") ? "—" : (n[d] ? sprintf("%+.3f", (P50[k] - P50[d]) / 1000) : "n/a")
            rel = (n[x] && RPS[x] > 0) ? sprintf("%.2f×", RPS[k] / RPS[x]) : "n/a"
            e = err[k] + 0; if (failed[k]) e = e " (+" failed[k] " failed runs)"
            printf "| %s | %s | %s | %.0f | %.3f | %.3f | %s | %s | %s | %s |\n", T[c], M[a], P[b], RPS[k],
                P50[k] / 1000, P99[k] / 1000, added, rel, (CPU[k] == "" ? "n/a" : sprintf("%.1f", CPU[k])), e
        }
        print "\nCPU µs/req: user+system CPU time of the target process(es) (nginx: master + worker; prism: the gateway"
        print "process, all threads) during the run, divided by the requests wrk completed. For prism it excludes the mock."
        print "\n## Prism resources\n"
        if (rss_idle == "") { print "Prism not measured (SKIP_PRISM=1).\n" }
        else {
            print "| metric | value |\n|---|---:|"
            printf "| RSS idle (VmRSS after /readyz, before any request) | %s |\n", mib(rss_idle)
            printf "| RSS after the prechecks (one request per mode) | %s |\n", mib(rss_warm)
            printf "| RSS after load (VmRSS) | %s |\n", mib(rss_after)
            printf "| peak RSS (VmHWM) after load | %s |\n", mib(hwm_after)
            for (a = 1; a <= nm; a++) for (b = 1; b <= np; b++) {
                k = "prism" SUBSEP M[a] SUBSEP P[b]
                printf "| CPU per request, %s %s | %s |\n", M[a], P[b], (CPU[k] == "" ? "n/a" : sprintf("%.1f µs", CPU[k]))
            }
            printf "\n(nginx-proxy peak RSS, master + worker: %s.)\n\n", mib(proxy_hwm)
        }
        print "## Budgets\n"
        print "| budget | figure | verdict |\n|---|---|---|"
        for (a = 1; a <= nm; a++) {
            k = "prism" SUBSEP M[a] SUBSEP "c32"; x = "nginx-proxy" SUBSEP M[a] SUBSEP "c32"
            label = sprintf("throughput (%s, c32) ≥ %.1f× nginx-proxy", M[a], b_ratio)
            if (!n[k] || !n[x] || RPS[x] <= 0) { printf "| %s | n/a | not measured |\n", label; continue }
            r = RPS[k] / RPS[x]; ok = (r >= b_ratio && err[k] == 0 && !failed[k])
            printf "| %s | %.2f× (%.0f vs %.0f req/s%s) | %s |\n", label, r, RPS[k], RPS[x],
                (err[k] || failed[k]) ? sprintf(", %d errors, %d failed runs", err[k], failed[k]) : "", ok ? "met" : "**not met**"
            if (!ok) notmet++
        }
        for (a = 1; a <= nm; a++) {
            k = "prism" SUBSEP M[a] SUBSEP "c1"; d = "direct" SUBSEP M[a] SUBSEP "c1"
            label = sprintf("added p50 latency (%s, c1) ≤ %.1f ms", M[a], b_p50)
            if (!n[k] || !n[d]) { printf "| %s | n/a | not measured |\n", label; continue }
            add = (P50[k] - P50[d]) / 1000; ok = (add <= b_p50 && err[k] == 0 && !failed[k])
            printf "| %s | %+.3f ms (%.3f vs direct %.3f ms%s) | %s |\n", label, add, P50[k] / 1000, P50[d] / 1000,
                (err[k] || failed[k]) ? sprintf(", %d errors, %d failed runs", err[k], failed[k]) : "", ok ? "met" : "**not met**"
            if (!ok) notmet++
        }
        label = sprintf("RSS idle ≤ %d MiB", b_rss)
        if (rss_idle == "") printf "| %s | n/a | not measured |\n", label
        else {
            ok = (rss_idle / 1024 <= b_rss)
            printf "| %s | %s | %s |\n", label, mib(rss_idle), ok ? "met" : "**not met**"
            if (!ok) notmet++
        }
        print "\n## Runs\n"
        print "| target | mode | profile | round | req/s | p50 ms | p90 ms | p99 ms | errors | CPU µs/req | other CPU % | load1 |"
        print "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for (i = 1; i <= nraw; i++) {
            split(raw[i], f, "\t")
            if (f[5] == "NA") { printf "| %s | %s | %s | %s | failed | | | | | | | %s |\n", f[1], f[2], f[3], f[4], f[13]; continue }
            printf "| %s | %s | %s | %s | %.0f | %.3f | %.3f | %.3f | %s | %s | %s | %s |\n", f[1], f[2], f[3], f[4],
                f[5], f[6] / 1000, f[7] / 1000, f[8] / 1000, f[9], f[11], f[12], f[13]
        }
        print "\nother CPU %: share of all CPUs busy with something other than the target, the mock and wrk"
        print "during the run (other jobs on the machine); high values mean a disturbed run."
        printf "\nBUDGETS_NOT_MET=%d\n", notmet + 0 > "/dev/stderr"
    }' "$RUNS_TSV"
}

mkdir -p "$RESULTS_DIR"
report >"$RUN_DIR/report.md" 2>"$RUN_DIR/report.status"
cp "$RUN_DIR/report.md" "$RESULTS_DIR/latest.md"
cp "$RUN_DIR/report.md" "$RESULTS_DIR/$stamp.md"
cp "$RUNS_TSV" "$RESULTS_DIR/$stamp-runs.tsv"
cat "$RUN_DIR/report.md"
note "report written to $RESULTS_DIR/latest.md (and $stamp.md, $stamp-runs.tsv)"
not_met=$(grep -o 'BUDGETS_NOT_MET=[0-9]*' "$RUN_DIR/report.status" | cut -d= -f2)
if [[ ${STRICT:-0} == 1 && ${not_met:-0} -gt 0 ]]; then
    note "$not_met budget(s) not met"
    exit 3
fi
