import CPrismSystem
import Glibc
import Synchronization

/// A thread of its own that runs `tick` every `interval` at a lower scheduling priority (nice 10),
/// for periodic work off the request path: the spend ledger's SQLite writes. On a machine with few
/// cores a burst of that work at normal priority takes turns with the event loops and shows in
/// their tail latency (measured at one connection: p99 0.35-0.65 ms with the ledger at normal
/// priority, 0.12-0.20 ms without a ledger); at nice 10 a waking loop preempts it. Its work is
/// only delayed under load, never starved (CFS still gives it a share).
///
/// `sync` runs a body on the caller's thread, never at the same time as `tick`. The thread ends
/// at the first tick after the worker is gone.
package final class BackgroundWorker: @unchecked Sendable {
    private let exclusive = Mutex<Void>(())
    private let tick: @Sendable () -> Void

    package init(name: String, interval: Duration, tick: @escaping @Sendable () -> Void) {
        self.tick = tick
        let reference = WeakReference(self)
        let nanoseconds = max(interval.components.seconds * 1_000_000_000 + interval.components.attoseconds / 1_000_000_000,
                              1_000_000)
        var thread = pthread_t()
        let context = Unmanaged.passRetained(Start(reference: reference, name: name, nanoseconds: nanoseconds)).toOpaque()
        pthread_create(&thread, nil, { context in
            let start = Unmanaged<Start>.fromOpaque(context!).takeRetainedValue()
            start.name.withCString { prism_thread_set_name($0) }
            _ = prism_thread_lower_priority(10)
            var pause = timespec(tv_sec: Int(start.nanoseconds / 1_000_000_000), tv_nsec: Int(start.nanoseconds % 1_000_000_000))
            while true {
                var remaining = timespec()
                while nanosleep(&pause, &remaining) != 0 && errno == EINTR { pause = remaining }
                pause = timespec(tv_sec: Int(start.nanoseconds / 1_000_000_000), tv_nsec: Int(start.nanoseconds % 1_000_000_000))
                guard let worker = start.reference.value else { return nil }
                worker.sync { worker.tick() }
            }
        }, context)
        pthread_detach(thread)
    }

    /// Runs `body` on this thread, after any tick running now and before the next.
    package func sync<Result: Sendable>(_ body: () throws -> Result) rethrows -> Result {
        try exclusive.withLock { _ in try body() }
    }

    private final class WeakReference: @unchecked Sendable {
        weak var value: BackgroundWorker?
        init(_ value: BackgroundWorker) { self.value = value }
    }

    private final class Start {
        let reference: WeakReference
        let name: String
        let nanoseconds: Int64
        init(reference: WeakReference, name: String, nanoseconds: Int64) {
            self.reference = reference
            self.name = name
            self.nanoseconds = nanoseconds
        }
    }
}
