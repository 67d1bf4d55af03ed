import CCurl
import CPrismSystem
import PrismLoop
import PrismSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Why an upstream transfer ended without an HTTP answer.
package enum TransportFailure: Error, Sendable {
    case timeout
    case connection(String)
    case other(String)
    /// A buffered answer past server.max_response_body_size (the transfer was stopped).
    case tooLarge(String)

    package var message: String {
        switch self {
        case let .tooLarge(detail): return detail
        case .timeout: return "the upstream did not answer in time"
        case let .connection(detail): return "could not connect to the upstream: \(detail)"
        case let .other(detail): return "upstream transfer failed: \(detail)"
        }
    }
}

/// What the transport reports about one transfer, on the loop that runs it (the request's own loop
/// when it was started there), from inside libcurl's callbacks, and never from inside `start`,
/// `cancel` or `resume`. Implementations must not block. They may start, cancel and resume
/// transfers from these calls: the engine runs such commands once libcurl has returned.
package protocol TransferDelegate: AnyObject, Sendable {
    /// The status line and headers arrived (called before any body bytes).
    func transferReceivedHead(status: Int, headers: HeaderBlock)
    /// Body bytes. Return false to pause the transfer until `CurlTransport.resume` (backpressure):
    /// the bytes are then not taken, and the same bytes come again after the resume.
    func transferReceived(_ bytes: UnsafeRawBufferPointer) -> Bool
    /// The transfer ended: nil on success (any HTTP status), or why it failed.
    func transferCompleted(_ failure: TransportFailure?)
}

/// What sends a transfer upstream: libcurl in the gateway (`CurlTransport`), a scripted fake in
/// in-process tests. Called from event loops; the delegate hears back from wherever the transport
/// runs.
package protocol UpstreamTransport: AnyObject, Sendable {
    func start(_ transfer: Transfer)
    /// Stops a transfer; its delegate hears nothing more.
    func cancel(_ transfer: Transfer)
    /// Goes on with a transfer its delegate paused (backpressure).
    func resume(_ transfer: Transfer)
}

/// Limits how many transfers one provider has in flight (`max_concurrent`) across every loop; the
/// rest wait in order and start on their own loop when a slot frees.
package final class AdmissionGate: Sendable {
    package let limit: Int
    private let state = Mutex<(active: Int, waiting: [Transfer])>((0, []))
    package init(limit: Int) { self.limit = limit }

    /// Takes a slot (true), or queues the transfer (false).
    func admitOrQueue(_ transfer: Transfer) -> Bool {
        state.withLock { state in
            if state.active >= limit {
                state.waiting.append(transfer)
                return false
            }
            state.active += 1
            return true
        }
    }

    /// Frees a slot; returns the waiting transfer that takes it, if any.
    func releaseSlot() -> Transfer? {
        state.withLock { state in
            state.active -= 1
            guard state.active < limit, !state.waiting.isEmpty else { return nil }
            state.active += 1
            return state.waiting.removeFirst()
        }
    }

    /// Takes a cancelled transfer out of the queue; false when it was not waiting.
    func removeWaiting(_ transfer: Transfer) -> Bool {
        state.withLock { state in
            guard let index = state.waiting.firstIndex(where: { $0 === transfer }) else { return false }
            state.waiting.remove(at: index)
            return true
        }
    }

    /// Takes out one engine's transfers that waited longer than their timeout.
    func expire(owner: CurlEngine, now: UInt64) -> [Transfer] {
        state.withLock { state in
            var expired: [Transfer] = []
            state.waiting.removeAll { transfer in
                guard transfer.engine === owner,
                      now - transfer.queuedAt > UInt64(transfer.timeoutMilliseconds) * 1_000_000 else { return false }
                expired.append(transfer)
                return true
            }
            return expired
        }
    }

    var hasWaiting: Bool { state.withLock { !$0.waiting.isEmpty } }
}

/// One outbound HTTP request and its libcurl state.
package final class Transfer: @unchecked Sendable {
    // Immutable request description.
    package let method: String
    package let url: String
    package let headers: [(String, String)]
    package let body: [UInt8]
    package let timeoutMilliseconds: Int
    package let streaming: Bool
    let gate: AdmissionGate?
    package let delegate: TransferDelegate

    // State on its engine's loop.
    /// The loop's engine that runs it (set before it is handed over).
    var engine: CurlEngine?
    var easy: UnsafeMutableRawPointer?
    var headerList: UnsafeMutablePointer<curl_slist>?
    var bodyCopy: UnsafeMutableRawPointer?
    /// How much of a large body libcurl has read (through the read callback).
    var bodyOffset = 0
    /// Unchecked exclusivity (no runtime access tracking, a header line at a time): written only
    /// by the engine's header callback, read once when the head is delivered, on the loop.
    @exclusivity(unchecked) var responseHeaders = HeaderBlock()
    var status = 0
    var headDelivered = false
    var finished = false
    /// Its delegate paused it at least once (its handle is not reused: libcurl keeps pause state).
    var wasPaused = false
    var queuedAt: UInt64 = 0

    package init(method: String, url: String, headers: [(String, String)], body: [UInt8], timeoutMilliseconds: Int,
                 streaming: Bool, gate: AdmissionGate?, delegate: TransferDelegate)
    {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeoutMilliseconds = timeoutMilliseconds
        self.streaming = streaming
        self.gate = gate
        self.delegate = delegate
    }
}

/// libcurl's multi interface on the gateway's own loops: one multi handle per `IOLoop`, whose
/// sockets sit in the loop's epoll set beside the client connections. A transfer started on a
/// loop runs on that loop's handle, so the request and its upstream bytes stay on one thread.
/// Started from any other thread (model discovery, health checks), it goes to the next loop.
package final class CurlTransport: UpstreamTransport, @unchecked Sendable {
    private let group: IOLoopGroup
    private let engines: [CurlEngine]

    /// `maximumIdleConnections`: keep-alive connections each loop keeps open across all
    /// providers (the sum of their `conn_pool_size`).
    package init(group: IOLoopGroup, maximumIdleConnections: Int) {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        self.group = group
        engines = group.loops.map { CurlEngine(loop: $0, maximumIdleConnections: maximumIdleConnections) }
    }

    package func start(_ transfer: Transfer) {
        if let loop = group.current {
            let engine = engines[loop.index]
            transfer.engine = engine
            engine.perform(.start(transfer))
        } else {
            let engine = engines[group.nextLoop().index]
            transfer.engine = engine
            engine.loop.execute { engine.perform(.start(transfer)) }
        }
    }

    package func cancel(_ transfer: Transfer) { send(.cancel(transfer), for: transfer) }
    /// Always queued on the transfer's loop: libcurl delivers held-back bytes from inside
    /// `curl_easy_pause`, and the delegate must not hear them inside the caller's own call.
    package func resume(_ transfer: Transfer) {
        guard let engine = transfer.engine else { return }
        engine.loop.execute { engine.perform(.resume(transfer)) }
    }

    private func send(_ command: CurlEngine.Command, for transfer: Transfer) {
        guard let engine = transfer.engine else { return }
        if engine.loop.inEventLoop {
            engine.perform(command)
        } else {
            engine.loop.execute { engine.perform(command) }
        }
    }
}
