import PluginKit
import AnthropicDialect
import PrismWire
import XCTest

/// The one-pass decoder (MessagesFastDecode) writes the same canonical request as the tree-based
/// one (MessagesRequest.decode), and leaves what it does not handle to it.
final class FastDecodeTests: XCTestCase {
    private func both(_ json: String, file: StaticString = #filePath, line: UInt = #line)
        -> (fast: MessagesRequest.Decoded?, slow: MessagesRequest.Decoded?)
    {
        let bytes = Array(json.utf8)
        return bytes.withUnsafeBytes { body in
            let fast = MessagesFastDecode.decode(body)
            let slow = try? MessagesRequest.decode(MessagesRequest.parseBody(body), sizeHint: body.count)
            return (fast, slow)
        }
    }

    /// The fast decoder takes `json` and agrees with the tree decoder.
    private func agree(_ json: String, file: StaticString = #filePath, line: UInt = #line) {
        let (fast, slow) = both(json)
        guard let fast else { return XCTFail("the fast decoder declined: \(json)", file: file, line: line) }
        guard let slow else { return XCTFail("the tree decoder refused: \(json)", file: file, line: line) }
        let fastBody = JSONValue(String(decoding: fast.body, as: UTF8.self))
        let slowBody = JSONValue(String(decoding: slow.body, as: UTF8.self))
        XCTAssertEqual(fastBody, slowBody, "\n\(fastBody.jsonText)\n\(slowBody.jsonText)", file: file, line: line)
        XCTAssertEqual(fast.model, slow.model, file: file, line: line)
        XCTAssertEqual(fast.stopSequences, slow.stopSequences, file: file, line: line)
    }

    private func declines(_ json: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNil(both(json).fast, json, file: file, line: line)
    }

    func testAgreesWithTheTreeDecoder() {
        agree(#"""
        {
          "model": "claude-sonnet-4-5",
          "max_tokens": 1024,
          "system": [
            {"type": "text", "text": "You are terse."},
            {"type": "text", "text": "Big context", "cache_control": {"type": "ephemeral"}}
          ],
          "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?\n\u00e9 \"q\" \/ \\"}]},
            {"role": "assistant", "content": [
              {"type": "thinking", "thinking": "Need the tools.", "signature": "sig-1"},
              {"type": "redacted_thinking", "data": "ENC"},
              {"type": "text", "text": "Checking."},
              {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Pa\"ris\\", "n": [1, 2.5, -3e2, true, null], "o": {}}},
              {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}, "cache_control": {"type": "ephemeral"}}
            ]},
            {"role": "user", "content": [
              {"type": "text", "text": "Hurry."},
              {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C sunny"},
              {"type": "tool_result", "tool_use_id": "toolu_02", "is_error": true,
               "content": [{"type": "text", "text": "timeout"}, {"type": "text", "text": "again"}], "cache_control": {"type": "ephemeral"}}
            ]},
            {"content": "It is 18C.", "role": "assistant"},
            {"role": "user", "content": "Thanks"}
          ],
          "tools": [{"name": "get_weather", "description": "Weather by city",
                     "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                     "cache_control": {"type": "ephemeral"}, "strict": true},
                    {"type": "custom", "name": "get_time", "input_schema": {"type": "object"}}],
          "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
          "stop_sequences": ["END", "\u0007"],
          "temperature": 0.5, "top_p": 0.9, "top_k": 40,
          "metadata": {"user_id": "user-42"},
          "thinking": {"type": "enabled", "budget_tokens": 4096},
          "cache_control": {"type": "ephemeral"},
          "unknown": [1, {"a": null}],
          "stream": true
        }
        """#)
        agree(####"{"model":"claude-haiku","max_tokens":10,"system":"Be nice.","messages":[{"role":"user","content":"Hi"}],"stop_sequences":["###"]}"####)
        agree(#"{"model":"m","max_tokens":0,"system":"","messages":[{"role":"user","content":[]}],"stream":false,"metadata":{}}"#)
        agree(#"{"model":"m","max_tokens":1,"system":[],"messages":[{"role":"assistant","content":[]}],"tools":[],"tool_choice":{"type":"tool","name":"f"}}"#)
        agree(#"{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f"}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t"},{"type":"tool_result","tool_use_id":"u","is_error":true},{"type":"tool_result","tool_use_id":"v","is_error":true,"content":[]},{"type":"tool_result","tool_use_id":"w","is_error":true,"content":"bad"}]}],"tool_choice":{"type":"any"},"thinking":{"type":"adaptive"}}"#)
        agree(#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"thinking":{"type":"disabled"},"tool_choice":{"type":"none"},"temperature":null,"stop_sequences":[]}"#)
        agree(#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"thinking":{"type":"enabled","budget_tokens":20000},"tool_choice":null,"tools":null}"#)
    }

    func testDeclinesWhatTheTreeDecoderHandles() {
        // Images and documents, errors (with their messages), escaped or duplicate keys.
        declines(#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"u"}}]}]}"#)
        declines(#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","data":"d"}}]}]}"#)
        declines(#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#)
        declines(#"{"model":"","max_tokens":1,"messages":[{"role":"user","content":"x"}]}"#)
        declines(#"{"model":"m","max_tokens":1,"messages":[]}"#)
        declines(#"{"model":"m","max_tokens":1,"messages":[{"role":"system","content":"x"}]}"#)
        declines(#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search_20250305","name":"w"}]}"#)
        declines(#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"\u006dodel":"n"}"#)
        declines(#"{"model":"m","model":"n","max_tokens":1,"messages":[{"role":"user","content":"x"}]}"#)
        declines(#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"},]}"#)
        declines(#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}]} x"#)
        declines(#"{"model":"m","max_tokens":1 "messages":[{"role":"user","content":"x"}]}"#)
    }

    /// Through the exchange: the fast path's answer and context.
    func testExchangeUsesIt() {
        let exchange = AnthropicExchange()
        let (body, headers) = canonical(#"{"model":"claude","max_tokens":5,"stop_sequences":["a\nb"],"messages":[{"role":"user","content":"Hi"}]}"#,
                                        headers: ["x-api-key": "k"], exchange: exchange)
        XCTAssertEqual(body, JSONValue(#"{"model":"claude","messages":[{"role":"user","content":"Hi"}],"max_tokens":5,"stop":["a\nb"],"stream":false}"#))
        XCTAssertEqual(headers, [ClientAnswer.Header("authorization", "Bearer k")])
        XCTAssertEqual(exchange.context.model, "claude")
        XCTAssertEqual(exchange.context.stopSequences, ["a\nb"])
    }
}
