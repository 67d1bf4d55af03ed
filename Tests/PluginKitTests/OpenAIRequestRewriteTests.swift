import PrismWire
import XCTest
import PluginKit

final class OpenAIRequestRewriteTests: XCTestCase {
    func rewrite(_ body: String, model: String, streaming: Bool) throws -> (String, Bool) {
        let bytes = Array(body.utf8)
        return try bytes.withUnsafeBytes { raw in
            let result = try OpenAIRequestRewrite(body: raw, upstreamModel: model, streaming: streaming)
            return (String(decoding: result.rewritten(raw), as: UTF8.self), result.clientWantsUsage)
        }
    }

    func testUnchangedBodyIsForwardedByteForByte() throws {
        let body = #"{ "model" : "gpt-4o",  "messages":[{"role":"user","content":"hi"}], "temperature": 0.20 }"#
        XCTAssertEqual(try rewrite(body, model: "gpt-4o", streaming: false).0, body)
    }

    func testReplacesOnlyTheModelValue() throws {
        let (out, _) = try rewrite(#"{"model":"openai/gpt-4o","messages":[],"x":1.50}"#, model: "gpt-4o", streaming: false)
        XCTAssertEqual(out, #"{"model":"gpt-4o","messages":[],"x":1.50}"#)
    }

    func testStreamsAskForUsageWithoutLosingOtherOptions() throws {
        let (inserted, wantsA) = try rewrite(#"{"model":"m","stream":true}"#, model: "m", streaming: true)
        XCTAssertEqual(try JSONValue.parse(inserted)["stream_options"]?["include_usage"], .bool(true))
        XCTAssertFalse(wantsA)

        let (merged, wantsB) = try rewrite(#"{"model":"m","stream":true,"stream_options":{"future":1,"include_usage":false}}"#,
                                           model: "m", streaming: true)
        let options = try JSONValue.parse(merged)["stream_options"]
        XCTAssertEqual(options?["include_usage"], .bool(true))
        XCTAssertEqual(options?["future"], .number("1"))
        XCTAssertFalse(wantsB)

        let original = #"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#
        let (kept, wantsC) = try rewrite(original, model: "m", streaming: true)
        XCTAssertEqual(kept, original)
        XCTAssertTrue(wantsC)
    }

    func testInvalidBodyIsAClientError() {
        XCTAssertThrowsError(try rewrite(#"{"model":"#, model: "m", streaming: false)) { error in
            XCTAssertEqual((error as? PluginError)?.code, "invalid_json")
        }
    }
}

final class OpenAIShapesTests: XCTestCase {
    func testUsageIncludesCachedAndReasoningTokens() throws {
        let body = Array(#"{"usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}"#.utf8)
        let usage = try body.withUnsafeBytes { raw in
            JSONScanner.member(named: "usage", in: try JSONScanner.members(raw), of: raw)
                .flatMap { OpenAIShapes.usage(in: raw, object: $0.valueRange) }
        }
        XCTAssertEqual(usage, Usage(inputTokens: 10, outputTokens: 5, cachedInputTokens: 4, reasoningTokens: 2))
    }

    /// Other members between the counts, details that are not objects, a repeated key (the first
    /// counts), a null usage.
    func testUsageReadsOnlyTheCountsItKnows() throws {
        func usage(_ json: String) throws -> Usage? {
            let body = Array(json.utf8)
            return try body.withUnsafeBytes { raw in JSONScanner.member(named: "usage", in: try JSONScanner.members(raw), of: raw)
                .flatMap { OpenAIShapes.usage(in: raw, object: $0.valueRange) } }
        }
        XCTAssertEqual(try usage(#"{"id":"x","usage":{"total_tokens":9,"prompt_tokens":7,"prompt_tokens_details":null,"# +
                                 #""completion_tokens_details":{"audio_tokens":1,"reasoning_tokens":3,"reasoning_tokens":8},"# +
                                 #""completion_tokens":2,"prompt_tokens":99,"extra":[{"a":[1,2]},"s"]}}"#),
                       Usage(inputTokens: 7, outputTokens: 2, cachedInputTokens: 0, reasoningTokens: 3))
        XCTAssertEqual(try usage(#"{"usage":{"prompt_tokens_details":[1],"completion_tokens":1.5e3}}"#),
                       Usage(inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, reasoningTokens: 0))
        XCTAssertNil(try usage(#"{"usage":null}"#))
        XCTAssertNil(try usage(#"{"choices":[]}"#))
    }

    func testUpstreamErrorsMapToOpenAITypes() {
        let body = Array(#"{"error":{"message":"slow down","type":"requests"}}"#.utf8)
        let limited = OpenAIShapes.upstreamError(status: 429, body: body)
        XCTAssertEqual(limited.httpStatus, 429)
        XCTAssertEqual(limited.type, "rate_limit_error")
        XCTAssertTrue(limited.message.contains("slow down"))
        XCTAssertEqual(OpenAIShapes.upstreamError(status: 401, body: body).httpStatus, 502,
                       "the gateway's own provider key being refused is not the client's fault")
        XCTAssertEqual(OpenAIShapes.upstreamError(status: 500, body: Array("oops".utf8)).type, "provider_error")
    }

    func testChunksAreValidOpenAIJSON() throws {
        let chunk = try JSONValue.parse(OpenAIShapes.chunk(id: "c1", created: 1, model: "m", role: "assistant",
                                                           content: "a\"b"))
        XCTAssertEqual(chunk["object"]?.stringValue, "chat.completion.chunk")
        XCTAssertEqual(chunk["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue, "a\"b")
        XCTAssertEqual(chunk["choices"]?.arrayValue?.first?["finish_reason"], .null)
    }
}
