import NIOConcurrencyHelpers
import NIOCore
import PrismWire
import XCTest

import PrismCore

/// The request's path in process: GatewayHTTPHandler on the server's pipeline, the middleware
/// chain, routing and the attempt scheduler, the OpenAI provider plugin (dlopen), the stream
/// relay and the client's dialect, with a scripted transport in libcurl's place.
final class RequestPathTests: XCTestCase {
    private func configuration(providers: [String: [String]], extra: String = "") -> String {
        var text = "providers:\n"
        for (name, models) in providers.sorted(by: { $0.key < $1.key }) {
            text += "  \(name): {api_format: openai, api_key: sk-upstream-\(name)-0001, base_url: \"http://\(name).test/v1\", models: [\(models.joined(separator: ", "))]}\n"
        }
        return text + "logging: {level: error}\nspend_ledger: {enabled: false}\n" + extra
    }

    private static let answer = #"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#

    func testABufferedAnswerGoesThroughThePluginBothWays() throws {
        let gateway = try InProcessGateway(configuration: configuration(providers: ["a": ["gpt-4o"]])) { _ in
            .json(200, RequestPathTests.answer)
        }
        let response = try gateway.post("/v1/chat/completions", json: #"{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}"#,
                                        headers: [("x-prism-request-id", "req-in-process-1")])
        XCTAssertEqual(response.status, 200, response.text)
        XCTAssertEqual(response.header("x-prism-provider"), "a")
        XCTAssertEqual(response.header("x-prism-request-id"), "req-in-process-1")
        let body = try JSONValue.parse(response.text)
        XCTAssertEqual(body["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue, "Hello")
        let upstream = try XCTUnwrap(gateway.transport.requests.first)
        XCTAssertEqual(gateway.transport.requests.count, 1)
        XCTAssertEqual(upstream.method, "POST")
        XCTAssertEqual(upstream.url, "http://a.test/v1/chat/completions")
        XCTAssertEqual(upstream.header("authorization"), "Bearer sk-upstream-a-0001")
        XCTAssertEqual(try JSONValue.parse(upstream.body)["model"]?.stringValue, "gpt-4o")
    }

    func testAStreamIsRelayedEventByEventAndEndsWithDone() throws {
        let events = ["Hel", "lo"].map { text in
            #"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"\#(text)"},"finish_reason":null}]}"#
        } + ["[DONE]"]
        let gateway = try InProcessGateway(configuration: configuration(providers: ["a": ["gpt-4o"]])) { _ in
            .events(events)
        }
        let response = try gateway.post("/v1/chat/completions",
                                        json: #"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Hi"}]}"#)
        XCTAssertEqual(response.status, 200, response.text)
        XCTAssertEqual(response.header("content-type"), "text/event-stream")
        XCTAssertTrue(try XCTUnwrap(gateway.transport.requests.first).streaming)
        let received = response.events
        XCTAssertEqual(received.last, "[DONE]")
        XCTAssertEqual(received.filter { $0 == "[DONE]" }.count, 1)
        let text = try received.dropLast().compactMap { try JSONValue.parse($0)["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue }
        XCTAssertEqual(text.joined(), "Hello")
    }

    /// A client that has its whole answer finds the request counted (statistics, metrics, ledger
    /// and log are recorded together): the facts are recorded before the answer's last bytes are
    /// written, not after, where a client quick to ask again raced them.
    func testTheRequestIsCountedBeforeItsLastBytesAreWritten() throws {
        let events = [#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
                      "[DONE]"]
        for streaming in [false, true] {
            let gateway = try InProcessGateway(configuration: configuration(providers: ["a": ["gpt-4o"]])) { _ in
                streaming ? .events(events) : .json(200, RequestPathTests.answer)
            }
            let id = "req-counted-\(streaming)"
            let probe = WriteProbe { gateway.runtime.services.stats.recent(limit: 10).contains { $0.requestID == id } }
            let body = #"{"model":"gpt-4o","stream":\#(streaming),"messages":[{"role":"user","content":"Hi"}]}"#
            let exchange = try gateway.open("POST", "/v1/chat/completions",
                                            headers: [("Content-Type", "application/json"), ("x-prism-request-id", id)],
                                            body: Array(body.utf8),
                                            prepare: { try? $0.pipeline.syncOperations.addHandler(probe, position: .first) })
            defer { exchange.close() }
            var response: ClientResponse?
            for _ in 0..<100 where response == nil { response = try exchange.pump() }
            XCTAssertEqual(response?.status, 200, "streaming: \(streaming)")
            XCTAssertFalse(probe.countedAtEachWrite.isEmpty)
            XCTAssertEqual(probe.countedAtEachWrite.last, true, "streaming: \(streaming): counted only after the last write")
        }
    }

    func testASlowClientHoldsTheTransferBackUntilItDrains() throws {
        let events = (1...5).map { number in
            #"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"\#(number)"},"finish_reason":null}]}"#
        } + ["[DONE]"]
        let gateway = try InProcessGateway(configuration: configuration(providers: ["a": ["gpt-4o"]])) { _ in .events(events) }
        // The client's socket is full from the start.
        let exchange = try gateway.open("POST", "/v1/chat/completions", headers: [("Content-Type", "application/json")],
                                        body: Array(#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Hi"}]}"#.utf8),
                                        prepare: { $0.isWritable = false })
        defer { exchange.close() }
        XCTAssertNil(try exchange.pump(), "the answer cannot be complete while the client reads nothing")
        XCTAssertEqual(gateway.transport.paused, 1, "the transfer is paused at its first chunk")
        let sofar = String(decoding: exchange.received, as: UTF8.self)
        XCTAssertFalse(sofar.contains("\"content\""), "no chunk is taken while the client cannot take it")
        // The client drains: the transfer goes on and the stream ends.
        exchange.channel.isWritable = true
        exchange.channel.pipeline.fireChannelWritabilityChanged()
        let response = try XCTUnwrap(try exchange.pump())
        XCTAssertEqual(gateway.transport.paused, 0)
        let text = try response.events.dropLast().compactMap {
            try JSONValue.parse($0)["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue
        }
        XCTAssertEqual(text.joined(), "12345")
        XCTAssertEqual(response.events.last, "[DONE]")
    }

    func testAStreamThatCannotBeTranslatedEndsWithAnErrorEvent() throws {
        let gateway = try InProcessGateway(configuration: configuration(providers: ["a": ["gpt-4o"]])) { _ in
            .events(["{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}", "{not json"])
        }
        let response = try gateway.post("/v1/chat/completions",
                                        json: #"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Hi"}]}"#)
        XCTAssertEqual(response.status, 200)
        let events = response.events
        XCTAssertEqual(events.last, "[DONE]", "the error event is followed by [DONE]")
        let error = try XCTUnwrap(events.dropLast().last.map { try JSONValue.parse($0) })
        XCTAssertNotNil(error["error"]?["message"]?.stringValue, "an error event, not a silent cut: \(events)")
    }

    func testAFailedProviderFailsOverToTheNext() throws {
        // Round robin's first request goes to the first provider listed.
        let gateway = try InProcessGateway(configuration: configuration(providers: ["a": ["gpt-4o"], "b": ["gpt-4o"]])) { request in
            request.url.hasPrefix("http://a.test")
                ? .json(500, #"{"error":{"message":"upstream broke","type":"server_error"}}"#)
                : .json(200, RequestPathTests.answer)
        }
        let response = try gateway.post("/v1/chat/completions", json: #"{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}"#)
        XCTAssertEqual(response.status, 200, response.text)
        XCTAssertEqual(gateway.transport.requests.map { $0.url }.sorted(),
                       ["http://a.test/v1/chat/completions", "http://b.test/v1/chat/completions"])
        XCTAssertEqual(response.header("x-prism-provider"), "b")
    }

    func testARetryWaitsItsBackoffOnTheLoopsClock() throws {
        let extra = "routing: {failover: {enabled: false}, retry: {enabled: true, max_retries: 2, initial_delay: 200ms}}\n"
        let calls = NIOLockedValueBox(0)
        let gateway = try InProcessGateway(configuration: configuration(providers: ["a": ["gpt-4o"]], extra: extra)) { _ in
            calls.withLockedValue { $0 += 1; return $0 } == 1
                ? .json(503, #"{"error":{"message":"overloaded","type":"server_error"}}"#)
                : .json(200, RequestPathTests.answer)
        }
        let exchange = try gateway.open("POST", "/v1/chat/completions", headers: [("Content-Type", "application/json")],
                                        body: Array(#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}"#.utf8))
        defer { exchange.close() }
        XCTAssertNil(try exchange.pump())
        XCTAssertEqual(gateway.transport.requests.count, 1)
        // The backoff is 200 ms with jitter (×0.5…1): nothing before 100 ms, the retry by 200 ms.
        exchange.advance(by: .milliseconds(90))
        XCTAssertNil(try exchange.pump())
        XCTAssertEqual(gateway.transport.requests.count, 1, "no retry before the backoff")
        exchange.advance(by: .milliseconds(110))
        let response = try XCTUnwrap(try exchange.pump())
        XCTAssertEqual(response.status, 200, response.text)
        XCTAssertEqual(gateway.transport.requests.count, 2)
    }

    func testARaceTakesTheFirstGoodAnswerAndCancelsTheRest() throws {
        let extra = "routing: {default_strategy: fastest, fastest: {race: 2}}\n"
        let gateway = try InProcessGateway(configuration: configuration(providers: ["a": ["gpt-4o"], "b": ["gpt-4o"]], extra: extra)) { request in
            // Whichever starts first answers first (the scripted transport answers at once).
            .json(200, RequestPathTests.answer.replacingOccurrences(of: "Hello", with: request.url.hasPrefix("http://a.") ? "from a" : "from b"))
        }
        let response = try gateway.post("/v1/chat/completions", json: #"{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}"#)
        XCTAssertEqual(response.status, 200, response.text)
        XCTAssertEqual(gateway.transport.requests.count, 2, "both raced")
        let winner = try XCTUnwrap(response.header("x-prism-provider"))
        XCTAssertEqual(try JSONValue.parse(response.text)["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue,
                       "from \(winner)")
        XCTAssertEqual(gateway.transport.cancelled, 1, "the other attempt is cancelled")
    }

    func testEveryProviderFailingAnswersTheLastErrorInOpenAIShape() throws {
        let gateway = try InProcessGateway(configuration: configuration(providers: ["a": ["gpt-4o"]])) { _ in
            Reply(status: 0, headers: [], chunks: [], failure: .connection("connection refused"))
        }
        let response = try gateway.post("/v1/chat/completions", json: #"{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}"#)
        XCTAssertEqual(response.status, 502, response.text)
        let body = try JSONValue.parse(response.text)
        XCTAssertEqual(body["error"]?["type"]?.stringValue, "provider_error")
        XCTAssertTrue(body["error"]?["message"]?.stringValue?.contains("connection refused") ?? false, response.text)
    }

    func testBadInputIsRefusedBeforeAnyUpstreamRequest() throws {
        let gateway = try InProcessGateway(configuration: configuration(providers: ["a": ["gpt-4o"]])) { _ in
            .json(200, RequestPathTests.answer)
        }
        let broken = try gateway.post("/v1/chat/completions", json: #"{"model":"gpt-4o","messages":["#)
        XCTAssertEqual(broken.status, 400, broken.text)
        XCTAssertEqual(try JSONValue.parse(broken.text)["error"]?["type"]?.stringValue, "invalid_request_error")
        let unknown = try gateway.post("/v1/chat/completions", json: #"{"model":"no-such-model","messages":[]}"#)
        XCTAssertEqual(unknown.status, 404, unknown.text)
        XCTAssertEqual(gateway.transport.requests.count, 0)
    }

    /// A query string is not part of the path the gateway routes on (SDKs add some, probes too).
    func testAQueryStringDoesNotChangeTheRoute() throws {
        let gateway = try InProcessGateway(configuration: configuration(providers: ["a": ["gpt-4o"]])) { _ in
            .json(200, RequestPathTests.answer)
        }
        XCTAssertEqual(try gateway.send("GET", "/healthz?probe=kubelet").status, 200)
        let chat = try gateway.post("/v1/chat/completions?api-version=1&x=%3F",
                                    json: #"{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}"#)
        XCTAssertEqual(chat.status, 200, chat.text)
        XCTAssertEqual(gateway.transport.requests.last?.url, "http://a.test/v1/chat/completions")
        XCTAssertEqual(try gateway.send("GET", "/healthz/?probe").status, 404)
        XCTAssertEqual(try gateway.send("GET", "/?").status, 404)
    }

    /// OpenAI's reasoning models (o1, o3, o4, gpt-5, and their dated or sized names) refuse
    /// `max_tokens`: the OpenAI plugin renames it `max_completion_tokens` for them, and only them.
    func testAReasoningModelGetsMaxCompletionTokens() throws {
        let reasoning = ["o1", "o3-mini", "o4-mini-2025-04-16", "gpt-5", "gpt-5-mini"]
        let others = ["gpt-4o", "o30", "gpt-50", "gpt-5o", "my-o3-mini", "o3-\u{301}mini"]
        let gateway = try InProcessGateway(configuration: configuration(providers: ["a": reasoning + others])) { _ in
            .json(200, RequestPathTests.answer)
        }
        for model in reasoning + others {
            let response = try gateway.post("/v1/chat/completions",
                                            json: #"{"model":"\#(model)","max_tokens":9,"messages":[{"role":"user","content":"Hi"}]}"#)
            XCTAssertEqual(response.status, 200, response.text)
            let upstream = try JSONValue.parse(try XCTUnwrap(gateway.transport.requests.last).body)
            XCTAssertEqual(upstream["model"]?.stringValue, model)
            let renamed = reasoning.contains(model)
            XCTAssertEqual(upstream["max_completion_tokens"]?.integerValue, renamed ? 9 : nil, model)
            XCTAssertEqual(upstream["max_tokens"]?.integerValue, renamed ? nil : 9, model)
        }
        // A client that already sends the new name keeps its own.
        _ = try gateway.post("/v1/chat/completions",
                             json: #"{"model":"o3-mini","max_tokens":9,"max_completion_tokens":5,"messages":[]}"#)
        let kept = try JSONValue.parse(try XCTUnwrap(gateway.transport.requests.last).body)
        XCTAssertEqual(kept["max_completion_tokens"]?.integerValue, 5)
    }

    func testAnAnthropicClientGetsItsOwnDialectFromAnOpenAIProvider() throws {
        let gateway = try InProcessGateway(configuration: configuration(providers: ["a": ["gpt-4o"]])) { _ in
            .json(200, RequestPathTests.answer)
        }
        let response = try gateway.post("/v1/messages", json: #"{"model":"gpt-4o","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]}"#)
        XCTAssertEqual(response.status, 200, response.text)
        let body = try JSONValue.parse(response.text)
        XCTAssertEqual(body["type"]?.stringValue, "message")
        XCTAssertEqual(body["content"]?.arrayValue?.first?["text"]?.stringValue, "Hello")
        let upstream = try XCTUnwrap(gateway.transport.requests.first)
        XCTAssertEqual(upstream.url, "http://a.test/v1/chat/completions", "translated to the provider's format")
    }
}

private typealias Reply = ScriptedTransport.Reply

/// At the connection's socket end of the pipeline: asks `counted` at every write of bytes.
private final class WriteProbe: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = ByteBuffer
    private let counted: () -> Bool
    private(set) var countedAtEachWrite: [Bool] = []
    init(_ counted: @escaping () -> Bool) { self.counted = counted }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        countedAtEachWrite.append(counted())
        context.write(data, promise: promise)
    }
}
