import PluginKit
import PrismWire
import XCTest
import CompletionsDialect

final class CompletionsIngressTests: XCTestCase {
    private func decode(_ exchange: CompletionsExchange, _ body: String) -> DecodeResult? {
        var bytes = Array(body.utf8)
        return bytes.withUnsafeMutableBytes { buffer in
            exchange.decode(IngressRequest(api: "openai.completions", path: "/v1/completions",
                                           body: UnsafeRawBufferPointer(buffer))) { _ in XCTFail("decode is synchronous") }
        }
    }

    private func forwarded(_ exchange: CompletionsExchange, _ body: String,
                           file: StaticString = #filePath, line: UInt = #line) -> String
    {
        guard case let .forward(canonical)? = decode(exchange, body) else {
            XCTFail("expected a canonical request", file: file, line: line)
            return "{}"
        }
        return String(decoding: canonical.body, as: UTF8.self)
    }

    private func assertJSON(_ actual: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let left = try? JSONValue.parse(actual), let right = try? JSONValue.parse(expected) else {
            return XCTFail("not JSON: \(actual) / \(expected)", file: file, line: line)
        }
        XCTAssertEqual(left, right, "\n\(left.jsonText)\n  is not\n\(right.jsonText)", file: file, line: line)
    }

    private func frames(_ bytes: [UInt8]) throws -> [String] {
        var parser = ServerSentEventParser()
        var data: [String] = []
        try parser.feed(bytes) { data.append(String(decoding: $0.data, as: UTF8.self)) }
        return data
    }

    func testRoute() {
        XCTAssertEqual(CompletionsIngress().routes, [IngressRoute(method: "POST", path: "/v1/completions", api: "openai.completions")])
    }

    func testDecodeWithParameters() {
        let body = forwarded(CompletionsExchange(), #"""
        {"model":"gpt-3.5-turbo-instruct","prompt":"Say this is a test","max_tokens":7,"temperature":0,"top_p":1,"n":1,
         "stop":["\n"],"presence_penalty":0.5,"frequency_penalty":0.1,"logit_bias":{"50256":-100},"user":"u","seed":42,
         "logprobs":null,"suffix":null,"echo":false,"stream":true,"stream_options":{"include_usage":true}}
        """#)
        assertJSON(body, #"""
        {"model":"gpt-3.5-turbo-instruct","messages":[{"role":"user","content":"Say this is a test"}],"max_tokens":7,
         "temperature":0,"top_p":1,"n":1,"stop":["\n"],"presence_penalty":0.5,"frequency_penalty":0.1,
         "logit_bias":{"50256":-100},"user":"u","seed":42,"stream":true,"stream_options":{"include_usage":true}}
        """#)
    }

    func testDecodeDefaultsAndOnePromptList() {
        assertJSON(forwarded(CompletionsExchange(), #"{"model":"m","prompt":["Once"],"logprobs":0}"#), #"""
        {"model":"m","messages":[{"role":"user","content":"Once"}],"max_tokens":16,"stream":false}
        """#)
    }

    func testRefusals() {
        let onePrompt = "Through chat models this gateway serves one text prompt per request on /v1/completions; send each prompt in a request of its own (token-id prompts need a server with native completions)."
        // What chat cannot carry is left to a server with native completions (pass-through); the
        // error answers when no such server serves the model.
        let nativeOnly: [(String, String, String)] = [
            (#"{"model":"m","prompt":["a","b"]}"#, "unsupported_prompt", onePrompt),
            (#"{"model":"m","prompt":[1,2,3]}"#, "unsupported_prompt", onePrompt),
            (#"{"model":"m","prompt":[[1,2]],"stream":true}"#, "unsupported_prompt", onePrompt),
            (#"{"model":"m","prompt":"x","suffix":"end"}"#, "unsupported_parameter",
             "`suffix` (insertion) needs a server with native completions."),
            (#"{"model":"m","prompt":"x","logprobs":5}"#, "unsupported_parameter",
             "`logprobs` on /v1/completions needs a server with native completions."),
            (#"{"model":"m","prompt":"x","best_of":3}"#, "unsupported_parameter", "`best_of` needs a server with native completions."),
        ]
        for (body, code, message) in nativeOnly {
            guard case let .nativeOnly(routing, error)? = decode(CompletionsExchange(), body) else {
                XCTFail("expected a native-only request for \(body)")
                continue
            }
            XCTAssertEqual(error.httpStatus, 400, body)
            XCTAssertEqual(error.code, code, body)
            XCTAssertEqual(error.message, message, body)
            let canonical = try? JSONValue.parse(routing.body)
            XCTAssertEqual(canonical?["model"]?.stringValue, "m", body)
            XCTAssertEqual(canonical?["stream"]?.boolValue, body.contains("\"stream\":true"), body)
        }
        guard case let .failure(error)? = decode(CompletionsExchange(), #"{"model":"m"}"#) else {
            return XCTFail("a request without a prompt is refused")
        }
        XCTAssertEqual(error.code, "missing_prompt")
        XCTAssertEqual(error.message, "`prompt` is required.")
    }

    func testEncodeResponseWithEcho() throws {
        let exchange = CompletionsExchange()
        _ = forwarded(exchange, #"{"model":"m","prompt":"Say this is","echo":true}"#)
        var answer = Array(#"""
        {"id":"chatcmpl-abc","object":"chat.completion","created":1700,"model":"m-1",
         "choices":[{"index":0,"message":{"role":"assistant","content":" a test."},"logprobs":null,"finish_reason":"stop"}],
         "usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7}}
        """#.utf8)
        let client = try answer.withUnsafeMutableBytes { try exchange.encodeResponse(status: 200, body: UnsafeRawBufferPointer($0)) }
        XCTAssertEqual(client.status, 200)
        assertJSON(String(decoding: client.body, as: UTF8.self), #"""
        {"id":"cmpl-abc","object":"text_completion","created":1700,"model":"m-1",
         "choices":[{"text":"Say this is a test.","index":0,"logprobs":null,"finish_reason":"stop"}],
         "usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7}}
        """#)
    }

    func testStreamWithEchoAndUsage() throws {
        let exchange = CompletionsExchange()
        _ = forwarded(exchange, #"{"model":"m","prompt":"Hi","echo":true,"stream":true,"stream_options":{"include_usage":true}}"#)
        let head = #""id":"chatcmpl-7","object":"chat.completion.chunk","created":5,"model":"m-1""#
        var out: [UInt8] = []
        for chunk in [
            #"{\#(head),"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            #"{\#(head),"choices":[{"index":0,"delta":{"content":" there"},"finish_reason":null}]}"#,
            #"{\#(head),"choices":[{"index":0,"delta":{"content":"!"},"finish_reason":null}]}"#,
            #"{\#(head),"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            #"{\#(head),"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
        ] {
            var bytes = Array(chunk.utf8)
            try bytes.withUnsafeMutableBytes { try exchange.encodeEvent(UnsafeRawBufferPointer($0), into: &out) }
        }
        try exchange.finishStream(usage: Usage(inputTokens: 1, outputTokens: 2), into: &out)
        let data = try frames(out)
        XCTAssertEqual(data.count, 5)
        let chunkHead = #""id":"cmpl-7","object":"text_completion","created":5,"model":"m-1""#
        assertJSON(data[0], #"{\#(chunkHead),"choices":[{"text":"Hi there","index":0,"logprobs":null,"finish_reason":null}]}"#)
        assertJSON(data[1], #"{\#(chunkHead),"choices":[{"text":"!","index":0,"logprobs":null,"finish_reason":null}]}"#)
        assertJSON(data[2], #"{\#(chunkHead),"choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}]}"#)
        assertJSON(data[3], #"""
        {\#(chunkHead),"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}
        """#)
        XCTAssertEqual(data[4], "[DONE]")
    }

    func testStreamWithoutUsageRequestSendsNoUsageChunk() throws {
        let exchange = CompletionsExchange()
        _ = forwarded(exchange, #"{"model":"m","prompt":"Hi","stream":true}"#)
        var out: [UInt8] = []
        var bytes = Array(#"{"id":"x","object":"chat.completion.chunk","created":5,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#.utf8)
        try bytes.withUnsafeMutableBytes { try exchange.encodeEvent(UnsafeRawBufferPointer($0), into: &out) }
        try exchange.finishStream(usage: Usage(), into: &out)
        XCTAssertEqual(String(decoding: out, as: UTF8.self), "data: [DONE]\n\n")
    }

    func testErrors() {
        let error = IngressError(status: 503, type: "overloaded_error", code: "provider_overloaded", message: "Busy.")
        let whole = CompletionsExchange().encodeError(error, inStream: false)
        XCTAssertEqual(whole.status, 503)
        assertJSON(String(decoding: whole.body, as: UTF8.self), #"""
        {"error":{"message":"Busy.","type":"overloaded_error","param":null,"code":"provider_overloaded"}}
        """#)
        let streamed = CompletionsExchange().encodeError(error, inStream: true)
        XCTAssertEqual(String(decoding: streamed.body, as: UTF8.self),
                       #"data: {"error":{"message":"Busy.","type":"overloaded_error","param":null,"code":"provider_overloaded"}}"#
                           + "\n\ndata: [DONE]\n\n")
    }

    func testObserveNative() {
        let exchange = CompletionsExchange()
        var usage = Usage()
        var body = Array(#"{"id":"cmpl-1","object":"text_completion","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11}}"#.utf8)
        body.withUnsafeMutableBytes { exchange.observeNative(event: "", data: UnsafeRawBufferPointer($0), usage: &usage) }
        XCTAssertEqual(usage, Usage(inputTokens: 5, outputTokens: 6))
        var done = Array("[DONE]".utf8)
        done.withUnsafeMutableBytes { exchange.observeNative(event: "", data: UnsafeRawBufferPointer($0), usage: &usage) }
        XCTAssertEqual(usage, Usage(inputTokens: 5, outputTokens: 6))
    }
}
