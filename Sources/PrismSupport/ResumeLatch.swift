import Synchronization

/// Settles the race between a plugin call that returned "later" (PRISM_PAUSE, PRISM_PENDING) and
/// the plugin's resume, which may come from any thread, even before that call returned (a service
/// callback may run inline): whichever comes second continues the request, exactly once.
package final class ResumeLatch: @unchecked Sendable {
    private enum Phase {
        case running
        /// The call returned "later"; `continuation` runs when the plugin resumes. `keepAlive`
        /// holds the memory the plugin writes through until then.
        case paused(continuation: @Sendable (Int32) -> Void, keepAlive: AnyObject & Sendable)
        /// The plugin resumed while the call was still running.
        case resumedEarly(Int32)
        case finished
    }

    private let phase = Mutex<Phase>(.running)

    /// After the call returned "later". Returns the value at once when the plugin already resumed;
    /// otherwise nil, and `continuation` runs (on the resuming thread) when it does.
    package init() {}

    package func paused(keepAlive: AnyObject & Sendable, continuation: @escaping @Sendable (Int32) -> Void) -> Int32? {
        phase.withLock { phase -> Int32? in
            if case let .resumedEarly(value) = phase {
                phase = .finished
                return value
            }
            phase = .paused(continuation: continuation, keepAlive: keepAlive)
            return nil
        }
    }

    package func resume(_ value: Int32) {
        // The kept reference leaves the phase with the continuation and is dropped only after the
        // continuation ran.
        let paused: (continuation: @Sendable (Int32) -> Void, keepAlive: AnyObject & Sendable)? = phase.withLock { phase in
            switch phase {
            case .running:
                phase = .resumedEarly(value)
                return nil
            case let .paused(continuation, keepAlive):
                phase = .finished
                return (continuation, keepAlive)
            case .resumedEarly, .finished:
                return nil // a second resume: ignored
            }
        }
        guard let paused else { return }
        withExtendedLifetime(paused.keepAlive) { paused.continuation(value) }
    }
}
