import NIOCore
import NIOHTTP1
import PrismPluginABI
import PrismSupport
import PrismWire

// The client's stream: the winning attempt's head starts it; its bytes go through the relay
// (Relay/StreamRelay.swift) or, on a pass-through, as they came; the client's pace holds the
// transfer back (backpressure); a quiet stream gets keep-alives, a stalled one an error; the
// upstream's end closes it.
extension ProxyRequest {
    /// A successful streaming answer's head: the first one wins and starts the client stream.
    func upstreamHead(_ attempt: UpstreamAttempt, status: Int, headers: HeaderBlock) {
        guard !finished, winner == nil, active.contains(where: { $0 === attempt }) else { return }
        choose(attempt)
        relay = StreamRelay(exchange: attempt.exchange, framing: attempt.framing, collector: collector,
                            dialect: ingress.map { ($0.exchange, $0.encodeError) })
        firstByteAt = monotonicNanoseconds()
        if let price = priceOfAnswer() { collector.pricesUsageChunk = price.pricedUsageChunk }
        var responseHeaders: [(String, String)] = []
        responseHeaders.reserveCapacity(12)
        if attempt.isPassThrough, let type = headers.value(of: "content-type") {
            responseHeaders.append(("content-type", type))
        } else {
            responseHeaders.append(("content-type", "text/event-stream"))
        }
        responseHeaders.append(("cache-control", "no-cache"))
        responseHeaders.append(("x-accel-buffering", "no"))
        addCommonHeaders(&responseHeaders)
        handler?.writeStreamHead(headers: responseHeaders)
        streamStarted = true
        let server = gateway.configuration.server
        streamClock = StreamClock(idleTimeoutMilliseconds: server.streamIdleTimeout.milliseconds,
                                  keepAliveMilliseconds: server.streamKeepAlive.milliseconds,
                                  passThrough: attempt.isPassThrough, now: firstByteAt)
        armStreamTimer()
    }

    func upstreamData(_ attempt: UpstreamAttempt, _ bytes: [UInt8]) {
        guard !finished, streamStarted, attempt === winner else { return }
        streamClock?.upstreamSent(at: monotonicNanoseconds())
        if attempt.isPassThrough { return relayNative(attempt, bytes) }
        // What the client gets is about what came (each event framed again): room for it at
        // once, not grown from empty a doubling at a time (nine copies for a 6 KB chunk).
        collector.pending.reserveCapacity(bytes.count + 256)
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
        streamClock?.clientWrote(at: monotonicNanoseconds())
        trace?.sawAnswer(collector.pending, streamed: true)
        handler?.writeStreamBytes(collector.pending)
        collector.pending.removeAll(keepingCapacity: true)
        notifyRecordedEvents()
    }

    /// A pass-through stream's bytes go to the client as they came; the dialect reads their usage.
    func relayNative(_ attempt: UpstreamAttempt, _ bytes: [UInt8]) {
        streamClock?.clientWrote(at: monotonicNanoseconds())
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

    /// The stream's one timer, at the earlier of its two clocks' moments (Relay/StreamClock.swift).
    func armStreamTimer() {
        guard let due = streamClock?.due else { return }
        let now = monotonicNanoseconds()
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        streamTimer = eventLoop.scheduleTask(in: .nanoseconds(Int64(due > now ? due - now : 0))) {
            bound.value.streamTimerFired()
        }
    }

    private func streamTimerFired() {
        let held = winner?.receiver?.isPaused == true || handler?.isWritable == false
        guard !finished, let tick = streamClock?.fired(at: monotonicNanoseconds(), held: held) else { return }
        switch tick {
        case .stalled:
            return failStream(message: "no data for server.stream_idle_timeout "
                + "(\(gateway.configuration.server.streamIdleTimeout)): the stream stalled", type: "timeout_error")
        case .keepAlive:
            var bytes: [UInt8] = []
            if let ingress {
                ingress.exchange.keepAlive(into: &bytes)
            } else {
                bytes.append(contentsOf: ": keep-alive\n\n".utf8)
            }
            handler?.writeStreamBytes(bytes)
            streamClock?.clientWrote(at: monotonicNanoseconds())
        case .wait: break
        }
        guard !finished else { return }
        armStreamTimer()
    }
}
