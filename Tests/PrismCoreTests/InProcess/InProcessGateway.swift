import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest

import PrismCore
import PrismSupport

/// The gateway's whole request path in this process: the real configuration loader, plugins
/// loaded with dlopen (the debug build's `.so` files, beside this test binary), the channel
/// pipeline HTTPServer uses on an EmbeddedChannel, and a scripted transport in libcurl's place.
/// Only the sockets and libcurl are not the gateway's own.
final class InProcessGateway {
    let runtime: GatewayRuntime
    let transport: ScriptedTransport

    /// The directory of the first-party plugins `swift build` made for this test binary.
    static var pluginsDirectory: String {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = binary.deletingLastPathComponent()
        // On Linux the test bundle is an executable in the build directory; elsewhere it may be a
        // bundle whose executable sits deeper.
        for _ in 0..<4 where !FileManager.default.fileExists(atPath: directory.appendingPathComponent("libPrismProviderOpenAI.so").path) {
            directory = directory.deletingLastPathComponent()
        }
        return directory.path
    }

    init(configuration text: String, reply: @escaping @Sendable (ScriptedTransport.Request) -> ScriptedTransport.Reply) throws {
        let directory = InProcessGateway.pluginsDirectory
        guard FileManager.default.fileExists(atPath: directory + "/libPrismProviderOpenAI.so") else {
            throw InProcessError("no plugins beside the test binary in \(directory): `swift build --build-tests` makes them")
        }
        var loader = ConfigLoader(environment: { _ in nil })
        let configuration = try loader.load(text: text, file: "in-process.yaml").0
        var logger = Logger(label: "in-process")
        logger.logLevel = .critical
        transport = ScriptedTransport(reply: reply)
        runtime = try GatewayRuntime(file: configuration, configPath: nil, pluginsDirectoryOverride: directory,
                                     defaultPluginsDirectory: directory, logger: logger, transport: transport)
        let refused = runtime.services.registry.refusals.map { "\($0.file): \($0.reason)" }
        XCTAssertEqual(refused, [], "plugins refused")
    }

    /// A new client connection on the server's own pipeline.
    func connect() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addGatewayHandlers(GatewayHTTPHandler(runtime: runtime), runtime: runtime,
                                                               idleTimeout: .seconds(60))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
        return channel
    }

    /// Sends one request on a new connection and runs the event loop until its answer is whole.
    func send(_ method: String = "POST", _ path: String, headers: [(String, String)] = [], body: [UInt8] = [])
        throws -> ClientResponse
    {
        let exchange = try open(method, path, headers: headers, body: body)
        defer { exchange.close() }
        for _ in 0..<1000 {
            guard let response = try exchange.pump() else { continue }
            // Nothing may follow the answer (a second ending, bytes after the last chunk).
            _ = try exchange.pump()
            guard exchange.received.count == response.length else {
                throw InProcessError("\(exchange.received.count - response.length) bytes after the answer: "
                    + String(decoding: exchange.received.suffix(exchange.received.count - response.length).prefix(300), as: UTF8.self))
            }
            return response
        }
        throw InProcessError("no whole answer; received \(exchange.received.count) bytes: "
            + String(decoding: exchange.received.prefix(600), as: UTF8.self))
    }

    /// Writes one request on a new connection; the caller runs the loop (and moves its virtual
    /// clock) with the exchange.
    func open(_ method: String = "POST", _ path: String, headers: [(String, String)] = [], body: [UInt8] = [],
              prepare: (EmbeddedChannel) -> Void = { _ in }) throws -> ClientExchange
    {
        let channel = try connect()
        prepare(channel)
        var head = "\(method) \(path) HTTP/1.1\r\nHost: prism.test\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if !body.isEmpty || method == "POST" { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        try channel.writeInbound(channel.allocator.buffer(bytes: Array(head.utf8) + body))
        return ClientExchange(channel: channel, transport: transport)
    }

    /// A JSON body POSTed with its content type.
    func post(_ path: String, json: String, headers: [(String, String)] = []) throws -> ClientResponse {
        try send("POST", path, headers: [("Content-Type", "application/json")] + headers, body: Array(json.utf8))
    }
}

/// One client connection's request in flight.
final class ClientExchange {
    let channel: EmbeddedChannel
    let transport: ScriptedTransport
    private(set) var received: [UInt8] = []

    init(channel: EmbeddedChannel, transport: ScriptedTransport) {
        self.channel = channel
        self.transport = transport
    }

    /// Runs what is due on the event loop and the upstream's deliveries; the answer once it is whole.
    func pump() throws -> ClientResponse? {
        repeat { channel.embeddedEventLoop.run() } while transport.runDeliveries()
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            received += buffer.readBytes(length: buffer.readableBytes) ?? []
        }
        return ClientResponse(parsing: received)
    }

    /// Moves the loop's virtual clock (timers due by then fire).
    func advance(by amount: TimeAmount) { channel.embeddedEventLoop.advanceTime(by: amount) }

    func close() { _ = try? channel.finish(acceptAlreadyClosed: true) }
}

struct InProcessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// What the client got, read off the connection's bytes.
struct ClientResponse {
    let status: Int
    /// Lower-case names, in order.
    let headers: [(String, String)]
    let body: [UInt8]
    /// The response's bytes on the connection (head, framing, body).
    let length: Int

    var text: String { String(decoding: body, as: UTF8.self) }

    func header(_ name: String) -> String? { headers.last { $0.0 == name }?.1 }

    /// The `data` of each event of an event stream, in order (its lines joined; comments skipped),
    /// as an SSE client reads them.
    var events: [String] {
        var events: [String] = []
        var data: [String] = []
        var seenField = false
        // Lines end with LF or CRLF (split on bytes: "\r\n" is one Character).
        for bytes in body.split(separator: 0x0A, omittingEmptySubsequences: false) {
            let line = Substring(decoding: bytes.last == 0x0D ? bytes.dropLast() : bytes, as: UTF8.self)
            if line.isEmpty {
                if seenField { events.append(data.joined(separator: "\n")) }
                data = []
                seenField = false
                continue
            }
            if line.hasPrefix(":") { continue }
            let name = line.prefix { $0 != ":" }
            var value = line.dropFirst(name.count).dropFirst()
            if value.hasPrefix(" ") { value = value.dropFirst() }
            seenField = true
            if name == "data" { data.append(String(value)) }
        }
        if seenField { events.append(data.joined(separator: "\n")) }
        return events
    }

    /// nil until the bytes hold a whole response (Content-Length or chunked to its last chunk).
    init?(parsing bytes: [UInt8]) {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = bytes.indices.dropLast(3).first(where: { Array(bytes[$0..<$0 + 4]) == separator }) else { return nil }
        let lines = String(decoding: bytes[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { return nil }
        let headers = lines.dropFirst().compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        var rest = Array(bytes[(end + 4)...])
        let headLength = end + 4
        if headers.contains(where: { $0.0 == "transfer-encoding" && $0.1.lowercased() == "chunked" }) {
            var body: [UInt8] = []
            var consumed = headLength
            while true {
                guard let lineEnd = rest.indices.dropLast().first(where: { rest[$0] == 13 && rest[$0 + 1] == 10 }),
                      let size = Int(String(decoding: rest[..<lineEnd], as: UTF8.self), radix: 16)
                else { return nil }
                guard rest.count >= lineEnd + 2 + size + 2 else { return nil }
                consumed += lineEnd + 2 + size + 2
                if size == 0 { break }
                body += rest[(lineEnd + 2)..<(lineEnd + 2 + size)]
                rest = Array(rest[(lineEnd + 2 + size + 2)...])
            }
            self.init(status: status, headers: headers, body: body, length: consumed)
        } else {
            let length = headers.last { $0.0 == "content-length" }.flatMap { Int($0.1) } ?? 0
            guard rest.count >= length else { return nil }
            self.init(status: status, headers: headers, body: Array(rest.prefix(length)), length: headLength + length)
        }
    }

    init(status: Int, headers: [(String, String)], body: [UInt8], length: Int) {
        self.status = status
        self.headers = headers
        self.body = body
        self.length = length
    }
}

/// Plays the upstream in libcurl's place: each transfer is recorded and answered from a script,
/// delivered to its delegate as the loop's libcurl handle would (head, body chunks, end; a delegate
/// that pauses is resumed only by `resume`, and gets the chunk it refused again), and like it never
/// from inside `start` or `resume`:
/// deliveries wait for `runDeliveries` (the exchange's `pump`).
final class ScriptedTransport: UpstreamTransport, @unchecked Sendable {
    /// An upstream request as the provider plugin built it.
    struct Request: Sendable {
        let method: String
        let url: String
        /// Lower-case names, in order.
        let headers: [(String, String)]
        let body: [UInt8]
        let streaming: Bool

        /// The URL's path with its query.
        var path: String {
            guard let scheme = url.range(of: "://"), let slash = url[scheme.upperBound...].firstIndex(of: "/") else { return "/" }
            return String(url[slash...])
        }

        func header(_ name: String) -> String? { headers.last { $0.0 == name }?.1 }
    }

    struct Reply: Sendable {
        var status = 200
        var headers: [(String, String)] = [("content-type", "application/json")]
        var chunks: [[UInt8]] = []
        /// The transfer fails after the chunks (nil: it completes).
        var failure: TransportFailure?

        static func json(_ status: Int = 200, _ body: String, headers: [(String, String)] = []) -> Reply {
            Reply(status: status, headers: [("content-type", "application/json")] + headers, chunks: [Array(body.utf8)])
        }

        static func events(_ events: [String], status: Int = 200) -> Reply {
            Reply(status: status, headers: [("content-type", "text/event-stream")],
                  chunks: events.map { Array("data: \($0)\n\n".utf8) })
        }
    }

    private let reply: @Sendable (Request) -> Reply
    private let state = NIOLockedValueBox<(requests: [Request], cancelled: Int, paused: [(Transfer, ArraySlice<[UInt8]>, TransportFailure?)])>(
        ([], 0, []))

    init(reply: @escaping @Sendable (Request) -> Reply) { self.reply = reply }

    var requests: [Request] { state.withLockedValue { $0.requests } }
    /// Transfers their delegate paused (backpressure), waiting for `resume`.
    var paused: Int { state.withLockedValue { $0.paused.count } }
    var cancelled: Int { state.withLockedValue { $0.cancelled } }

    func start(_ transfer: Transfer) {
        let request = Request(method: transfer.method, url: transfer.url,
                              headers: transfer.headers.map { ($0.0.lowercased(), $0.1) }, body: transfer.body,
                              streaming: transfer.streaming)
        state.withLockedValue { $0.requests.append(request) }
        let answer = reply(request)
        later {
            transfer.delegate.transferReceivedHead(status: answer.status, headers: HeaderBlock(answer.headers))
            self.deliver(transfer, answer.chunks[...], answer.failure)
        }
    }

    private let deliveries = NIOLockedValueBox<[@Sendable () -> Void]>([])

    private func later(_ delivery: @escaping @Sendable () -> Void) { deliveries.withLockedValue { $0.append(delivery) } }

    /// Runs the deliveries waiting; false when there were none.
    func runDeliveries() -> Bool {
        let due = deliveries.withLockedValue { waiting in
            defer { waiting.removeAll() }
            return waiting
        }
        for delivery in due { delivery() }
        return !due.isEmpty
    }

    private func deliver(_ transfer: Transfer, _ chunks: ArraySlice<[UInt8]>, _ failure: TransportFailure?) {
        var rest = chunks
        while let chunk = rest.first {
            let goOn = chunk.withUnsafeBytes { transfer.delegate.transferReceived($0) }
            if !goOn {
                // As libcurl does: the chunk the pause refused comes again on resume.
                state.withLockedValue { $0.paused.append((transfer, rest, failure)) }
                return
            }
            rest = rest.dropFirst()
        }
        transfer.delegate.transferCompleted(failure)
    }

    func cancel(_ transfer: Transfer) {
        state.withLockedValue { state in
            state.cancelled += 1
            state.paused.removeAll { $0.0 === transfer }
        }
    }

    func resume(_ transfer: Transfer) {
        let paused = state.withLockedValue { state -> (ArraySlice<[UInt8]>, TransportFailure?)? in
            guard let index = state.paused.firstIndex(where: { $0.0 === transfer }) else { return nil }
            let entry = state.paused.remove(at: index)
            return (entry.1, entry.2)
        }
        if let (chunks, failure) = paused { later { self.deliver(transfer, chunks, failure) } }
    }
}
