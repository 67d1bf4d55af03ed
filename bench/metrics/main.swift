import PrismCore

// prism-metrics-bench: what recording one finished request costs (prism_requests_total, the
// duration and time-to-first-token histograms, prism_tokens_total) through swift-metrics into the
// Prometheus registry, over a realistic spread of label sets. Budget: ≤ 2 µs per request.

let models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "gemini-2.5-pro"]
let providers = ["openai", "azure", "anthropic", "gemini"]
let statuses = [200, 200, 200, 200, 200, 200, 429, 502]
var best = Double.infinity
for _ in 0..<5 {
    let count = 500_000
    let start = monotonicNanoseconds()
    for index in 0..<count {
        MetricsProbe.recordRequest(model: models[index & 3], provider: providers[(index >> 2) & 3],
                                   status: statuses[(index >> 4) & 7])
    }
    best = min(best, Double(monotonicNanoseconds() - start) / Double(count) / 1000)
}
let scrapeStart = monotonicNanoseconds()
let size = MetricsProbe.renderedBytes()
let scrape = Double(monotonicNanoseconds() - scrapeStart) / 1000
let rounded = Double(Int(best * 100)) / 100
print("| what | cost | budget |")
print("|---|---:|---|")
print("| recording one request (counter, 2 histograms, tokens; 64 label sets) | \(rounded) µs (best of 5 × 500k) | ≤ 2 µs |")
print("| rendering /-/metrics (\(size) bytes) | \(Int(scrape)) µs | |")
