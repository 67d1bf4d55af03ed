import PrismWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What the dashboard shows of recent traffic (`GET /-/stats`, `GET /-/requests/recent`): the last
/// requests, and per-minute aggregates (counts, tokens, cost, latency and time-to-first-token
/// percentiles, errors by provider and code) for the last three hours. In this replica's memory,
/// in fixed rings, so it does not grow with traffic; one lock taken once per request.
///
/// Times come in with each record and each query, so the aggregation is tested with a made-up
/// clock.
public final class RequestStats: Sendable {
    public struct Record: Sendable {
        public var atMilliseconds: UInt64
        public var requestID: String
        public var key: String
        public var owner: String
        public var user: String
        public var model: String
        public var provider: String
        public var modelUsed: String
        public var status: Int
        public var latencyNanoseconds: UInt64
        /// 0: not a stream, or no byte reached the client.
        public var firstTokenNanoseconds: UInt64
        public var tokensIn: Int64
        public var tokensOut: Int64
        /// nil: no price known.
        public var cost: Double?
        public var cache: String
        public var stream: Bool
        public var errorCode: String?

        public init(atMilliseconds: UInt64, requestID: String, key: String, owner: String, user: String, model: String,
                    provider: String, modelUsed: String, status: Int, latencyNanoseconds: UInt64,
                    firstTokenNanoseconds: UInt64, tokensIn: Int64, tokensOut: Int64, cost: Double?, cache: String,
                    stream: Bool, errorCode: String?)
        {
            self.atMilliseconds = atMilliseconds
            self.requestID = requestID
            self.key = key
            self.owner = owner
            self.user = user
            self.model = model
            self.provider = provider
            self.modelUsed = modelUsed
            self.status = status
            self.latencyNanoseconds = latencyNanoseconds
            self.firstTokenNanoseconds = firstTokenNanoseconds
            self.tokensIn = tokensIn
            self.tokensOut = tokensOut
            self.cost = cost
            self.cache = cache
            self.stream = stream
            self.errorCode = errorCode
        }
    }

    public static let recentCapacity = 500
    public static let minuteCapacity = 180

    /// Latencies in logarithmic buckets: bucket 0 is below 10 µs, each next one 20 % wider, the
    /// last (95) from about 6 minutes up. A percentile is read as its bucket's upper bound, so it
    /// is at most 20 % high.
    struct Histogram {
        static let count = 96
        static let base = 10_000.0
        static let ratio = 1.2
        var buckets = [UInt32](repeating: 0, count: Histogram.count)
        var total = 0

        static func index(_ nanoseconds: UInt64) -> Int {
            let value = Double(nanoseconds)
            guard value >= base else { return 0 }
            return min(count - 1, Int(log(value / base) / log(ratio)) + 1)
        }

        static func upperBound(_ index: Int) -> Double { base * pow(ratio, Double(index)) }

        mutating func add(_ nanoseconds: UInt64) {
            buckets[Histogram.index(nanoseconds)] += 1
            total += 1
        }

        mutating func merge(_ other: Histogram) {
            for index in 0..<Histogram.count { buckets[index] += other.buckets[index] }
            total += other.total
        }

        /// The `fraction` percentile in milliseconds; nil when empty.
        func percentile(_ fraction: Double) -> Double? {
            guard total > 0 else { return nil }
            let rank = max(1, Int((fraction * Double(total)).rounded(.up)))
            var seen = 0
            for index in 0..<Histogram.count {
                seen += Int(buckets[index])
                if seen >= rank { return (Histogram.upperBound(index) / 1000).rounded() / 1000 }
            }
            return (Histogram.upperBound(Histogram.count - 1) / 1000).rounded() / 1000
        }
    }

    struct ErrorKey: Hashable {
        let provider: String
        let status: Int
        let code: String
    }

    struct Minute {
        var index: UInt64
        var requests = 0, errors = 0, streams = 0
        var tokensIn: Int64 = 0, tokensOut: Int64 = 0
        var costNanoUSD: Int64 = 0
        var latency = Histogram()
        var firstToken = Histogram()
        var errorCounts: [ErrorKey: Int] = [:]

        init(index: UInt64) { self.index = index }
    }

    private struct State {
        var recent: [Record] = []
        var next = 0
        var minutes: [Minute?] = Array(repeating: nil, count: RequestStats.minuteCapacity)
    }

    private let state = Mutex(State())

    public init() {}

    public func record(_ record: Record) {
        let minuteIndex = record.atMilliseconds / 60_000
        let slot = Int(minuteIndex % UInt64(RequestStats.minuteCapacity))
        state.withLock { state in
            if state.recent.count < RequestStats.recentCapacity {
                state.recent.append(record)
            } else {
                state.recent[state.next] = record
            }
            state.next = (state.next + 1) % RequestStats.recentCapacity
            if state.minutes[slot]?.index != minuteIndex {
                // A minute older than the one in its slot is dropped rather than counted in the wrong one.
                if let existing = state.minutes[slot], existing.index > minuteIndex { return }
                state.minutes[slot] = Minute(index: minuteIndex)
            }
            state.minutes[slot]!.add(record)
        }
    }

    /// Newest first.
    public func recent(limit: Int) -> [Record] {
        state.withLock { state in
            let count = state.recent.count
            var out: [Record] = []
            out.reserveCapacity(min(limit, count))
            var index = (state.next - 1 + count) % max(count, 1)
            while out.count < min(limit, count) {
                out.append(state.recent[index])
                index = (index - 1 + count) % count
            }
            return out
        }
    }

    /// `GET /-/requests/recent` as JSON.
    public func recentJSON(limit: Int) -> [UInt8] {
        let records = recent(limit: limit)
        var writer = JSONWriter(capacity: 64 + records.count * 320)
        writer.beginObject()
        writer.key("requests")
        writer.beginArray()
        for record in records {
            writer.beginObject()
            writer.integer("at_ms", Int64(record.atMilliseconds))
            writer.string("request_id", record.requestID)
            writer.string("key", record.key)
            writer.string("owner", record.owner)
            writer.string("user", record.user)
            writer.string("model", record.model)
            writer.string("provider", record.provider)
            writer.string("model_used", record.modelUsed)
            writer.integer("status", Int64(record.status))
            writer.number("latency_ms", RequestStats.milliseconds(record.latencyNanoseconds))
            if record.stream && record.firstTokenNanoseconds > 0 {
                writer.number("ttft_ms", RequestStats.milliseconds(record.firstTokenNanoseconds))
            } else {
                writer.null("ttft_ms")
            }
            writer.integer("tokens_in", record.tokensIn)
            writer.integer("tokens_out", record.tokensOut)
            writer.key("cost_usd")
            if let cost = record.cost { writer.raw(PriceTable.format(cost)) } else { writer.null() }
            writer.string("cache", record.cache)
            writer.bool("stream", record.stream)
            if let code = record.errorCode { writer.string("error_code", code) } else { writer.null("error_code") }
            writer.endObject()
        }
        writer.endArray()
        writer.endObject()
        return writer.bytes
    }

    /// `GET /-/stats?minutes=N` as JSON: one bucket per minute of the last `minutes` (oldest
    /// first, empty minutes included), the errors of that span by provider/status/code, totals.
    public func statsJSON(minutes requested: Int, nowMilliseconds: UInt64) -> [UInt8] {
        let span = max(1, min(requested, RequestStats.minuteCapacity))
        let current = nowMilliseconds / 60_000
        let first = current >= UInt64(span - 1) ? current - UInt64(span - 1) : 0
        let buckets: [Minute] = state.withLock { state in
            (first...current).map { index in
                if let minute = state.minutes[Int(index % UInt64(RequestStats.minuteCapacity))], minute.index == index {
                    return minute
                }
                return Minute(index: index)
            }
        }
        var total = Minute(index: current)
        var writer = JSONWriter(capacity: 256 + span * 200)
        writer.beginObject()
        writer.integer("bucket_seconds", 60)
        writer.integer("now_ms", Int64(nowMilliseconds))
        writer.key("buckets")
        writer.beginArray()
        for minute in buckets {
            total.merge(minute)
            writer.beginObject()
            writer.integer("start_ms", Int64(minute.index * 60_000))
            RequestStats.writeCounts(minute, into: &writer)
            writer.endObject()
        }
        writer.endArray()
        writer.key("errors")
        writer.beginArray()
        let errors = total.errorCounts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.provider < $1.key.provider }
        for (key, count) in errors {
            writer.beginObject()
            writer.string("provider", key.provider)
            writer.integer("status", Int64(key.status))
            writer.string("code", key.code)
            writer.integer("count", Int64(count))
            writer.endObject()
        }
        writer.endArray()
        writer.key("totals")
        writer.beginObject()
        RequestStats.writeCounts(total, into: &writer)
        writer.endObject()
        writer.endObject()
        return writer.bytes
    }

    private static func writeCounts(_ minute: Minute, into writer: inout JSONWriter) {
        writer.integer("requests", Int64(minute.requests))
        writer.integer("errors", Int64(minute.errors))
        writer.integer("streams", Int64(minute.streams))
        writer.integer("tokens_in", minute.tokensIn)
        writer.integer("tokens_out", minute.tokensOut)
        writer.key("cost_usd")
        writer.raw(PriceTable.format(Double(minute.costNanoUSD) / 1_000_000_000))
        writePercentiles("latency_ms", minute.latency, into: &writer)
        writePercentiles("ttft_ms", minute.firstToken, into: &writer)
    }

    private static func writePercentiles(_ name: String, _ histogram: Histogram, into writer: inout JSONWriter) {
        guard let p50 = histogram.percentile(0.5), let p95 = histogram.percentile(0.95),
              let p99 = histogram.percentile(0.99)
        else { return writer.null(name) }
        writer.key(name)
        writer.beginObject()
        writer.number("p50", p50)
        writer.number("p95", p95)
        writer.number("p99", p99)
        writer.endObject()
    }

    static func milliseconds(_ nanoseconds: UInt64) -> Double {
        (Double(nanoseconds) / 1000).rounded() / 1000
    }
}

extension RequestStats.Minute {
    mutating func add(_ record: RequestStats.Record) {
        requests += 1
        if record.stream { streams += 1 }
        tokensIn += record.tokensIn
        tokensOut += record.tokensOut
        if let cost = record.cost { costNanoUSD += Int64((cost * 1_000_000_000).rounded()) }
        latency.add(record.latencyNanoseconds)
        if record.stream && record.firstTokenNanoseconds > 0 { firstToken.add(record.firstTokenNanoseconds) }
        if record.status >= 400 {
            errors += 1
            // Bounded: a minute keeps at most 64 distinct (provider, status, code) rows.
            let key = RequestStats.ErrorKey(provider: record.provider, status: record.status,
                                            code: record.errorCode ?? "http_\(record.status)")
            if errorCounts[key] != nil || errorCounts.count < 64 {
                errorCounts[key, default: 0] += 1
            } else {
                errorCounts[RequestStats.ErrorKey(provider: "-", status: 0, code: "other"), default: 0] += 1
            }
        }
    }

    mutating func merge(_ other: RequestStats.Minute) {
        requests += other.requests
        errors += other.errors
        streams += other.streams
        tokensIn += other.tokensIn
        tokensOut += other.tokensOut
        costNanoUSD += other.costNanoUSD
        latency.merge(other.latency)
        firstToken.merge(other.firstToken)
        for (key, count) in other.errorCounts { errorCounts[key, default: 0] += count }
    }
}
