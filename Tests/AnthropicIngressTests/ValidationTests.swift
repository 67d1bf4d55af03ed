import PluginKit
import AnthropicDialect
import PrismWire
import XCTest

/// Every way decode refuses a request: a 400 invalid_request_error naming the field.
final class ValidationTests: XCTestCase {
    private func expect(_ json: String, message: String, code: String, api: String = "anthropic.messages",
                        file: StaticString = #filePath, line: UInt = #line)
    {
        guard let error = refusal(json, api: api, file: file, line: line) else { return }
        XCTAssertEqual(error.message, message, file: file, line: line)
        XCTAssertEqual(error.code, code, file: file, line: line)
    }

    /// A valid request with `messages` replaced.
    private func with(messages: String, extra: String = "") -> String {
        #"{"model":"m","max_tokens":10,"messages":"# + messages + extra + "}"
    }

    func testBody() {
        guard let error = refusal("{not json") else { return }
        XCTAssertTrue(error.message.hasPrefix("The request body is not valid JSON: "), error.message)
        XCTAssertEqual(error.code, "invalid_json")
        expect("[1,2]", message: "The request body must be a JSON object.", code: "invalid_json")
    }

    func testRequiredFields() {
        expect(#"{"max_tokens":10,"messages":[{"role":"user","content":"x"}]}"#,
               message: "model: Field required", code: "missing_model")
        expect(#"{"model":"","max_tokens":10,"messages":[{"role":"user","content":"x"}]}"#,
               message: "model: Input should be a non-empty string", code: "invalid_model")
        expect(#"{"model":"m","max_tokens":10}"#, message: "messages: Field required", code: "missing_messages")
        expect(with(messages: "[]"), message: "messages: at least one message is required", code: "missing_messages")
        expect(with(messages: #""hi""#), message: "messages: Input should be a valid list", code: "invalid_messages")
        expect(#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
               message: "max_tokens: Field required", code: "missing_max_tokens")
        expect(#"{"model":"m","max_tokens":"ten","messages":[{"role":"user","content":"x"}]}"#,
               message: "max_tokens: Input should be a valid non-negative integer", code: "invalid_max_tokens")
    }

    func testMessages() {
        expect(with(messages: #"[{"role":"system","content":"x"}]"#),
               message: "messages.0.role: Input should be 'user' or 'assistant'", code: "invalid_messages")
        expect(with(messages: #"[{"role":"user"}]"#), message: "messages.0.content: Field required", code: "invalid_messages")
        expect(with(messages: #"[{"role":"user","content":5}]"#),
               message: "messages.0.content: Input should be a valid string or list of content blocks", code: "invalid_messages")
        expect(with(messages: #"[{"role":"user","content":[{"text":"x"}]}]"#),
               message: "messages.0.content.0.type: Field required", code: "invalid_messages")
        expect(with(messages: #"[{"role":"user","content":[{"type":"text"}]}]"#),
               message: "messages.0.content.0.text: Field required", code: "invalid_messages")
        expect(with(messages: #"[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"tool_result","tool_use_id":"t"}]}]"#),
               message: "messages.1.content.0: `tool_result` blocks are only allowed in user messages", code: "invalid_messages")
        expect(with(messages: #"[{"role":"user","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]}]"#),
               message: "messages.0.content.0: `tool_use` blocks are only allowed in assistant messages", code: "invalid_messages")
        expect(with(messages: #"[{"role":"user","content":[{"type":"thinking","thinking":"x","signature":"s"}]}]"#),
               message: "messages.0.content.0: `thinking` blocks are only allowed in assistant messages", code: "invalid_messages")
        expect(with(messages: #"[{"role":"assistant","content":[{"type":"tool_use","name":"f","input":{}}]}]"#),
               message: "messages.0.content.0.id: Field required", code: "invalid_messages")
        expect(with(messages: #"[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":"x"}]}]"#),
               message: "messages.0.content.0.input: Input should be a valid dictionary", code: "invalid_messages")
        expect(with(messages: #"[{"role":"user","content":[{"type":"tool_result","content":"x"}]}]"#),
               message: "messages.0.content.0.tool_use_id: Field required", code: "invalid_messages")
        expect(with(messages: #"[{"role":"assistant","content":[{"type":"redacted_thinking"}]}]"#),
               message: "messages.0.content.0.data: Field required", code: "invalid_messages")
    }

    func testBlocksItCannotCarry() {
        expect(with(messages: #"[{"role":"user","content":[{"type":"search_result","source":"s","title":"t","content":[]}]}]"#),
               message: "messages.0.content.0: content blocks of type `search_result` are not supported by this gateway",
               code: "unsupported_content")
        expect(with(messages: #"[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f1"}}]}]"#),
               message: "messages.0.content.0.source: image sources of type `file` are not supported by this gateway (use base64 or url)",
               code: "unsupported_content")
        expect(with(messages: #"[{"role":"user","content":[{"type":"image"}]}]"#),
               message: "messages.0.content.0.source: Field required", code: "invalid_messages")
        expect(with(messages: #"[{"role":"user","content":[{"type":"document","source":{"type":"url","url":"https://x/a.pdf"}}]}]"#),
               message: "messages.0.content.0.source: document sources of type `url` are not supported by this gateway (send the document as base64 or text)",
               code: "unsupported_content")
        expect(with(messages: #"[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"search_result"}]}]}]"#),
               message: "messages.0.content.0.content.0: tool results of type `search_result` are not supported by this gateway",
               code: "unsupported_content")
    }

    func testSystemToolsAndSettings() {
        let message = #"[{"role":"user","content":"x"}]"#
        expect(with(messages: message, extra: #","system":[{"type":"image"}]"#),
               message: "system.0: only text blocks are allowed in `system`", code: "invalid_system")
        expect(with(messages: message, extra: #","system":5"#),
               message: "system: Input should be a valid string or list of text blocks", code: "invalid_system")
        expect(with(messages: message, extra: #","tools":[{"type":"web_search_20250305","name":"web_search"}]"#),
               message: "tools.0: server tools (`web_search_20250305`) are not supported by this gateway; only client tools with an input_schema are",
               code: "unsupported_tool")
        expect(with(messages: message, extra: #","tools":[{"name":"f"}]"#),
               message: "tools.0.input_schema: Field required", code: "invalid_tools")
        expect(with(messages: message, extra: #","tools":[{"input_schema":{}}]"#),
               message: "tools.0.name: Field required", code: "invalid_tools")
        expect(with(messages: message, extra: #","tools":{}"#), message: "tools: Input should be a valid list", code: "invalid_tools")
        expect(with(messages: message, extra: #","tool_choice":{"type":"sometimes"}"#),
               message: "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'", code: "invalid_tool_choice")
        expect(with(messages: message, extra: #","tool_choice":{"type":"tool"}"#),
               message: "tool_choice.name: Field required", code: "invalid_tool_choice")
        expect(with(messages: message, extra: #","tool_choice":"auto""#),
               message: "tool_choice.type: Field required", code: "invalid_tool_choice")
        expect(with(messages: message, extra: #","thinking":{"type":"enabled"}"#),
               message: "thinking.enabled.budget_tokens: Field required", code: "invalid_thinking")
        expect(with(messages: message, extra: #","thinking":true"#),
               message: "thinking.type: Field required", code: "invalid_thinking")
        expect(with(messages: message, extra: #","stop_sequences":"END""#),
               message: "stop_sequences: Input should be a valid list", code: "invalid_stop_sequences")
        expect(with(messages: message, extra: #","stop_sequences":["a",1]"#),
               message: "stop_sequences.1: Input should be a valid string", code: "invalid_stop_sequences")
        expect(with(messages: message, extra: #","temperature":"hot""#),
               message: "temperature: Input should be a valid number", code: "invalid_temperature")
    }

    func testCountTokensValidation() {
        let api = "anthropic.count_tokens"
        expect(#"{"messages":[{"role":"user","content":"x"}]}"#, message: "model: Field required", code: "missing_model", api: api)
        expect(#"{"model":"m"}"#, message: "messages: Field required", code: "missing_messages", api: api)
        expect(#"{"model":"m","messages":[]}"#, message: "messages: at least one message is required", code: "missing_messages", api: api)
        expect(#"{"model":"m","messages":[{"role":"user","content":[{"type":"video"}]}]}"#,
               message: "messages.0.content.0: content blocks of type `video` are not supported by this gateway",
               code: "unsupported_content", api: api)
        // max_tokens is not needed to count.
        guard case .answer = decode(#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#, api: api) else {
            return XCTFail("count_tokens needs no max_tokens")
        }
    }

    func testUnknownAPI() {
        guard case let .failure(error) = decode(#"{"model":"m"}"#, api: "anthropic.batches") else {
            return XCTFail("an api it does not serve is refused")
        }
        XCTAssertEqual(error.code, "unsupported_api")
    }
}
