import NIOCore
import PrismHTTP1

/// A connection's two deadlines, with one lazily re-armed timer instead of a scheduled task per
/// request or per write:
/// - server.header_timeout, like nginx's client_header_timeout: from the first byte of a request
///   until its head is parsed. It sits before the HTTP decoder and sees raw bytes, so a client
///   that trickles a header block a byte at a time (each byte resetting idle_timeout) is still
///   cut off;
/// - server.idle_timeout: a connection with no request in progress and nothing read for that
///   long is closed (a request in progress has the handler's read, body and upstream timeouts).
/// GatewayHTTPHandler tells it when a head arrived and when the answer ended, by direct calls
/// (`headReceived`, `answered`): `addGatewayHandlers` pairs the two, and a pipeline that holds
/// both must be built by it. Other handlers may send the same news as outbound user events
/// (`Event`). Times come from the event loop's clock (virtual on an EmbeddedEventLoop).
package final class ConnectionDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer
    package typealias OutboundIn = Any
    package typealias OutboundOut = Any

    package enum Event: Sendable {
        case headReceived
        case answered
    }

    private let headerTimeout: @Sendable () -> TimeAmount
    private let idleTimeout: Int64
    private var inRequest = false
    /// When the pending request's head must have arrived (nil: no head pending).
    private var headerDeadline: NIODeadline?
    private var lastActivity = NIODeadline.uptimeNanoseconds(0)
    /// The one timer: it fires at `timerAt`, finds which deadline passed, or arms itself again.
    private var timer: Scheduled<Void>?
    private var timerAt = NIODeadline.distantFuture
    /// This handler's own context, for the direct calls (set while it is in a pipeline).
    private var context: ChannelHandlerContext?

    /// `idleTimeout` zero or less: connections are never closed for being idle.
    package init(headerTimeout: @escaping @Sendable () -> TimeAmount, idleTimeout: TimeAmount) {
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout.nanoseconds
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        lastActivity = context.eventLoop.now
        armIdle(context)
    }

    package func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// A request's head was parsed (on the channel's loop): its header deadline is met, and the
    /// connection is not idle until the answer ends.
    package func headReceived() {
        inRequest = true
        headerDeadline = nil
    }

    /// The answer ended (on the channel's loop): the idle deadline counts from now.
    package func answered() {
        guard let context, context.channel.isActive else { return } // a closed connection needs no timer
        inRequest = false
        lastActivity = context.eventLoop.now
        armIdle(context)
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let now = context.eventLoop.now
        lastActivity = now
        if !inRequest && headerDeadline == nil { headerDeadline = now + headerTimeout() }
        context.fireChannelRead(data)
        // Usually the head parsed within this read (`headReceived` cleared the deadline): no timer
        // is touched. Only a head still incomplete needs the timer by its deadline.
        if !inRequest, let deadline = headerDeadline { arm(context, at: deadline) }
    }

    package func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let event = event as? Event else {
            return context.triggerUserOutboundEvent(event, promise: promise)
        }
        switch event {
        case .headReceived: headReceived()
        case .answered: answered()
        }
        promise?.succeed(())
    }

    package func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    private func armIdle(_ context: ChannelHandlerContext) {
        if idleTimeout > 0 { arm(context, at: lastActivity + .nanoseconds(idleTimeout)) }
    }

    /// Makes sure the timer fires by `deadline` (an earlier timer stays: it re-arms when it fires).
    private func arm(_ context: ChannelHandlerContext, at deadline: NIODeadline) {
        if timer != nil && timerAt <= deadline { return }
        timer?.cancel()
        timerAt = deadline
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = bound.value
            handler.timer = nil
            handler.timerAt = .distantFuture
            handler.fire(context)
        }
    }

    private func fire(_ context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        let now = context.eventLoop.now
        if !inRequest, let deadline = headerDeadline {
            // A head is on its way: its deadline governs (idle does not apply to it). Only a
            // deadline still ahead is armed, so the timer never spins on one already past.
            if deadline <= now { return answerHeaderTimeout(context) }
            return arm(context, at: deadline)
        }
        // In a request, the idle deadline counts again from its answer (`answered`).
        guard idleTimeout > 0, !inRequest else { return }
        let idleAt = lastActivity + .nanoseconds(idleTimeout)
        if idleAt <= now { return context.close(promise: nil) }
        arm(context, at: idleAt)
    }

    /// The head never parsed, so no HTTP encoder can frame an answer: a canned 408, written from
    /// here (this handler is first; nothing before it expects HTTP parts).
    private func answerHeaderTimeout(_ context: ChannelHandlerContext) {
        headerDeadline = nil
        let body = #"{"error":{"message":"The request headers did not arrive within server.header_timeout.","type":"invalid_request_error","param":null,"code":"request_timeout"}}"#
        var buffer = context.channel.allocator.buffer(capacity: body.utf8.count + 128)
        buffer.writeString("HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            + "content-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n" + body)
        let channel = context.channel
        context.writeAndFlush(NIOAny(buffer)).whenComplete { _ in channel.close(promise: nil) }
    }
}

extension ChannelPipeline.SynchronousOperations {
    /// The gateway's HTTP/1.1 server pipeline, ending with `handler`: deadlines, the HTTP/1.1 codec
    /// with pipelining (header validation is the handler's own, in GatewayHTTPHandler.framing),
    /// then `inspector` if given (the fuzz target's), then the handler.
    package func addGatewayHandlers(_ handler: GatewayHTTPHandler, runtime: GatewayRuntime, idleTimeout: TimeAmount,
                            inspector: (any ChannelHandler)? = nil) throws
    {
        let deadlines = ConnectionDeadlineHandler(headerTimeout: {
            .milliseconds(runtime.gateway.configuration.server.headerTimeout.milliseconds)
        }, idleTimeout: idleTimeout)
        try addHandler(deadlines)
        // Told by direct calls: an outbound user event would be boxed in `Any`, walked down the
        // pipeline and cast back, twice a request.
        handler.deadlines = deadlines
        // Parse errors reach GatewayHTTPHandler.errorCaught (an OpenAI-shaped answer).
        try addHandler(HTTPServerCodec())
        if let inspector { try addHandler(inspector) }
        try addHandler(handler)
    }
}
