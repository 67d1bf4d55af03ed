import Logging
import PrismCore

// prism-routing-bench [plugins dir]: what routing adds to a request, per strategy. Three providers
// serve one model; each iteration makes the full decision (alias, candidates, the strategy plugin's
// ranking through the C ABI with live statistics, circuit admission, health and feedback).
// Budget: ≤ 5 µs per request.

let pluginsDirectory = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "dist/plugins"
LoggingSystem.bootstrap { label in LineLogHandler(label: label, level: .error) }
var logger = Logger(label: "prism-routing-bench")
logger.logLevel = .error

print("| strategy | µs per routing decision (best of 5 × 200k) | budget ≤ 5 µs |")
print("|---|---:|---|")
for strategy in ["round-robin", "weighted", "least-latency", "cost-optimized", "adaptive"] {
    let text = """
    providers:
      a: {type: mock, models: [m]}
      b: {type: mock, models: [m]}
      c: {type: mock, models: [m]}
    model_map: {alias: m}
    routing:
      default_strategy: \(strategy)
      weights: {a: 5, b: 3, c: 2}
      prices: {"a/m": {input: 1, output: 2}, "b/m": {input: 3, output: 4}, "c/m": {input: 0.5, output: 1}}
    logging: {level: error}
    """
    var loader = ConfigLoader()
    let (configuration, _) = try loader.load(text: text, file: "bench")
    let gateway = try Gateway(configuration: configuration, pluginsDirectory: pluginsDirectory, logger: logger)
    let probe = RoutingProbe(gateway: gateway, model: "alias")
    guard probe.decide() != nil else {
        print("| \(strategy) | not routable (is router-strategies.so in \(pluginsDirectory)?) | |")
        continue
    }
    let iterations = 200_000
    var best = Double.infinity
    for _ in 0..<5 {
        let start = monotonicNanoseconds()
        for _ in 0..<iterations { probe.decide() }
        best = min(best, Double(monotonicNanoseconds() - start) / Double(iterations) / 1000)
    }
    let verdict = best <= 5 ? "met" : "not met"
    let hundredths = Int((best * 100).rounded())
    print("| \(strategy) | \(hundredths / 100).\(format2(hundredths % 100)) | \(verdict) |")
}

func format2(_ value: Int) -> String { value < 10 ? "0\(value)" : String(value) }

// Model families (issue 13): 100 providers, each declaring a few patterns; the model is in no
// `models` list, so every decision scans the families (the slowest path of resolution).
do {
    var providers = ""
    for index in 0..<100 {
        providers += "  p\(index): {type: mock, model_patterns: [\"fam\(index)-*\", \"*-v\(index)\", \"x\(index).*.y\"]}\n"
    }
    let text = "providers:\n" + providers + "routing: {default_strategy: round-robin}\nlogging: {level: error}\n"
    var loader = ConfigLoader()
    let (configuration, _) = try loader.load(text: text, file: "bench")
    let gateway = try Gateway(configuration: configuration, pluginsDirectory: pluginsDirectory, logger: logger)
    for (label, model) in [("family match, 100 providers × 3 patterns", "fam97-large-2027"),
                           ("no match, 100 providers × 3 patterns", "unknown-model-name")] {
        let probe = RoutingProbe(gateway: gateway, model: model)
        let iterations = 200_000
        var best = Double.infinity
        for _ in 0..<5 {
            let start = monotonicNanoseconds()
            for _ in 0..<iterations { probe.decide() }
            best = min(best, Double(monotonicNanoseconds() - start) / Double(iterations) / 1000)
        }
        let hundredths = Int((best * 100).rounded())
        print("| \(label) | \(hundredths / 100).\(format2(hundredths % 100)) | \(best <= 5 ? "met" : "not met") |")
    }
}
