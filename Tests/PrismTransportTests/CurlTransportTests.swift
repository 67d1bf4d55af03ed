import Dispatch
import Foundation
import PrismLoop
import PrismSupport
import PrismTransport
import Synchronization
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// libcurl on the gateway's loops against a real socket: what reaches the upstream is the method
/// and the whole body the transfer names, on both body paths (a copy sent with the head up to
/// 64 KiB, libcurl's read callback past it).
final class CurlTransportTests: XCTestCase {
    static let group = IOLoopGroup(count: 2)
    static let transport = CurlTransport(group: group, maximumIdleConnections: 4)

    func testEveryMethodSendsItsWholeBodyOnBothPaths() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let large = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let small = Array("{\"small\":true}".utf8)
        let cases: [(String, [UInt8])] = [("PUT", large), ("PATCH", large), ("DELETE", large), ("POST", large),
                                          ("PUT", small), ("GET", []), ("PATCH", small), ("POST", small), ("DELETE", []),
                                          ("GET", [])]
        // Twice over, forwards then backwards: each loop's easy handles are reused with their
        // options, so every method and body path follows every other on some handle.
        let sequence = cases + cases.reversed() + cases
        for (method, body) in sequence {
            let answer = try send(method: method, body: body, to: upstream)
            XCTAssertEqual(answer.status, 200, "\(method) \(body.count) bytes")
            XCTAssertEqual(String(decoding: answer.body, as: UTF8.self), "ok")
            // Only the final answer's fields (after a 100 Continue too), names lower-cased.
            XCTAssertEqual(answer.headers, ["content-length: 2", "content-type: text/plain"], "\(method) \(body.count) bytes")
            let seen = try XCTUnwrap(upstream.requests.withLock { $0.last })
            XCTAssertEqual(seen.method, method)
            if method == "GET" { XCTAssertNil(seen.contentLength, "a GET after a body sent one") }
            XCTAssertEqual(seen.body.count, body.count, "\(method): the upstream got a different length")
            XCTAssertTrue(seen.body == body, "\(method) \(body.count) bytes: the upstream got different bytes")
        }
        XCTAssertEqual(upstream.requests.withLock { $0.count }, sequence.count)
    }

    func testAGETSendsNoBody() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        XCTAssertEqual(try send(method: "GET", body: [], to: upstream).status, 200)
        let seen = try XCTUnwrap(upstream.requests.withLock { $0.last })
        XCTAssertEqual(seen.method, "GET")
        XCTAssertNil(seen.contentLength)
    }

    /// Each transfer reaches its own URL's host and target, whichever handle served the one
    /// before (a handle keeps the last transfer's parsed URL until the next sets its own), and a
    /// URL libcurl refuses fails without touching the next.
    func testEachTransferReachesItsOwnURL() throws {
        let upstream = try RecordingUpstream(), other = try RecordingUpstream()
        defer {
            upstream.stop()
            other.stop()
        }
        let (port, otherPort) = (upstream.port, other.port)
        let cases: [(url: String, host: String, target: String)] = [
            ("http://127.0.0.1:\(port)/v1/chat/completions", "127.0.0.1:\(port)", "/v1/chat/completions"),
            ("http://127.0.0.1:\(port)/v1/models?limit=2&after=a%20b", "127.0.0.1:\(port)", "/v1/models?limit=2&after=a%20b"),
            ("http://localhost:\(otherPort)/other/path#fragment", "localhost:\(otherPort)", "/other/path"),
            ("http://127.0.0.1:\(otherPort)", "127.0.0.1:\(otherPort)", "/"),
            ("http://127.0.0.1:\(port)/v1/embeddings", "127.0.0.1:\(port)", "/v1/embeddings"),
        ]
        for round in 0..<3 {
            for (index, expected) in cases.enumerated() {
                let answer = try send(method: "POST", body: Array("{}".utf8), url: expected.url)
                XCTAssertEqual(answer.status, 200, expected.url)
                let seen = try XCTUnwrap((expected.host.hasSuffix("\(port)") ? upstream : other).requests.withLock { $0.last })
                XCTAssertEqual(seen.target, expected.target, "round \(round), \(expected.url)")
                XCTAssertEqual(seen.host, expected.host, "round \(round), \(expected.url)")
                if index == 2 {
                    // A URL that does not parse fails as libcurl reports it; the next is unharmed.
                    XCTAssertThrowsError(try send(method: "POST", body: [], url: "http://127.0.0.1:\(port)/a b\u{1}"))
                }
            }
        }
    }

    private func send(method: String, body: [UInt8], to upstream: RecordingUpstream) throws -> Collector.Answer {
        try send(method: method, body: body, url: "http://127.0.0.1:\(upstream.port)/v1/thing")
    }

    private func send(method: String, body: [UInt8], url: String) throws -> Collector.Answer {
        let collector = Collector()
        let transfer = Transfer(method: method, url: url,
                                headers: [("Content-Type", "application/octet-stream")], body: body,
                                timeoutMilliseconds: 5000, streaming: false, gate: nil, delegate: collector)
        Self.transport.start(transfer)
        XCTAssertEqual(collector.done.wait(timeout: .now() + 10), .success, "\(method): no answer")
        return try collector.answer.withLock { answer in
            if let failure = answer.failure { throw failure }
            return answer
        }
    }
}

/// Hears one transfer's answer.
private final class Collector: TransferDelegate, @unchecked Sendable {
    struct Answer {
        var status = 0
        /// "name: value", as the transport reports them (names lower-cased).
        var headers: [String] = []
        var body: [UInt8] = []
        var failure: TransportFailure?
    }

    let answer = Mutex(Answer())
    let done = DispatchSemaphore(value: 0)

    func transferReceivedHead(status: Int, headers: HeaderBlock) {
        answer.withLock {
            $0.status = status
            $0.headers = headers.pairs.map { "\($0.0): \($0.1)" }
        }
    }
    func transferReceived(_ bytes: UnsafeRawBufferPointer) -> Bool {
        answer.withLock { $0.body += bytes }
        return true
    }

    func transferCompleted(_ failure: TransportFailure?) {
        answer.withLock { $0.failure = failure }
        done.signal()
    }
}

/// An HTTP/1.1 upstream on an ephemeral port: reads each request (Content-Length bodies, kept
/// alive), records its method and body, and answers 200 "ok".
private final class RecordingUpstream: @unchecked Sendable {
    struct Request {
        let method: String
        let target: String
        let host: String?
        let contentLength: Int?
        let body: [UInt8]
    }

    let requests = Mutex<[Request]>([])
    let port: Int
    private let listener: Int32
    private let finished = DispatchSemaphore(value: 0)

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        self.listener = listener
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// Closing the listener ends the accept loop (shutdown wakes a blocked accept).
    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        _ = finished.wait(timeout: .now() + 5)
    }

    private func acceptLoop() {
        defer { finished.signal() }
        while true {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            Thread { [self] in serve(connection) }.start()
        }
    }

    private func serve(_ connection: Int32) {
        defer { close(connection) }
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        func fill() -> Bool {
            let count = chunk.withUnsafeMutableBytes { read(connection, $0.baseAddress, $0.count) }
            guard count > 0 else { return false }
            pending += chunk[0..<count]
            return true
        }
        while true {
            var headEnd: Int?
            while headEnd == nil {
                headEnd = pending.indices.dropLast(3).first { pending[$0..<$0 + 4].elementsEqual("\r\n\r\n".utf8) }
                if headEnd == nil && !fill() { return }
            }
            let head = String(decoding: pending[0..<headEnd!], as: UTF8.self).split(separator: "\r\n")
            pending.removeFirst(headEnd! + 4)
            let requestLine = head.first?.split(separator: " ") ?? []
            let method = String(requestLine.first ?? "")
            let target = requestLine.count > 1 ? String(requestLine[1]) : ""
            var host: String?
            var contentLength: Int?
            var expectsContinue = false
            for line in head.dropFirst() {
                let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2 else { continue }
                if parts[0].lowercased() == "content-length" { contentLength = Int(parts[1]) }
                if parts[0].lowercased() == "host" { host = parts[1] }
                if parts[0].lowercased() == "expect" && parts[1].lowercased() == "100-continue" { expectsContinue = true }
            }
            if expectsContinue { writeAll(connection, Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)) }
            let want = contentLength ?? 0
            while pending.count < want { if !fill() { return } }
            let body = Array(pending[0..<want])
            pending.removeFirst(want)
            requests.withLock { $0.append(Request(method: method, target: target, host: host, contentLength: contentLength, body: body)) }
            writeAll(connection, Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok".utf8))
        }
    }

    private func writeAll(_ connection: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { send(connection, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { return }
            offset += written
        }
    }
}
