import XCTest

import PrismCore

/// A client stream's stall and keep-alive clocks on an injected clock (milliseconds here).
final class StreamClockTests: XCTestCase {
    private func ms(_ value: UInt64) -> UInt64 { value * 1_000_000 }

    func testTheTimerIsDueAtTheEarlierOfTheTwoMoments() {
        var clock = StreamClock(idleTimeoutMilliseconds: 60_000, keepAliveMilliseconds: 15_000, passThrough: false, now: ms(1_000))
        XCTAssertEqual(clock.due, ms(16_000), "the keep-alive comes first")
        // Bytes to the client push the keep-alive back; bytes from the upstream push the stall back.
        clock.clientWrote(at: ms(50_000))
        XCTAssertEqual(clock.due, ms(61_000), "now the stall is first: nothing came since 1 s")
        clock.upstreamSent(at: ms(50_000))
        XCTAssertEqual(clock.due, ms(65_000))
    }

    func testAQuietStreamGetsKeepAlivesUntilItsUpstreamHasStalled() {
        var clock = StreamClock(idleTimeoutMilliseconds: 30_000, keepAliveMilliseconds: 10_000, passThrough: false, now: 0)
        XCTAssertEqual(clock.fired(at: ms(5_000), held: false), .wait, "early: neither moment has come")
        XCTAssertEqual(clock.fired(at: ms(9_500), held: false), .keepAlive, "a tenth early is close enough")
        clock.clientWrote(at: ms(9_500))
        XCTAssertEqual(clock.fired(at: ms(19_500), held: false), .keepAlive)
        clock.clientWrote(at: ms(19_500))
        XCTAssertEqual(clock.fired(at: ms(30_000), held: false), .stalled, "30 s without an upstream byte")
    }

    func testAClientThatReadsSlowlyIsNoStall() {
        var clock = StreamClock(idleTimeoutMilliseconds: 30_000, keepAliveMilliseconds: 0, passThrough: false, now: 0)
        XCTAssertEqual(clock.due, ms(30_000), "keep-alives off: only the stall clock")
        // The transfer was paused for the client (backpressure): the upstream is not to blame.
        XCTAssertEqual(clock.fired(at: ms(31_000), held: true), .wait)
        XCTAssertEqual(clock.lastUpstreamData, ms(31_000))
        XCTAssertEqual(clock.fired(at: ms(61_000), held: false), .stalled)
    }

    func testAPassThroughStreamGetsNoKeepAlive() {
        var clock = StreamClock(idleTimeoutMilliseconds: 30_000, keepAliveMilliseconds: 10_000, passThrough: true, now: 0)
        XCTAssertEqual(clock.due, ms(30_000))
        XCTAssertEqual(clock.fired(at: ms(20_000), held: false), .wait, "nothing may go between the upstream's chunks")
    }

    func testAnIdleTimeoutOfZeroIsTheLeastOne() {
        var clock = StreamClock(idleTimeoutMilliseconds: 0, keepAliveMilliseconds: -5, passThrough: false, now: ms(7))
        XCTAssertEqual(clock.due, ms(8))
        XCTAssertEqual(clock.fired(at: ms(8), held: false), .stalled)
    }
}
