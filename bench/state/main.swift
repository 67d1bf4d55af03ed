import Logging
import PrismCore

#if canImport(Glibc)
import Glibc
#endif

// prism-state-bench [redis host:port]: what a rate-limit check costs through
// prism.shared_state.v1, called exactly as the rate_limit plugin calls it (C table, libffi
// closures, two windows all-or-none). In memory: budget ≤ 2 µs per check. With Redis: budget one
// round trip, compared with a PING through the same client.

LoggingSystem.bootstrap { label in LineLogHandler(label: label, level: .error) }
let logger = Logger(label: "prism-state-bench")

/// `value` with `digits` decimals (no Foundation).
func fixed(_ value: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = Int((value * scale).rounded())
    let whole = scaled / Int(scale)
    var fraction = String(scaled % Int(scale))
    while fraction.count < digits { fraction = "0" + fraction }
    return digits == 0 ? "\(whole)" : "\(whole).\(fraction)"
}

func percentile(_ samples: [UInt64], _ fraction: Double) -> Double {
    let sorted = samples.sorted()
    return Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]) / 1000
}

let memory = SharedStateProbe(redis: nil, logger: logger)
let clients = (0..<64).map { "requests:key:client-\($0)" }
var best = Double.infinity
for _ in 0..<5 {
    let count = 200_000
    let start = monotonicNanoseconds()
    for index in 0..<count { memory.check(key: clients[index & 63]) }
    best = min(best, Double(monotonicNanoseconds() - start) / Double(count) / 1000)
}
print("| backend | per rate-limit check | budget |")
print("|---|---:|---|")
print("| memory | \(fixed(best, 2)) µs (best of 5 × 200k, two windows) | ≤ 2 µs |")

// Budgets: the check before routing and the add after the answer, three budgets a request
// (organization, key, user), in memory.
let budgets = BudgetProbe(logger: logger)
let users = (0..<256).map { "user-\($0)" }
var bestBudget = Double.infinity
for _ in 0..<5 {
    let count = 200_000
    let start = monotonicNanoseconds()
    for index in 0..<count { budgets.request(key: clients[index & 63], user: users[index & 255], cost: 0.0001) }
    bestBudget = min(bestBudget, Double(monotonicNanoseconds() - start) / Double(count) / 1000)
}
print("| memory, budgets | \(fixed(bestBudget, 2)) µs (best of 5 × 200k, check + add of org, key and user budgets) | ≤ 3 µs |")

if CommandLine.arguments.count > 1 {
    let address = CommandLine.arguments[1]
    var settings = RedisSettings()
    let parts = address.split(separator: ":")
    settings.host = String(parts[0])
    settings.port = Int32(parts.count > 1 ? String(parts[1]) : "6379") ?? 6379
    settings.prefix = "prism-bench:"
    let redis = SharedStateProbe(redis: settings, logger: logger)
    let deadline = monotonicNanoseconds() + 5_000_000_000
    while !redis.isConnected && monotonicNanoseconds() < deadline { usleep(10_000) }
    guard redis.isConnected else {
        print("redis at \(address) not reachable")
        exit(1)
    }
    for _ in 0..<2000 { redis.check(key: "warmup"); redis.ping() }
    var checks: [UInt64] = []
    var pings: [UInt64] = []
    for index in 0..<20_000 {
        var start = monotonicNanoseconds()
        redis.check(key: clients[index & 63])
        checks.append(monotonicNanoseconds() - start)
        start = monotonicNanoseconds()
        redis.ping()
        pings.append(monotonicNanoseconds() - start)
    }
    print("| redis (loopback) | p50 \(fixed(percentile(checks, 0.5), 1)) µs, p99 \(fixed(percentile(checks, 0.99), 1)) µs | one round trip: PING p50 \(fixed(percentile(pings, 0.5), 1)) µs, p99 \(fixed(percentile(pings, 0.99), 1)) µs |")
}
