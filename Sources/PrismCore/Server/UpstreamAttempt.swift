import NIOCore
import PrismPluginABI
import PrismSupport
import Synchronization

/// One try of one deployment: its provider exchange (translation state) and transfer. A request
/// may make several (retries, failover, fallback models) and, when racing, run several at once.
final class UpstreamAttempt: TracedAttempt {
    let candidate: RouteCandidate
    let exchange: ProviderExchange
    let number: Int
    let framing: prism_framing
    let startedAt = monotonicNanoseconds()
    var transfer: Transfer?
    var receiver: UpstreamReceiver?
    /// True once counted in the provider's in-flight figure (undone exactly once).
    private var holdsInFlight = false
    /// A half-open circuit admitted this attempt as its probe.
    var isProbe = false
    /// Its span in the request's trace (-1: not traced).
    var traceSpan = -1
    /// The provider took the client's own dialect (an ingress route): its answer goes to the
    /// client untouched.
    var isPassThrough = false

    init(candidate: RouteCandidate, exchange: ProviderExchange, number: Int, framing: prism_framing) {
        self.candidate = candidate
        self.exchange = exchange
        self.number = number
        self.framing = framing
    }

    var provider: ProviderInstance { candidate.provider }
    var upstreamModel: String { candidate.upstreamModel }

    func markInFlight() {
        guard !holdsInFlight else { return }
        holdsInFlight = true
        provider.inFlight.add(1, ordering: .relaxed)
    }

    /// Ends the attempt's bookkeeping; breaks the receiver → request reference cycle.
    func release() {
        if holdsInFlight {
            holdsInFlight = false
            provider.inFlight.subtract(1, ordering: .relaxed)
        }
        receiver = nil
        transfer = nil
    }

    var elapsedMilliseconds: Double { Double(monotonicNanoseconds() - startedAt) / 1_000_000 }
}

/// Receives a transfer's events inside libcurl's callbacks and hands them to the request, tagged
/// with the attempt. The transfer runs on the request's own loop, so they are handed over at once:
/// whatever the request then asks of the transport waits until libcurl has returned (CurlEngine
/// defers it). Only a transfer on another loop (one started off any loop) queues them there. A
/// non-streaming answer is collected here and handed over once, when complete.
final class UpstreamReceiver: TransferDelegate, @unchecked Sendable {
    private let request: NIOLoopBound<ProxyRequest>
    private let attempt: NIOLoopBound<UpstreamAttempt>
    private let eventLoop: EventLoop
    private let streaming: Bool
    private let writable: @Sendable () -> Bool
    // State inside libcurl's callbacks (on the transfer's loop).
    private var status = 0
    private var headers = HeaderBlock()
    private var body: [UInt8] = []
    private var forwarding = false
    private let paused = Atomic<Bool>(false)
    /// server.max_response_body_size: a buffered (non-streaming or error) answer past it is refused
    /// whole, never passed on cut.
    private let maximumBufferedBytes: Int
    private var oversized = false
    /// The content type of a 2xx answer to a stream request that is no event stream.
    private var notAStream: String?
    private let framing: prism_framing

    init(request: ProxyRequest, attempt: UpstreamAttempt, eventLoop: EventLoop, streaming: Bool,
         maximumBufferedBytes: Int, writable: @escaping @Sendable () -> Bool)
    {
        self.maximumBufferedBytes = maximumBufferedBytes
        framing = attempt.framing
        self.request = NIOLoopBound(request, eventLoop: eventLoop)
        self.attempt = NIOLoopBound(attempt, eventLoop: eventLoop)
        self.eventLoop = eventLoop
        self.streaming = streaming
        self.writable = writable
    }

    var isPaused: Bool { paused.load(ordering: .relaxed) }
    func markResumed() { paused.store(false, ordering: .relaxed) }

    func transferReceivedHead(status: Int, headers: HeaderBlock) {
        self.status = status
        self.headers = headers
        // Only a successful stream is forwarded as it arrives; an error answer is collected whole
        // (the client then gets a JSON error, and failover is still possible).
        guard streaming, (200..<300).contains(status) else { return }
        if framing == PRISM_FRAMING_SSE,
           let type = headers.value(of: "content-type"), !type.containsASCIICaseInsensitive("event-stream")
        {
            // A stream was asked for and a page came back (a proxy's HTML, a JSON error): not a
            // stream to forward, a failed attempt (failover may still answer).
            notAStream = type
            return
        }
        forwarding = true
        handOver((status, headers)) { $0.upstreamHead($1, status: $2.0, headers: $2.1) }
    }

    func transferReceived(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard forwarding else {
            guard !oversized else { return false }
            guard body.count + bytes.count <= maximumBufferedBytes else {
                oversized = true
                body = [] // the memory goes back at once
                handOver(maximumBufferedBytes) { $0.upstreamOversized($1, limit: $2) }
                return false // paused until the request cancels the transfer
            }
            body.append(contentsOf: bytes)
            return true
        }
        // Backpressure: while the client cannot take more, pause without taking these bytes:
        // libcurl keeps the chunk a pause refused and delivers it again on resume (taking it as
        // well sent it twice). The request resumes the transfer when the channel drains.
        guard writable() else {
            paused.store(true, ordering: .relaxed)
            return false
        }
        handOver(Array(bytes)) { $0.upstreamData($1, $2) }
        return true
    }

    func transferCompleted(_ failure: TransportFailure?) {
        if oversized { return } // already reported
        var failure = failure
        if failure == nil, let type = notAStream {
            failure = .other("a stream was asked for and the upstream answered HTTP \(status) with \(type): "
                + String(decoding: body.prefix(200), as: UTF8.self))
        }
        handOver((status, headers, body, failure)) {
            $0.upstreamComplete($1, status: $2.0, headers: $2.1, body: $2.2, failure: $2.3)
        }
    }

    /// Calls the request with `value`: at once on its loop (where every proxied request's transfer
    /// runs), else queued there. `call` captures nothing, so the direct path allocates no closure.
    @inline(__always)
    private func handOver<Value: Sendable>(_ value: Value,
                                           _ call: @escaping @Sendable (ProxyRequest, UpstreamAttempt, Value) -> Void)
    {
        let (request, attempt) = (self.request, self.attempt)
        if eventLoop.inEventLoop { return call(request.value, attempt.value, value) }
        eventLoop.execute { call(request.value, attempt.value, value) }
    }
}
