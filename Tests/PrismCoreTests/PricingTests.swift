import PrismPluginABI
import XCTest
import PrismCore

/// Cost = usage × price, with cached input and cache writes priced as the provider prices them.
final class PricingTests: XCTestCase {
    func usage(input: UInt64, output: UInt64, cached: UInt64 = 0, written: UInt64 = 0) -> prism_usage {
        var usage = prism_usage()
        usage.input_tokens = input
        usage.output_tokens = output
        usage.cached_input_tokens = cached
        usage.cache_write_tokens = written
        return usage
    }

    func testCachedInputAndCacheWritesArePricedApart() {
        // Anthropic-like: $3 in, $15 out, $0.30 cache read, $3.75 cache write per million tokens.
        let price = ModelPrice(input: 3, output: 15, cachedInput: 0.3, cacheWrite: 3.75)
        // 10,000 prompt tokens of which 6,000 read from the cache and 2,000 written to it.
        let cost = price.cost(of: usage(input: 10_000, output: 1_000, cached: 6_000, written: 2_000))
        let uncached: Double = 2_000 * 3, read: Double = 6_000 * 0.3, written: Double = 2_000 * 3.75
        let output: Double = 1_000 * 15
        XCTAssertEqual(cost, (uncached + read + written + output) / 1_000_000, accuracy: 1e-12)
        // Without cache prices, cached tokens cost as input.
        let plain: Double = 100 * 1 + 10 * 2
        XCTAssertEqual(ModelPrice(input: 1, output: 2).cost(of: usage(input: 100, output: 10, cached: 50)),
                       plain / 1_000_000, accuracy: 1e-12)
        // More cached than reported input (a provider's rounding) never goes negative.
        XCTAssertGreaterThanOrEqual(price.cost(of: usage(input: 10, output: 0, cached: 20)), 0)
    }

    func testLookupByIdPrefixAndProviderSpellings() {
        let table = PriceTable(models: ["claude-sonnet-4-20250514": ModelPrice(input: 3, output: 15),
                                        "gpt-4o": ModelPrice(input: 2.5, output: 10),
                                        "gpt-4o-mini": ModelPrice(input: 0.15, output: 0.6)],
                               prefixes: ["gpt-4o-mini": "gpt-4o-mini", "gpt-4o": "gpt-4o", "claude-sonnet-4": "claude-sonnet-4-20250514"])
        XCTAssertEqual(table.price(for: "gpt-4o-mini-2024-07-18")?.input, 0.15) // the longest prefix wins
        XCTAssertEqual(table.price(for: "gpt-4o-2024-08-06")?.input, 2.5)
        XCTAssertEqual(table.price(for: "anthropic.claude-sonnet-4-20250514-v1:0")?.output, 15)
        XCTAssertEqual(table.price(for: "us.anthropic.claude-sonnet-4-20250514-v1:0")?.output, 15)
        XCTAssertEqual(table.price(for: "claude-sonnet-4@20250514")?.input, 3)
        XCTAssertNil(table.price(for: "llama-3.3-70b"))
    }

    func testTheHeaderFormatHasNoExponentAndNoTrailingZeros() {
        XCTAssertEqual(PriceTable.format(0), "0")
        XCTAssertEqual(PriceTable.format(0.0034), "0.0034")
        XCTAssertEqual(PriceTable.format(0.000000096), "0.0000001")
        XCTAssertEqual(PriceTable.format(12.5), "12.5")
        XCTAssertEqual(PriceTable.format(-1), "0")
    }

    func testTheUsageChunkGetsItsCost() throws {
        let price = ModelPrice(input: 2, output: 10)
        let chunk = Array(#"{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":200,"total_tokens":1200}}"#.utf8)
        let priced = try XCTUnwrap(chunk.withUnsafeBytes { price.pricedUsageChunk($0) })
        XCTAssertTrue(String(decoding: priced, as: UTF8.self).hasSuffix(#""total_tokens":1200,"cost":0.004}}"#))
        let delta = Array(#"{"choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}"#.utf8)
        XCTAssertNil(delta.withUnsafeBytes { price.pricedUsageChunk($0) })
    }
}
