#!/usr/bin/env bash
# What serving a client dialect costs: the gateway's own chat completions against Anthropic Messages,
# OpenAI Responses and legacy completions, each translated to a chat completions upstream or passed
# through byte for byte to an upstream that speaks it, all against the nginx mock on this machine.
#
#   bench/dialects.sh                 # DURATION=5s: about 3 minutes
#   DURATION=3s bench/dialects.sh     # quicker look
#
# Rows (the same ~2 KB request in each dialect, bench/dialects/*.json; the mock's answers are the
# same text in each format, bench/mock/):
#   chat                      POST /v1/chat/completions -> provider compat (type groq) -> mock /v1/chat/completions
#   messages→chat             POST /v1/messages, model on compat: translated to chat and back
#   messages pass-through     POST /v1/messages, model on anthropic-native (api_format anthropic) -> mock /v1/messages
#   responses→chat            POST /v1/responses, model on compat: translated
#   responses pass-through    POST /v1/responses, model on openai-native (type openai) -> mock /v1/responses
#   completions→chat          POST /v1/completions, model on compat: translated
#   completions pass-through  POST /v1/completions, model on vllm-native (type vllm) -> mock /v1/completions
# Each model is listed by exactly one provider (vllm-native's discovery is off, so the mock's
# /v1/models list does not add gpt-4o-mini to it); compat's type serves neither Responses nor legacy
# completions itself, so whatever reaches it is translated.
#
# Before load, every row and mode is checked with curl: HTTP 200, the x-prism-provider header names
# the expected provider, a pass-through answer is byte for byte the mock's native file (so it came
# from the mock's native route untouched), a translated one is in the client's dialect and is not.
# Then, per mode (json, sse) and row: an unmeasured warm-up (wrk -t1 -c8 -d$WARMUP), throughput
# (wrk -t2 -c32 -d$DURATION) and one-connection latency (wrk -t1 -c1 -d$DURATION), rows interleaved;
# the gateway's CPU time per request is read from /proc/PID/stat around each run.
#
# Environment:
#   DURATION=5s   WARMUP=1s   MODES="json sse"
#   PRISM_BIN=dist/prism-gateway (plugins: dist/plugins/ beside it)   NGINX_BIN=/usr/sbin/nginx
#   RESULTS_DIR=bench/results (the report goes to dialects-latest.md there)
#   KEEP_RUN_DIR=1 keeps the work directory (logs, wrk outputs, prechecks); it is kept anyway on failure
#
# Ports: the mock on 127.0.0.1:18080 (bench/nginx/mock.conf, as bench/run.sh), the gateway on :18085.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")

DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
MODES=${MODES:-"json sse"}
PRISM_BIN=${PRISM_BIN:-$REPO_DIR/dist/prism-gateway}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
ECHO_MODULE=/usr/lib/nginx/modules/ngx_http_echo_module.so
RESULTS_DIR=${RESULTS_DIR:-$BENCH_DIR/results}
BENCH_KEY=sk-prism-bench
MOCK_PORT=18080
GATEWAY_PORT=18085
PROFILES="c32:2:32 c1:1:1"   # name:threads:connections

die() { echo "dialects: error: $*" >&2; exit 1; }
note() { echo "dialects: $*" >&2; }

to_secs() {   # wrk duration -> whole seconds
    [[ $1 =~ ^([0-9]+)(s|m)?$ ]] || return 1
    if [[ ${BASH_REMATCH[2]} == m ]]; then echo $((BASH_REMATCH[1] * 60)); else echo "${BASH_REMATCH[1]}"; fi
}
DUR_S=$(to_secs "$DURATION") && ((DUR_S > 0)) || die "DURATION must look like 5s or 1m (got '$DURATION')"
WARMUP_S=$(to_secs "$WARMUP") || die "WARMUP must look like 1s (got '$WARMUP')"
for m in $MODES; do [[ $m == json || $m == sse ]] || die "MODES may only hold json and sse (got '$m')"; done
[[ -n ${MODES// /} ]] || die "MODES is empty"
command -v wrk >/dev/null || die "wrk not found: run 'bash scripts/install.sh' (Debian package wrk)"
command -v curl >/dev/null || die "curl not found: run 'bash scripts/install.sh'"
[[ -x $NGINX_BIN ]] || die "nginx not found at $NGINX_BIN: run 'bash scripts/install.sh' (nginx-light) or set NGINX_BIN"
[[ -r $ECHO_MODULE ]] || die "nginx echo module missing ($ECHO_MODULE): run 'bash scripts/install.sh' (libnginx-mod-http-echo)"
[[ -x $PRISM_BIN ]] || die "gateway binary not found at $PRISM_BIN: run 'make build' (or set PRISM_BIN)"

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $MOCK_PORT $GATEWAY_PORT; do
    ! port_in_use "$p" || die "127.0.0.1:$p is already in use (another benchmark running?); stop it first"
done

CLK_TCK=$(getconf CLK_TCK)
NCPU=$(getconf _NPROCESSORS_ONLN)
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/prism-dialects.XXXXXX")
chmod 755 "$RUN_DIR"   # nginx workers run as nobody when started by root: they must reach the files

# ---- rows -------------------------------------------------------------------------------------
# name | client route | body (bench/dialects/) | model | provider | native mock answer (pass-through) or -
ROWS=(
    "chat|/v1/chat/completions|chat.json|llama-3.3-70b-versatile|compat|-"
    "messages→chat|/v1/messages|messages.json|llama-3.3-70b-versatile|compat|-"
    "messages pass-through|/v1/messages|messages.json|claude-sonnet-4-20250514|anthropic-native|anthropic_message"
    "responses→chat|/v1/responses|responses.json|llama-3.3-70b-versatile|compat|-"
    "responses pass-through|/v1/responses|responses.json|gpt-4o-mini|openai-native|responses"
    "completions→chat|/v1/completions|completions.json|llama-3.3-70b-versatile|compat|-"
    "completions pass-through|/v1/completions|completions.json|qwen2.5-7b-instruct|vllm-native|completion"
)
row() { IFS='|' read -r R_NAME R_ROUTE R_BODY R_MODEL R_PROVIDER R_NATIVE <<<"${ROWS[$1]}"; R_DIALECT=${R_BODY%.json}; }

# ---- processes and cleanup --------------------------------------------------------------------
GATEWAY_PID="" WRK_PID="" MOCK_PREFIX=$RUN_DIR/mock MOCK_PIDS=""

alive() {   # the process exists and is not a zombie
    local line
    [[ -n ${1:-} ]] && { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
    line=${line##*) }
    [[ ${line:0:1} != Z ]]
}
stop_pids() {   # TERM the first, wait up to 5 s, then KILL any still alive
    local first=$1 p i
    kill -TERM "$first" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do alive "$first" || break; sleep 0.1; done
    for p in "$@"; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
    return 0
}
children_of() {   # direct children of PID (ppid field of /proc/*/stat)
    local parent=$1 s line rest
    for s in /proc/[0-9]*/stat; do
        { read -r line <"$s"; } 2>/dev/null || continue
        rest=${line##*) }
        set -- $rest
        if [[ $2 == "$parent" ]]; then echo "${line%% *}"; fi
    done
    return 0
}
cleanup() {
    local rc=$? master
    trap - EXIT INT TERM
    if alive "$WRK_PID"; then kill -TERM "$WRK_PID" 2>/dev/null; wait "$WRK_PID" 2>/dev/null || true; fi
    if [[ -n $GATEWAY_PID ]]; then stop_pids "$GATEWAY_PID"; wait "$GATEWAY_PID" 2>/dev/null || true; fi
    master=$(tr -dc 0-9 <"$MOCK_PREFIX/nginx.pid" 2>/dev/null) || master=""
    # shellcheck disable=SC2046
    [[ -n $master ]] && alive "$master" && stop_pids "$master" $(children_of "$master")
    if ((rc == 0)) && [[ ${KEEP_RUN_DIR:-0} != 1 ]]; then rm -rf "$RUN_DIR"; else note "logs kept in $RUN_DIR"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ticks() {   # utime+stime (clock ticks) summed over the processes
    local t=0 p line rest
    for p in "$@"; do
        { read -r line <"/proc/$p/stat"; } 2>/dev/null || continue
        rest=${line##*) }
        set -- $rest
        t=$((t + ${12} + ${13}))
    done
    echo "$t"
}
child_ticks() { local line rest; read -r line </proc/$$/stat; rest=${line##*) }; set -- $rest; echo $((${14} + ${15})); }
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
wait_http() {   # wait_http URL SECONDS [PID that must stay alive]
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        curl -fs -o /dev/null -m 1 "$1" && return 0
        [[ -z ${3:-} ]] || alive "$3" || return 1
        sleep 0.1
    done
    return 1
}

# ---- the mock upstream --------------------------------------------------------------------------
mkdir -p "$MOCK_PREFIX/logs" "$MOCK_PREFIX/tmp"
ln -sfn "$BENCH_DIR/mock" "$MOCK_PREFIX/mock"
"$NGINX_BIN" -t -q -p "$MOCK_PREFIX/" -c "$BENCH_DIR/nginx/mock.conf" -e "$MOCK_PREFIX/logs/error.log" \
    || die "nginx rejects bench/nginx/mock.conf"
"$NGINX_BIN" -p "$MOCK_PREFIX/" -c "$BENCH_DIR/nginx/mock.conf" -e "$MOCK_PREFIX/logs/error.log" \
    || die "the mock failed to start (see $MOCK_PREFIX/logs/error.log)"
wait_http "http://127.0.0.1:$MOCK_PORT/health" 10 || die "the mock does not answer on 127.0.0.1:$MOCK_PORT"
master=$(tr -dc 0-9 <"$MOCK_PREFIX/nginx.pid")
MOCK_PIDS="$master $(children_of "$master" | tr '\n' ' ')"
note "mock: pids $MOCK_PIDS(127.0.0.1:$MOCK_PORT)"

# ---- the gateway --------------------------------------------------------------------------------
cat >"$RUN_DIR/prism.yaml" <<EOF
# Written by bench/dialects.sh: four providers on the mock, each model on exactly one of them.
server:
  host: 127.0.0.1
  port: $GATEWAY_PORT
  shutdown_timeout: 2s
providers:
  compat:               # OpenAI-compatible, chat completions only: dialects are translated
    type: groq
    base_url: http://127.0.0.1:$MOCK_PORT/v1
    api_key: sk-bench-upstream-unused
    models: [llama-3.3-70b-versatile]
  openai-native:        # type openai serves Responses: /v1/responses passes through
    type: openai
    base_url: http://127.0.0.1:$MOCK_PORT/v1
    api_key: sk-bench-upstream-unused
    models: [gpt-4o-mini]
  anthropic-native:     # Messages pass through to <base_url>/v1/messages
    api_format: anthropic
    base_url: http://127.0.0.1:$MOCK_PORT
    api_key: sk-ant-bench-upstream-unused
    models: [claude-sonnet-4-20250514]
  vllm-native:          # self-hosted type: legacy completions pass through to /v1/completions
    type: vllm
    base_url: http://127.0.0.1:$MOCK_PORT/v1
    auto_discover: false
    models: [qwen2.5-7b-instruct]
auth:
  enabled: false
logging:
  level: warn
EOF
"$PRISM_BIN" --config "$RUN_DIR/prism.yaml" --port $GATEWAY_PORT --host 127.0.0.1 >"$RUN_DIR/prism.log" 2>&1 &
GATEWAY_PID=$!
if ! wait_http "http://127.0.0.1:$GATEWAY_PORT/readyz" 30 "$GATEWAY_PID"; then
    alive "$GATEWAY_PID" || GATEWAY_PID=""
    die "the gateway is not ready on 127.0.0.1:$GATEWAY_PORT; log tail:
$(tail -n 20 "$RUN_DIR/prism.log")"
fi
PLUGINS=$("$PRISM_BIN" plugins 2>&1 | awk '/ abi=/ {n++; if ($1 ~ /ingress/) {sub(/.*\./, "", $1); i = i (i ? ", " : "") $1}}
    END {printf "%d loaded (ingress: %s)", n, i}') || PLUGINS="?"
note "gateway: pid $GATEWAY_PID ready (127.0.0.1:$GATEWAY_PORT), plugins: $PLUGINS"

# ---- prechecks ----------------------------------------------------------------------------------
request_body() {   # request_body MODE (of the current row): what dialects.lua sends
    local body
    body=$(sed "0,/\"model\":\"[^\"]*\"/s//\"model\":\"$R_MODEL\"/" "$BENCH_DIR/dialects/$R_BODY")
    [[ $1 == sse ]] && body=${body/'"stream":false'/'"stream":true'}
    printf '%s' "$body"
}

precheck() {   # precheck ROW MODE
    local mode=$2 out head code ctype provider native marker what
    row "$1"
    out="$RUN_DIR/precheck-$1-$mode.out"; head="$RUN_DIR/precheck-$1-$mode.head"
    local -a auth=(-H "Authorization: Bearer $BENCH_KEY")
    [[ $R_DIALECT == messages ]] && auth=(-H "x-api-key: $BENCH_KEY" -H 'anthropic-version: 2023-06-01')
    code=$(request_body "$mode" | curl -sS -m 10 -D "$head" -o "$out" -w '%{http_code}' \
        -X POST "http://127.0.0.1:$GATEWAY_PORT$R_ROUTE" -H 'Content-Type: application/json' "${auth[@]}" \
        --data-binary @-) || die "precheck $R_NAME/$mode: curl failed"
    [[ $code == 200 ]] || die "precheck $R_NAME/$mode: HTTP $code: $(head -c 300 "$out")"
    ctype=$(awk -F': *' 'tolower($1) == "content-type" {print $2}' "$head" | tr -d '\r')
    provider=$(awk -F': *' 'tolower($1) == "x-prism-provider" {print $2}' "$head" | tr -d '\r')
    [[ $provider == "$R_PROVIDER" ]] || die "precheck $R_NAME/$mode: answered by provider '$provider', expected '$R_PROVIDER'"
    if [[ $mode == json ]]; then
        [[ $ctype == application/json* ]] || die "precheck $R_NAME/json: content-type '$ctype'"
    else
        [[ $ctype == text/event-stream* ]] || die "precheck $R_NAME/sse: content-type '$ctype'"
    fi
    if [[ $R_NATIVE != - ]]; then
        native=$BENCH_DIR/mock/$R_NATIVE$([[ $mode == json ]] && echo .json || echo _stream.sse)
        cmp -s "$out" "$native" || die "precheck $R_NAME/$mode: not byte for byte the mock's $(basename "$native") \
(the request did not pass through to the native route): $(head -c 300 "$out")"
        what="pass-through, byte for byte the mock's ${native#"$BENCH_DIR/"}"
    else
        case $R_DIALECT/$mode in
            chat/json)        marker='"object":"chat.completion"' ;;
            chat/sse)         marker='data: [DONE]' ;;
            messages/json)    marker='"type":"message"' ;;
            messages/sse)     marker='event: message_stop' ;;
            responses/json)   marker='"status":"completed"' ;;
            responses/sse)    marker='event: response.completed' ;;
            completions/json) marker='"object":"text_completion"' ;;
            completions/sse)  marker='data: [DONE]' ;;
        esac
        grep -qF "$marker" "$out" && grep -qF 'Root cause: ' "$out" \
            || die "precheck $R_NAME/$mode: no '$marker' in the answer: $(head -c 300 "$out")"
        ! grep -qE '"error" *: *\{|"type" *: *"error"' "$out" \
            || die "precheck $R_NAME/$mode: error in the answer: $(grep -m1 -E '"error" *: *\{|"type" *: *"error"' "$out" | head -c 300)"
        what="translated ($marker)"
        [[ $R_DIALECT == chat ]] && what="chat completions ($marker)"
        if [[ $R_DIALECT != chat ]]; then
            for native in "$BENCH_DIR"/mock/*; do
                ! cmp -s "$out" "$native" || die "precheck $R_NAME/$mode: the answer is the mock's $(basename "$native"): not translated"
            done
        fi
    fi
    note "precheck $(printf '%-25s %-4s' "$R_NAME" "$mode"): 200 from $provider, $(wc -c <"$out") B, $what"
}

for mode in $MODES; do
    for i in "${!ROWS[@]}"; do precheck "$i" "$mode"; done
done

# ---- load ---------------------------------------------------------------------------------------
RUNS_TSV=$RUN_DIR/runs.tsv
printf 'row\tmode\tprofile\trps\tp50_us\tp90_us\tp99_us\terrors\trequests\tcpu_us_per_req\tother_cpu_pct\n' >"$RUNS_TSV"

wrk_run() {   # wrk_run ROW MODE THREADS CONNS DURATION OUTFILE (the current row)
    row "$1"
    BENCH_BODY=$BENCH_DIR/dialects/$R_BODY BENCH_MODEL=$R_MODEL BENCH_DIALECT=$R_DIALECT BENCH_KEY=$BENCH_KEY \
        BENCH_STREAM=$([[ $2 == sse ]] && echo 1 || echo 0) \
        timeout -k 5 $(($(to_secs "$5") + 30)) \
        wrk -t"$3" -c"$4" -d"$5" --timeout 10s -s "$BENCH_DIR/dialects.lua" "http://127.0.0.1:$GATEWAY_PORT$R_ROUTE" \
        >"$6" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || true
    WRK_PID=""
}

measure() {   # measure ROW MODE PROFILE
    local i=$1 mode=$2 pname t c out g0 g1 m0 m1 s0 s1 b0 b1 w0 w1 res requests cpu other
    IFS=: read -r pname t c <<<"$3"
    out="$RUN_DIR/wrk-$i-$mode-$pname.out"
    # shellcheck disable=SC2086
    g0=$(ticks "$GATEWAY_PID"); m0=$(ticks $MOCK_PIDS); s0=$(child_ticks); b0=$(busy_ticks); w0=$(date +%s.%N)
    wrk_run "$i" "$mode" "$t" "$c" "$DURATION" "$out"
    # shellcheck disable=SC2086
    g1=$(ticks "$GATEWAY_PID"); m1=$(ticks $MOCK_PIDS); s1=$(child_ticks); b1=$(busy_ticks); w1=$(date +%s.%N)
    alive "$GATEWAY_PID" || die "the gateway exited during $R_NAME $mode $pname; log tail:
$(tail -n 20 "$RUN_DIR/prism.log")"
    res=$(grep '^BENCH_RESULT ' "$out" || true)
    [[ -n $res ]] || die "wrk failed for $R_NAME $mode $pname: $(head -c 400 "$out")"
    val() { grep -o " $1=[0-9.]*" <<<"$res" | cut -d= -f2; }
    requests=$(val requests)
    read -r cpu other < <(awk -v g=$((g1 - g0)) -v m=$((m1 - m0)) -v s=$((s1 - s0)) -v b=$((b1 - b0)) \
        -v n="$requests" -v hz="$CLK_TCK" -v ncpu="$NCPU" -v w0="$w0" -v w1="$w1" 'BEGIN {
            cpu = (n > 0) ? sprintf("%.1f", g * 1e6 / hz / n) : "NA"
            o = (b - g - m - s) / ((w1 - w0) * hz * ncpu) * 100; if (o < 0) o = 0
            printf "%s %.0f\n", cpu, o }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$R_NAME" "$mode" "$pname" "$(val rps)" "$(val p50_us)" \
        "$(val p90_us)" "$(val p99_us)" "$(val errors)" "$requests" "$cpu" "$other" >>"$RUNS_TSV"
    note "$(printf '%-25s %-4s %-3s: %9s req/s  p50 %6s us  p99 %7s us  errors %s  cpu/req %s us  other cpu %s%%' \
        "$R_NAME" "$mode" "$pname" "$(val rps)" "$(val p50_us)" "$(val p99_us)" "$(val errors)" "$cpu" "$other")"
}

n_prof=$(wc -w <<<"$PROFILES"); n_modes=$(wc -w <<<"$MODES")
note "${#ROWS[@]} rows x $n_modes modes x ($n_prof x $DURATION + ${WARMUP} warm-up): about $((${#ROWS[@]} * n_modes * (n_prof * DUR_S + WARMUP_S)))s of load"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for mode in $MODES; do
    if ((WARMUP_S > 0)); then
        for i in "${!ROWS[@]}"; do wrk_run "$i" "$mode" 1 8 "$WARMUP" "$RUN_DIR/warmup.out"; done
    fi
    for prof in $PROFILES; do
        for i in "${!ROWS[@]}"; do measure "$i" "$mode" "$prof"; done
    done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
RSS_AFTER=$(awk '$1 == "VmRSS:" {printf "%.1f MiB", $2 / 1024}' "/proc/$GATEWAY_PID/status")
HWM_AFTER=$(awk '$1 == "VmHWM:" {printf "%.1f MiB", $2 / 1024}' "/proc/$GATEWAY_PID/status")
if grep -qiE '(^|[^a-z])(error|warn)' "$RUN_DIR/prism.log"; then
    note "the gateway logged warnings or errors: $(grep -ciE '(^|[^a-z])(error|warn)' "$RUN_DIR/prism.log") lines, first: $(grep -m1 -iE '(^|[^a-z])(error|warn)' "$RUN_DIR/prism.log" | head -c 300)"
fi

# ---- report -------------------------------------------------------------------------------------
report() {
    local sizes="" b
    for b in chat messages responses completions; do sizes+="${sizes:+, }$b $(wc -c <"$BENCH_DIR/dialects/$b.json") B"; done
    cat <<EOF
# Prism client dialects benchmark ($(date -u +'%Y-%m-%d %H:%M UTC'))

- Machine: $NCPU CPUs ($(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)), kernel $(uname -r);
  load average at start $LOAD_START, at end $LOAD_END. wrk, the mock and the gateway share these cores.
- Gateway: \`$PRISM_BIN\` on 127.0.0.1:$GATEWAY_PORT, auth off, logging warn, plugins: $PLUGINS;
  RSS after load $RSS_AFTER (peak $HWM_AFTER). Providers on the nginx mock (127.0.0.1:$MOCK_PORT, 1 worker, static answers):
  **compat** (type groq: chat completions only), **anthropic-native** (api_format anthropic),
  **openai-native** (type openai: Responses), **vllm-native** (type vllm: legacy completions).
- Requests: the same conversation in each dialect (\`bench/dialects/\`: $sizes) via \`bench/dialects.lua\`;
  the mock answers the same 74-token text in each format (JSON, or SSE of 14 text deltas when \`"stream": true\`).
- Load: **req/s** = \`wrk -t2 -c32 -d$DURATION\`; **p50/p99** = \`wrk -t1 -c1 -d$DURATION\` (to the last byte; for SSE the
  end of the stream); rows interleaved after a ${WARMUP} warm-up each, one run per cell.
- **vs chat** and **p50 added** compare with the \`chat\` row of the same mode; **CPU µs/req** = the gateway's
  user+system CPU time over the c32 run divided by the requests completed (the mock not included).
- Every row was checked before load: 200, \`x-prism-provider\` the expected provider, pass-through answers byte
  for byte the mock's native file, translated ones in the client's dialect.

EOF
    awk -F'\t' -v modes="$MODES" -v nrows="${#ROWS[@]}" -v rows="$(printf '%s\n' "${ROWS[@]}" | cut -d'|' -f1 | paste -sd'\t')" '
    NR == 1 { next }
    {
        k = $1 SUBSEP $2 SUBSEP $3
        RPS[k] = $4; P50[k] = $5; P99[k] = $7; ERR[k] = $8; CPU[k] = $10; raw[++nraw] = $0
    }
    END {
        split(rows, R, "\t"); nm = split(modes, M, " ")
        print "| row | mode | req/s (c32) | vs chat | p50 ms (c1) | p50 added over chat | p99 ms (c1) | CPU µs/req (c32) | errors |"
        print "|---|---|---:|---:|---:|---:|---:|---:|---:|"
        for (a = 1; a <= nm; a++) for (r = 1; r <= nrows; r++) {
            k32 = R[r] SUBSEP M[a] SUBSEP "c32"; k1 = R[r] SUBSEP M[a] SUBSEP "c1"
            c32 = "chat" SUBSEP M[a] SUBSEP "c32"; c1 = "chat" SUBSEP M[a] SUBSEP "c1"
            vs = (R[r] == "chat") ? "—" : (RPS[c32] > 0 ? sprintf("%.2f×", RPS[k32] / RPS[c32]) : "n/a")
            add = (R[r] == "chat") ? "—" : sprintf("%+.0f µs", P50[k1] - P50[c1])
            printf "| %s | %s | %.0f | %s | %.3f | %s | %.3f | %s | %d |\n", R[r], M[a], RPS[k32], vs,
                P50[k1] / 1000, add, P99[k1] / 1000, CPU[k32], ERR[k32] + ERR[k1]
        }
        print "\n## Runs\n"
        print "| row | mode | profile | req/s | p50 ms | p90 ms | p99 ms | errors | requests | CPU µs/req | other CPU % |"
        print "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        for (i = 1; i <= nraw; i++) {
            split(raw[i], f, "\t")
            printf "| %s | %s | %s | %.0f | %.3f | %.3f | %.3f | %s | %s | %s | %s |\n", f[1], f[2], f[3], f[4],
                f[5] / 1000, f[6] / 1000, f[7] / 1000, f[8], f[9], f[10], f[11]
        }
        print "\nother CPU %: share of all CPUs busy with something besides the gateway, the mock and wrk during the"
        print "run (other jobs on the machine); high values mean a disturbed run."
    }' "$RUNS_TSV"
}

mkdir -p "$RESULTS_DIR"
report >"$RUN_DIR/report.md"
cp "$RUN_DIR/report.md" "$RESULTS_DIR/dialects-latest.md"
cat "$RUN_DIR/report.md"
note "report written to $RESULTS_DIR/dialects-latest.md"
if awk -F'\t' 'NR > 1 && $8 > 0 {bad = 1} END {exit !bad}' "$RUNS_TSV"; then
    note "some runs had errors (see the errors column)"
    exit 4
fi
