import CPrismSystem
import Dispatch
import Foundation
import NIOCore
import PrismLoop
import Synchronization
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class TimerHeapTests: XCTestCase {
    func testPopsInDeadlineOrderThenInsertionOrder() {
        var heap = TimerHeap()
        var generator = SystemRandomNumberGenerator()
        var timers: [LoopTimer] = []
        let ran = Mutex<[Int]>([])
        for sequence in 0..<500 {
            let timer = LoopTimer(deadline: UInt64.random(in: 0..<50, using: &generator)) { ran.withLock { $0.append(sequence) } }
            timer.sequence = UInt64(sequence)
            timers.append(timer)
            heap.insert(timer)
        }
        // Cancel every third one (from anywhere in the heap).
        var removed = Set<ObjectIdentifier>()
        for (position, timer) in timers.enumerated() where position % 3 == 0 {
            heap.remove(timer)
            removed.insert(ObjectIdentifier(timer))
        }
        while let task = heap.popFirst() { task() }
        let expected = timers.filter { !removed.contains(ObjectIdentifier($0)) }
            .sorted { $0.deadline != $1.deadline ? $0.deadline < $1.deadline : $0.sequence < $1.sequence }
        XCTAssertEqual(ran.withLock { $0 }, expected.map { Int($0.sequence) })
        XCTAssertTrue(heap.isEmpty)
        // A timer that ran or was cancelled no longer holds its task (nor what the task captured).
        XCTAssertTrue(timers.allSatisfy { $0.task == nil })
        // Removing a timer that already left is harmless.
        heap.remove(timers[1])
        XCTAssertTrue(heap.isEmpty)
    }
}

final class IOLoopTests: XCTestCase {
    static let group = IOLoopGroup(count: 2)

    func testExecuteFromAnotherThreadRunsOnTheLoopInOrder() throws {
        let loop = Self.group.loops[0]
        XCTAssertFalse(loop.inEventLoop)
        let seen = Mutex<[Int]>([])
        let done = DispatchSemaphore(value: 0)
        for number in 0..<1000 {
            loop.execute {
                XCTAssertTrue(loop.inEventLoop)
                seen.withLock { $0.append(number) }
                if number == 999 { done.signal() }
            }
        }
        XCTAssertEqual(done.wait(timeout: .now() + 5), .success)
        XCTAssertEqual(seen.withLock { $0 }, Array(0..<1000))
    }

    func testScheduledTasksRunByDeadlineAndCancelledOnesNever() throws {
        let loop = Self.group.loops[1]
        let order = Mutex<[String]>([])
        let start = NIODeadline.now()
        let late = loop.scheduleTask(in: .milliseconds(60)) { order.withLock { $0.append("late") } }
        let early = loop.scheduleTask(in: .milliseconds(20)) { order.withLock { $0.append("early") } }
        let cancelled = loop.scheduleTask(in: .milliseconds(40)) { order.withLock { $0.append("cancelled") } }
        cancelled.cancel()
        try early.futureResult.wait()
        XCTAssertGreaterThanOrEqual(NIODeadline.now() - start, .milliseconds(20))
        try late.futureResult.wait()
        XCTAssertThrowsError(try cancelled.futureResult.wait())
        XCTAssertEqual(order.withLock { $0 }, ["early", "late"])
    }

    func testATaskScheduledOnTheLoopCanCancelAnotherBeforeItRuns() throws {
        let loop = Self.group.loops[0]
        let ran = Atomic<Int>(0)
        let outcome = try loop.submit { () -> Int in
            let victim = loop.scheduleTask(in: .milliseconds(5)) { ran.add(1, ordering: .relaxed) }
            victim.cancel()
            return 1
        }.wait()
        XCTAssertEqual(outcome, 1)
        try loop.scheduleTask(in: .milliseconds(30)) {}.futureResult.wait()
        XCTAssertEqual(ran.load(ordering: .relaxed), 0)
    }

    /// A request holds its keep-alive timer's `Scheduled`, whose task holds the request: once the
    /// timer is cancelled or has run, nothing may keep that pair alive (it leaked 13 KB a stream).
    func testACancelledOrFinishedTimerReleasesWhatItsTaskHeld() throws {
        final class Holder: @unchecked Sendable { var scheduled: Scheduled<Void>? }
        final class Watch: @unchecked Sendable {
            weak var cancelled: Holder?
            weak var finished: Holder?
        }
        let loop = Self.group.loops[0]
        let watch = Watch()
        try loop.submit {
            let cancelled = Holder()
            cancelled.scheduled = loop.scheduleTask(in: .seconds(60)) { _ = cancelled }
            watch.cancelled = cancelled
            cancelled.scheduled?.cancel()
            let finished = Holder()
            finished.scheduled = loop.scheduleTask(in: .milliseconds(1)) { _ = finished }
            watch.finished = finished
        }.wait()
        try loop.scheduleTask(in: .milliseconds(20)) {}.futureResult.wait()
        XCTAssertNil(watch.cancelled)
        XCTAssertNil(watch.finished)
    }

    /// `server.busy_poll`: a loop polls before it sleeps while its events come within the window,
    /// sleeps at once when they come further apart, and never polls past a timer's deadline.
    func testBusyPollingFollowsHowSoonEventsComeAndKeepsTimersOnTime() throws {
        let loop = Self.group.loops[1]
        IOLoop.busyPoll.store(20_000_000, ordering: .relaxed) // 20 ms
        defer { IOLoop.busyPoll.store(0, ordering: .relaxed) }
        // Events 60 ms apart: one fruitless poll, then sleeping at once.
        for _ in 0..<3 {
            usleep(60_000)
            try loop.submit {}.wait()
        }
        usleep(60_000)
        XCTAssertFalse(try loop.submit { loop.pollBeforeSleeping }.wait())
        // Events a fraction of the window apart: polling again.
        for _ in 0..<5 {
            usleep(500)
            try loop.submit {}.wait()
        }
        XCTAssertTrue(try loop.submit { loop.pollBeforeSleeping }.wait())
        // A timer due in 2 ms fires then, not at the end of a 20 ms poll.
        var fastest = Duration.seconds(1)
        for _ in 0..<5 {
            let late = try loop.submit { () -> EventLoopFuture<Duration> in
                let clock = ContinuousClock()
                let start = clock.now
                return loop.scheduleTask(in: .milliseconds(2)) { clock.now - start }.futureResult
            }.wait().wait()
            fastest = min(fastest, late)
        }
        XCTAssertGreaterThanOrEqual(fastest, .milliseconds(2))
        XCTAssertLessThan(fastest, .milliseconds(15))
    }

    /// `server.cpu_affinity: auto`: each loop on its own CPU when the process may use exactly as
    /// many CPUs as there are loops; `off`, or more or fewer loops than CPUs: every loop may run on
    /// any of the process's CPUs.
    func testPinnedLoopsRunEachOnItsOwnCPU() throws {
        let allowed = IOLoopGroup.allowedCPUs
        XCTAssertFalse(allowed.isEmpty)
        let group = IOLoopGroup(count: allowed.count)
        /// Each loop's CPUs as its own thread sees them.
        func placement(_ group: IOLoopGroup) throws -> [[Int32]] {
            try group.loops.map { loop in try loop.submit { IOLoopGroup.threadCPUs() }.wait() }
        }
        let chosen = try group.pinLoops(true)
        XCTAssertEqual(chosen, allowed)
        XCTAssertEqual(try placement(group), chosen.map { [$0] })
        XCTAssertEqual(try group.pinLoops(false), [])
        XCTAssertEqual(try placement(group), group.loops.map { _ in allowed })
        let crowded = IOLoopGroup(count: allowed.count + 1)
        XCTAssertEqual(try crowded.pinLoops(true), [], "more loops than CPUs: none pinned")
        XCTAssertEqual(try placement(crowded), crowded.loops.map { _ in allowed })
        if allowed.count > 1 {
            let sparse = IOLoopGroup(count: allowed.count - 1)
            XCTAssertEqual(try sparse.pinLoops(true), [], "fewer loops than CPUs: which are this process's is unknown")
            XCTAssertEqual(try placement(sparse), sparse.loops.map { _ in allowed })
        }
    }

    /// A placement the kernel refuses is reported, not logged as done: asked for CPUs this
    /// process may not use (here, ones the machine does not have), pinLoops throws, naming the
    /// loop and the kernel's error, and every loop is back on all of the process's CPUs.
    func testAPlacementTheKernelRefusesIsReported() throws {
        let allowed = IOLoopGroup.allowedCPUs
        let absent = (0..<Int32(1024)).filter { !allowed.contains($0) }.suffix(allowed.count)
        XCTAssertEqual(absent.count, allowed.count)
        let group = IOLoopGroup(count: allowed.count)
        XCTAssertEqual(try group.pinLoops(true), allowed)
        XCTAssertThrowsError(try group.pinLoops(true, allowed: Array(absent))) { error in
            let failure = error as? IOLoopGroup.PlacementFailure
            XCTAssertEqual(failure?.loop, 0)
            XCTAssertEqual(failure?.asked, [absent.first!])
            XCTAssertEqual(failure?.outcome, String(cString: strerror(EINVAL)))
            XCTAssertTrue("\(error)".hasPrefix("event loop 0 could not be placed on CPU(s) \(absent.first!): "), "\(error)")
        }
        let placement = try group.loops.map { loop in try loop.submit { IOLoopGroup.threadCPUs() }.wait() }
        XCTAssertEqual(placement, group.loops.map { _ in allowed })
    }

    /// A busy-polling loop that was preempted since its last look (its core wanted by other busy
    /// threads) sleeps instead of polling, and polls again once a look finds it was not. The
    /// count of preemptions is a stand-in here; the next test checks the real one.
    func testBusyPollingYieldsACoreOthersWant() throws {
        let loop = IOLoopGroup(count: 1).loops[0]
        let preempted = Atomic<Int>(0)
        try loop.submit { loop.preemptionCount = { preempted.load(ordering: .relaxed) } }.wait()
        IOLoop.busyPoll.store(20_000_000, ordering: .relaxed) // 20 ms
        defer { IOLoop.busyPoll.store(0, ordering: .relaxed) }
        /// Events 0.5 ms apart (the loop keeps polling, and looks at its preemptions every
        /// millisecond) until `done` holds, for at most 3 s.
        func drive(until done: () throws -> Bool) throws -> Bool {
            let deadline = ContinuousClock.now + .seconds(3)
            while ContinuousClock.now < deadline {
                try loop.submit {}.wait()
                if try done() { return true }
                usleep(500)
            }
            return false
        }
        XCTAssertTrue(try drive { try loop.submit { !loop.contended && loop.pollBeforeSleeping }.wait() })
        // Preempted between looks: it stops polling.
        XCTAssertTrue(try drive {
            preempted.add(1, ordering: .relaxed)
            return try loop.submit { loop.contended }.wait()
        }, "polls on while preempted")
        // Not preempted since: it polls again.
        XCTAssertTrue(try drive { try loop.submit { !loop.contended && loop.pollBeforeSleeping }.wait() },
                      "still yielding with the core to itself")
    }

    /// The count a loop looks at is the kernel's: a thread that shares its CPU with a spinning
    /// one is preempted (involuntary context switches, RUSAGE_THREAD).
    func testAThreadSharingItsCoreWithASpinnerIsPreempted() throws {
        let cpu = try XCTUnwrap(IOLoopGroup.allowedCPUs.first)
        let spinning = Atomic<Bool>(true)
        let spinner = Thread {
            _ = prism_set_thread_cpus(0, [cpu], 1)
            while spinning.load(ordering: .relaxed) {}
        }
        spinner.start()
        defer { spinning.store(false, ordering: .relaxed) }
        let counted = Atomic<Int>(-1)
        let done = DispatchSemaphore(value: 0)
        let worker = Thread {
            _ = prism_set_thread_cpus(0, [cpu], 1)
            let before = prism_thread_preemptions()
            let end = ContinuousClock.now + .milliseconds(300)
            var spins = 0
            while ContinuousClock.now < end { spins &+= 1 } // busy beside the spinner
            counted.store(prism_thread_preemptions() - before, ordering: .relaxed)
            done.signal()
        }
        worker.start()
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        XCTAssertGreaterThan(counted.load(ordering: .relaxed), 0)
    }

    func testCurrentNamesTheLoopOfThisThread() throws {
        XCTAssertNil(Self.group.current)
        for loop in Self.group.loops {
            let index = try loop.submit { Self.group.current?.index }.wait()
            XCTAssertEqual(index, loop.index)
        }
    }
}
