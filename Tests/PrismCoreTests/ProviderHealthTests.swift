import XCTest
import PrismCore

final class ProviderHealthTests: XCTestCase {
    let second: UInt64 = 1_000_000_000

    func breaker(failures: Int = 3, successes: Int = 2, cooldown: Duration = .seconds(10)) -> ProviderHealth {
        var settings = CircuitBreakerSettings()
        settings.failureThreshold = failures
        settings.successThreshold = successes
        settings.cooldown = cooldown
        return ProviderHealth(name: "p", settings: settings)
    }

    func testOpensAfterConsecutiveFailuresOnly() {
        let health = breaker()
        let t0: UInt64 = 100 * second
        health.record(failed: true, latencyMilliseconds: 1, now: t0)
        health.record(failed: true, latencyMilliseconds: 1, now: t0)
        health.record(failed: false, latencyMilliseconds: 1, now: t0) // a success resets the run
        health.record(failed: true, latencyMilliseconds: 1, now: t0)
        health.record(failed: true, latencyMilliseconds: 1, now: t0)
        XCTAssertEqual(health.snapshot.circuit, .closed)
        health.record(failed: true, latencyMilliseconds: 1, now: t0)
        XCTAssertEqual(health.snapshot.circuit, .open)
        XCTAssertFalse(health.admit(now: t0 + 9 * second), "still cooling down")
    }

    func testHalfOpenAdmitsOneProbeAndClosesAfterEnoughSuccesses() {
        let health = breaker(failures: 1, successes: 2)
        let t0: UInt64 = 100 * second
        health.record(failed: true, latencyMilliseconds: 1, now: t0)
        let later = t0 + 10 * second
        XCTAssertTrue(health.admit(now: later), "the cooldown is over: one probe")
        XCTAssertEqual(health.snapshot.circuit, .halfOpen)
        XCTAssertFalse(health.admit(now: later), "only one probe at a time")
        health.record(failed: false, latencyMilliseconds: 1, now: later)
        XCTAssertEqual(health.snapshot.circuit, .halfOpen, "one success of two")
        XCTAssertTrue(health.admit(now: later))
        health.record(failed: false, latencyMilliseconds: 1, now: later)
        XCTAssertEqual(health.snapshot.circuit, .closed)
    }

    func testAFailedProbeReopensForAFullCooldown() {
        let health = breaker(failures: 1)
        let t0: UInt64 = 100 * second
        health.record(failed: true, latencyMilliseconds: 1, now: t0)
        XCTAssertTrue(health.admit(now: t0 + 10 * second))
        health.record(failed: true, latencyMilliseconds: 1, now: t0 + 10 * second)
        XCTAssertEqual(health.snapshot.circuit, .open)
        XCTAssertFalse(health.admit(now: t0 + 19 * second))
        XCTAssertTrue(health.admit(now: t0 + 20 * second))
    }

    func testAnAbandonedProbeFreesTheSlot() {
        let health = breaker(failures: 1)
        health.record(failed: true, latencyMilliseconds: 1, now: 0)
        XCTAssertTrue(health.admit(now: 10 * second))
        health.releaseProbe()
        XCTAssertTrue(health.admit(now: 10 * second))
    }

    func testStatisticsAreSmoothed() {
        let health = breaker(failures: 100)
        health.record(failed: false, latencyMilliseconds: 100)
        health.record(failed: false, latencyMilliseconds: 200)
        XCTAssertEqual(health.snapshot.latencyMilliseconds, 120, accuracy: 0.001)
        health.record(failed: true, latencyMilliseconds: 0)
        XCTAssertEqual(health.snapshot.errorRate, 0.2, accuracy: 0.001)
        XCTAssertEqual(health.snapshot.latencyMilliseconds, 120, accuracy: 0.001, "failures do not count as latency")
    }
}
