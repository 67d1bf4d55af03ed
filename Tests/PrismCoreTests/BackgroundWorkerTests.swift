import CPrismSystem
import PrismSupport
import Synchronization
import XCTest

/// The thread the spend ledger writes on: periodic, below the event loops' priority, and never
/// running a tick at the same time as a caller's `sync`.
final class BackgroundWorkerTests: XCTestCase {
    func testTicksRunOnAThreadOfLowerPriority() {
        let ticks = Atomic<Int>(0)
        let nice = Atomic<Int>(-100)
        let worker = BackgroundWorker(name: "test-worker", interval: .milliseconds(10)) {
            nice.store(Int(prism_thread_priority()), ordering: .relaxed)
            ticks.add(1, ordering: .relaxed)
        }
        let deadline = Date().addingTimeInterval(5)
        while ticks.load(ordering: .relaxed) < 3 && Date() < deadline { usleep(5_000) }
        XCTAssertGreaterThanOrEqual(ticks.load(ordering: .relaxed), 3)
        XCTAssertEqual(nice.load(ordering: .relaxed), 10, "the worker runs at nice 10")
        XCTAssertEqual(prism_thread_priority(), 0, "the caller's priority is untouched")
        withExtendedLifetime(worker) {}
    }

    func testSyncNeverOverlapsATick() {
        let inside = Atomic<Int>(0)
        let overlaps = Atomic<Int>(0)
        let worker = BackgroundWorker(name: "test-worker", interval: .milliseconds(1)) {
            if inside.add(1, ordering: .relaxed).newValue > 1 { overlaps.add(1, ordering: .relaxed) }
            usleep(200)
            inside.subtract(1, ordering: .relaxed)
        }
        for _ in 0..<200 {
            worker.sync {
                if inside.add(1, ordering: .relaxed).newValue > 1 { overlaps.add(1, ordering: .relaxed) }
                usleep(100)
                inside.subtract(1, ordering: .relaxed)
            }
        }
        XCTAssertEqual(overlaps.load(ordering: .relaxed), 0)
    }
}
