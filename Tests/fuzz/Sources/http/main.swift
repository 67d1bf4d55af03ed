// libFuzzer target: raw bytes from a client connection, through the server's real channel
// pipeline on an EmbeddedChannel: ConnectionDeadlineHandler, the HTTP/1.1 server codec
// (PrismHTTP1: parsing, framing, pipelining) and GatewayHTTPHandler, which runs
// the gateway's own checks on each request (body size and time limits, routes and methods, the
// operational routes, the JSON body, `model`, x-prism-request-id, x-prism-provider-lock) and
// proxies what passes through the middleware chain (the auth plugin), the route planner and the
// mock provider plugin, which answers locally (no network): streamed or not.
//
// The input is what the client sends, cut into a few reads at points derived from the input.
// Checked besides crashes and sanitizer reports: every response the handler writes is framed
// head, body..., end, with a valid status and header lines that cannot be split; no request
// gets two answers; once every deadline has passed, a connection still open has answered every
// request it read.
//
// Plugins come from PRISM_FUZZ_PLUGINS (default .build-fuzz/plugins): middleware-auth.so and
// provider-mock.so, instrumented like this program (scripts/fuzz.sh builds them).

import FuzzSupport
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import PrismCore
import PrismHTTP1
import PrismWire

#if canImport(Glibc)
import Glibc
#endif

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .critical
    return handler
}

let pluginsDirectory = getenv("PRISM_FUZZ_PLUGINS").map { String(cString: $0) } ?? ".build-fuzz/plugins"

/// Two mock providers behind model names, aliases and fallbacks; client keys on; the operational
/// routes open; small limits so that the fuzzer reaches them. No spend ledger: it would write an
/// SQLite file into the working directory and grow with every request.
let configurationText = """
server:
  operational_routes: public
  max_request_body_size: 4096
  read_timeout: 5s
  body_timeout: 20s
  header_timeout: 10s
providers:
  mock:
    type: mock
    models: [mock-gpt, mock-gpt-mini, mock-embedding]
  fixed:
    type: mock
    reply: "a fixed answer"
    models: [mock-gpt, fixed-gpt]
auth:
  enabled: true
  keys:
    - name: fuzz
      key: sk-fuzz-client-key
    - name: limited
      key: sk-fuzz-mini-only
      models: [mock-gpt-mini]
routing:
  model_fallbacks:
    mock-gpt-mini: [mock-gpt]
model_map:
  gpt-4o: mock-gpt
logging:
  level: error
spend_ledger:
  enabled: false
"""

var loader = ConfigLoader(environment: { _ in nil })
let configuration: GatewayConfiguration
do {
    configuration = try loader.load(text: configurationText, file: "<fuzz-http>").0
} catch {
    fatalError("the fuzz configuration does not load: \(error)")
}
var quiet = Logger(label: "prism.fuzz")
quiet.logLevel = .critical
let runtime: GatewayRuntime
do {
    runtime = try GatewayRuntime(file: configuration, configPath: nil, pluginsDirectoryOverride: pluginsDirectory,
                                 defaultPluginsDirectory: pluginsDirectory, logger: quiet)
} catch {
    fatalError("the gateway does not start on \(pluginsDirectory): \(error)")
}
require(runtime.gateway.providers.count == 2, "the mock provider plugin was not loaded from \(pluginsDirectory)")

/// Sits between the HTTP codec and GatewayHTTPHandler: counts the request heads the handler is
/// given and checks the response parts it writes.
final class ExchangeChecker: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = ServerResponsePart
    typealias OutboundOut = ServerResponsePart

    var requests = 0
    var responses = 0
    var inResponse = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        trace("request part: \(part)")
        if case .head = part { requests += 1 }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let part = unwrapOutboundIn(data)
        trace("response part: \(part)\(context.channel.isActive ? "" : " (connection closed)")")
        // Closing fires the decoder's end-of-input error, which the handler answers: on a closed
        // channel that write fails and sends nothing, so only writes while open count.
        guard context.channel.isActive else { return context.write(data, promise: promise) }
        switch part {
        case .body:
            require(inResponse, "a response body part outside a response")
        case .end:
            require(inResponse, "a response end outside a response")
            inResponse = false
        case let .streamHead(head):
            require(!inResponse, "a stream head while the previous response is not finished")
            require((200...599).contains(head.status.code), "response status \(head.status.code)")
            inResponse = true
            responses += 1
            require(responses <= requests + 1, "\(responses) responses to \(requests) requests")
        case let .whole(answer):
            require(!inResponse, "a whole answer while the previous response is not finished")
            require((200...599).contains(answer.status.code), "response status \(answer.status.code)")
            responses += 1
            require(responses <= requests + 1, "\(responses) responses to \(requests) requests")
        }
        context.write(data, promise: promise)
    }
}

/// Up to three cut points, from a hash of the input.
func cuts(_ bytes: UnsafeRawBufferPointer) -> [Int] {
    var hash: UInt64 = 0xcbf29ce484222325
    for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
    guard bytes.count > 1 else { return [bytes.count] }
    var points = (0..<Int(hash % 4)).map { index in Int((hash >> (8 + 16 * UInt64(index))) % UInt64(bytes.count)) }
    points.append(bytes.count)
    return points.sorted()
}

/// Reads what the gateway wrote. A buffer that starts an answer (the codec writes a head and
/// what it holds of the body as one) must have a head whose every header line is a token, a
/// colon and a value with no control byte: no input may split an answer.
func drain(_ channel: EmbeddedChannel) {
    while let buffer = try? channel.readOutbound(as: ByteBuffer.self) {
        let bytes = Array(buffer.readableBytesView)
        guard bytes.starts(with: Array("HTTP/1.".utf8)) else { continue }
        var lines: [ArraySlice<UInt8>] = []
        var start = 0, index = 0
        while index + 1 < bytes.count {
            if bytes[index] == 0x0D && bytes[index + 1] == 0x0A {
                if index == start { break } // the blank line ends the head
                lines.append(bytes[start..<index])
                index += 2
                start = index
            } else {
                index += 1
            }
        }
        for line in lines.dropFirst() {
            let text = String(decoding: line, as: UTF8.self)
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex else {
                fatalError("an answer header line without a name: \(text.debugDescription)")
            }
            require(line[line.startIndex..<colon].allSatisfy { $0 > 0x20 && $0 < 0x7F }, "answer header name in \(text.debugDescription)")
            require(!line[colon...].contains { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }, "answer header value in \(text.debugDescription)")
        }
    }
}

runFuzzer { bytes in
    let channel = EmbeddedChannel()
    let checker = ExchangeChecker()
    do {
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addGatewayHandlers(GatewayHTTPHandler(runtime: runtime), runtime: runtime, idleTimeout: .seconds(60),
                                        inspector: checker)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
    } catch {
        fatalError("pipeline setup: \(error)")
    }
    inPieces(bytes, cuts: cuts(bytes)) { piece in
        guard channel.isActive else { return }
        trace("read: \(String(decoding: piece, as: UTF8.self).debugDescription)")
        var buffer = channel.allocator.buffer(capacity: piece.count)
        buffer.writeBytes(piece)
        _ = try? channel.writeInbound(buffer)
        channel.embeddedEventLoop.run()
        drain(channel)
    }
    // Past every deadline: header, read and body timeouts answer what is still waiting.
    channel.embeddedEventLoop.advanceTime(by: .seconds(30))
    drain(channel)
    if channel.isActive {
        require(!checker.inResponse, "a response left unfinished")
        require(checker.responses == checker.requests,
                     "\(checker.requests) requests read but \(checker.responses) answered on an open connection")
    }
    _ = try? channel.finish(acceptAlreadyClosed: true)
}
