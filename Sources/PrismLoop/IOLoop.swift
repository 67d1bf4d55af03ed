import CPrismSystem
import Dispatch
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Watches one descriptor on an `IOLoop` (a client connection, the listener, a libcurl socket).
/// `flags`: 1 readable, 2 writable, 4 error or hang-up.
package protocol LoopDescriptorHandler: AnyObject {
    func descriptorReady(_ descriptor: Int32, flags: Int32)
}

/// Runs on an `IOLoop` around each round of events: libcurl's multi handle (its timer, finished
/// transfers, commands held back while libcurl was running).
package protocol LoopParticipant: AnyObject {
    /// When it next needs to run (monotonic nanoseconds), nil for no deadline.
    var nextDeadline: UInt64? { get }
    func run()
}

/// One thread with its own epoll set, serving client connections and libcurl's sockets alike, so
/// a request and its upstream transfer never cross threads. It is a NIO `EventLoop`: the HTTP codec
/// and the gateway's handlers run on it unchanged. Tasks from other threads come through a locked
/// inbox and an eventfd; tasks from the loop itself go on a plain array.
package final class IOLoop: EventLoop, @unchecked Sendable {
    package let index: Int
    private let epoll: Int32
    private let wake: Int32
    private var thread = pthread_t()
    /// The loop thread's kernel id (for its CPU affinity, set from other threads).
    package private(set) var threadID: Int32 = 0
    private let inbox = Mutex<[@Sendable () -> Void]>([])
    private let wakeSignalled = Atomic<Bool>(false)
    // Loop-thread state.
    private var tasks: [@Sendable () -> Void] = []
    private var running: [@Sendable () -> Void] = []
    private var timers = TimerHeap()
    private var timerSequence: UInt64 = 0
    private var handlers: [LoopDescriptorHandler?] = []
    /// Per descriptor number, counted up at each new registration (see the tagged epoll calls).
    private var generations: [UInt32] = []
    private var participants: [LoopParticipant] = []

    package init(index: Int) {
        self.index = index
        epoll = prism_epoll_create()
        wake = prism_eventfd_create()
        _ = prism_epoll_control_tagged(epoll, EPOLL_CTL_ADD, wake, 1, IOLoop.wakeTag)
        let started = DispatchSemaphore(value: 0)
        let box = Unmanaged.passRetained(Start(loop: self, started: started)).toOpaque()
        var thread = pthread_t()
        pthread_create(&thread, nil, { context in
            let start = Unmanaged<Start>.fromOpaque(context!).takeRetainedValue()
            start.loop.thread = pthread_self()
            start.loop.threadID = prism_thread_id()
            start.started.signal()
            start.loop.run()
            return nil
        }, box)
        started.wait()
    }

    private final class Start {
        let loop: IOLoop
        let started: DispatchSemaphore
        init(loop: IOLoop, started: DispatchSemaphore) {
            self.loop = loop
            self.started = started
        }
    }

    // MARK: EventLoop

    package var inEventLoop: Bool { pthread_equal(pthread_self(), thread) != 0 }

    package func execute(_ task: @escaping @Sendable () -> Void) {
        if inEventLoop {
            tasks.append(task)
            return
        }
        inbox.withLock { $0.append(task) }
        if !wakeSignalled.exchange(true, ordering: .acquiringAndReleasing) { prism_eventfd_signal(wake) }
    }

    package func scheduleTask<T>(deadline: NIODeadline, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        let promise: EventLoopPromise<T> = makePromise()
        let timer = LoopTimer(deadline: deadline.uptimeNanoseconds) {
            // On the loop: the isolated promise takes a result that is not Sendable.
            let isolated = promise.assumeIsolatedUnsafeUnchecked()
            do { isolated.succeed(try task()) } catch { promise.fail(error) }
        }
        if inEventLoop { add(timer) } else { execute { self.add(timer) } }
        return Scheduled(promise: promise, cancellationTask: {
            if self.inEventLoop { self.timers.remove(timer) } else { self.execute { self.timers.remove(timer) } }
        })
    }

    package func scheduleTask<T>(in delay: TimeAmount, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        scheduleTask(deadline: .now() + delay, task)
    }

    package func preconditionInEventLoop(file: StaticString, line: UInt) {
        precondition(inEventLoop, "not on this event loop", file: file, line: line)
    }

    package func preconditionNotInEventLoop(file: StaticString, line: UInt) {
        precondition(!inEventLoop, "on this event loop", file: file, line: line)
    }

    package func shutdownGracefully(queue: DispatchQueue, _ callback: @escaping @Sendable (Error?) -> Void) {
        // Loops live as long as the process (it exits once drained).
        queue.async { callback(nil) }
    }


    private func add(_ timer: LoopTimer) {
        timerSequence &+= 1
        timer.sequence = timerSequence
        timers.insert(timer)
    }

    // MARK: Descriptors (loop thread only)

    /// Starts or changes watching `descriptor`: `want` bit 1 readable, bit 2 writable (0: only
    /// errors and hang-ups).
    package func watch(_ descriptor: Int32, want: Int32, handler: LoopDescriptorHandler) {
        let slot = Int(descriptor)
        if slot >= handlers.count {
            let grow = slot + 64 - handlers.count
            handlers.append(contentsOf: repeatElement(nil, count: grow))
            generations.append(contentsOf: repeatElement(0, count: grow))
        }
        let adding = handlers[slot] == nil
        if adding { generations[slot] &+= 1 }
        handlers[slot] = handler
        let tag = UInt64(generations[slot]) << 32 | UInt64(UInt32(bitPattern: descriptor))
        if prism_epoll_control_tagged(epoll, adding ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, descriptor, want, tag) != 0, !adding {
            // The descriptor was closed and reused before its owner said so: register it afresh.
            _ = prism_epoll_control_tagged(epoll, EPOLL_CTL_ADD, descriptor, want, tag)
        }
    }

    /// Stops watching `descriptor` (call before closing it).
    package func unwatch(_ descriptor: Int32) {
        let slot = Int(descriptor)
        guard slot < handlers.count, handlers[slot] != nil else { return }
        handlers[slot] = nil
        _ = prism_epoll_control(epoll, EPOLL_CTL_DEL, descriptor, 0)
    }

    package func add(participant: LoopParticipant) {
        if inEventLoop { participants.append(participant) } else {
            let box = UnsafeTransfer(participant)
            execute { self.participants.append(box.value) }
        }
    }

    // MARK: The loop

    private static let wakeTag = UInt64.max

    private func run() {
        var tags = [UInt64](repeating: 0, count: 64)
        var flags = [Int32](repeating: 0, count: 64)
        while true {
            runTasks()
            for participant in participants { participant.run() }
            var timeout: Int32 = -1
            var next: UInt64?
            if !tasks.isEmpty {
                timeout = 0
            } else {
                next = timers.first?.deadline
                for participant in participants {
                    if let deadline = participant.nextDeadline { next = min(next ?? deadline, deadline) }
                }
                if let next {
                    let now = NIODeadline.now().uptimeNanoseconds
                    timeout = next <= now ? 0 : Int32(clamping: (next - now + 999_999) / 1_000_000)
                }
            }
            let count = timeout == 0 ? prism_epoll_wait_tagged(epoll, &tags, &flags, 64, 0)
                : waitForEvents(&tags, &flags, timeout: timeout, deadline: next)
            for position in 0..<Int(max(count, 0)) {
                let tag = tags[position]
                if tag == IOLoop.wakeTag {
                    prism_eventfd_drain(wake)
                    wakeSignalled.store(false, ordering: .sequentiallyConsistent)
                    let arrived = inbox.withLock { inbox -> [@Sendable () -> Void] in
                        let taken = inbox
                        inbox.removeAll(keepingCapacity: true)
                        return taken
                    }
                    tasks.append(contentsOf: arrived)
                } else {
                    let descriptor = Int32(bitPattern: UInt32(truncatingIfNeeded: tag))
                    let slot = Int(descriptor)
                    // A stale event (its socket closed earlier in this batch, the number reused)
                    // carries an older generation.
                    guard slot < handlers.count, let handler = handlers[slot],
                          generations[slot] == UInt32(truncatingIfNeeded: tag >> 32) else { continue }
                    handler.descriptorReady(descriptor, flags: flags[position])
                }
            }
            if !timers.isEmpty { runDueTimers() }
        }
    }

    // MARK: Busy polling

    /// `server.busy_poll` in nanoseconds (0: off), for every loop of the process.
    package static let busyPoll = Atomic<UInt64>(0)
    /// Whether this loop polls before its next sleep: yes while its recent waits ended within the
    /// busy-poll window, so a sparse load (a stream's events tens of ms apart) pays for at most
    /// one fruitless poll before the loop goes back to sleeping at once.
    package private(set) var pollBeforeSleeping = true
    /// Whether the thread was preempted in the last look (at most one a millisecond): its core is
    /// wanted by other busy threads, and polling would keep them waiting.
    package private(set) var contended = false
    private var contentionCheckedAt: UInt64 = 0
    private var preemptions = 0
    /// How many times this loop's thread was preempted so far (a test's stand-in replaces it).
    package var preemptionCount: () -> Int = { prism_thread_preemptions() }

    /// Waits for events up to `timeout` ms, first polling for up to `server.busy_poll`. A sleeping
    /// thread's wake-up (an interrupt to an idle core, a VM exit in a guest) costs tens of µs on
    /// every hop of a request at low load, most of the gateway's added latency there; a thread
    /// that polls sees the event as it lands. Seastar's reactor does the same (idle poll time).
    /// But a polling thread holds its core: where the cores are shared with other busy threads
    /// (the benchmark's client and upstream; other processes), they waited for it (the benchmark's
    /// upstream 0.2 ms a wake-up on average, and a fifth of the machine sat idle meanwhile). So a
    /// loop that was preempted since its last look sleeps instead, until a look finds it was not
    /// (bench/README.md, "Busy polling, when the cores are shared").
    private func waitForEvents(_ tags: inout [UInt64], _ flags: inout [Int32], timeout: Int32, deadline: UInt64?) -> Int32 {
        let window = IOLoop.busyPoll.load(ordering: .relaxed)
        guard window > 0 else { return prism_epoll_wait_tagged(epoll, &tags, &flags, 64, timeout) }
        let start = NIODeadline.now().uptimeNanoseconds
        if start &- contentionCheckedAt >= 1_000_000 {
            let now = preemptionCount()
            contended = now != preemptions
            preemptions = now
            contentionCheckedAt = start
        }
        if pollBeforeSleeping && !contended {
            // Not past the next timer: it runs on time as it would after a sleep.
            let end = min(start &+ window, deadline ?? .max)
            repeat {
                let count = prism_epoll_wait_tagged(epoll, &tags, &flags, 64, 0)
                if count != 0 { return count }
            } while NIODeadline.now().uptimeNanoseconds < end
        }
        let count = prism_epoll_wait_tagged(epoll, &tags, &flags, 64, timeout)
        pollBeforeSleeping = count > 0 && NIODeadline.now().uptimeNanoseconds &- start <= window
        return count
    }

    /// Runs the tasks queued so far; those they queue run on the next turn, after I/O.
    private func runTasks() {
        guard !tasks.isEmpty else { return }
        swap(&tasks, &running)
        for task in running { task() }
        running.removeAll(keepingCapacity: true)
    }

    private func runDueTimers() {
        let now = NIODeadline.now().uptimeNanoseconds
        while let first = timers.first, first.deadline <= now {
            timers.popFirst()?()
        }
    }
}

/// The gateway's loops: one per core by default (`PRISM_EVENT_LOOP_THREADS` overrides it).
package final class IOLoopGroup: EventLoopGroup, @unchecked Sendable {
    package let loops: [IOLoop]
    private let counter = Atomic<Int>(0)

    package init(count: Int) {
        loops = (0..<max(count, 1)).map { IOLoop(index: $0) }
    }

    /// The process's loops: one group however many gateways a tool or a test builds.
    package static let shared = IOLoopGroup(count: defaultCount())

    /// One loop per core (measured here: on 2 cores, 2 loops beat 1 by ~25% throughput).
    package static func defaultCount() -> Int {
        if let text = getenv("PRISM_EVENT_LOOP_THREADS"), let count = Int(String(cString: text)), count > 0 {
            return count
        }
        return System.coreCount
    }

    /// The CPUs the process may run on, as it started (before any loop was pinned).
    package static let allowedCPUs = threadCPUs()

    /// The CPUs thread `threadID` (0: the calling thread) may run on.
    package static func threadCPUs(_ threadID: Int32 = 0) -> [Int32] {
        var cpus = [Int32](repeating: 0, count: 1024)
        let count = prism_allowed_cpus(threadID, &cpus, 1024)
        return count > 0 ? Array(cpus[0..<Int(count)]) : []
    }

    /// Why the loops could not be placed as asked: the loop, the CPUs asked for, and what the
    /// kernel said (an error, or the CPUs it kept instead: a cpuset narrower than the mask).
    package struct PlacementFailure: Error, CustomStringConvertible {
        package let loop: Int
        package let asked: [Int32]
        package let outcome: String
        package var description: String {
            "event loop \(loop) could not be placed on CPU(s) \(asked.map(String.init).joined(separator: ", ")): \(outcome)"
        }
    }

    /// `pinned`: loop i runs on the i-th CPU the process may use, when it may use exactly as many
    /// CPUs as there are loops (the whole machine with a loop per core, or a container given its
    /// own CPUs); otherwise (or not `pinned`) on any of them, where the kernel puts it. With more
    /// CPUs than loops the process cannot tell which are its own: replicas sharing a large host
    /// (a container with a CPU quota sees every CPU) would all pin to the first ones. Returns the
    /// CPUs chosen (empty: none pinned).
    ///
    /// Each loop's mask is set from the calling thread and read back, so that what is returned
    /// (and logged) is what the kernel did. If a loop cannot be placed (a seccomp profile refusing
    /// `sched_setaffinity`, a cpuset that changed since start), every loop goes back to all the
    /// CPUs the process started with and the failure is thrown. `allowed` is given by tests only.
    ///
    /// Pinned, the loops cannot end up sharing one core while another sits partly idle. Unpinned,
    /// the kernel did exactly that on this 2-core machine under the benchmark's load: it counted
    /// two busy loops on one core against the client and the upstream on the other as balanced,
    /// and throughput depended on where the threads happened to land (7.2k or 10.3k requests/s;
    /// bench/README.md, "Where the loops run").
    @discardableResult
    package func pinLoops(_ pinned: Bool, allowed: [Int32] = IOLoopGroup.allowedCPUs) throws(PlacementFailure) -> [Int32] {
        let chosen = pinned && allowed.count == loops.count ? allowed : []
        for (index, loop) in loops.enumerated() {
            let cpus = chosen.isEmpty ? allowed : [chosen[index]]
            guard !cpus.isEmpty else { continue }
            let outcome = IOLoopGroup.place(loop, on: cpus)
            guard let outcome else { continue }
            for loop in loops { _ = IOLoopGroup.place(loop, on: IOLoopGroup.allowedCPUs) } // best effort
            throw PlacementFailure(loop: index, asked: cpus, outcome: outcome)
        }
        return chosen
    }

    /// Sets `loop`'s CPUs and reads them back: nil when they are exactly `cpus`, else what went
    /// wrong. A loop already there is left alone (unpinned loops at start: nothing is asked of
    /// the kernel, so nothing can be refused).
    private static func place(_ loop: IOLoop, on cpus: [Int32]) -> String? {
        if threadCPUs(loop.threadID) == cpus { return nil }
        let status = cpus.withUnsafeBufferPointer { prism_set_thread_cpus(loop.threadID, $0.baseAddress, Int32($0.count)) }
        if status != 0 { return String(cString: strerror(errno)) }
        let kept = threadCPUs(loop.threadID)
        return kept == cpus ? nil : "the kernel kept CPU(s) \(kept.map(String.init).joined(separator: ", "))"
    }

    /// The loop this thread runs, if it is one of them.
    package var current: IOLoop? {
        for loop in loops where loop.inEventLoop { return loop }
        return nil
    }

    package func next() -> EventLoop { nextLoop() }

    package func nextLoop() -> IOLoop {
        loops[counter.wrappingAdd(1, ordering: .relaxed).oldValue % loops.count]
    }

    package func any() -> EventLoop { current ?? nextLoop() }

    package func makeIterator() -> EventLoopIterator { EventLoopIterator(loops) }

    package func shutdownGracefully(queue: DispatchQueue, _ callback: @escaping @Sendable (Error?) -> Void) {
        queue.async { callback(nil) }
    }
}
