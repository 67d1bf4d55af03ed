import PluginKit
import AnthropicDialect
import PrismWire
import XCTest

final class DecodeTests: XCTestCase {
    static let realistic = #"""
    {
      "model": "claude-sonnet-4-5",
      "max_tokens": 1024,
      "system": [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Big context", "cache_control": {"type": "ephemeral"}}
      ],
      "messages": [
        {"role": "user", "content": [
          {"type": "text", "text": "Weather in Paris? See photo."},
          {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
          {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}, "cache_control": {"type": "ephemeral"}}
        ]},
        {"role": "assistant", "content": [
          {"type": "thinking", "thinking": "Need the tools.", "signature": "sig-1"},
          {"type": "redacted_thinking", "data": "ENC"},
          {"type": "text", "text": "Checking."},
          {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
          {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}, "cache_control": {"type": "ephemeral"}}
        ]},
        {"role": "user", "content": [
          {"type": "text", "text": "Hurry."},
          {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C sunny"},
          {"type": "tool_result", "tool_use_id": "toolu_02", "is_error": true,
           "content": [{"type": "text", "text": "timeout"}], "cache_control": {"type": "ephemeral"}}
        ]},
        {"role": "assistant", "content": "It is 18C."},
        {"role": "user", "content": "Thanks"}
      ],
      "tools": [{"name": "get_weather", "description": "Weather by city",
                 "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                 "cache_control": {"type": "ephemeral"}},
                {"type": "custom", "name": "get_time", "input_schema": {"type": "object"}}],
      "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
      "stop_sequences": ["END"],
      "temperature": 0.5, "top_p": 0.9, "top_k": 40,
      "metadata": {"user_id": "user-42"},
      "thinking": {"type": "enabled", "budget_tokens": 4096},
      "stream": true
    }
    """#

    func testRealisticRequest() throws {
        let (body, headers) = canonical(DecodeTests.realistic, headers: ["x-api-key": "sk-ant-123"])
        let expected = JSONValue(#"""
        {"model":"claude-sonnet-4-5",
         "messages":[
          {"role":"system","content":[{"type":"text","text":"You are terse."},
                                      {"type":"text","text":"Big context","cache_control":{"type":"ephemeral"}}]},
          {"role":"user","content":[{"type":"text","text":"Weather in Paris? See photo."},
                                    {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
                                    {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"},"cache_control":{"type":"ephemeral"}}]},
          {"role":"assistant","content":[{"type":"text","text":"Checking."}],
           "tool_calls":[{"id":"toolu_01","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                         {"id":"toolu_02","type":"function","function":{"name":"get_time","arguments":"{}"}}],
           "thinking_blocks":[{"type":"thinking","thinking":"Need the tools.","signature":"sig-1"},
                              {"type":"redacted_thinking","data":"ENC"}],
           "cache_control":{"type":"ephemeral"}},
          {"role":"tool","content":"18C sunny","tool_call_id":"toolu_01"},
          {"role":"tool","content":[{"type":"text","text":"Error: timeout"}],"tool_call_id":"toolu_02",
           "cache_control":{"type":"ephemeral"}},
          {"role":"user","content":[{"type":"text","text":"Hurry."}]},
          {"role":"assistant","content":"It is 18C."},
          {"role":"user","content":"Thanks"}
         ],
         "max_tokens":1024,
         "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather by city",
                   "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}},
                   "cache_control":{"type":"ephemeral"}},
                  {"type":"function","function":{"name":"get_time","parameters":{"type":"object"}}}],
         "tool_choice":"auto","parallel_tool_calls":false,
         "stop":["END"],
         "temperature":0.5,"top_p":0.9,"top_k":40,
         "stream":true,"stream_options":{"include_usage":true},
         "user":"user-42",
         "thinking":{"type":"enabled","budget_tokens":4096},
         "reasoning_effort":"medium"}
        """#)
        XCTAssertEqual(body, expected, body.jsonText)
        XCTAssertEqual(headers, [ClientAnswer.Header("authorization", "Bearer sk-ant-123")])

        // What the providers read from it (PluginKit's typed view).
        let chat = try ChatRequest(body)
        XCTAssertEqual(chat.messages.map(\.role), ["system", "user", "assistant", "tool", "tool", "user", "assistant", "user"])
        XCTAssertTrue(chat.messages[0].hasCacheControl)
        XCTAssertEqual(chat.messages[0].partCacheControls[1], JSONValue(#"{"type":"ephemeral"}"#))
        XCTAssertEqual(chat.messages[2].thinkingBlocks, [.thinking(text: "Need the tools.", signature: "sig-1"), .redacted(data: "ENC")])
        XCTAssertEqual(chat.messages[2].toolCalls, [ToolCall(id: "toolu_01", name: "get_weather", arguments: #"{"city":"Paris"}"#),
                                                    ToolCall(id: "toolu_02", name: "get_time", arguments: "{}")])
        XCTAssertEqual(chat.messages[4].toolCallID, "toolu_02")
        XCTAssertEqual(chat.tools.first?.cacheControl, JSONValue(#"{"type":"ephemeral"}"#))
        XCTAssertEqual(chat.toolChoice, .auto)
        XCTAssertEqual(chat.parallelToolCalls, false)
        XCTAssertEqual(chat.stop, ["END"])
        XCTAssertEqual(chat.topK, 40)
        XCTAssertEqual(chat.maxTokens, 1024)
        XCTAssertTrue(chat.stream && chat.includeUsage)
        XCTAssertEqual(chat.user, "user-42")
        XCTAssertEqual(try ReasoningEffort.of(chat), .medium)
        // Anthropic's own thinking object wins for Claude.
        XCTAssertEqual(try ReasoningEffort.claudeThinking(chat), JSONValue(#"{"type":"enabled","budget_tokens":4096}"#))
    }

    func testMinimalRequestAndContext() {
        let exchange = AnthropicExchange()
        let (body, headers) = canonical(####"{"model":"claude-haiku","max_tokens":10,"system":"Be nice.","messages":[{"role":"user","content":"Hi"}],"stop_sequences":["###"]}"####,
                                        exchange: exchange)
        XCTAssertEqual(body, JSONValue(####"""
        {"model":"claude-haiku","messages":[{"role":"system","content":"Be nice."},{"role":"user","content":"Hi"}],
         "max_tokens":10,"stop":["###"],"stream":false}
        """####))
        XCTAssertEqual(headers, [])
        XCTAssertEqual(exchange.context.model, "claude-haiku")
        XCTAssertEqual(exchange.context.stopSequences, ["###"])
    }

    func testAuthorizationIsKeptWhenPresent() {
        let (_, headers) = canonical(#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}]}"#,
                                     headers: ["x-api-key": "sk-1", "authorization": "Bearer other"])
        XCTAssertEqual(headers, [])
    }

    func testToolChoiceVariantsAndThinkingBudgets() {
        func body(_ extra: String) -> JSONValue {
            canonical(#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"# + extra + "}").body
        }
        XCTAssertEqual(body(#""tool_choice":{"type":"any"}"#)["tool_choice"], .string("required"))
        XCTAssertEqual(body(#""tool_choice":{"type":"none"}"#)["tool_choice"], .string("none"))
        XCTAssertEqual(body(#""tool_choice":{"type":"tool","name":"f"}"#)["tool_choice"],
                       JSONValue(#"{"type":"function","function":{"name":"f"}}"#))
        XCTAssertNil(body(#""tool_choice":{"type":"any"}"#)["parallel_tool_calls"])
        XCTAssertEqual(body(#""thinking":{"type":"enabled","budget_tokens":1024}"#)["reasoning_effort"], .string("low"))
        XCTAssertEqual(body(#""thinking":{"type":"enabled","budget_tokens":2048}"#)["reasoning_effort"], .string("low"))
        XCTAssertEqual(body(#""thinking":{"type":"enabled","budget_tokens":8192}"#)["reasoning_effort"], .string("medium"))
        XCTAssertEqual(body(#""thinking":{"type":"enabled","budget_tokens":16000}"#)["reasoning_effort"], .string("high"))
        let disabled = body(#""thinking":{"type":"disabled"}"#)
        XCTAssertNil(disabled["thinking"])
        XCTAssertNil(disabled["reasoning_effort"])
        let adaptive = body(#""thinking":{"type":"adaptive"}"#)
        XCTAssertEqual(adaptive["thinking"], JSONValue(#"{"type":"adaptive"}"#))
        XCTAssertNil(adaptive["reasoning_effort"])
        XCTAssertEqual(body(#""cache_control":{"type":"ephemeral"}"#)["cache_control"], JSONValue(#"{"type":"ephemeral"}"#))
    }

    func testDocumentsAndAssistantToolOnlyTurn() {
        let (body, _) = canonical(#"""
        {"model":"m","max_tokens":5,"messages":[
          {"role":"user","content":[
            {"type":"document","title":"spec.pdf","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="}},
            {"type":"document","source":{"type":"text","media_type":"text/plain","data":"plain words"}}]},
          {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{"a":[1,2]}}]},
          {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1"}]}]}
        """#)
        XCTAssertEqual(body["messages"], JSONValue(#"""
        [{"role":"user","content":[
           {"type":"file","file":{"filename":"spec.pdf","file_data":"data:application/pdf;base64,JVBERi0="}},
           {"type":"text","text":"plain words"}]},
         {"role":"assistant","content":null,
          "tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{\"a\":[1,2]}"}}]},
         {"role":"tool","content":"","tool_call_id":"t1"}]
        """#))
    }

    /// A 2 KB request with escapes and non-ASCII text comes through byte-exact.
    func testTwoKilobyteRequest() {
        let paragraph = "Ünïcödé “quotes” \\ backslash \"quoted\" tab\t and newline\n — 日本語のテキスト. "
        var text = ""
        while text.utf8.count < 2_100 { text += paragraph }
        var writer = JSONWriter()
        writer.beginObject()
        writer.string("model", "claude-opus")
        writer.integer("max_tokens", 2048)
        writer.key("messages")
        writer.beginArray()
        writer.beginObject()
        writer.string("role", "user")
        writer.string("content", text)
        writer.endObject()
        writer.endArray()
        writer.endObject()
        XCTAssertGreaterThan(writer.bytes.count, 2_048)
        let (body, _) = canonical(writer.text)
        XCTAssertEqual(body["messages"]?.arrayValue?.first?["content"]?.stringValue, text)
        XCTAssertEqual(body["max_tokens"], .number("2048"))
    }

    func testRoutes() {
        XCTAssertEqual(AnthropicIngress.routeTable, [
            IngressRoute(method: "POST", path: "/v1/messages", api: "anthropic.messages"),
            IngressRoute(method: "POST", path: "/v1/messages/count_tokens", api: "anthropic.count_tokens"),
        ])
    }

    // MARK: count_tokens

    func testCountTokens() {
        let json = #"""
        {"model":"claude","system":"abcd","messages":[
           {"role":"user","content":"hello world!"},
           {"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://x/y.png"}}]}],
         "tools":[{"name":"t","description":"d","input_schema":{"type":"object"}}]}
        """#
        // bytes: 4 (system) + 12 (text) + 1 + 1 + 17 (tool) = 35 → 9; 2 messages × 3; one image 1,600.
        guard case let .answer(answer) = decode(json, api: "anthropic.count_tokens") else {
            return XCTFail("count_tokens answers locally")
        }
        XCTAssertEqual(answer, ClientAnswer.json(200, Array(#"{"input_tokens":1615}"#.utf8)))
    }

    func testCountTokensCountsToolTurns() {
        let json = #"""
        {"model":"claude","messages":[
           {"role":"assistant","content":[{"type":"thinking","thinking":"ignored","signature":"s"},
                                          {"type":"tool_use","id":"a","name":"fn","input":{"k":1}}]},
           {"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":[{"type":"text","text":"12345678"}]}]}]}
        """#
        // bytes: "fn" 2 + {"k":1} 7 + 8 = 17 → 5; 2 messages × 3.
        guard case let .answer(answer) = decode(json, api: "anthropic.count_tokens") else {
            return XCTFail("count_tokens answers locally")
        }
        XCTAssertEqual(String(decoding: answer.body, as: UTF8.self), #"{"input_tokens":11}"#)
    }
}
