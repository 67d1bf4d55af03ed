// swift-tools-version:6.0
import PackageDescription

// Layout (the request's path): Sources/PrismCore/{Server → Pipeline → Routing} → PrismTransport,
// with Plugins/ (provider adapters, middleware, routers, dialects) loaded through the C ABI in
// PrismPluginABI. The host's lower layers are modules of their own (PrismSupport ← PrismTransport,
// PrismSharedState ← PrismHost: configuration, observability, governance, the ABI's host side), so
// the compiler refuses a reach upward. Plugins depend only on PluginKit
// (+ PrismWire and the ABI header), never on the host.

/// Every module puts each function in a section of its own and lets the linker drop the public
/// ones nothing reaches (`-internalize-at-link`: without it, Swift marks every public function as
/// retained, so `--gc-sections` keeps all of PluginKit and PrismWire in each plugin). A plugin
/// exports only its entry (below), so its `.so` keeps only the kit code it calls: round-robin's
/// text went from 431 to 196 KB, the 15 plugins from 7.95 to 4.94 MB, and the idle gateway's RSS
/// by about 1.7 MiB (plugins are mapped from a private copy, nearly every page resident).
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .unsafeFlags(["-Xfrontend", "-function-sections", "-Xfrontend", "-internalize-at-link"]),
]

/// A first-party plugin: a dynamic library built from Plugins/<folder> on PluginKit.
func pluginTarget(_ name: String, folder: String, kits: [Target.Dependency] = []) -> Target {
    .target(name: name, dependencies: ["PluginKit", "PrismWire", "PrismPluginABI"] + kits,
            path: "Plugins/\(folder)", swiftSettings: swiftSettings, linkerSettings: pluginLinkerSettings)
}

/// A plugin exports only its entry (Plugins/exports.map) and the linker drops the kits' code it
/// never reaches: every plugin statically links PluginKit and PrismWire, whose public symbols
/// would otherwise all be exported and kept.
let pluginLinkerSettings: [LinkerSetting] = [
    .unsafeFlags(["-Xlinker", "--version-script=\(Context.packageDirectory)/Plugins/exports.map",
                  "-Xlinker", "--gc-sections"]),
]

/// A client dialect's translation (an ingress plugin without its entry): Plugins/<folder>/Dialect.
func dialectTarget(_ name: String, folder: String) -> Target {
    .target(name: name, dependencies: ["PluginKit", "PrismWire", "PrismPluginABI"], path: "Plugins/\(folder)/Dialect",
            swiftSettings: swiftSettings)
}

let package = Package(
    name: "prism",
    products: [
        .executable(name: "prism-gateway", targets: ["prism-gateway"]),
        .library(name: "PrismProviderOpenAI", type: .dynamic, targets: ["PrismProviderOpenAI"]),
        .library(name: "PrismProviderMock", type: .dynamic, targets: ["PrismProviderMock"]),
        .library(name: "PrismMiddlewareAuth", type: .dynamic, targets: ["PrismMiddlewareAuth"]),
        .library(name: "PrismRouterRoundRobin", type: .dynamic, targets: ["PrismRouterRoundRobin"]),
        .library(name: "PrismRouterStrategies", type: .dynamic, targets: ["PrismRouterStrategies"]),
        .library(name: "PrismProviderAnthropic", type: .dynamic, targets: ["PrismProviderAnthropic"]),
        .library(name: "PrismProviderGemini", type: .dynamic, targets: ["PrismProviderGemini"]),
        .library(name: "PrismProviderCohere", type: .dynamic, targets: ["PrismProviderCohere"]),
        .library(name: "PrismProviderAzure", type: .dynamic, targets: ["PrismProviderAzure"]),
        .library(name: "PrismProviderBedrock", type: .dynamic, targets: ["PrismProviderBedrock"]),
        .library(name: "PrismMiddlewareRateLimit", type: .dynamic, targets: ["PrismMiddlewareRateLimit"]),
        .library(name: "PrismMiddlewareCache", type: .dynamic, targets: ["PrismMiddlewareCache"]),
        .library(name: "PrismIngressAnthropic", type: .dynamic, targets: ["PrismIngressAnthropic"]),
        .library(name: "PrismIngressResponses", type: .dynamic, targets: ["PrismIngressResponses"]),
        .library(name: "PrismIngressCompletions", type: .dynamic, targets: ["PrismIngressCompletions"]),
        .executable(name: "prism-translation-bench", targets: ["prism-translation-bench"]),
        .executable(name: "prism-routing-bench", targets: ["prism-routing-bench"]),
        .executable(name: "prism-state-bench", targets: ["prism-state-bench"]),
        .executable(name: "prism-metrics-bench", targets: ["prism-metrics-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // Metrics API and its Prometheus backend (GET /-/metrics).
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // The plugin contract: one C header, nothing else.
        .target(name: "PrismPluginABI", path: "Sources/PrismPluginABI"),
        // System libraries, each with a tiny shim header for what Swift cannot import directly.
        // eventfd and epoll for the host's own threads (transport, Redis client).
        .systemLibrary(name: "CPrismSystem", path: "Sources/CPrismSystem"),
        .systemLibrary(name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CYAML", path: "Sources/CYAML", pkgConfig: "yaml-0.1",
                       providers: [.apt(["libyaml-dev"])]),
        .systemLibrary(name: "CFFI", path: "Sources/CFFI", pkgConfig: "libffi",
                       providers: [.apt(["libffi-dev"])]),
        .systemLibrary(name: "CHiredis", path: "Sources/CHiredis", pkgConfig: "hiredis",
                       providers: [.apt(["libhiredis-dev"])]),
        // The admin store: SQLite, and OpenSSL's libcrypto (AES-GCM, HKDF, SHA-256) for its secrets.
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),
        // Request bodies a client compressed (Content-Encoding gzip/deflate, zstd).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CCrypto", path: "Sources/CCrypto", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"])]),
        // Fast JSON and SSE, shared by the host and PluginKit. Knows nothing of either.
        .target(name: "PrismWire", dependencies: ["CPrismWireScan"], swiftSettings: swiftSettings),
        // The JSON string scan's vector loop (SSE2), header-only.
        .target(name: "CPrismWireScan", path: "Sources/CPrismWireScan"),
        // What Swift plugins share: ABI glue and OpenAI shapes.
        .target(name: "PluginKit", dependencies: ["PrismWire", "PrismPluginABI", "CCrypto"],
                swiftSettings: swiftSettings),
        // AWS request signing (SigV4) and the event-stream framing: Bedrock's alone, so that no
        // other plugin carries them.
        .target(name: "AWSKit", dependencies: ["PluginKit", "PrismWire"], swiftSettings: swiftSettings),
        // The bottom of the host, each a module so that nothing below can reach up: small shared
        // utilities (clocks, digests, ASCII, the resume latch), the event loops, then the outbound
        // engine (libcurl's multi interface, one handle per loop), which knows nothing of plugins,
        // routing or the server.
        .target(name: "PrismSupport", dependencies: ["PrismWire", "CCrypto"], swiftSettings: swiftSettings),
        // The gateway's event loops: one thread per core with its own epoll set, a NIO EventLoop
        // serving client connections and libcurl's sockets alike (no thread hop per request).
        .target(name: "PrismLoop", dependencies: [
            "CPrismSystem", .product(name: "NIOCore", package: "swift-nio"),
        ], swiftSettings: swiftSettings),
        // The HTTP/1.1 server codec: request parsing, answer framing and pipelining, one stage.
        .target(name: "PrismHTTP1", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
        ], swiftSettings: swiftSettings),
        .target(name: "PrismTransport", dependencies: ["PrismSupport", "PrismLoop", "CCurl", "CPrismSystem"],
                swiftSettings: swiftSettings),
        // Shared state (in memory, or Redis through hiredis on its own thread): counters, sliding
        // windows and values. Knows nothing of plugins: PrismHost's Plugins/ offers it through the ABI.
        .target(name: "PrismSharedState", dependencies: [
            "PrismSupport", "PrismWire", "PrismPluginABI", "CHiredis", "CPrismSystem",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
        ], swiftSettings: swiftSettings),
        // SQLite for the admin store and the spend ledger: one connection, bound values, rows out.
        .target(name: "PrismStorage", dependencies: ["CSQLite"], swiftSettings: swiftSettings),
        // The host's base, below the request's path: the configuration, observability (logs,
        // metrics, prices), governance (budgets, spend) and the C ABI's host side (loading plugins,
        // host services, provider instances). A module of its own so that none of it can reach up
        // into routing, the middleware chain or the server (the compiler refuses).
        .target(name: "PrismHost", dependencies: [
            "PrismSupport", "PrismTransport", "PrismSharedState", "PrismStorage",
            "PrismPluginABI", "PrismWire", "CYAML", "CFFI",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ], swiftSettings: swiftSettings),
        // The request's path above it: Pipeline → Routing → Relay, Telemetry, the configuration
        // generation, the control plane and the HTTP server (folders layered by scripts/check-layers.py).
        .target(name: "PrismCore", dependencies: [
            "PrismHost", "PrismSupport", "PrismLoop", "PrismHTTP1", "PrismTransport", "PrismSharedState", "PrismStorage",
            "PrismPluginABI", "PrismWire", "CPrismSystem", "CCurl", "CHiredis", "CSQLite", "CCrypto", "CZlib", "CZstd",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ], swiftSettings: swiftSettings),
        .executableTarget(name: "prism-gateway", dependencies: ["PrismCore", "PrismWire"],
                          swiftSettings: swiftSettings),
        pluginTarget("PrismProviderOpenAI", folder: "openai"),
        pluginTarget("PrismProviderMock", folder: "mock"),
        pluginTarget("PrismMiddlewareAuth", folder: "auth"),
        pluginTarget("PrismRouterRoundRobin", folder: "round-robin"),
        pluginTarget("PrismRouterStrategies", folder: "strategies"),
        pluginTarget("PrismProviderAnthropic", folder: "anthropic"),
        pluginTarget("PrismProviderGemini", folder: "gemini"),
        pluginTarget("PrismProviderCohere", folder: "cohere"),
        pluginTarget("PrismProviderAzure", folder: "azure"),
        pluginTarget("PrismProviderBedrock", folder: "bedrock", kits: ["AWSKit"]),
        pluginTarget("PrismMiddlewareRateLimit", folder: "rate-limit"),
        pluginTarget("PrismMiddlewareCache", folder: "cache"),
        // Client dialects (ABI 1.5 ingress components).
        // Client dialects (ABI 1.5 ingress components): each dialect is a target of its own and its
        // plugin only the entry, so the dialects' unit tests link without the exported entry symbol.
        dialectTarget("AnthropicDialect", folder: "ingress-anthropic"),
        pluginTarget("PrismIngressAnthropic", folder: "ingress-anthropic/Entry", kits: ["AnthropicDialect"]),
        dialectTarget("ResponsesDialect", folder: "ingress-responses"),
        pluginTarget("PrismIngressResponses", folder: "ingress-responses/Entry", kits: ["ResponsesDialect"]),
        dialectTarget("CompletionsDialect", folder: "ingress-completions"),
        pluginTarget("PrismIngressCompletions", folder: "ingress-completions/Entry", kits: ["CompletionsDialect"]),
        .testTarget(name: "AnthropicIngressTests", dependencies: ["AnthropicDialect", "PluginKit", "PrismWire"],
                    swiftSettings: swiftSettings),
        .testTarget(name: "ResponsesIngressTests", dependencies: ["ResponsesDialect", "PluginKit", "PrismWire"],
                    swiftSettings: swiftSettings),
        .testTarget(name: "CompletionsIngressTests", dependencies: ["CompletionsDialect", "PluginKit", "PrismWire"],
                    swiftSettings: swiftSettings),
        .testTarget(name: "BedrockTests", dependencies: ["PrismProviderBedrock", "AWSKit", "PluginKit", "PrismWire"],
                    swiftSettings: swiftSettings),
        // Measures what a routing decision costs per strategy (release build).
        .executableTarget(name: "prism-routing-bench", dependencies: ["PrismCore"], path: "bench/routing",
                          exclude: ["README.md"], swiftSettings: swiftSettings),
        // Measures a rate-limit check through prism.shared_state.v1, in memory and on Redis.
        .executableTarget(name: "prism-state-bench", dependencies: ["PrismCore"], path: "bench/state",
                          swiftSettings: swiftSettings),
        // Measures recording one request's metrics.
        .executableTarget(name: "prism-metrics-bench", dependencies: ["PrismCore"], path: "bench/metrics",
                          swiftSettings: swiftSettings),
        // Measures translation cost per provider through the C ABI (release build).
        .executableTarget(name: "prism-translation-bench", dependencies: ["PrismCore", "PrismWire"],
                          path: "bench/translation", exclude: ["README.md"], swiftSettings: swiftSettings),
        .testTarget(name: "PrismLoopTests", dependencies: ["PrismLoop", "CPrismSystem", .product(name: "NIOCore", package: "swift-nio")],
                    swiftSettings: swiftSettings),
        .testTarget(name: "PrismHTTP1Tests", dependencies: [
            "PrismHTTP1", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ], swiftSettings: swiftSettings),
        .testTarget(name: "PrismTransportTests", dependencies: ["PrismTransport", "PrismLoop", "PrismSupport"],
                    swiftSettings: swiftSettings),
        .testTarget(name: "PrismWireTests", dependencies: ["PrismWire"], swiftSettings: swiftSettings),
        .testTarget(name: "PluginKitTests", dependencies: ["PluginKit", "PrismWire"],
                    swiftSettings: swiftSettings),
        .testTarget(name: "PrismCoreTests", dependencies: ["PrismCore", "PrismWire", "PrismSupport",
                                                          .product(name: "NIOEmbedded", package: "swift-nio")],
                    swiftSettings: swiftSettings),
    ]
)

// libFuzzer targets (Tests/fuzz, run by scripts/fuzz.sh): declared only when PRISM_FUZZ=1, so that
// `swift build` and `swift test` never see them. scripts/fuzz.sh builds them with
// -sanitize=fuzzer,address into .build-fuzz, together with instrumented plugin libraries that the
// translator and HTTP targets load through the C ABI (TranslationHarness, the plugin registry).
if Context.environment["PRISM_FUZZ"] == "1" {
    func fuzzTarget(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
        .executableTarget(name: "fuzz-\(name)", dependencies: ["FuzzSupport"] + dependencies,
                          path: "Tests/fuzz/Sources/\(name)", swiftSettings: swiftSettings)
    }
    package.targets += [
        // libFuzzer's LLVMFuzzerRunDriver, called from each target's main.swift.
        .systemLibrary(name: "CFuzzerDriver", path: "Tests/fuzz/Sources/CFuzzerDriver"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzerDriver"], path: "Tests/fuzz/Sources/FuzzSupport",
                swiftSettings: swiftSettings),
        fuzzTarget("config", ["PrismCore"]),
        fuzzTarget("http", ["PrismCore", "PrismWire", "PrismHTTP1", .product(name: "NIOCore", package: "swift-nio"),
                            .product(name: "NIOEmbedded", package: "swift-nio"),
                            .product(name: "NIOHTTP1", package: "swift-nio")]),
        fuzzTarget("http1", ["PrismHTTP1", .product(name: "NIOCore", package: "swift-nio"),
                             .product(name: "NIOEmbedded", package: "swift-nio"),
                             .product(name: "NIOHTTP1", package: "swift-nio")]),
        fuzzTarget("translate", ["PrismCore", "PrismWire", "PrismPluginABI"]),
        fuzzTarget("sse", ["PrismWire"]),
        fuzzTarget("ingress", ["PrismCore", "PrismWire", "PrismPluginABI"]),
    ]
}
