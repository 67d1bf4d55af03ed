import Foundation
import PrismWire
import XCTest

import PrismCore

/// Every golden fixture (Tests/golden/<provider>/*.json, format in Tests/golden/README.md) through
/// the gateway's request path in process: the fixture's provider configured as config.yaml would,
/// its OpenAI request sent on the server's pipeline, the upstream request the provider plugin
/// built compared with `expected_upstream`, and `upstream_response` played back in its wire
/// format (JSON, SSE, AWS event-stream) for the client's answer to be compared with
/// `expected_client` or `expected_chunks`. Tests/integration/test_golden.py runs some of them
/// again through the real binary over sockets.
final class GoldenFixtureTests: XCTestCase {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("golden")

    func testEveryFixture() throws {
        let providers = try FileManager.default.contentsOfDirectory(atPath: Self.directory.path).sorted()
        var cases: [URL] = []
        for provider in providers {
            let folder = Self.directory.appendingPathComponent(provider)
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { continue }
            cases += names.filter { $0.hasSuffix(".json") }.sorted().map { folder.appendingPathComponent($0) }
        }
        XCTAssertGreaterThan(cases.count, 100, "fixtures under \(Self.directory.path)")
        var failed = 0
        for url in cases {
            let name = url.deletingLastPathComponent().lastPathComponent + "/" + url.deletingPathExtension().lastPathComponent
            let problems: [String]
            do {
                problems = try GoldenCase(url: url).run()
            } catch {
                problems = ["\(error)"]
            }
            if !problems.isEmpty {
                failed += 1
                XCTFail("\(name):\n  " + problems.prefix(20).joined(separator: "\n  "))
            }
        }
        print("golden fixtures in process: \(cases.count - failed) of \(cases.count) passed")
    }
}

/// One fixture.
struct GoldenCase {
    let provider: String
    let fixture: JSONValue

    init(url: URL) throws {
        provider = url.deletingLastPathComponent().lastPathComponent
        fixture = try JSONValue.parse(Array(try Data(contentsOf: url)))
    }

    func run() throws -> [String] {
        guard let request = fixture["request"], let section = fixture["provider"]?.objectValue else {
            return ["the fixture lacks request or provider"]
        }
        // The provider section as the Python harness gives it: base_url at the (scripted) upstream.
        var members = section.filter { $0.0 != "base_url" }
        if let base = fixture["provider"]?["base_url"]?.stringValue, base.contains("{upstream}") {
            members.append(("base_url", .string(base.replacingOccurrences(of: "{upstream}", with: "http://127.0.0.1:40001"))))
        } else {
            members.append(("base_url", .string("http://127.0.0.1:40001")))
        }
        if !members.contains(where: { $0.0 == "models" }), let model = request["model"] {
            members.append(("models", .array([model])))
        }
        let name = fixture["provider_name"]?.stringValue ?? provider
        // config.yaml in YAML's JSON-compatible flow style. Translation only: no cost (usage.cost).
        let configuration = """
        providers: \(JSONValue.object([(name, .object(members))]).jsonText)
        cost_tracking: {enabled: false}
        spend_ledger: {enabled: false}
        logging: {level: error}
        """
        let reply = try GoldenCase.reply(fixture["upstream_response"])
        let gateway = try InProcessGateway(configuration: configuration) { _ in reply }
        let body = request.objectValue.map { members in
            members.contains { $0.0 == "input" } && !members.contains { $0.0 == "messages" }
        } ?? false ? "/v1/embeddings" : "/v1/chat/completions"
        let endpoint = fixture["endpoint"]?.stringValue ?? body
        var headers = [("Content-Type", "application/json")]
        if fixture["expected_chunks"] != nil { headers.append(("Accept", "text/event-stream")) }
        for (header, value) in fixture["request_headers"]?.objectValue ?? [] { headers.append((header, value.stringValue ?? "")) }
        let response = try gateway.send("POST", endpoint, headers: headers,
                                        body: Array(GoldenCase.pythonJSON(request, compact: false).utf8))
        var problems = checkUpstream(gateway.transport.requests)
        if let chunks = fixture["expected_chunks"] {
            problems += checkStream(response, expected: chunks)
        } else if let expected = fixture["expected_client"] {
            problems += checkClient(response, expected: expected)
        } else {
            problems.append("the fixture gives neither expected_client nor expected_chunks")
        }
        return problems
    }

    // MARK: What the upstream got

    private func checkUpstream(_ requests: [ScriptedTransport.Request]) -> [String] {
        guard let expected = fixture["expected_upstream"], !expected.isNull else {
            return requests.isEmpty ? [] : ["the upstream was called, but should not have been: \(requests[0].url)"]
        }
        guard requests.count == 1 else { return ["the upstream got \(requests.count) requests, expected 1"] }
        let got = requests[0]
        var problems: [String] = []
        let method = expected["method"]?.stringValue ?? "POST"
        if got.method != method { problems.append("upstream method \(got.method), expected \(method)") }
        if let path = expected["path"]?.stringValue, got.path != path { problems.append("upstream path \(got.path) != \(path)") }
        for (name, value) in expected["headers"]?.objectValue ?? [] {
            problems += GoldenCase.mismatches(value, got.header(name.lowercased()).map(JSONValue.string) ?? .null,
                                              "upstream header \(name)")
        }
        for name in expected["absent_headers"]?.arrayValue ?? [] {
            if let header = name.stringValue, let value = got.header(header.lowercased()) {
                problems.append("upstream header \(header) must be absent, got \(value)")
            }
        }
        if let body = expected["body"] {
            guard let actual = try? JSONValue.parse(got.body) else {
                return problems + ["the upstream body is not JSON: \(String(decoding: got.body.prefix(300), as: UTF8.self))"]
            }
            problems += GoldenCase.mismatches(body, actual, "upstream body $")
        }
        return problems
    }

    // MARK: What the client got

    private func checkClient(_ response: ClientResponse, expected: JSONValue) -> [String] {
        let status = Int(expected["status"]?.integerValue ?? 200)
        guard response.status == status else {
            return ["client status \(response.status), expected \(status): \(response.text.prefix(800))"]
        }
        var problems: [String] = []
        for (name, value) in expected["headers"]?.objectValue ?? [] {
            problems += GoldenCase.mismatches(value, response.header(name.lowercased()).map(JSONValue.string) ?? .null,
                                              "client header \(name)")
        }
        if let body = expected["body"] {
            guard let actual = try? JSONValue.parse(response.body) else {
                return problems + ["client body is not JSON: \(response.text.prefix(500))"]
            }
            problems += GoldenCase.mismatches(body, GoldenCase.withoutVolatile(body, actual), "client body $")
        }
        return problems
    }

    private func checkStream(_ response: ClientResponse, expected: JSONValue) -> [String] {
        guard response.status == 200 else { return ["stream status \(response.status): \(response.text.prefix(800))"] }
        guard response.header("content-type")?.hasPrefix("text/event-stream") == true else {
            return ["stream content-type \(response.header("content-type") ?? "none")"]
        }
        let events = response.events
        guard events.last == "[DONE]" else { return ["the stream did not end with [DONE]: \(events.suffix(3))"] }
        guard events.filter({ $0 == "[DONE]" }).count == 1 else { return ["more than one [DONE]"] }
        var chunks: [JSONValue] = []
        for event in events.dropLast() {
            guard let chunk = try? JSONValue.parse(event) else { return ["a chunk is not JSON: \(event.prefix(300))"] }
            chunks.append(chunk)
        }
        let withChoices = chunks.filter { $0["choices"] != nil }
        let ids = Set(withChoices.map { $0["id"]?.jsonText ?? "" }), created = Set(withChoices.map { $0["created"]?.jsonText ?? "" })
        guard ids.count <= 1, created.count <= 1 else { return ["chunks of one stream differ in id/created: \(ids) \(created)"] }
        let expectedChunks = expected.arrayValue ?? []
        let actual = zip(expectedChunks, chunks).map { GoldenCase.withoutVolatile($0, $1) } + chunks.dropFirst(expectedChunks.count)
        return GoldenCase.mismatches(expected, .array(Array(actual)), "client chunks $")
    }

    /// `actual` without the gateway-generated `id` and `created` when `expected` does not list them.
    static func withoutVolatile(_ expected: JSONValue, _ actual: JSONValue) -> JSONValue {
        guard case .object = expected, case let .object(members) = actual else { return actual }
        return .object(members.filter { !["id", "created"].contains($0.0) || expected[$0.0] != nil })
    }

    /// Differences between an expected value (with the matchers `$any`, `$contains`, `$regex`) and
    /// an actual one; objects compare as unordered.
    static func mismatches(_ expected: JSONValue, _ actual: JSONValue, _ path: String) -> [String] {
        if case let .object(members) = expected, members.count == 1, members[0].0.hasPrefix("$") {
            let (op, argument) = members[0]
            switch op {
            case "$any": return []
            case "$contains":
                guard let text = actual.stringValue, let part = argument.stringValue, text.contains(part) else {
                    return ["\(path): \(actual.jsonText) does not contain \(argument.jsonText)"]
                }
                return []
            case "$regex":
                guard let text = actual.stringValue, let pattern = argument.stringValue,
                      text.range(of: pattern, options: .regularExpression) != nil
                else { return ["\(path): \(actual.jsonText) does not match /\(argument.stringValue ?? "")/"] }
                return []
            default: return ["\(path): unknown matcher \(op)"]
            }
        }
        switch (expected, actual) {
        case let (.object(expectedMembers), .object(actualMembers)):
            var problems: [String] = []
            for (key, value) in expectedMembers {
                if let found = actualMembers.first(where: { $0.0 == key }) {
                    problems += mismatches(value, found.1, "\(path).\(key)")
                } else {
                    problems.append("\(path).\(key): missing (expected \(value.jsonText))")
                }
            }
            for (key, value) in actualMembers where !expectedMembers.contains(where: { $0.0 == key }) {
                problems.append("\(path).\(key): unexpected \(value.jsonText)")
            }
            return problems
        case (.object, _): return ["\(path): expected an object, got \(actual.jsonText)"]
        case let (.array(expectedItems), .array(actualItems)):
            var problems = expectedItems.count == actualItems.count ? []
                : ["\(path): \(actualItems.count) elements, expected \(expectedItems.count)"]
            for (index, (item, other)) in zip(expectedItems, actualItems).enumerated() {
                problems += mismatches(item, other, "\(path)[\(index)]")
            }
            return problems
        case (.array, _): return ["\(path): expected an array, got \(actual.jsonText)"]
        case let (.number(a), .number(b)):
            return Double(a) == Double(b) ? [] : ["\(path): \(b) != expected \(a)"]
        default:
            return expected == actual ? [] : ["\(path): \(actual.jsonText) != expected \(expected.jsonText)"]
        }
    }

    // MARK: The upstream's answer, in its wire format

    /// `upstream_response` as the replay upstream (Tests/integration/replay_upstream.py) sends it.
    static func reply(_ script: JSONValue?) throws -> ScriptedTransport.Reply {
        guard let script else { return .json(500, #"{"message":"no upstream_response scripted"}"#) }
        var headers = (script["headers"]?.objectValue ?? []).map { ($0.0.lowercased(), $0.1.stringValue ?? "") }
        func defaultType(_ type: String) {
            if !headers.contains(where: { $0.0 == "content-type" }) { headers.append(("content-type", type)) }
        }
        var chunks: [[UInt8]]
        if let frames = script["eventstream"]?.arrayValue {
            let encoded = frames.map { frame in
                eventStreamFrame(headers: (frame["headers"]?.objectValue ?? []).map { ($0.0, $0.1.stringValue ?? "") },
                                 payload: frame["payload"] ?? .object([]), corruptCRC: frame["corrupt_crc"]?.boolValue == true)
            }
            if let size = script["eventstream_chunk_size"]?.integerValue, size > 0 {
                let all = encoded.flatMap { $0 }
                chunks = stride(from: 0, to: all.count, by: Int(size)).map { Array(all[$0..<min($0 + Int(size), all.count)]) }
            } else {
                chunks = encoded
            }
            defaultType("application/vnd.amazon.eventstream")
        } else if let events = script["sse"]?.arrayValue {
            let end = script["sse_line_ending"]?.stringValue ?? "\n"
            chunks = events.map { Array(sseEvent($0, end: end).utf8) }
            defaultType("text/event-stream")
        } else if let lines = script["ndjson"]?.arrayValue {
            chunks = lines.map { Array((pythonJSON($0, compact: false) + "\n").utf8) }
            defaultType("application/x-ndjson")
        } else if let text = script["body_text"]?.stringValue {
            chunks = [Array(text.utf8)]
        } else {
            chunks = [Array(pythonJSON(script["body"] ?? .object([]), compact: false).utf8)]
            defaultType("application/json")
        }
        let failure: TransportFailure? = script["abort"]?.boolValue == true ? .connection("the upstream closed the connection") : nil
        return ScriptedTransport.Reply(status: Int(script["status"]?.integerValue ?? 200), headers: headers, chunks: chunks,
                                       failure: failure)
    }

    static func sseEvent(_ item: JSONValue, end: String) -> String {
        if let raw = item["raw"]?.stringValue { return raw }
        if let comment = item["comment"]?.stringValue { return ":\(comment)\(end)\(end)" }
        var lines: [String] = []
        if let event = item["event"], !event.isNull { lines.append("event: \(event.stringValue ?? event.jsonText)") }
        if let id = item["id"], !id.isNull { lines.append("id: \(id.stringValue ?? id.jsonText)") }
        let data = item["data"] ?? .null
        let text = data.stringValue ?? pythonJSON(data, compact: true)
        lines += text.split(separator: "\n", omittingEmptySubsequences: false).map { "data: \($0)" }
        return lines.joined(separator: end) + end + end
    }

    /// One AWS event-stream frame: prelude (total and headers length, their CRC-32), string
    /// headers (type 7), payload, CRC-32 of everything before it.
    static func eventStreamFrame(headers: [(String, String)], payload: JSONValue, corruptCRC: Bool) -> [UInt8] {
        func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
        var headerBytes: [UInt8] = []
        for (name, value) in headers {
            headerBytes += [UInt8(name.utf8.count)] + Array(name.utf8) + [7] + bigEndian(UInt16(value.utf8.count)) + Array(value.utf8)
        }
        let body = payload.stringValue.map { Array($0.utf8) } ?? Array(pythonJSON(payload, compact: true).utf8)
        let prelude = bigEndian(UInt32(headerBytes.count + body.count + 16)) + bigEndian(UInt32(headerBytes.count))
        let message = prelude + bigEndian(crc32(prelude)) + headerBytes + body
        return message + bigEndian(crc32(message) ^ (corruptCRC ? 0xFFFF_FFFF : 0))
    }

    /// JSON as the Python harness's `json.dumps` writes it, so that the plugins read the same bytes:
    /// every character outside printable ASCII escaped (`\\uXXXX`, surrogate pairs past the BMP),
    /// and `", "` / `": "` between tokens unless `compact` (`separators=(",", ":")`).
    static func pythonJSON(_ value: JSONValue, compact: Bool) -> String {
        let comma = compact ? "," : ", ", colon = compact ? ":" : ": "
        func quoted(_ text: String) -> String {
            var out = "\""
            for unit in text.utf16 {
                switch unit {
                case 0x22: out += "\\\""
                case 0x5C: out += "\\\\"
                case 0x0A: out += "\\n"
                case 0x0D: out += "\\r"
                case 0x09: out += "\\t"
                case 0x08: out += "\\b"
                case 0x0C: out += "\\f"
                case 0x20...0x7E: out.unicodeScalars.append(Unicode.Scalar(UInt8(unit)))
                default:
                    let hex = String(unit, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                }
            }
            return out + "\""
        }
        switch value {
        case .null: return "null"
        case let .bool(flag): return flag ? "true" : "false"
        case let .number(text): return text
        case let .string(text): return quoted(text)
        case let .array(items): return "[" + items.map { pythonJSON($0, compact: compact) }.joined(separator: comma) + "]"
        case let .object(members):
            return "{" + members.map { quoted($0.0) + colon + pythonJSON($0.1, compact: compact) }.joined(separator: comma) + "}"
        }
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }
}
