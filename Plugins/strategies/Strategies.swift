import PluginKit
import PrismPluginABI
import PrismWire
import Synchronization

// Routing strategies beyond round-robin. Each ranks the candidates the host gives it (with the
// host's live statistics: health, in-flight, recent latency and error rate); failover, retries
// and circuit breaking stay host mechanisms around the ranking. All are thread-safe.

/// Unhealthy candidates go last whatever the strategy says, so the host tries them only when
/// nothing else is left.
private func healthyFirst(_ order: [Int], _ candidates: [Candidate]) -> [Int] {
    order.filter { candidates[$0].healthy } + order.filter { !candidates[$0].healthy }
}

/// Weighted random order without replacement: candidate i comes first with probability
/// weight_i / Σ weights (`routing.weights`, or a target's `weight`).
private func weightedOrder(_ weights: [Double], using generator: inout some RandomNumberGenerator) -> [Int] {
    var remaining = Array(weights.indices)
    var order: [Int] = []
    while !remaining.isEmpty {
        let total = remaining.reduce(0.0) { $0 + max(weights[$1], 0) }
        guard total > 0 else { return order + remaining }
        var pick = Double.random(in: 0..<total, using: &generator)
        var chosen = remaining.count - 1
        for (position, index) in remaining.enumerated() {
            pick -= max(weights[index], 0)
            if pick < 0 {
                chosen = position
                break
            }
        }
        order.append(remaining.remove(at: chosen))
    }
    return order
}

/// The `routing:` keys the strategies read (each reads its own; any of them may be configured).
let strategyKeys: [String]? = ["prices", "fastest", "least_latency", "adaptive"]

final class WeightedStrategy: RoutingStrategy {
    static let configurationKeys: [String]? = strategyKeys

    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {}

    func select(_ request: PluginRequest, candidates: [Candidate]) throws(PluginError) -> [Int] {
        var generator = SystemRandomNumberGenerator()
        return healthyFirst(weightedOrder(candidates.map { Double($0.weight) }, using: &generator), candidates)
    }
}

/// Fastest recent average latency first. Candidates with no measurement yet go first (so every
/// deployment gets measured), and 5% of requests explore in random order so a provider that got
/// faster is noticed.
final class LeastLatencyStrategy: RoutingStrategy {
    static let configurationKeys: [String]? = strategyKeys

    let exploration: Double

    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {
        exploration = configuration["least_latency"]?["exploration"]?.doubleValue ?? 0.05
    }

    func select(_ request: PluginRequest, candidates: [Candidate]) throws(PluginError) -> [Int] {
        if Double.random(in: 0..<1) < exploration { return healthyFirst(candidates.indices.shuffled(), candidates) }
        let order = candidates.indices.sorted { a, b in
            let (left, right) = (candidates[a].latencyMilliseconds, candidates[b].latencyMilliseconds)
            if left == 0 || right == 0 { return left == 0 && right != 0 }
            return left < right
        }
        return healthyFirst(order, candidates)
    }
}

/// Cheapest deployment first, from `routing.prices`: `"<provider>/<model>"` (or `"<model>"`)
/// → `{input: USD per 1M tokens, output: USD per 1M tokens}`. Unpriced deployments go last.
final class CostOptimizedStrategy: RoutingStrategy {
    static let configurationKeys: [String]? = strategyKeys

    let prices: [String: Double]

    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {
        var table: [String: Double] = [:]
        for (key, price) in configuration["prices"]?.objectValue ?? [] {
            let input = price["input"]?.doubleValue ?? 0
            let output = price["output"]?.doubleValue ?? 0
            // Output tokens dominate chat costs; weigh a typical 3:1 input:output mix.
            table[key] = input * 0.75 + output * 0.25
        }
        prices = table
        if table.isEmpty { host.log(.warn, "cost-optimized: routing.prices is empty; order falls back to config order") }
    }

    func select(_ request: PluginRequest, candidates: [Candidate]) throws(PluginError) -> [Int] {
        func price(_ candidate: Candidate) -> Double {
            prices["\(candidate.provider)/\(candidate.model)"] ?? prices[candidate.model] ?? .infinity
        }
        let order = candidates.indices.sorted { price(candidates[$0]) < price(candidates[$1]) }
        return healthyFirst(order, candidates)
    }
}

/// Races the best `routing.fastest.race` candidates (default 2): the host sends the request to
/// all of them, the first answer wins and the others are cancelled. Ranked by recent latency.
final class FastestStrategy: RoutingStrategy {
    static let configurationKeys: [String]? = strategyKeys

    let race: UInt32
    let ranking: LeastLatencyStrategy

    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {
        race = UInt32(clamping: max(2, configuration["fastest"]?["race"]?.integerValue ?? 2))
        ranking = try LeastLatencyStrategy(host: host, instanceName: instanceName, configuration: .object([]))
    }

    var parallelAttempts: UInt32 { race }

    func select(_ request: PluginRequest, candidates: [Candidate]) throws(PluginError) -> [Int] {
        try ranking.select(request, candidates: candidates)
    }
}

/// Weights learned from what the host observes: score = weight × (1 − error rate)² ÷ latency,
/// then a weighted random order on those scores. Fast, reliable deployments get most traffic;
/// the others keep a share in proportion, so recovery is noticed without a separate probe.
final class AdaptiveStrategy: RoutingStrategy {
    static let configurationKeys: [String]? = strategyKeys

    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {}

    func select(_ request: PluginRequest, candidates: [Candidate]) throws(PluginError) -> [Int] {
        let known = candidates.map(\.latencyMilliseconds).filter { $0 > 0 }
        let typical = known.isEmpty ? 100 : known.reduce(0, +) / Double(known.count)
        let scores = candidates.map { candidate -> Double in
            let latency = candidate.latencyMilliseconds > 0 ? candidate.latencyMilliseconds : typical
            let reliability = (1 - min(max(candidate.errorRate, 0), 1))
            return Double(max(candidate.weight, 1)) * reliability * reliability / max(latency, 0.1) + 1e-9
        }
        var generator = SystemRandomNumberGenerator()
        return healthyFirst(weightedOrder(scores, using: &generator), candidates)
    }
}

@c(prism_plugin_entry_v1)
public func prismPluginEntry(_ host: UnsafePointer<prism_host_api>?,
                             _ out: UnsafeMutablePointer<UnsafePointer<prism_plugin_descriptor>?>?) -> prism_status
{
    PluginExport.entry(host, out, id: "dev.prism.router.strategies", version: "1.0.0",
                       components: [.router("weighted", WeightedStrategy.self),
                                    .router("least-latency", LeastLatencyStrategy.self),
                                    .router("cost-optimized", CostOptimizedStrategy.self),
                                    .router("fastest", FastestStrategy.self),
                                    .router("adaptive", AdaptiveStrategy.self)])
}
