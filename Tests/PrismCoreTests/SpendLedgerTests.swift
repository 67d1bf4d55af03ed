import Dispatch
import Foundation
import Glibc
import Logging
import Synchronization
import XCTest
import PrismCore
import PrismSupport

/// The spend ledger's pure parts, in process: retention with an injected clock, totals, dates.
final class SpendLedgerTests: XCTestCase {
    func entry(at: UInt64, key: String, cost: Double?) -> SpendLedger.Entry {
        SpendLedger.Entry(at: at, requestID: "r", key: key, owner: "o", user: "-", model: "m", provider: "p", tokensIn: 10,
                          tokensOut: 5, cost: cost, status: 200, latencyMicroseconds: 1000)
    }

    /// A ledger in its own file under /tmp, deleted (with its WAL) after the test.
    func makeLedger(_ name: String, flushInterval: Duration = .seconds(3600),
                clock: @escaping @Sendable () -> UInt64 = { 1_000_000 }) throws -> SpendLedger
    {
        let path = "/tmp/prism-ledger-\(name)-test-\(getpid()).sqlite"
        addTeardownBlock { for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) } }
        return try SpendLedger(path: path, retention: .seconds(86_400), flushInterval: flushInterval,
                               logger: Logger(label: "test"), clock: clock)
    }

    /// Waits (up to `seconds`) until the file holds `count` rows.
    func waitForRows(_ ledger: SpendLedger, _ count: Int, seconds: UInt64) throws {
        let deadline = monotonicNanoseconds() + seconds * 1_000_000_000
        while try ledger.writtenRowCount() < count, monotonicNanoseconds() < deadline { usleep(10_000) }
    }

    func testRetentionDeletesOldRowsAndTotalsAreExact() throws {
        let now = Mutex<UInt64>(8 * 86_400_000 + 1000) // the first row is a second old
        let ledger = try makeLedger("retention", clock: { now.withLock { $0 } })
        ledger.record(entry(at: 8 * 86_400_000, key: "old", cost: 1))          // two days old
        ledger.record(entry(at: 10 * 86_400_000 - 1000, key: "new", cost: 0.1)) // a second old
        ledger.record(entry(at: 10 * 86_400_000 - 500, key: "new", cost: 0.2))
        ledger.record(entry(at: 10 * 86_400_000 - 200, key: "new", cost: nil))  // no price
        var totals = try ledger.totals(groupBy: "key", from: nil, to: nil)
        XCTAssertEqual(totals.map(\.group), ["old", "new"]) // by cost, most first
        now.withLock { $0 = 10 * 86_400_000 } // two days later: the first row is past the retention
        try ledger.prune()
        totals = try ledger.totals(groupBy: "key", from: nil, to: nil)
        XCTAssertEqual(totals.count, 1)
        XCTAssertEqual(totals[0].requests, 3)
        XCTAssertEqual(totals[0].costNanoUSD, 300_000_000) // 0.1 + 0.2, exactly
        XCTAssertEqual(totals[0].tokensIn, 30)
        XCTAssertTrue(try ledger.totals(groupBy: "key", from: 10 * 86_400_000, to: nil).isEmpty)
        XCTAssertTrue(try ledger.totals(groupBy: "not-a-column", from: nil, to: nil).isEmpty)
    }

    /// A flush writes 20 rows a statement, then the rest one by one: every row lands once, with
    /// its own values.
    func testAFlushOfManyRowsWritesEachRowOnce() throws {
        let ledger = try makeLedger("batch")
        let count = 2 * SpendLedger.rowsPerInsert + 7
        for index in 0..<count {
            ledger.record(SpendLedger.Entry(at: 1_000_000 - UInt64(index), requestID: "r\(index)", key: "k\(index % 5)", owner: "o",
                                            user: "-", model: "m", provider: "p", tokensIn: UInt64(index), tokensOut: UInt64(2 * index),
                                            cost: index % 7 == 0 ? nil : Double(index) / 1000, status: 200,
                                            latencyMicroseconds: 10))
        }
        let totals = try ledger.totals(groupBy: "key", from: nil, to: nil)
        XCTAssertEqual(totals.map(\.requests).reduce(0, +), Int64(count))
        for group in 0..<5 {
            let rows = (0..<count).filter { $0 % 5 == group }
            let total = try XCTUnwrap(totals.first { $0.group == "k\(group)" })
            XCTAssertEqual(total.requests, Int64(rows.count))
            XCTAssertEqual(total.tokensIn, Int64(rows.reduce(0, +)))
            XCTAssertEqual(total.tokensOut, Int64(rows.reduce(0) { $0 + 2 * $1 }))
            XCTAssertEqual(total.costNanoUSD, Int64(rows.filter { $0 % 7 != 0 }.reduce(0) { $0 + $1 * 1_000_000 }))
        }
    }

    /// Rows reach the file every flush interval, without a query (which writes them first).
    func testTheTimerWritesRowsWithoutAQuery() throws {
        let ledger = try makeLedger("timer", flushInterval: .milliseconds(50))
        let count = 3 * SpendLedger.rowsPerInsert + 11
        for index in 0..<count { ledger.record(entry(at: 1_000_000 - UInt64(index), key: "k", cost: 0.001)) }
        try waitForRows(ledger, count, seconds: 10)
        XCTAssertEqual(try ledger.writtenRowCount(), Int64(count))
        XCTAssertEqual(try ledger.totals(groupBy: "key", from: nil, to: nil).first?.costNanoUSD, Int64(count) * 1_000_000)
    }

    /// With every CPU busy, rows are still written within about a flush interval: nothing waits
    /// in memory until the buffer's cap drops it.
    func testRowsAreWrittenWhenTheCPUsAreSaturated() throws {
        let ledger = try makeLedger("saturated", flushInterval: .milliseconds(50))
        final class Flag: Sendable { let raised = Atomic<Bool>(false) }
        let stop = Flag()
        let spinners = 2 * max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let group = DispatchGroup()
        for _ in 0..<spinners {
            group.enter()
            Thread.detachNewThread { [stop] in
                defer { group.leave() }
                var spins = 0
                while !stop.raised.load(ordering: .relaxed) { spins &+= 1 }
                _ = spins
            }
        }
        defer {
            stop.raised.store(true, ordering: .relaxed)
            group.wait()
        }
        usleep(100_000) // the spinners hold the CPUs
        let count = 20_000 // about 70 ms of SQLite
        let started = monotonicNanoseconds()
        for index in 0..<count { ledger.record(entry(at: 1_000_000 - UInt64(index % 1000), key: "k", cost: nil)) }
        try waitForRows(ledger, count, seconds: 20)
        let seconds = Double(monotonicNanoseconds() - started) / 1e9
        XCTAssertEqual(try ledger.writtenRowCount(), Int64(count), "after \(seconds) s")
        XCTAssertLessThan(seconds, 5)
    }

    func testQueryTimesAreMillisecondsOrUTCDates() {
        XCTAssertEqual(SpendLedger.time("1700000000000"), 1_700_000_000_000)
        XCTAssertEqual(SpendLedger.time("1970-01-01"), 0)
        XCTAssertEqual(SpendLedger.time("2026-12-06"), 1_796_515_200_000)
        XCTAssertEqual(SpendLedger.time("2024-02-29"), 1_709_164_800_000)
        XCTAssertNil(SpendLedger.time("yesterday"))
        XCTAssertNil(SpendLedger.time("2026-13-01"))
    }
}
