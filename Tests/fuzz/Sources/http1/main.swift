// libFuzzer target: the gateway's HTTP/1.1 request parser (PrismHTTP1's HTTP1RequestParser),
// differentially against NIO's llhttp-based HTTPRequestDecoder on the same bytes.
//
// The input is what a client sends on one connection. Checked:
// - cut into pieces (cut points derived from the input) or whole, our parser gives the same
//   requests and fails at the same request;
// - every request both parsers read whole is the same request: method, target, version, header
//   lines and body. Where they disagree on where a request ends, a request smuggled past one of
//   them would show here as a difference in the next. Our parser may refuse what llhttp accepts
//   (it is stricter by design: no obs-fold, only `chunked`); the comparison stops at the first
//   request either refused, and at an upgrade or CONNECT (llhttp stops parsing there).

import FuzzSupport
import NIOCore
import NIOEmbedded
import NIOHTTP1
import PrismHTTP1

struct Request: Equatable, CustomStringConvertible {
    var method: String
    var uri: String
    var version: String
    var headers: [String]
    var body: [UInt8] = []

    init(_ head: HTTPRequestHead) {
        method = head.method.rawValue
        uri = head.uri
        version = "\(head.version.major).\(head.version.minor)"
        // llhttp keeps a value's trailing whitespace; RFC 9110 §5.5 says it is not part of it.
        headers = head.headers.map { "\($0.name): \(withoutTrailingWhitespace($0.value))" }
    }

    /// llhttp hands the rest of the connection over after these.
    var endsHTTP: Bool { method == "CONNECT" || headers.contains { $0.lowercased().hasPrefix("upgrade:") } }

    var description: String { "\(method) \(uri) HTTP/\(version) \(headers) body \(body.count) bytes" }
}

func withoutTrailingWhitespace(_ text: String) -> String {
    var bytes = Array(text.utf8)
    while let last = bytes.last, last == 0x20 || last == 0x09 { bytes.removeLast() }
    return String(decoding: bytes, as: UTF8.self)
}

/// The requests read whole, and whether the parser refused the bytes.
func ours(_ bytes: UnsafeRawBufferPointer, cuts: [Int]) -> (requests: [Request], failed: Bool) {
    var decoder = HTTP1RequestParser()
    var buffer = ByteBuffer()
    var requests: [Request] = []
    var current: Request?
    do {
        try inPieces(bytes, cuts: cuts) { piece in
            buffer.writeBytes(piece)
            while let part = try decoder.next(&buffer) {
                switch part {
                case let .head(head): current = Request(head)
                case let .body(body): current!.body += Array(body.readableBytesView)
                case .end:
                    requests.append(current!)
                    current = nil
                }
            }
        }
    } catch {
        return (requests, true)
    }
    return (requests, false)
}

func llhttp(_ bytes: UnsafeRawBufferPointer, cuts: [Int]) -> [Request] {
    let channel = EmbeddedChannel()
    defer { _ = try? channel.finish() }
    guard (try? channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))) != nil else {
        fatalError("cannot set up NIO's decoder")
    }
    var requests: [Request] = []
    var current: Request?
    var failed = false
    inPieces(bytes, cuts: cuts) { piece in
        guard !failed else { return }
        var buffer = channel.allocator.buffer(capacity: piece.count)
        buffer.writeBytes(piece)
        do { try channel.writeInbound(buffer) } catch { failed = true }
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            switch part {
            case let .head(head): current = Request(head)
            case let .body(body): current?.body += Array(body.readableBytesView)
            case .end:
                if let request = current { requests.append(request) }
                current = nil
            }
        }
    }
    return requests
}

runFuzzer { bytes in
    let whole = ours(bytes, cuts: [bytes.count])
    let pieces = ours(bytes, cuts: chunkBoundaries(bytes))
    require(whole.requests == pieces.requests && whole.failed == pieces.failed,
            "cut into pieces, the bytes parse differently: \(whole) vs \(pieces)")
    let reference = llhttp(bytes, cuts: chunkBoundaries(bytes, salt: 1))
    trace("ours: \(whole.requests) failed: \(whole.failed)\nllhttp: \(reference)")
    for (mine, theirs) in zip(whole.requests, reference) {
        require(mine == theirs, "the parsers read a request differently:\n  ours:   \(mine)\n  llhttp: \(theirs)")
        if mine.endsHTTP { break }
    }
}
