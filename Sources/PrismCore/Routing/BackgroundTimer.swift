import Dispatch
import Synchronization

/// A repeating timer on its own serial queue, for a generation's background work (model
/// discovery, health checks): the handler holds its owner weakly, and `stop` (from the owner's
/// deinit) cancels it, so a replaced generation stops working once its last request is done.
final class BackgroundTimer: Sendable {
    let queue: DispatchQueue
    private final class Box: @unchecked Sendable {
        let timer: DispatchSourceTimer
        init(_ timer: DispatchSourceTimer) { self.timer = timer }
    }

    private let box = Mutex<Box?>(nil)

    init(label: String) { queue = DispatchQueue(label: label) }

    /// Calls `tick` every `interval` (first after one interval) until `stop`.
    func start(every interval: DispatchTimeInterval, _ tick: @escaping @Sendable () -> Void) {
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(100))
        timer.setEventHandler(handler: tick)
        box.withLock { $0 = Box(timer) }
        timer.resume()
    }

    func stop() { box.withLock { box in defer { box = nil }; return box }?.timer.cancel() }
}
