import NIOCore

/// server.header_timeout, like nginx's client_header_timeout: from the first byte of a request
/// until its head is parsed. It sits before the HTTP decoder and sees raw bytes, so a client that
/// trickles a header block a byte at a time (each byte resetting idle_timeout) is still cut off.
/// GatewayHTTPHandler tells it, as outbound user events, when a head arrived and when the answer
/// ended; between the two it does nothing (body timing is the handler's).
final class HeaderDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = Any
    typealias OutboundOut = Any

    enum Event: Sendable {
        case headReceived
        case answered
    }

    private let timeout: @Sendable () -> TimeAmount
    private var inRequest = false
    private var deadline: Scheduled<Void>?

    init(timeout: @escaping @Sendable () -> TimeAmount) { self.timeout = timeout }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !inRequest && deadline == nil {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            deadline = context.eventLoop.scheduleTask(in: timeout()) {
                // The head never parsed, so no HTTP encoder can frame an answer: a canned 408,
                // written from here (this handler is first; nothing before it expects HTTP parts).
                let context = bound.value
                let body = #"{"error":{"message":"The request headers did not arrive within server.header_timeout.","type":"invalid_request_error","param":null,"code":"request_timeout"}}"#
                var buffer = context.channel.allocator.buffer(capacity: body.utf8.count + 128)
                buffer.writeString("HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                    + "content-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n" + body)
                let channel = context.channel
                context.writeAndFlush(NIOAny(buffer)).whenComplete { _ in channel.close(promise: nil) }
            }
        }
        context.fireChannelRead(data)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let event = event as? Event else {
            return context.triggerUserOutboundEvent(event, promise: promise)
        }
        switch event {
        case .headReceived:
            inRequest = true
            deadline?.cancel()
            deadline = nil
        case .answered:
            inRequest = false
        }
        promise?.succeed(())
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }
}
