#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import PrismPluginABI
import PrismWire

/// `prism-gateway plugin-test FILE.so`: drives one provider adapter through the canonical cases
/// the gateway will put it through (build, answer, stream, errors before and after the first
/// byte, a 200 that is no answer, cancellation, many threads at once), in process through the
/// same loader, host tables and sinks as serving, against a simulated upstream. The upstream
/// answers in OpenAI's format unless `upstream` names a directory with the adapter's own:
/// `chat.json` (a 200 body), `stream.txt` (the stream's raw bytes as the upstream sends them) and,
/// optionally, `stream-error.txt` (a stream that fails after its first event).
public struct PluginConformance {
    public struct Case: Sendable {
        public let name: String
        public let passed: Bool
        public let detail: String
    }

    public var file: String
    public var component: String?
    /// Merged over the default provider section (`api_key`, `base_url`).
    public var configuration: [(String, JSONValue)] = []
    public var model = "conformance-model"
    public var upstream: String?
    public var threads = 8
    public var iterations = 100

    public init(file: String) { self.file = file }

    static let secret = "sk-conformance-secret-7f3a9c"
    static let answerText = "conformance answer"

    /// Runs every case, reporting each as it ends; true when all passed.
    public func run(report: (Case) -> Void) -> Bool {
        var failures = 0
        func record(_ name: String, _ passed: Bool, _ detail: String) {
            if !passed { failures += 1 }
            report(Case(name: name, passed: passed, detail: detail))
        }
        let harness = TranslationHarness(pluginFile: file)
        if let refusal = harness.refusals.first {
            record("load", false, refusal.reason)
            return false
        }
        let components = harness.providerComponents
        guard let name = component ?? (components.count == 1 ? components[0] : nil), components.contains(name) else {
            record("load", false, components.isEmpty ? "the file has no provider component"
                : "name one of its providers with --component: \(components.joined(separator: ", "))")
            return false
        }
        record("load", true, "provider \"\(name)\"")

        var section: [(String, JSONValue)] = [("api_key", .string(Self.secret)), ("base_url", .string("http://127.0.0.1:9/v1"))]
        for (key, value) in configuration {
            section.removeAll { $0.0 == key }
            section.append((key, value))
        }
        let secret = section.first { $0.0 == "api_key" }?.1.stringValue ?? Self.secret
        let provider: HarnessProvider
        do {
            provider = try harness.provider(name, configuration: .object(section))
            record("instance_new", true, "created with \(section.map(\.0).joined(separator: ", "))")
        } catch {
            record("instance_new", false, "\(error.message) (give the provider's settings with --config JSON)")
            return false
        }
        do {
            _ = try harness.provider(name, configuration: .object([("base_url", .number("42"))]))
            record("instance_new.bad-config", true, "accepted (nothing it needs was wrong)")
        } catch {
            record("instance_new.bad-config", !error.message.isEmpty, "refused: \(error.message)")
        }

        let fixtures = UpstreamFixtures(directory: upstream)
        var outputs: [String] = [] // everything a client would see, checked for the secret at the end
        let cases = ConformanceCases(provider: provider, model: model, fixtures: fixtures)

        for (caseName, body, stream) in [("chat.build", cases.chatBody(stream: false), false),
                                         ("chat.stream.build", cases.chatBody(stream: true), true)] {
            let built = cases.build(body, stream: stream)
            record(caseName, built.problem == nil, built.problem ?? built.summary)
        }
        let tools = cases.build(cases.toolsBody, stream: false)
        record("tools.build", tools.problem == nil || tools.unsupported, tools.unsupported ? "unsupported (501)" : tools.problem ?? tools.summary)
        let invalid = cases.build(Array(#"{"model":"m","messages":[{"role":"user","content":"#.utf8), stream: false)
        record("chat.build.invalid-body", invalid.status < 0 && invalid.status != PRISM_ANSWERED_LOCALLY,
               invalid.status < 0 ? "refused (\(invalid.status)): \(invalid.errorMessage ?? "no message")"
                   : "a truncated JSON body was accepted (status \(invalid.status)); return PRISM_ERROR_INVALID_REQUEST")
        let models = cases.build([], stream: false, api: "models.list")
        record("models.list.build", models.problem == nil || models.unsupported,
               models.unsupported ? "unsupported (501)" : models.problem ?? models.summary)

        let answer = cases.answer()
        outputs.append(answer.output)
        record("chat.answer", answer.problem == nil, answer.problem ?? answer.summary)
        let streamed = cases.stream(fixtures.stream)
        outputs.append(streamed.output)
        record("chat.stream", streamed.problem == nil, streamed.problem ?? streamed.summary)
        if let failing = fixtures.streamError {
            let broken = cases.stream(failing, expectFailure: true)
            outputs.append(broken.output)
            record("chat.stream.error-after-first-byte", broken.problem == nil, broken.problem ?? broken.summary)
        }

        for (caseName, status, headers, body) in ConformanceCases.upstreamErrors {
            let result = cases.error(status: status, headers: headers, body: body)
            outputs.append(result.output)
            record(caseName, result.problem == nil, result.problem ?? result.summary)
        }
        for (caseName, body) in ConformanceCases.notAnswers {
            let result = cases.notAnAnswer(body)
            outputs.append(result.output)
            record(caseName, result.problem == nil, result.problem ?? result.summary)
        }
        let garbage = cases.garbageEvent()
        outputs.append(garbage.output)
        record("chat.stream.garbage-event", garbage.problem == nil, garbage.problem ?? garbage.summary)

        record("cancel", true, cases.cancel())
        let concurrent = cases.concurrently(threads: threads, iterations: iterations)
        record("concurrency", concurrent.problem == nil, concurrent.problem ?? concurrent.summary)

        let leaked = outputs.filter { $0.contains(secret) }
        record("secrets", leaked.isEmpty, leaked.isEmpty ? "the api_key appears in nothing a client receives"
            : "the api_key appears in what a client receives: \(leaked[0].prefix(200))")
        return failures == 0
    }
}

/// The adapter's own upstream answers, or OpenAI's format.
struct UpstreamFixtures {
    let chat: [UInt8]
    let stream: [UInt8]
    let streamError: [UInt8]?
    let native: Bool

    init(directory: String?) {
        func read(_ name: String) -> [UInt8]? { directory.flatMap { readFile($0 + "/" + name) } }
        native = directory != nil
        chat = read("chat.json") ?? Array("""
            {"id":"chatcmpl-conf","object":"chat.completion","created":1700000000,"model":"conformance-model",\
            "choices":[{"index":0,"message":{"role":"assistant","content":"\(PluginConformance.answerText)"},\
            "finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":2,"total_tokens":13}}
            """.utf8)
        func chunk(_ delta: String, finish: String = "null") -> String {
            #"data: {"id":"chatcmpl-conf","object":"chat.completion.chunk","created":1700000000,"model":"conformance-model","choices":[{"index":0,"delta":\#(delta),"finish_reason":\#(finish)}]}"# + "\n\n"
        }
        stream = read("stream.txt") ?? Array((chunk(#"{"role":"assistant","content":"conformance "}"#)
                + chunk(#"{"content":"answer"}"#) + chunk("{}", finish: #""stop""#)
                + #"data: {"id":"chatcmpl-conf","object":"chat.completion.chunk","created":1700000000,"model":"conformance-model","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":2,"total_tokens":13}}"#
                + "\n\ndata: [DONE]\n\n").utf8)
        streamError = read("stream-error.txt") ?? (directory == nil ? Array((chunk(#"{"role":"assistant","content":"conformance "}"#)
                + #"data: {"error":{"message":"overloaded","type":"server_error","code":"overloaded"}}"# + "\n\n").utf8) : nil)
    }
}

private func readFile(_ path: String) -> [UInt8]? {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress!, $0.count) }
        if count <= 0 { break }
        bytes.append(contentsOf: buffer[0..<count])
    }
    return bytes
}
