import NIOCore
import NIOHTTP1
import PrismPluginABI
import PrismWire

// The client's stream: the winning attempt's head starts it; its bytes go through the relay
// (Relay/StreamRelay.swift) or, on a pass-through, as they came; the client's pace holds the
// transfer back (backpressure); a quiet stream gets keep-alives, a stalled one an error; the
// upstream's end closes it.
extension ProxyRequest {
    /// A successful streaming answer's head: the first one wins and starts the client stream.
    func upstreamHead(_ attempt: UpstreamAttempt, status: Int, headers: [(String, String)]) {
        guard !finished, winner == nil, active.contains(where: { $0 === attempt }) else { return }
        choose(attempt)
        relay = StreamRelay(exchange: attempt.exchange, framing: attempt.framing, collector: collector,
                            dialect: ingress.map { ($0.exchange, $0.encodeError) })
        firstByteAt = monotonicNanoseconds()
        if let price = priceOfAnswer() { collector.pricesUsageChunk = price.pricedUsageChunk }
        var responseHeaders: [(String, String)] = []
        if attempt.isPassThrough, let type = headers.first(where: { $0.0 == "content-type" })?.1 {
            responseHeaders.append(("content-type", type))
        } else {
            responseHeaders.append(("content-type", "text/event-stream"))
        }
        responseHeaders.append(("cache-control", "no-cache"))
        responseHeaders.append(("x-accel-buffering", "no"))
        addCommonHeaders(&responseHeaders)
        handler?.writeStreamHead(headers: responseHeaders)
        streamStarted = true
        lastStreamDataAt = firstByteAt
        armStreamIdleCheck()
        armKeepAlive()
    }

    func upstreamData(_ attempt: UpstreamAttempt, _ bytes: [UInt8]) {
        guard !finished, streamStarted, attempt === winner else { return }
        lastStreamDataAt = monotonicNanoseconds()
        if attempt.isPassThrough { return relayNative(attempt, bytes) }
        let failure = relay?.feed(bytes)
        flushCollector()
        resumeIfWritable(attempt)
        if let failure { failStream(from: failure.error, otherwise: failure.otherwise) }
    }

    /// The winning stream's upstream ended (or broke): finish the client stream.
    func finishStream(_ attempt: UpstreamAttempt, failure: TransportFailure?) {
        if let failure { return failStream(message: failure.message, type: "provider_error") }
        if attempt.isPassThrough { return finishNative(attempt) }
        guard let relay else { return failStream(message: "the stream ended before it started", type: "provider_error") }
        let failure = relay.finish()
        flushCollector()
        if let failure { return failStream(from: failure.error, otherwise: failure.otherwise) }
        usage = collector.usage
        chargeAnswer()
        let closing = relay.closing()
        if let failure = closing.failure { return failStream(from: failure.error, otherwise: failure.otherwise) }
        handler?.writeStreamBytes(closing.bytes)
        recordOutcome(status: 200)
        handler?.endStream()
        complete(status: 200)
    }

    func clientWritable() {
        if let winner { resumeIfWritable(winner) }
    }

    /// Backpressure: a transfer paused because the client read slowly goes on once the client's
    /// connection takes writes again.
    func resumeIfWritable(_ attempt: UpstreamAttempt) {
        guard let receiver = attempt.receiver, let transfer = attempt.transfer, receiver.isPaused,
              handler?.isWritable ?? false
        else { return }
        receiver.markResumed()
        gateway.transport.resume(transfer)
    }

    func flushCollector() {
        guard !collector.pending.isEmpty else { return }
        lastClientWriteAt = monotonicNanoseconds()
        trace?.sawAnswer(collector.pending, streamed: true)
        handler?.writeStreamBytes(collector.pending)
        collector.pending.removeAll(keepingCapacity: true)
        notifyRecordedEvents()
    }

    /// A pass-through stream's bytes go to the client as they came; the dialect reads their usage.
    func relayNative(_ attempt: UpstreamAttempt, _ bytes: [UInt8]) {
        lastClientWriteAt = monotonicNanoseconds()
        handler?.writeStreamBytes(bytes)
        // Parsed even without observe_native: where an event ends matters if the stream breaks.
        ingress?.observeNativeStream(bytes, framing: attempt.framing)
        resumeIfWritable(attempt)
    }

    func finishNative(_ attempt: UpstreamAttempt) {
        if let ingress {
            ingress.observeNativeStream(nil, framing: attempt.framing)
            usage = ingress.nativeUsage
        }
        chargeAnswer()
        recordOutcome(status: 200)
        handler?.endStream()
        complete(status: 200)
    }

    /// While a stream is quiet, the client gets the dialect's keep-alive (a ping event or an SSE
    /// comment) every server.stream_keepalive, so proxies and SDKs do not give up on it.
    func armKeepAlive() {
        let interval = gateway.configuration.server.streamKeepAlive.milliseconds
        guard interval > 0 else { return }
        if lastClientWriteAt == 0 { lastClientWriteAt = monotonicNanoseconds() }
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        keepAliveTask = eventLoop.scheduleTask(in: .milliseconds(interval)) {
            let request = bound.value
            // A pass-through stream is relayed in the upstream's own chunks (an event may be split
            // between two): nothing may be put between them, and the upstream keeps it alive itself.
            guard !request.finished, request.streamStarted, request.winner?.isPassThrough != true else { return }
            let quiet = monotonicNanoseconds() - request.lastClientWriteAt
            if quiet >= UInt64(interval) * 1_000_000 * 9 / 10 {
                var bytes: [UInt8] = []
                if let ingress = request.ingress {
                    ingress.exchange.keepAlive(into: &bytes)
                } else {
                    bytes.append(contentsOf: ": keep-alive\n\n".utf8)
                }
                request.handler?.writeStreamBytes(bytes)
                request.lastClientWriteAt = monotonicNanoseconds()
            }
            request.armKeepAlive()
        }
    }

    /// Checks for a stalled stream once per server.stream_idle_timeout (not once per chunk): it
    /// fires at the earliest moment the stream could have been silent that long.
    func armStreamIdleCheck() {
        let timeout = UInt64(max(gateway.configuration.server.streamIdleTimeout.milliseconds, 1)) * 1_000_000
        let due = lastStreamDataAt + timeout
        let now = monotonicNanoseconds()
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        streamIdleCheck = eventLoop.scheduleTask(in: .nanoseconds(Int64(due > now ? due - now : 0))) {
            let request = bound.value
            guard !request.finished else { return }
            // Paused because the client reads slowly (write_timeout governs that): not a stall.
            if request.winner?.receiver?.isPaused == true || request.handler?.isWritable == false {
                request.lastStreamDataAt = monotonicNanoseconds()
            }
            if monotonicNanoseconds() - request.lastStreamDataAt >= timeout {
                request.failStream(message: "no data for server.stream_idle_timeout "
                    + "(\(request.gateway.configuration.server.streamIdleTimeout)): the stream stalled", type: "timeout_error")
            } else {
                request.armStreamIdleCheck()
            }
        }
    }
}
