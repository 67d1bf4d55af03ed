import PrismWire
import XCTest
import PrismCore

/// The dashboard's aggregates, with made-up times: minute buckets, percentiles, errors, the rings.
final class RequestStatsTests: XCTestCase {
    func record(at milliseconds: UInt64, status: Int = 200, latencyMs: Double = 10, ttftMs: Double = 0,
                provider: String = "openai", code: String? = nil, cost: Double? = 0.001, id: String = "r") -> RequestStats.Record
    {
        RequestStats.Record(atMilliseconds: milliseconds, requestID: id, key: "k", owner: "o", user: "-", model: "m",
                            provider: provider, modelUsed: "m", status: status,
                            latencyNanoseconds: UInt64(latencyMs * 1_000_000),
                            firstTokenNanoseconds: UInt64(ttftMs * 1_000_000), tokensIn: 10, tokensOut: 5, cost: cost,
                            cache: "-", stream: ttftMs > 0, errorCode: code)
    }

    func object(_ bytes: [UInt8]) throws -> JSONValue { try JSONValue.parse(bytes) }

    func testMinutesAreBucketedOldestFirstAndZeroFilled() throws {
        let stats = RequestStats()
        let minute: UInt64 = 60_000
        let now = 1_000 * minute + 30_000
        stats.record(record(at: now - 2 * minute, latencyMs: 5))
        stats.record(record(at: now - 2 * minute + 1, latencyMs: 50, ttftMs: 20))
        stats.record(record(at: now, status: 502, provider: "anthropic", code: "provider_error", cost: nil))
        let answer = try object(stats.statsJSON(minutes: 5, nowMilliseconds: now))
        let buckets = try XCTUnwrap(answer["buckets"]?.arrayValue)
        XCTAssertEqual(buckets.count, 5)
        XCTAssertEqual(buckets.map { $0["start_ms"]?.integerValue }, (996...1000).map { Int64($0) * 60_000 })
        XCTAssertEqual(buckets.map { $0["requests"]?.integerValue }, [0, 0, 2, 0, 1])
        XCTAssertEqual(buckets[2]["streams"]?.integerValue, 1)
        XCTAssertEqual(buckets[4]["errors"]?.integerValue, 1)
        XCTAssertEqual(buckets[0]["latency_ms"], .null)
        // Percentiles are bucket upper bounds: within 20 % above the true value, never below.
        let p50 = try XCTUnwrap(buckets[2]["latency_ms"]?["p50"]?.doubleValue)
        XCTAssertTrue(p50 >= 5 && p50 <= 6, "p50 \(p50)")
        let p99 = try XCTUnwrap(buckets[2]["latency_ms"]?["p99"]?.doubleValue)
        XCTAssertTrue(p99 >= 50 && p99 <= 60, "p99 \(p99)")
        let ttft = try XCTUnwrap(buckets[2]["ttft_ms"]?["p50"]?.doubleValue)
        XCTAssertTrue(ttft >= 20 && ttft <= 24, "ttft \(ttft)")
        XCTAssertEqual(answer["totals"]?["requests"]?.integerValue, 3)
        XCTAssertEqual(answer["totals"]?["cost_usd"]?.doubleValue ?? 0, 0.002, accuracy: 1e-12)
        let errors = try XCTUnwrap(answer["errors"]?.arrayValue)
        XCTAssertEqual(errors.count, 1)
        XCTAssertEqual(errors[0]["provider"]?.stringValue, "anthropic")
        XCTAssertEqual(errors[0]["code"]?.stringValue, "provider_error")
        XCTAssertEqual(errors[0]["status"]?.integerValue, 502)
        // A shorter window leaves the older minute out.
        let recent = try object(stats.statsJSON(minutes: 2, nowMilliseconds: now))
        XCTAssertEqual(recent["totals"]?["requests"]?.integerValue, 1)
    }

    func testOldMinutesAreReplacedNotMixed() throws {
        let stats = RequestStats()
        let minute: UInt64 = 60_000
        let start = 5_000 * minute
        stats.record(record(at: start))
        // The same ring slot, three hours later: a new minute, the old one gone.
        let later = start + UInt64(RequestStats.minuteCapacity) * minute
        stats.record(record(at: later))
        stats.record(record(at: later + 1))
        let answer = try object(stats.statsJSON(minutes: RequestStats.minuteCapacity, nowMilliseconds: later))
        XCTAssertEqual(answer["totals"]?["requests"]?.integerValue, 2)
        // A record older than its slot's minute is dropped, not counted in the newer minute.
        stats.record(record(at: start + 1))
        let again = try object(stats.statsJSON(minutes: 1, nowMilliseconds: later))
        XCTAssertEqual(again["totals"]?["requests"]?.integerValue, 2)
    }

    func testRecentIsNewestFirstAndBounded() throws {
        let stats = RequestStats()
        for index in 0..<(RequestStats.recentCapacity + 7) {
            stats.record(record(at: UInt64(index), id: "r\(index)"))
        }
        let recent = stats.recent(limit: 3).map(\.requestID)
        let last = RequestStats.recentCapacity + 6
        XCTAssertEqual(recent, ["r\(last)", "r\(last - 1)", "r\(last - 2)"])
        XCTAssertEqual(stats.recent(limit: 10_000).count, RequestStats.recentCapacity)
        let json = try object(stats.recentJSON(limit: 1))
        let first = try XCTUnwrap(json["requests"]?.arrayValue?.first)
        XCTAssertEqual(first["request_id"]?.stringValue, "r\(last)")
        XCTAssertEqual(first["ttft_ms"], .null)
        XCTAssertEqual(first["error_code"], .null)
        XCTAssertEqual(first["latency_ms"]?.doubleValue, 10)
        XCTAssertEqual(RequestStats().recent(limit: 5).count, 0)
    }
}
