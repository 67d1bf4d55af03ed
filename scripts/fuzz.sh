#!/usr/bin/env bash
# libFuzzer targets for hostile input (Tests/fuzz/README.md):
#   config                the config loader (libyaml, alias and size caps, ${VAR}, every section)
#   http                  raw client bytes through the server's channel pipeline and the gateway's
#                         checks, proxied to the mock provider plugin (no network)
#   sse                   ServerSentEventParser and LineSplitter (NDJSON), against reference decoders
#   translate-<provider>  a provider plugin through the C ABI: build_request, translate_response,
#                         translate_error, streams (SSE, or Bedrock's AWS event-stream) and finish
#                         (openai, azure, anthropic, gemini, vertexai, cohere, bedrock)
#   ingress-<dialect>     a client dialect (ingress plugin) through the C ABI: decode_request on its
#                         routes, encode_response, streams (encode_event, finish_stream, errors in
#                         the stream) and observe_native (anthropic, responses, completions)
#
#   scripts/fuzz.sh --short [TARGET...]       build, replay each committed corpus, fuzz each target
#                                             FUZZ_SECONDS (15) seconds; what make test runs
#   scripts/fuzz.sh --long [TARGET...]        fuzz each target FUZZ_SECONDS (600) seconds from its
#                                             corpus; new inputs in .build-fuzz/work/<target>
#   scripts/fuzz.sh --build                   only build the targets and the instrumented plugins
#   scripts/fuzz.sh --replay [TARGET...]      only replay the committed corpora
#   scripts/fuzz.sh --reseed [TARGET...]      merge seeds from real inputs (Tests/fuzz/seeds.py)
#                                             and the --long work directories into the corpora,
#                                             keeping only inputs that add coverage
#   scripts/fuzz.sh --symbolize LOG           a report with frames in a plugin, symbolized
#
# Everything runs under `nice -n 19`, one fuzz process at a time, and builds into .build-fuzz
# (never .build or dist/). A finding is saved as .build-fuzz/findings/<target>/crash-<sha1>
# (or leak-, timeout-, oom-); replay it with `scripts/fuzz.sh --run TARGET FILE`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

build_path=$root/.build-fuzz
plugins=$build_path/plugins
corpus_root=$root/Tests/fuzz/corpus
providers=(openai azure anthropic gemini vertexai cohere bedrock)
dialects=(anthropic responses completions)
all_targets=(config http http1 sse)
for provider in "${providers[@]}"; do all_targets+=("translate-$provider"); done
for dialect in "${dialects[@]}"; do all_targets+=("ingress-$dialect"); done

mode=short
case ${1:-} in
    --short|--long|--build|--replay|--reseed|--symbolize|--run) mode=${1#--}; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
esac

export SWIFT_BACKTRACE=enable=no # libFuzzer and ASan report crashes (and save the input)
export LSAN_OPTIONS=suppressions=$root/Tests/fuzz/lsan.supp:print_suppressions=0
export PRISM_FUZZ_PLUGINS=$plugins

# MARK: Building

build() {
    local flags=(-c release --build-path "$build_path"
                 -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing -Xswiftc -use-ld=lld
                 -Xcc -fsanitize=fuzzer-no-link,address)
    # Providers and what the http target's configuration needs (auth, the default router).
    local products=(fuzz-config fuzz-http fuzz-http1 fuzz-sse fuzz-translate fuzz-ingress PrismIngressAnthropic
                    PrismIngressResponses PrismIngressCompletions PrismProviderOpenAI PrismProviderAzure
                    PrismProviderAnthropic PrismProviderGemini PrismProviderCohere PrismProviderBedrock
                    PrismProviderMock PrismMiddlewareAuth PrismRouterRoundRobin)
    local product log
    log=$(mktemp)
    for product in "${products[@]}"; do
        if ! PRISM_FUZZ=1 nice -n 19 swift build "${flags[@]}" --product "$product" >"$log" 2>&1; then
            grep -v -e '^\[[0-9]*/[0-9]*\]' "$log" >&2
            echo "fuzz build failed: $product" >&2
            rm -f "$log"
            exit 1
        fi
    done
    rm -f "$log"
    local bin=$build_path/release
    rm -rf "$plugins"
    mkdir -p "$plugins"
    for provider in OpenAI Azure Anthropic Gemini Cohere Bedrock Mock; do
        install -m 755 "$bin/libPrismProvider$provider.so" "$plugins/provider-$(tr '[:upper:]' '[:lower:]' <<<"$provider").so"
    done
    for dialect in Anthropic Responses Completions; do
        install -m 755 "$bin/libPrismIngress$dialect.so" "$plugins/ingress-$(tr '[:upper:]' '[:lower:]' <<<"$dialect").so"
    done
    install -m 755 "$bin/libPrismMiddlewareAuth.so" "$plugins/middleware-auth.so"
    install -m 755 "$bin/libPrismRouterRoundRobin.so" "$plugins/router-round-robin.so"
}

# MARK: Running

# The binary and libFuzzer flags of a target.
target_command() {
    local target=$1 bin=$build_path/release
    local common=(-rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -detect_leaks=1)
    case $target in
        config) command=("$bin/fuzz-config" "${common[@]}" -max_len=16384 -dict=Tests/fuzz/dict/yaml.dict) ;;
        http) command=("$bin/fuzz-http" "${common[@]}" -max_len=8192 -dict=Tests/fuzz/dict/http.dict) ;;
        http1) command=("$bin/fuzz-http1" "${common[@]}" -max_len=8192 -dict=Tests/fuzz/dict/http.dict) ;;
        sse) command=("$bin/fuzz-sse" "${common[@]}" -max_len=16384 -dict=Tests/fuzz/dict/sse.dict) ;;
        translate-*)
            local provider=${target#translate-}
            [[ " ${providers[*]} " == *" $provider "* ]] || { echo "unknown target $target" >&2; exit 2; }
            command=(env PRISM_FUZZ_PROVIDER="$provider" "$bin/fuzz-translate" "${common[@]}" -max_len=16384
                     -dict=Tests/fuzz/dict/json.dict) ;;
        ingress-*)
            local dialect=${target#ingress-}
            [[ " ${dialects[*]} " == *" $dialect "* ]] || { echo "unknown target $target" >&2; exit 2; }
            command=(env PRISM_FUZZ_DIALECT="$dialect" "$bin/fuzz-ingress" "${common[@]}" -max_len=16384
                     -dict=Tests/fuzz/dict/json.dict) ;;
        *) echo "unknown target $target (targets: ${all_targets[*]})" >&2; exit 2 ;;
    esac
}

findings_dir() {
    mkdir -p "$build_path/findings/$1"
    echo "$build_path/findings/$1/"
}

# Every committed input once; fails on the first crash.
replay() {
    local target=$1 log
    target_command "$target"
    log=$(mktemp)
    if ! nice -n 19 "${command[@]}" -runs=0 -artifact_prefix="$(findings_dir "$target")" "$corpus_root/$target" >"$log" 2>&1; then
        cat "$log" >&2
        echo "replay of Tests/fuzz/corpus/$target failed" >&2
        rm -f "$log"
        exit 1
    fi
    echo "replay $target: $(ls "$corpus_root/$target" | wc -l) inputs, $(grep -oE 'INITED cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)"
    rm -f "$log"
}

# Fuzzes `target` for `seconds`: new inputs go to `work` (the committed corpus is only read).
fuzz() {
    local target=$1 seconds=$2 work=$3 log=$4
    target_command "$target"
    mkdir -p "$work"
    local status=0
    nice -n 19 "${command[@]}" -max_total_time="$seconds" -artifact_prefix="$(findings_dir "$target")" \
        "$work" "$corpus_root/$target" >"$log" 2>&1 || status=$?
    local done_line
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
    local rate
    rate=$(grep -oE 'stat::average_exec_per_sec:[[:space:]]+[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
    if [[ $status -ne 0 ]]; then
        grep -E 'ERROR|Fatal error|SUMMARY|Test unit written' "$log" >&2 || true
        echo "$target: FINDING after fuzzing (log: $log)" >&2
        return 1
    fi
    echo "$target: ${seconds}s, ${done_line:-no DONE line}, ${rate} exec/s"
}

symbolize() {
    # Plugins are dlopened from a sealed memfd copy, so their frames read (/proc/self/fd/N+0xOFF)
    # (BuildId: ID): find the plugin file with that build ID and ask llvm-symbolizer.
    local log=$1 line file offset id
    declare -A by_id=()
    for file in "$plugins"/*.so; do
        id=$(readelf -n "$file" 2>/dev/null | awk '/Build ID/ {print $3}')
        [[ -n $id ]] && by_id[$id]=$file
    done
    while IFS= read -r line; do
        if [[ $line =~ \(/proc/self/fd/[0-9]+\+(0x[0-9a-f]+)\)\ \(BuildId:\ ([0-9a-f]+)\) ]]; then
            offset=${BASH_REMATCH[1]}
            id=${BASH_REMATCH[2]}
            if [[ -n ${by_id[$id]:-} ]]; then
                echo "$line"
                llvm-symbolizer --obj="${by_id[$id]}" --demangle "$offset" | sed -e '/^$/d' -e 's/^/        -> /'
                continue
            fi
        fi
        echo "$line"
    done <"$log"
}

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")

case $mode in
    build) build ;;
    symbolize) symbolize "${1:?usage: $0 --symbolize LOG}" ;;
    run)
        # One input (or directory) through a target, with a trace of what it did.
        target=${1:?usage: $0 --run TARGET FILE...}
        shift
        target_command "$target"
        PRISM_FUZZ_TRACE=1 nice -n 19 "${command[@]}" -runs=1 "$@"
        ;;
    replay)
        for target in "${targets[@]}"; do replay "$target"; done
        ;;
    short)
        start=$(date +%s)
        build
        seconds=${FUZZ_SECONDS:-15}
        scratch=$(mktemp -d)
        trap 'rm -rf "$scratch"' EXIT
        failed=0
        for target in "${targets[@]}"; do
            replay "$target"
            fuzz "$target" "$seconds" "$scratch/$target" "$scratch/$target.log" || { failed=1; cat "$scratch/$target.log" >&2; }
        done
        echo "fuzz --short: ${#targets[@]} targets in $(( $(date +%s) - start ))s"
        exit $failed
        ;;
    long)
        seconds=${FUZZ_SECONDS:-600}
        mkdir -p "$build_path/logs"
        failed=0
        for target in "${targets[@]}"; do
            fuzz "$target" "$seconds" "$build_path/work/$target" "$build_path/logs/$target.log" || failed=1
        done
        exit $failed
        ;;
    reseed)
        seeds=$(mktemp -d)
        trap 'rm -rf "$seeds"' EXIT
        python3 Tests/fuzz/seeds.py "$seeds" >/dev/null
        for target in "${targets[@]}"; do
            target_command "$target"
            mkdir -p "$corpus_root/$target"
            sources=()
            [[ -d $seeds/$target ]] && sources+=("$seeds/$target")
            [[ -d $build_path/work/$target ]] && sources+=("$build_path/work/$target")
            [[ ${#sources[@]} -gt 0 ]] || continue
            nice -n 19 "${command[@]}" -merge=1 "$corpus_root/$target" "${sources[@]}" >/dev/null 2>&1
            echo "$target: $(ls "$corpus_root/$target" | wc -l) inputs, $(du -sh "$corpus_root/$target" | cut -f1)"
        done
        ;;
esac
