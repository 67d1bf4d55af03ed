#!/usr/bin/env bash
# Builds Prism in release mode and lays out dist/:
#   dist/prism-gateway            the gateway
#   dist/plugins/*.so             first-party plugins: providers (openai, mock, anthropic, gemini + vertexai,
#                                 cohere, azure, bedrock), middleware-auth, middleware-rate-limit,
#                                 middleware-cache, router-round-robin, router-strategies
#   dist/lib/*.so                 the Swift runtime libraries they load, so dist/ runs on a machine without
#                                 the toolchain (LD_LIBRARY_PATH=dist/lib; the Docker image does this)
# Used by the Makefile, .ci/run and the Dockerfile alike.
set -euo pipefail
cd "$(dirname "$0")/.."

configuration=release
tests=yes
for argument in "$@"; do
    case $argument in
        --bundle-runtime) ;; # always done; accepted for the Dockerfile's clarity
        --no-tests) tests=no ;; # the image's build stage: the product alone
        --debug) configuration=debug ;;
        *) echo "usage: $0 [--bundle-runtime] [--debug] [--no-tests]" >&2; exit 2 ;;
    esac
done

# One build serves everything `make test` runs: the test targets are built beside the product
# (--build-tests), and `swift test -c release --skip-build` runs the unit tests against these very
# modules instead of building the package again in debug. The tests reach what they check through
# `package` declarations, never `@testable import`, so the product is compiled exactly as it ships.
build_flags=(-c "$configuration")
[[ $tests == yes ]] && build_flags+=(--build-tests)
swift build "${build_flags[@]}"
bin=$(swift build "${build_flags[@]}" --show-bin-path)

rm -rf dist
mkdir -p dist/plugins
install -m 755 "$bin/prism-gateway" dist/prism-gateway
# SwiftPM names a dynamic product lib<Product>.so; dist/ uses the plugin's kind and name.
install -m 755 "$bin/libPrismProviderOpenAI.so" dist/plugins/provider-openai.so
install -m 755 "$bin/libPrismProviderMock.so" dist/plugins/provider-mock.so
install -m 755 "$bin/libPrismMiddlewareAuth.so" dist/plugins/middleware-auth.so
install -m 755 "$bin/libPrismMiddlewareRateLimit.so" dist/plugins/middleware-rate-limit.so
install -m 755 "$bin/libPrismMiddlewareCache.so" dist/plugins/middleware-cache.so
install -m 755 "$bin/libPrismRouterRoundRobin.so" dist/plugins/router-round-robin.so
install -m 755 "$bin/libPrismRouterStrategies.so" dist/plugins/router-strategies.so
install -m 755 "$bin/libPrismIngressAnthropic.so" dist/plugins/ingress-anthropic.so
install -m 755 "$bin/libPrismIngressResponses.so" dist/plugins/ingress-responses.so
install -m 755 "$bin/libPrismIngressCompletions.so" dist/plugins/ingress-completions.so
for provider in Anthropic Gemini Cohere Azure Bedrock; do
    lower=$(tr '[:upper:]' '[:lower:]' <<<"$provider")
    install -m 755 "$bin/libPrismProvider$provider.so" "dist/plugins/provider-$lower.so"
done

# The price table x-prism-cost applies (dated, with its sources), beside the binary.
install -m 644 config/prices.json dist/prices.json
# The dashboard's page (GET /ui), one self-contained file.
install -D -m 644 ui/index.html dist/ui/index.html

# Swift runtime libraries come from the toolchain; copy the ones the binaries load.
mkdir -p dist/lib
swift_lib_dir=$(realpath "$(dirname "$(realpath "$(command -v swift)")")/../lib/swift/linux")
for object in dist/prism-gateway dist/plugins/*.so; do
    ldd "$object" | awk '/=>/ {print $3}' | while read -r library; do
        [[ -n $library && $(realpath "$library") == "$swift_lib_dir"/* ]] || continue
        cp -n "$library" dist/lib/
    done
done
# dist/ ships stripped: symbol tables and debug info are ~60% of its size (the unstripped binaries
# stay in .build/ for debugging). --strip-all keeps .dynsym, which dlopen and the plugin entry need.
if command -v strip >/dev/null; then
    strip --strip-all dist/prism-gateway dist/plugins/*.so dist/lib/*.so
fi
echo "built: dist/prism-gateway, $(ls dist/plugins | wc -l) plugins, $(ls dist/lib | wc -l) runtime libraries in dist/lib"
