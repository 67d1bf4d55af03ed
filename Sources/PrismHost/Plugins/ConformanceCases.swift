import Dispatch
import PrismPluginABI
import PrismWire

/// The cases of `plugin-test`, each against one provider instance. A result names what went
/// wrong in words an adapter's author can act on; `output` is what a client would have received.
struct ConformanceCases: @unchecked Sendable {
    let provider: HarnessProvider
    let model: String
    let fixtures: UpstreamFixtures

    struct Built {
        var status: Int32 = 0
        var unsupported = false
        var problem: String?
        var summary = ""
        var errorMessage: String?
        var framing: Int32 = 0
        var localAnswer: (status: Int, body: [UInt8])?
    }

    struct Outcome {
        var problem: String?
        var summary = ""
        var output = ""
    }

    static let upstreamErrors: [(String, Int, [(String, String)], [UInt8])] = [
        ("error.429", 429, [("content-type", "application/json"), ("retry-after", "7")],
         Array(#"{"error":{"message":"slow down","type":"rate_limit_error","code":"rate_limit_exceeded"}}"#.utf8)),
        ("error.500-html", 503, [("content-type", "text/html")], Array("<html><body>Service Unavailable</body></html>".utf8)),
        ("error.400", 400, [("content-type", "application/json")],
         Array(#"{"error":{"message":"bad field","type":"invalid_request_error"}}"#.utf8)),
    ]

    static let notAnswers: [(String, [UInt8])] = [
        ("answer.200-html", Array("<!doctype html><html><body>login</body></html>".utf8)),
        ("answer.200-error-object", Array(#"{"error":{"message":"quota exceeded","type":"insufficient_quota"}}"#.utf8)),
        ("answer.200-empty", []),
    ]

    func chatBody(stream: Bool) -> [UInt8] {
        Array(#"{"model":"\#(model)","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Say hello."}],"max_tokens":16,"temperature":0.5\#(stream ? #","stream":true"# : "")}"#.utf8)
    }

    var toolsBody: [UInt8] {
        Array(#"{"model":"\#(model)","messages":[{"role":"user","content":"Weather in Paris?"}],"tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],"tool_choice":"auto"}"#.utf8)
    }

    func build(_ body: [UInt8], stream: Bool, api: String = "chat.completions", on exchange: HarnessExchange? = nil) -> Built {
        guard let exchange = exchange ?? provider.request(api: api, model: model, body: body, stream: stream).newExchange() else {
            return Built(problem: "exchange_new failed")
        }
        let request = exchange.buildRequest()
        var built = Built(status: request.status, errorMessage: request.errorMessage, framing: request.framing)
        if request.status == PRISM_ERROR_UNSUPPORTED { built.unsupported = true; return built }
        if request.status == PRISM_ANSWERED_LOCALLY {
            built.localAnswer = (request.answerStatus, request.body)
            built.summary = "answered locally (\(request.answerStatus))"
            return built
        }
        guard request.status == PRISM_OK else {
            built.problem = "build_request returned \(request.status): \(request.errorMessage ?? "no message")"
            return built
        }
        guard request.url.hasPrefix("http://") || request.url.hasPrefix("https://") else {
            built.problem = "the upstream URL must be absolute http(s), got '\(request.url)'"
            return built
        }
        guard !request.method.isEmpty else { built.problem = "no upstream method"; return built }
        if api == "chat.completions" {
            if stream && request.framing == PRISM_FRAMING_NONE {
                built.problem = "a streaming request was built with PRISM_FRAMING_NONE"
                return built
            }
            if !stream && request.framing != PRISM_FRAMING_NONE {
                built.problem = "a non-streaming request was built with framing \(request.framing)"
                return built
            }
            let named = request.url.contains(model) || PercentEncoding.decode(request.url).contains(model)
                || String(decoding: request.body, as: UTF8.self).contains(model)
                || request.headers.contains { $0.value.contains(model) }
            if !named { built.problem = "the upstream model '\(model)' is in neither the URL, the headers nor the body"; return built }
        }
        built.summary = "\(request.method) \(request.url) (\(request.body.count) bytes, framing \(request.framing))"
        return built
    }

    /// A non-streaming chat: build, the upstream's 200, translate_response.
    func answer() -> Outcome {
        guard let exchange = provider.request(model: model, body: chatBody(stream: false), stream: false).newExchange() else {
            return Outcome(problem: "exchange_new failed")
        }
        let built = build([], stream: false, on: exchange)
        if let problem = built.problem { return Outcome(problem: problem) }
        let upstream = built.localAnswer ?? (200, fixtures.chat)
        let result = exchange.answer(status: upstream.status, body: upstream.body)
        let text = String(decoding: result.clientBody, as: UTF8.self)
        guard result.status == PRISM_OK else {
            return Outcome(problem: "translate_response refused the upstream's answer (\(result.status)): "
                + (result.error?.message ?? "no message") + (fixtures.native ? "" : " (native formats: pass --upstream DIR)"),
                output: result.error?.message ?? "")
        }
        guard let document = try? JSONValue.parse(result.clientBody), document["object"]?.stringValue == "chat.completion",
              let choice = document["choices"]?.arrayValue?.first, choice["message"]?.objectValue != nil
        else { return Outcome(problem: "the client body is not an OpenAI chat.completion: \(text.prefix(300))", output: text) }
        if !fixtures.native && built.localAnswer == nil {
            let content = choice["message"]?["content"]?.stringValue
            if content != PluginConformance.answerText {
                return Outcome(problem: "content \(content.map { "'\($0)'" } ?? "missing"), expected '\(PluginConformance.answerText)'", output: text)
            }
            if result.usage.input_tokens != 11 || result.usage.output_tokens != 2 {
                return Outcome(problem: "usage reported \(result.usage.input_tokens)/\(result.usage.output_tokens), the upstream said 11/2", output: text)
            }
        }
        return Outcome(summary: "chat.completion, usage \(result.usage.input_tokens)/\(result.usage.output_tokens)", output: text)
    }

    /// A stream: build, the upstream's bytes in the framing the adapter chose, finish_stream.
    func stream(_ bytes: [UInt8], expectFailure: Bool = false) -> Outcome {
        guard let exchange = provider.request(model: model, body: chatBody(stream: true), stream: true).newExchange() else {
            return Outcome(problem: "exchange_new failed")
        }
        let built = build([], stream: true, on: exchange)
        if let problem = built.problem { return Outcome(problem: problem) }
        var upstream = bytes
        if let local = built.localAnswer {
            if expectFailure { return Outcome(summary: "answered locally: nothing can fail after the first byte") }
            upstream = local.body
        }
        var output: [UInt8] = []
        var failure: (Int32, String?)?
        func feed(_ status: Int32, _ produced: [UInt8], _ error: String?) {
            output += produced
            if status != PRISM_OK && failure == nil { failure = (status, error) }
        }
        switch built.framing {
        case PRISM_FRAMING_RAW:
            let result = exchange.translateChunk(upstream)
            feed(result.status, result.output, result.error)
        case PRISM_FRAMING_NDJSON:
            var lines = LineSplitter()
            var all: [[UInt8]] = []
            upstream.withUnsafeBytes { lines.feed($0) { all.append($0) } }
            lines.finish { all.append($0) }
            for line in all where failure == nil {
                let result = exchange.translateEvent(ServerSentEvent(data: line), keepOutput: true)
                feed(result.status, result.output, result.error)
            }
        default:
            var parser = ServerSentEventParser()
            var events: [ServerSentEvent] = []
            try? parser.feed(upstream) { events.append($0) }
            try? parser.finish { events.append($0) }
            for event in events where failure == nil {
                let result = exchange.translateEvent(event, keepOutput: true)
                feed(result.status, result.output, result.error)
            }
        }
        if failure == nil {
            let end = exchange.finishStream()
            feed(end.status, end.output, end.error)
        }
        let text = String(decoding: output, as: UTF8.self)
        var content = ""
        var events = 0
        var parser = ServerSentEventParser()
        var malformed: String?
        try? parser.feed(output) { event in
            let data = String(decoding: event.data, as: UTF8.self)
            guard let chunk = try? JSONValue.parse(event.data), chunk["object"]?.stringValue == "chat.completion.chunk",
                  let choices = chunk["choices"]?.arrayValue
            else { malformed = malformed ?? data; return }
            events += 1
            for choice in choices { content += choice["delta"]?["content"]?.stringValue ?? "" }
        }
        if let malformed { return Outcome(problem: "an emitted event is not a chat.completion.chunk: \(malformed.prefix(300))", output: text) }
        if expectFailure {
            guard let failure else {
                return Outcome(problem: "the upstream's mid-stream error was not reported (every call returned PRISM_OK): "
                    + "the client would take a failed answer for a finished one", output: text)
            }
            return Outcome(summary: "reported as \(failure.0): \(failure.1 ?? "no message") after \(events) events", output: text + (failure.1 ?? ""))
        }
        if let failure { return Outcome(problem: "the stream failed (\(failure.0)): \(failure.1 ?? "no message")", output: text) }
        if !fixtures.native && built.localAnswer == nil {
            if content != PluginConformance.answerText {
                return Outcome(problem: "streamed content '\(content)', expected '\(PluginConformance.answerText)'", output: text)
            }
            let usage = exchange.streamUsage
            if usage.input_tokens != 11 || usage.output_tokens != 2 {
                return Outcome(problem: "stream usage reported \(usage.input_tokens)/\(usage.output_tokens), the upstream said 11/2", output: text)
            }
        }
        return Outcome(summary: "\(events) chunks, content '\(content.prefix(60))'", output: text)
    }

    /// A non-2xx before the first byte: translate_error must describe it.
    func error(status: Int, headers: [(String, String)], body: [UInt8]) -> Outcome {
        guard let exchange = provider.request(model: model, body: chatBody(stream: false), stream: false).newExchange() else {
            return Outcome(problem: "exchange_new failed")
        }
        let built = build([], stream: false, on: exchange)
        if let problem = built.problem { return Outcome(problem: problem) }
        if built.localAnswer != nil { return Outcome(summary: "answered locally: no upstream errors") }
        let result = exchange.answer(status: status, headers: headers, body: body)
        guard result.translated else { return Outcome(summary: "no translate_error: the host reports HTTP \(status) as provider_error") }
        guard result.status < 0 else { return Outcome(problem: "translate_error returned \(result.status); return an error status") }
        guard let error = result.error, !error.message.isEmpty else {
            return Outcome(problem: "translate_error set no message through the error sink")
        }
        guard error.status == 0 || (400..<600).contains(Int(error.status)) else {
            return Outcome(problem: "http_status \(error.status) is not an error status (0, or 400-599)", output: error.message)
        }
        return Outcome(summary: "\(error.status == 0 ? "host's choice" : String(error.status)) \(error.type)/\(error.code): \(error.message.prefix(80))",
                       output: error.message)
    }

    /// A 2xx whose body is no answer: it must fail (the host then fails over and caches nothing).
    func notAnAnswer(_ body: [UInt8]) -> Outcome {
        guard let exchange = provider.request(model: model, body: chatBody(stream: false), stream: false).newExchange() else {
            return Outcome(problem: "exchange_new failed")
        }
        let built = build([], stream: false, on: exchange)
        if let problem = built.problem { return Outcome(problem: problem) }
        if built.localAnswer != nil { return Outcome(summary: "answered locally") }
        let result = exchange.answer(status: 200, body: body)
        guard result.status != PRISM_OK else {
            return Outcome(problem: "translate_response accepted a 200 that is no answer (\(String(decoding: body.prefix(60), as: UTF8.self))); "
                + "return PRISM_ERROR_UPSTREAM so the gateway fails over", output: String(decoding: result.clientBody, as: UTF8.self))
        }
        return Outcome(summary: "refused (\(result.status)): \(result.error?.message.prefix(80) ?? "no message")", output: result.error?.message ?? "")
    }

    /// An event that is not the upstream's format: an error, or nothing emitted; never a bad chunk.
    func garbageEvent() -> Outcome {
        guard let exchange = provider.request(model: model, body: chatBody(stream: true), stream: true).newExchange() else {
            return Outcome(problem: "exchange_new failed")
        }
        let built = build([], stream: true, on: exchange)
        if let problem = built.problem { return Outcome(problem: problem) }
        if built.localAnswer != nil { return Outcome(summary: "answered locally") }
        let garbage = Array("this is not the upstream's format {".utf8)
        let result = built.framing == PRISM_FRAMING_RAW
            ? { let r = exchange.translateChunk(garbage); return (r.status, r.output, r.error) }()
            : { let r = exchange.translateEvent(ServerSentEvent(data: garbage), keepOutput: true); return (r.status, r.output, r.error) }()
        let text = String(decoding: result.1, as: UTF8.self)
        if result.0 != PRISM_OK { return Outcome(summary: "refused (\(result.0)): \(result.2 ?? "no message")", output: result.2 ?? "") }
        var malformed = false
        var parser = ServerSentEventParser()
        try? parser.feed(result.1) { event in
            if (try? JSONValue.parse(event.data))?["object"]?.stringValue != "chat.completion.chunk" { malformed = true }
        }
        if malformed { return Outcome(problem: "garbage became a client event that is not a chunk: \(text.prefix(200))", output: text) }
        return Outcome(summary: result.1.isEmpty ? "ignored" : "emitted valid chunks", output: text)
    }

    /// Exchanges destroyed without an answer, and in the middle of a stream (a client that left).
    func cancel() -> String {
        for index in 0..<100 {
            let stream = index % 2 == 1
            guard let exchange = provider.request(model: model, body: chatBody(stream: stream), stream: stream).newExchange() else { continue }
            let built = build([], stream: stream, on: exchange)
            if stream, built.problem == nil, built.localAnswer == nil, built.framing != PRISM_FRAMING_RAW {
                var parser = ServerSentEventParser()
                var first: ServerSentEvent?
                try? parser.feed(fixtures.stream) { if first == nil { first = $0 } }
                if let first { _ = exchange.translateEvent(first) }
            }
        }
        return "100 exchanges destroyed without an answer, half of them mid-stream"
    }

    /// The same answer from many threads at once on one instance.
    func concurrently(threads: Int, iterations: Int) -> Outcome {
        let failures = FailureList()
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            for index in 0..<iterations {
                let outcome = index % 2 == 0 ? answer() : stream(fixtures.stream)
                if let problem = outcome.problem { failures.add(problem) }
            }
        }
        let found = failures.all
        if let first = found.first { return Outcome(problem: "\(found.count) of \(threads * iterations) failed; first: \(first)") }
        return Outcome(summary: "\(threads) threads × \(iterations) exchanges, all answered alike")
    }
}

private final class FailureList: @unchecked Sendable {
    private var problems: [String] = []
    private let lock = DispatchSemaphore(value: 1)

    func add(_ problem: String) {
        lock.wait()
        problems.append(problem)
        lock.signal()
    }

    var all: [String] {
        lock.wait()
        defer { lock.signal() }
        return problems
    }
}

