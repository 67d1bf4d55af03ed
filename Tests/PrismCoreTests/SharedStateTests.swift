import Logging
import PrismPluginABI
import XCTest
import PrismCore
import PrismSharedState

/// The in-memory backend of prism.shared_state.v1: the sliding window's exactness, all-or-none
/// takes, reconciliation, and the LRU value table. (Redis is exercised by the integration tests
/// against a real redis-server.)
final class SharedStateTests: XCTestCase {
    let minute: UInt64 = 60_000

    func testWindowAdmitsExactlyTheLimitAndSaysWhenToRetry() {
        var counter = WindowCounter()
        let start: UInt64 = 1_700_000_000_000
        for index in 0..<5 {
            var evaluation = counter.evaluate(now: start + UInt64(index), window: minute, limit: 5, cost: 1)
            XCTAssertTrue(evaluation.fits)
            counter.commit(&evaluation, now: start + UInt64(index), window: minute, cost: 1)
            XCTAssertEqual(evaluation.used, Int64(index + 1))
        }
        let refused = counter.evaluate(now: start + 10, window: minute, limit: 5, cost: 1)
        XCTAssertFalse(refused.fits)
        // The oldest slot (1 s wide) leaves the window once it is entirely older than 60 s.
        let slotEnd = (start / 1000 + 61) * 1000
        XCTAssertEqual(refused.retryAfterMilliseconds, slotEnd - (start + 10))
        XCTAssertFalse(counter.evaluate(now: slotEnd - 1, window: minute, limit: 5, cost: 1).fits)
        XCTAssertTrue(counter.evaluate(now: slotEnd, window: minute, limit: 5, cost: 1).fits)
    }

    /// The property the limiter promises: in no interval of one window's length does it admit
    /// more than the limit (a fixed window would admit up to twice the limit across an edge).
    func testNoIntervalOfOneWindowAdmitsMoreThanTheLimit() {
        var generator = SeededGenerator(seed: 42)
        var counter = WindowCounter()
        let limit: Int64 = 20
        var now: UInt64 = 1_700_000_000_000
        var admitted: [UInt64] = []
        for _ in 0..<5000 {
            now += UInt64.random(in: 0...400, using: &generator)
            var evaluation = counter.evaluate(now: now, window: minute, limit: limit, cost: 1)
            if evaluation.fits {
                counter.commit(&evaluation, now: now, window: minute, cost: 1)
                admitted.append(now)
            }
        }
        var oldest = 0
        for (index, time) in admitted.enumerated() {
            while admitted[oldest] + minute <= time { oldest += 1 }
            XCTAssertLessThanOrEqual(index - oldest + 1, Int(limit), "more than the limit within one window at \(time)")
        }
        // And it is not much stricter than that: the oldest slot counted whole costs at most one
        // slot (1 s of 60) of throughput.
        let elapsed = Double(now - 1_700_000_000_000)
        XCTAssertGreaterThan(Double(admitted.count), 0.9 * elapsed / 61_000 * Double(limit))
    }

    func testTakesAreAllOrNone() {
        let memory = MemoryStateBackend()
        let now: UInt64 = 1_700_000_000_000
        let global = WindowRequest(key: "global", window: minute, limit: 10, cost: 1)
        let key = WindowRequest(key: "key:a", window: minute, limit: 2, cost: 1)
        XCTAssertTrue(memory.take([global, key], now: now).granted)
        XCTAssertTrue(memory.take([global, key], now: now).granted)
        let refused = memory.take([global, key], now: now)
        XCTAssertFalse(refused.granted)
        XCTAssertTrue(refused.windows[0].fits)
        XCTAssertFalse(refused.windows[1].fits)
        // The refused take counted nothing in the global window either.
        XCTAssertEqual(memory.take([global], now: now).windows[0].used, 3)
    }

    func testAdjustReconcilesAReservationWhileItsSlotIsHeld() {
        let memory = MemoryStateBackend()
        let now: UInt64 = 1_700_000_000_000
        let reserve = memory.take([WindowRequest(key: "tokens", window: minute, limit: 1000, cost: 300)], now: now)
        memory.adjust(key: "tokens", slot: reserve.windows[0].slot, delta: -280)
        XCTAssertEqual(memory.take([WindowRequest(key: "tokens", window: minute, limit: 1000, cost: 0)], now: now + 5).windows[0].used, 20)
        memory.adjust(key: "tokens", slot: reserve.windows[0].slot, delta: -500)
        XCTAssertEqual(memory.take([WindowRequest(key: "tokens", window: minute, limit: 1000, cost: 0)], now: now + 6).windows[0].used, 0,
                       "never below zero")
    }

    func testValueTableEvictsTheLeastRecentlyUsedAndExpires() {
        var table = ValueTable()
        table.capacity = 2
        table.set("a", [1], expiresAt: 0, now: 0)
        table.set("b", [2], expiresAt: 0, now: 0)
        XCTAssertEqual(table.get("a", now: 1), [1])
        table.set("c", [3], expiresAt: 0, now: 2)
        XCTAssertNil(table.get("b", now: 3), "b was the least recently used")
        XCTAssertEqual(table.get("a", now: 3), [1])
        XCTAssertEqual(table.get("c", now: 3), [3])
        table.set("d", [4], expiresAt: 10, now: 4)
        XCTAssertEqual(table.count, 2)
        XCTAssertEqual(table.get("d", now: 9), [4])
        XCTAssertNil(table.get("d", now: 10), "expired")
        table.capacity = 0
        for index in 0..<1000 { table.set("k\(index)", [UInt8(index & 0xFF)], expiresAt: 0, now: 20) }
        XCTAssertEqual(table.count, 1001)
        table.capacity = 10
        XCTAssertEqual(table.count, 10, "lowering the capacity evicts at once")
        XCTAssertEqual(table.get("k999", now: 21), [UInt8(999 & 0xFF)])
    }

    /// Through the C table, as a plugin calls it: namespaced per plugin, answered inline.
    func testServiceTableAnswersThroughTheCallback() {
        let registry = PluginRegistry(logger: Logger(label: "test"))
        let api = registry.hostTable(pluginID: "plugin.one", component: "c", instance: "a")
        let other = registry.hostTable(pluginID: "plugin.two", component: "c", instance: "a")
        func state(_ api: UnsafePointer<prism_host_api>) -> prism_shared_state_service_v1 {
            api.pointee.get_service!(PRISM_SHARED_STATE_SERVICE_V1)!
                .assumingMemoryBound(to: prism_shared_state_service_v1.self).pointee
        }
        final class Answer { var status: prism_status = -100; var value: [UInt8] = []; var used: [Int64] = [] }
        let answer = Answer()
        let callback: prism_state_callback = { userData, result in
            let answer = Unmanaged<Answer>.fromOpaque(userData!).takeUnretainedValue()
            answer.status = result!.pointee.status
            answer.value = Array(UnsafeBufferPointer(start: result!.pointee.value.data, count: result!.pointee.value.length))
            answer.used = (0..<result!.pointee.window_count).map { result!.pointee.windows[$0].used }
        }
        let userData = Unmanaged.passUnretained(answer).toOpaque()
        "greeting".withPrismString { key in
            [UInt8]("hello".utf8).withUnsafeBufferPointer { bytes in
                state(api).set!(key, prism_bytes(data: bytes.baseAddress, length: bytes.count), 0, callback, userData)
            }
            XCTAssertEqual(answer.status, PRISM_OK)
            state(api).get!(key, callback, userData)
            XCTAssertEqual(answer.status, PRISM_OK)
            XCTAssertEqual(String(decoding: answer.value, as: UTF8.self), "hello")
            state(other).get!(key, callback, userData)
            XCTAssertEqual(answer.status, PRISM_KEY_NOT_FOUND, "another plugin's namespace")
        }
        "requests".withPrismString { key in
            var claim = prism_window_claim(struct_size: UInt32(MemoryLayout<prism_window_claim>.size), reserved: 0,
                                           key: key, window_milliseconds: 60_000, limit: 1, cost: 1)
            state(api).window_take!(&claim, 1, callback, userData)
            XCTAssertEqual(answer.status, PRISM_OK)
            XCTAssertEqual(answer.used, [1])
            state(api).window_take!(&claim, 1, callback, userData)
            XCTAssertEqual(answer.status, PRISM_ERROR_LIMIT)
            claim.window_milliseconds = 10 // below the documented minimum
            state(api).window_take!(&claim, 1, callback, userData)
            XCTAssertEqual(answer.status, PRISM_ERROR_INVALID_REQUEST)
        }
    }
}

/// Deterministic randomness for the window property test.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var value = state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }
}
