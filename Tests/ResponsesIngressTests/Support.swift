import PluginKit
import PrismWire
import Synchronization
import XCTest
import ResponsesDialect

/// An in-memory store that answers at once (as the host's may, before decode returns).
final class MemoryStore: ResponseStore {
    let values = Mutex<[String: [UInt8]]>([:])
    let ttls = Mutex<[String: UInt64]>([:])
    let available: Bool

    init(available: Bool = true) { self.available = available }

    func load(_ key: String, _ done: @escaping @Sendable (SharedState.Lookup) -> Void) {
        guard available else { return done(.unavailable) }
        let value = values.withLock { $0[key] }
        done(value.map { .found($0) } ?? .notFound)
    }

    func save(_ key: String, _ value: [UInt8], ttlSeconds: UInt64) {
        values.withLock { $0[key] = value }
        ttls.withLock { $0[key] = ttlSeconds }
    }

    func remove(_ key: String) { _ = values.withLock { $0.removeValue(forKey: key) } }

    func stored(_ id: String) -> StoredResponse? {
        values.withLock { $0["resp:" + id] }.flatMap(StoredResponse.init)
    }
}

/// Ids "<prefix><n>" in order, for exact assertions.
final class Counter: Sendable {
    let next = Mutex(0)
    func id(_ prefix: String) -> String {
        next.withLock { value in
            value += 1
            return prefix + String(value)
        }
    }
}

func environment(store: MemoryStore? = MemoryStore(), storeSetting: Bool = true) -> ResponsesEnvironment {
    let counter = Counter()
    return ResponsesEnvironment(store: store, settings: ResponsesSettings(store: storeSetting, ttlSeconds: 3600),
                                now: { 1_700_000_000 }, newID: { counter.id($0) })
}

/// The outcome of a decode, waited for when it came later.
enum Decoded {
    case forward(String)
    case answer(UInt32, String)
    case failure(PluginError)
}

final class ResultBox: @unchecked Sendable {
    var result: DecodeResult?
}

func decode(_ exchange: IngressExchange, _ body: String, api: String = "openai.responses", method: String = "POST",
            path: String = "/v1/responses", file: StaticString = #filePath, line: UInt = #line) -> Decoded?
{
    let box = ResultBox()
    var bytes = Array(body.utf8)
    let now = bytes.withUnsafeMutableBytes { buffer in
        exchange.decode(IngressRequest(api: api, method: method, path: path, body: UnsafeRawBufferPointer(buffer))) { result in
            box.result = result
        }
    }
    guard let result = now ?? box.result else {
        XCTFail("decode decided nothing", file: file, line: line)
        return nil
    }
    if now != nil, box.result != nil { XCTFail("decode decided twice", file: file, line: line) }
    switch result {
    case let .forward(canonical), let .forwardTranslated(canonical): return .forward(String(decoding: canonical.body, as: UTF8.self))
    case let .nativeOnly(_, error): return .failure(error)
    case let .answer(answer): return .answer(answer.status, String(decoding: answer.body, as: UTF8.self))
    case let .failure(error): return .failure(error)
    }
}

/// Asserts two JSON texts are the same document (member order included).
func assertJSON(_ actual: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
    guard let left = try? JSONValue.parse(actual) else { return XCTFail("not JSON: \(actual)", file: file, line: line) }
    guard let right = try? JSONValue.parse(expected) else { return XCTFail("expected is not JSON: \(expected)", file: file, line: line) }
    XCTAssertEqual(left, right, "\n\(left.jsonText)\n  is not\n\(right.jsonText)", file: file, line: line)
}

func forwarded(_ decoded: Decoded?, file: StaticString = #filePath, line: UInt = #line) -> String {
    guard case let .forward(body)? = decoded else {
        XCTFail("expected a canonical request, got \(String(describing: decoded))", file: file, line: line)
        return "{}"
    }
    return body
}

func failure(_ decoded: Decoded?, file: StaticString = #filePath, line: UInt = #line) -> PluginError? {
    guard case let .failure(error)? = decoded else {
        XCTFail("expected a failure, got \(String(describing: decoded))", file: file, line: line)
        return nil
    }
    return error
}

func encode(_ exchange: IngressExchange, _ answer: String) throws -> ClientAnswer {
    var bytes = Array(answer.utf8)
    return try bytes.withUnsafeMutableBytes { try exchange.encodeResponse(status: 200, body: UnsafeRawBufferPointer($0)) }
}

func stream(_ exchange: IngressExchange, _ chunks: [String], usage: Usage = Usage()) throws -> [UInt8] {
    var out: [UInt8] = []
    for chunk in chunks {
        var bytes = Array(chunk.utf8)
        try bytes.withUnsafeMutableBytes { try exchange.encodeEvent(UnsafeRawBufferPointer($0), into: &out) }
    }
    try exchange.finishStream(usage: usage, into: &out)
    return out
}

func events(_ bytes: [UInt8]) throws -> [ServerSentEvent] {
    var parser = ServerSentEventParser()
    var events: [ServerSentEvent] = []
    try parser.feed(bytes) { events.append($0) }
    try parser.finish { events.append($0) }
    return events
}
