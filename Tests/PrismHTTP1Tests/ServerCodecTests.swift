import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest

import PrismHTTP1

/// The HTTP/1.1 server codec on an EmbeddedChannel: requests parsed from bytes however they are
/// cut, pipelining held back until each answer ends, answers framed, bad input refused.
final class ServerCodecTests: XCTestCase {
    /// What reached the handler after the codec.
    private final class Recorder: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        var heads: [HTTPRequestHead] = []
        var bodies: [String] = []
        var ends = 0
        var readCompletes = 0
        var errors: [HTTPRequestError] = []
        /// Answers 413 as soon as a head arrives (as the gateway does for a declared length past its limit).
        var refuseHeads = false

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case let .head(head):
                heads.append(head)
                bodies.append("")
                if refuseHeads {
                    context.writeAndFlush(NIOAny(ServerResponsePart.whole(WholeAnswer(
                        status: .payloadTooLarge, headers: [], body: [], connection: "close"))), promise: nil)
                }
            case var .body(bytes):
                bodies[bodies.count - 1] += bytes.readString(length: bytes.readableBytes)!
            case .end:
                ends += 1
            }
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            readCompletes += 1
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            errors.append(error as! HTTPRequestError)
        }
    }

    /// Counts the reads that pass the codec towards the socket.
    private final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = Any
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    private var channel = EmbeddedChannel()
    private var recorder = Recorder()
    private var counter = ReadCounter()

    override func setUp() {
        channel = EmbeddedChannel()
        recorder = Recorder()
        counter = ReadCounter()
        XCTAssertNoThrow(try channel.pipeline.syncOperations.addHandlers([counter, HTTPServerCodec(maximumHeadSize: 1024), recorder]))
    }

    private func send(_ text: String) throws {
        try channel.writeInbound(channel.allocator.buffer(string: text))
    }

    private func written() throws -> [String] {
        var writes: [String] = []
        while let data = try channel.readOutbound(as: IOData.self) {
            guard case var .byteBuffer(buffer) = data else { XCTFail("a file region"); continue }
            writes.append(buffer.readString(length: buffer.readableBytes)!)
        }
        return writes
    }

    /// A whole answer (the codec frames it), and the loop's next turn, where a pipelined request
    /// comes.
    private func answer(_ status: HTTPResponseStatus = .ok, headers: [(String, String)] = [], body: String = "",
                        version: HTTPVersion = .http1_1, connection: String? = nil) throws
    {
        try channel.writeAndFlush(ServerResponsePart.whole(WholeAnswer(status: status, version: version, headers: headers,
                                                                        body: Array(body.utf8), connection: connection))).wait()
        channel.embeddedEventLoop.run()
    }

    /// A streamed answer: its head, each chunk flushed, the end.
    private func stream(_ head: StreamHead, _ chunks: [String]) throws {
        channel.write(ServerResponsePart.streamHead(head), promise: nil)
        for chunk in chunks {
            channel.writeAndFlush(ServerResponsePart.body(channel.allocator.buffer(string: chunk)), promise: nil)
        }
        try channel.writeAndFlush(ServerResponsePart.end).wait()
    }

    /// The word-at-a-time field value check against the byte rule: every byte value at every
    /// position of values 1 to 24 bytes long (a word's worth and the tail).
    func testTheFieldValueCheckIsTheByteRule() {
        for length in 1...24 {
            for position in 0..<length {
                for byte in UInt8.min...UInt8.max {
                    var value = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    value[position] = byte
                    let rule = byte >= 0x20 ? byte != 0x7F : byte == 0x09
                    XCTAssertEqual(value.withUnsafeBytes(isHTTPFieldValue), rule, "byte \(byte) at \(position) of \(length)")
                }
            }
        }
        XCTAssertTrue(Array("text/plain; q=0.5\tobs-text \u{e9}".utf8).withUnsafeBytes(isHTTPFieldValue))
    }

    /// The token bitmap against RFC 9110's rule, byte by byte.
    func testTheTokenMapIsTheRule() {
        let symbols = Set("!#$%&'*+-.^_`|~".utf8)
        for byte in UInt8.min...UInt8.max {
            let rule = (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || symbols.contains(byte)
            XCTAssertEqual(isHTTPToken(byte), rule, "byte \(byte)")
        }
        XCTAssertTrue("Content-LENGTH".equalsASCIIIgnoringCase("content-length"))
        XCTAssertFalse("content-lengthx".equalsASCIIIgnoringCase("content-length"))
        XCTAssertFalse("content_length".equalsASCIIIgnoringCase("content-length"))
    }

    func testARequestCutAtEveryByteParsesAsOne() throws {
        let request = "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: gw\r\nContent-Type:  application/json \r\n"
            + "Content-Length: 11\r\nX-Empty:\r\n\r\n{\"a\":\"bcd\"}"
        for byte in request.utf8 { try send(String(decoding: [byte], as: UTF8.self)) }
        XCTAssertEqual(recorder.heads.count, 1)
        let head = try XCTUnwrap(recorder.heads.first)
        XCTAssertEqual(head.method, .POST)
        XCTAssertEqual(head.uri, "/v1/chat/completions?x=1")
        XCTAssertEqual(head.version, .http1_1)
        XCTAssertEqual(head.headers.first(name: "content-type"), "application/json") // whitespace trimmed
        XCTAssertEqual(head.headers.first(name: "x-empty"), "")
        XCTAssertEqual(head.headers.count, 4)
        XCTAssertEqual(recorder.bodies, [#"{"a":"bcd"}"#])
        XCTAssertEqual(recorder.ends, 1)
        XCTAssertEqual(recorder.errors, [])
    }

    func testAChunkedBodyWithExtensionsAndTrailers() throws {
        try send("POST /x HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n5;name=value\r\nhello\r\n6\r\n world\r\n")
        XCTAssertEqual(recorder.bodies, ["hello world"])
        XCTAssertEqual(recorder.ends, 0)
        try send("0\r\nX-Trailer: 1\r\n\r\n")
        XCTAssertEqual(recorder.ends, 1)
        // The same cut at every byte.
        try answer()
        for byte in "POST /y HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nA;x=y\r\n0123456789\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n".utf8 {
            try send(String(decoding: [byte], as: UTF8.self))
        }
        XCTAssertEqual(recorder.bodies, ["hello world", "0123456789"])
        XCTAssertEqual(recorder.ends, 2)
        XCTAssertEqual(recorder.errors, [])
    }

    func testPipelinedRequestsWaitForEachAnswerAndReadsAreHeldMeanwhile() throws {
        try send("\r\nGET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nPOST /c HTTP/1.1\r\nContent-Length: 2\r\n\r\nok")
        XCTAssertEqual(recorder.heads.map(\.uri), ["/a"])
        let reads = counter.reads
        channel.read()
        XCTAssertEqual(counter.reads, reads, "a read while an answer is pending for a request read whole")
        try answer(body: "hi")
        XCTAssertEqual(recorder.heads.map(\.uri), ["/a", "/b"])
        XCTAssertEqual(counter.reads, reads, "the held read waits while /b is answered")
        try answer()
        XCTAssertEqual(recorder.heads.map(\.uri), ["/a", "/b", "/c"])
        XCTAssertEqual(recorder.bodies, ["", "", "ok"])
        try answer()
        XCTAssertEqual(counter.reads, reads + 1, "the held read goes once every request is answered")
        channel.read()
        XCTAssertEqual(counter.reads, reads + 2)
    }

    func testAnEmptyLineBeforeARequestIsSkippedEvenWhenItsCRAndLFArriveApart() throws {
        try send("GET /a HTTP/1.1\r\n\r\n")
        try answer()
        try send("\r")
        try send("\nGET /b HTTP/1.1\r\n\r\n") // found by the http1 fuzz target: this failed as "invalid method"
        XCTAssertEqual(recorder.heads.map(\.uri), ["/a", "/b"])
        XCTAssertEqual(recorder.errors, [])
    }

    func testA100ContinueGoesToAClientThatWaitsForIt() throws {
        try send("POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        XCTAssertEqual(try written(), ["HTTP/1.1 100 Continue\r\n\r\n"])
        try send("ok")
        XCTAssertEqual(recorder.bodies, ["ok"])
        try answer()
        XCTAssertEqual(try written(), ["HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"])
        // Not when the body came with the head, nor without a body, nor on HTTP/1.0.
        for request in ["POST /b HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nok",
                        "GET /c HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
                        "POST /d HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"] {
            try send(request)
            if request.contains("/d") { try send("ok") }
            try answer(version: request.contains("1.0") ? .http1_0 : .http1_1)
            XCTAssertFalse(try written().joined().contains("100 Continue"), request)
        }
        // Nor when the head is answered at once (a 413 for its declared length).
        setUp()
        recorder.refuseHeads = true
        try send("POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 99999999\r\n\r\n")
        XCTAssertEqual(try written().joined(), "HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    }

    func testAPipelinedRequestComesAfterItsPredecessorFinishedAndEndsWithReadComplete() throws {
        // The second request's body is incomplete: the handler arms its body timer on
        // channelReadComplete, so it must see one after the parts delivered when /a's answer ended.
        try send("GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
        let completes = recorder.readCompletes
        try channel.writeAndFlush(ServerResponsePart.whole(WholeAnswer(status: .ok, headers: [], body: []))).wait()
        XCTAssertEqual(recorder.heads.map(\.uri), ["/a"], "nothing of /b inside /a's answer")
        channel.embeddedEventLoop.run()
        XCTAssertEqual(recorder.heads.map(\.uri), ["/a", "/b"])
        XCTAssertEqual(recorder.bodies, ["", "abc"])
        XCTAssertEqual(recorder.readCompletes, completes + 1)
        // A parse error in the next request comes after the answer is out, not inside its write.
        setUp()
        try send("GET /a HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost : a\r\n\r\n")
        try channel.writeAndFlush(ServerResponsePart.whole(WholeAnswer(status: .ok, headers: [], body: Array("ok".utf8)))).wait()
        XCTAssertEqual(recorder.errors, [])
        XCTAssertEqual(try written(), ["HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"])
        channel.embeddedEventLoop.run()
        XCTAssertEqual(recorder.errors.map(\.reason), ["invalid header line"])
    }

    func testAnAnswerAfterAHEADAnswerHasItsBody() throws {
        try send("HEAD /a HTTP/1.1\r\n\r\n")
        try answer(body: "ok")
        XCTAssertEqual(try written().joined(), "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        try send("GET / HTTP/1.1\r\nBad Header\r\n\r\n")
        XCTAssertEqual(recorder.errors.count, 1)
        try answer(.badRequest, body: "no", connection: "close")
        XCTAssertEqual(try written().joined(), "HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno")
    }

    func testAReadPassesWhileTheRequestBodyIsStillArriving() throws {
        try send("POST /c HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345")
        let reads = counter.reads
        channel.read()
        XCTAssertEqual(counter.reads, reads + 1)
    }

    func testAWholeAnswerLeavesAsOneBuffer() throws {
        try send("GET /a HTTP/1.1\r\n\r\n")
        _ = try written()
        try answer(.ok, headers: [("content-type", "application/json")], body: #"{"a":1}"#)
        XCTAssertEqual(try written(), ["HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}"])
    }

    /// `.whole`: the codec writes the head from the header list, drops what may not be written
    /// (names that are not tokens, values with control bytes) and the caller's framing headers,
    /// and frames the body itself.
    func testAWholeAnswerPartIsFramedByTheCodec() throws {
        try send("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
        let headers = [("content-type", "application/json"), ("x-split", "a\r\nset-cookie: x=1"), ("bad name", "v"),
                       ("x-nul", "a\u{0}b"), ("x-tab", "a\tb"), ("x-utf8", "café"), ("", "empty name"), ("x-del", "a\u{7F}"),
                       ("Content-Length", "99"), ("Transfer-Encoding", "chunked"), ("x-b", "2")]
        try channel.writeAndFlush(ServerResponsePart.whole(WholeAnswer(status: .ok, headers: headers,
                                                                        body: Array(#"{"a":1}"#.utf8)))).wait()
        XCTAssertEqual(try written(), ["HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-tab: a\tb\r\nx-utf8: café\r\n"
            + "x-b: 2\r\ncontent-length: 7\r\n\r\n{\"a\":1}"])
        // The answer ended: the pipelined request comes on the loop's next turn.
        XCTAssertEqual(recorder.heads.map(\.uri), ["/a"])
        channel.embeddedEventLoop.run()
        XCTAssertEqual(recorder.heads.map(\.uri), ["/a", "/b"])
        // The codec's `connection` replaces the caller's, and "close" stops parsing.
        try send("GET /c HTTP/1.1\r\n\r\n")
        try channel.writeAndFlush(ServerResponsePart.whole(WholeAnswer(
            status: .tooManyRequests, headers: [("CONNECTION", "keep-alive"), ("retry-after", "2")], body: [],
            connection: "close"))).wait()
        XCTAssertEqual(try written(), ["HTTP/1.1 429 Too Many Requests\r\nretry-after: 2\r\ncontent-length: 0\r\n"
            + "connection: close\r\n\r\n"])
        channel.embeddedEventLoop.run()
        XCTAssertEqual(recorder.heads.map(\.uri), ["/a", "/b"], "nothing parsed after an answer that closes")
    }

    func testAWholeAnswerToHEADHasItsLengthAndNoBodyAnd204HasNeither() throws {
        try send("HEAD /healthz HTTP/1.0\r\n\r\n")
        try channel.writeAndFlush(ServerResponsePart.whole(WholeAnswer(
            status: .ok, version: .http1_0, headers: [("content-type", "application/json")],
            body: Array(#"{"status":"ok"}"#.utf8), connection: "keep-alive"))).wait()
        XCTAssertEqual(try written(), ["HTTP/1.0 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n"
            + "connection: keep-alive\r\n\r\n"])
        channel.embeddedEventLoop.run()
        try send("GET /a HTTP/1.1\r\n\r\n")
        try channel.writeAndFlush(ServerResponsePart.whole(WholeAnswer(status: .noContent, headers: [("x-a", "b")],
                                                                        body: Array("dropped".utf8)))).wait()
        XCTAssertEqual(try written(), ["HTTP/1.1 204 No Content\r\nx-a: b\r\n\r\n"])
        channel.embeddedEventLoop.run()
        // A caller's own `connection: close` still closes when the codec adds none.
        try send("GET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n")
        try channel.writeAndFlush(ServerResponsePart.whole(WholeAnswer(status: .ok, headers: [("Connection", "close")],
                                                                        body: Array("ok".utf8)))).wait()
        XCTAssertEqual(try written(), ["HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 2\r\n\r\nok"])
        channel.embeddedEventLoop.run()
        XCTAssertEqual(recorder.heads.map(\.uri), ["/healthz", "/a", "/b"])
    }

    /// `.streamHead`: a stream's head is written from the header list as a whole answer's is
    /// (only the headers that may be written; the caller's framing dropped; the codec's
    /// `connection` replacing the caller's), held for the first chunk, and the body chunked on
    /// HTTP/1.1, bare and delimited by the close on HTTP/1.0; a HEAD answer names the chunking
    /// and sends no body.
    func testAStreamHeadPartIsFramedByTheCodec() throws {
        try send("GET /a HTTP/1.1\r\n\r\nHEAD /b HTTP/1.1\r\n\r\n")
        let headers = [("content-type", "text/event-stream"), ("x-split", "a\r\nset-cookie: x=1"), ("bad name", "v"),
                       ("x-nul", "a\u{0}b"), ("x-tab", "a\tb"), ("x-utf8", "café"), ("", "empty name"), ("x-del", "a\u{7F}"),
                       ("Content-Length", "99"), ("Transfer-Encoding", "identity"), ("Connection", "keep-alive")]
        try stream(StreamHead(status: .ok, headers: headers), ["data: 1\n\n", String(repeating: "x", count: 300)])
        XCTAssertEqual(try written(), ["HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nx-tab: a\tb\r\n"
            + "x-utf8: café\r\nConnection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n",
            "12c\r\n" + String(repeating: "x", count: 300) + "\r\n", "0\r\n\r\n"], "the head leaves with the first chunk")
        channel.embeddedEventLoop.run()
        try stream(StreamHead(status: .ok, headers: [("content-type", "text/event-stream")]), ["data: 1\n\n"])
        XCTAssertEqual(try written().joined(), "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            + "transfer-encoding: chunked\r\n\r\n")
        channel.embeddedEventLoop.run()
        XCTAssertEqual(recorder.heads.map(\.uri), ["/a", "/b"])
        try send("GET /c HTTP/1.0\r\n\r\nGET /d HTTP/1.0\r\n\r\n")
        // On HTTP/1.0 the close delimits the body: the codec says so and ends parsing, even
        // when the caller asked for nothing (or for keep-alive).
        try stream(StreamHead(status: .ok, version: .http1_0,
                              headers: [("content-type", "text/event-stream"), ("CONNECTION", "keep-alive")]), ["data: 1\n\n"])
        XCTAssertEqual(try written().joined(), "HTTP/1.0 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
            + "data: 1\n\n")
        channel.embeddedEventLoop.run()
        XCTAssertEqual(recorder.heads.map(\.uri), ["/a", "/b", "/c"], "nothing parsed after a stream that closes")
    }

    func testHEADKeepsTheHeadersAndDropsTheBodyAnd204LosesItsFraming() throws {
        try send("HEAD /healthz HTTP/1.1\r\n\r\n")
        try answer(body: #"{"status":"ok"}"#)
        XCTAssertEqual(try written().joined(), "HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n")
        try send("GET /a HTTP/1.1\r\n\r\n")
        try answer(.noContent, headers: [("x-a", "b")])
        XCTAssertEqual(try written().joined(), "HTTP/1.1 204 No Content\r\nx-a: b\r\n\r\n")
        try send("GET /b HTTP/1.1\r\n\r\n")
        try answer(body: "ok")
        XCTAssertEqual(try written().joined(), "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", "the HEAD's suppression ended with it")
    }

    func testAnAnswerThatClosesEndsParsingButNotReading() throws {
        try send("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
        try answer(headers: [("Connection", "close")])
        XCTAssertEqual(recorder.heads.map(\.uri), ["/a"])
        let reads = counter.reads
        channel.read() // a lingering close reads and drops what the client still sends
        XCTAssertEqual(counter.reads, reads + 1)
        try send("GET /c HTTP/1.1\r\n\r\n")
        XCTAssertEqual(recorder.heads.map(\.uri), ["/a"])
    }

    func testBadInputIsAnErrorAndNothingAfterItIsRead() throws {
        let cases: [(String, String)] = [
            ("GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", "invalid header line"),
            ("GET / HTTP/1.1\r\nHost : x\r\n\r\n", "invalid header line"),
            ("GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n", "a header line is folded (obs-fold)"),
            ("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", "more than one Content-Length"),
            ("POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\nx", "invalid Content-Length"),
            ("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
            ("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "both Content-Length and Transfer-Encoding"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "unsupported Transfer-Encoding"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "unsupported Transfer-Encoding"),
            ("GET / HTTP/2.0\r\n\r\n", "unsupported HTTP version"),
            ("GET  / HTTP/1.1\r\n\r\n", "invalid request target"),
            ("G(T / HTTP/1.1\r\n\r\n", "invalid method"),
            ("GET /a\u{7F} HTTP/1.1\r\n\r\n", "invalid request target"),
            ("GET / HTTP/1.1\nHost: x\r\n\r\n", "a line ends without CR"),
            ("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", "a CR without LF"),
            ("GET / HTTP/1.1\r\nX: a\u{01}b\r\n\r\n", "a control character in a header value"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid chunk size"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n", "invalid chunk size"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", "a chunk does not end with CRLF"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a\rX\r\nhello\r\n0\r\n\r\n", "invalid chunk size"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\nx\r\n0\r\n\r\n", "invalid chunk size"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nGET /x HTTP/1.1\r\n\r\n", "invalid trailer line"),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "Transfer-Encoding in an HTTP/1.0 request"),
        ]
        for (input, reason) in cases {
            setUp()
            try send(input)
            XCTAssertEqual(recorder.errors.map(\.reason), [reason], input)
            XCTAssertEqual(recorder.errors.first?.headersTooLarge, false)
            try send("GET /after HTTP/1.1\r\n\r\n")
            XCTAssertFalse(recorder.heads.contains { $0.uri == "/after" }, input)
        }
    }

    func testHeadsPastTheLimitAreTooLargeWhetherWholeOrTrickled() throws {
        try send("GET / HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 2000) + "\r\n\r\n")
        XCTAssertEqual(recorder.errors.map(\.headersTooLarge), [true])
        setUp()
        for _ in 0..<40 { try send("X-Header: " + String(repeating: "b", count: 20) + "\r\n") }
        XCTAssertEqual(recorder.errors.map(\.headersTooLarge), [true], "a head that never ends is cut at the limit")
        XCTAssertEqual(recorder.heads.count, 0)
    }

    func testMethodsAndVersions() throws {
        for method in ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT", "PROPFIND"] {
            try send("\(method) /m HTTP/1.0\r\n\r\n")
            XCTAssertEqual(recorder.heads.last?.method.rawValue, method)
            XCTAssertEqual(recorder.heads.last?.version, .http1_0)
            try answer(version: .http1_0)
        }
        XCTAssertEqual(recorder.heads.last?.method, .RAW(value: "PROPFIND"))
    }
}
