import PluginKit
import PrismWire
import XCTest
import ResponsesDialect

final class ResponsesIngressTests: XCTestCase {
    func testRoutes() {
        let routes = ResponsesIngress(environment: environment()).routes
        XCTAssertEqual(routes, [
            IngressRoute(method: "POST", path: "/v1/responses", api: "openai.responses"),
            IngressRoute(method: "GET", path: "/v1/responses/", api: "openai.responses.retrieve", isPrefix: true),
            IngressRoute(method: "GET", path: "/v1/responses", api: "openai.responses.websocket"),
        ])
    }

    // MARK: Decode

    func testDecodeAgentTurn() {
        let exchange = ResponsesExchange(environment())
        let body = forwarded(decode(exchange, #"""
        {"model":"gpt-4.1","instructions":"Be brief.","input":[
          {"role":"developer","content":"Use tools."},
          {"type":"message","role":"user","content":[{"type":"input_text","text":"Weather in Paris and Rome?"},
            {"type":"input_image","image_url":"https://example.com/map.png","detail":"low"}]},
          {"type":"reasoning","id":"rs_0","summary":[]},
          {"type":"message","role":"assistant","content":[{"type":"output_text","text":"Checking.","annotations":[]}]},
          {"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
          {"type":"function_call","call_id":"call_2","name":"get_weather","arguments":"{\"city\":\"Rome\"}"},
          {"type":"function_call_output","call_id":"call_1","output":"18C"},
          {"type":"function_call_output","call_id":"call_2","output":[{"type":"input_text","text":"21C"}]}],
         "tools":[{"type":"function","name":"get_weather","description":"Weather","strict":true,
                   "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}],
         "tool_choice":"auto",
         "text":{"format":{"type":"json_schema","name":"report","schema":{"type":"object"},"strict":true}},
         "reasoning":{"effort":"high","summary":"auto"},
         "max_output_tokens":500,"temperature":0.2,"top_p":0.9,"parallel_tool_calls":true,"user":"u-1",
         "metadata":{"k":"v"},"stream":true,"store":true}
        """#))
        assertJSON(body, #"""
        {"model":"gpt-4.1","messages":[
          {"role":"system","content":"Be brief."},
          {"role":"developer","content":"Use tools."},
          {"role":"user","content":[{"type":"text","text":"Weather in Paris and Rome?"},
            {"type":"image_url","image_url":{"url":"https://example.com/map.png","detail":"low"}}]},
          {"role":"assistant","content":"Checking.","tool_calls":[
            {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
            {"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]},
          {"role":"tool","tool_call_id":"call_1","content":"18C"},
          {"role":"tool","tool_call_id":"call_2","content":"21C"}],
         "temperature":0.2,"top_p":0.9,"parallel_tool_calls":true,"user":"u-1","max_tokens":500,"reasoning_effort":"high",
         "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather",
           "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"strict":true}}],
         "tool_choice":"auto",
         "response_format":{"type":"json_schema","json_schema":{"name":"report","schema":{"type":"object"},"strict":true}},
         "stream":true,"stream_options":{"include_usage":true}}
        """#)
    }

    func testDecodeStringInputJSONObjectAndFunctionChoice() {
        let body = forwarded(decode(ResponsesExchange(environment()), #"""
        {"model":"m","input":"Hi","text":{"format":{"type":"json_object"}},
         "tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],
         "tool_choice":{"type":"function","name":"f"}}
        """#))
        assertJSON(body, #"""
        {"model":"m","messages":[{"role":"user","content":"Hi"}],
         "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
         "tool_choice":{"type":"function","function":{"name":"f"}},
         "response_format":{"type":"json_object"},"stream":false}
        """#)
    }

    func testFunctionCallsWithoutAssistantTextBecomeOneAssistantMessage() {
        let body = forwarded(decode(ResponsesExchange(environment()), #"""
        {"model":"m","input":[{"role":"user","content":"go"},
          {"type":"function_call","call_id":"a","name":"f","arguments":"{}"},
          {"type":"function_call","call_id":"b","name":"g","arguments":"{}"},
          {"type":"function_call_output","call_id":"a","output":"1"}]}
        """#))
        assertJSON(body, #"""
        {"model":"m","messages":[{"role":"user","content":"go"},
          {"role":"assistant","content":null,"tool_calls":[
            {"id":"a","type":"function","function":{"name":"f","arguments":"{}"}},
            {"id":"b","type":"function","function":{"name":"g","arguments":"{}"}}]},
          {"role":"tool","tool_call_id":"a","content":"1"}],"stream":false}
        """#)
    }

    func testValidationFailures() {
        let cases: [(String, String, String)] = [
            (#"{"model":"m","input":"x","tools":[{"type":"web_search"}]}"#, "unsupported_tool",
             "tools[0]: tools of type 'web_search' are not supported by this gateway; only function tools are."),
            (#"{"model":"m"}"#, "missing_input", "`input` is required (a string or a list of input items)."),
            (#"{"model":"m","input":[{"type":"computer_call","id":"c"}]}"#, "unsupported_input_item",
             "input[0]: input items of type 'computer_call' are not supported by this gateway (supported: message, function_call, function_call_output, reasoning)."),
            (#"{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"file-1"}]}]}"#,
             "unsupported_content",
             "input[0].content[0]: images by `file_id` are not supported by this gateway; send `image_url` (a URL or a data URL)."),
            (#"{"model":"m","input":"x","tool_choice":{"type":"web_search_preview"}}"#, "unsupported_tool_choice",
             #"`tool_choice` of type 'web_search_preview' is not supported by this gateway; use auto, none, required or {"type":"function","name":...}."#),
            (#"{"model":"m","input":"x","background":true}"#, "unsupported_parameter",
             "`background` is not supported by this gateway."),
            (#"{"model":"m","input":[{"role":"tool","content":"x"}]}"#, "invalid_input",
             "input[0].role must be one of user, assistant, system, developer."),
        ]
        for (body, code, message) in cases {
            guard let error = failure(decode(ResponsesExchange(environment()), body)) else { continue }
            XCTAssertEqual(error.httpStatus, 400, body)
            XCTAssertEqual(error.type, "invalid_request_error", body)
            XCTAssertEqual(error.code, code, body)
            XCTAssertEqual(error.message, message, body)
        }
        let error = failure(decode(ResponsesExchange(environment()), "{nope"))
        XCTAssertEqual(error?.code, "invalid_json")
    }

    func testWebSocketRouteIsRefusedAtOnce() {
        guard case let .answer(status, body)? = decode(ResponsesExchange(environment()), "", api: "openai.responses.websocket",
                                                       method: "GET")
        else { return XCTFail("expected an answer") }
        XCTAssertEqual(status, 405)
        assertJSON(body, #"""
        {"error":{"message":"WebSocket mode is not supported; use HTTP POST /v1/responses","type":"invalid_request_error",
                  "param":null,"code":"websocket_not_supported"}}
        """#)
    }

    // MARK: Whole answers

    func testEncodeTextAnswer() throws {
        let store = MemoryStore()
        let exchange = ResponsesExchange(environment(store: store))
        _ = forwarded(decode(exchange, #"{"model":"gpt-4.1","input":"Hi","metadata":{"k":"v"}}"#))
        let answer = try encode(exchange, #"""
        {"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4.1-2025",
         "choices":[{"index":0,"message":{"role":"assistant","content":"Hello!","refusal":null},"logprobs":null,"finish_reason":"stop"}],
         "usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":4},
                  "completion_tokens_details":{"reasoning_tokens":0}}}
        """#)
        XCTAssertEqual(answer.status, 200)
        XCTAssertEqual(answer.headers, [ClientAnswer.Header("content-type", "application/json")])
        assertJSON(String(decoding: answer.body, as: UTF8.self), #"""
        {"id":"resp_1","object":"response","created_at":1700000000,"status":"completed","background":false,"error":null,
         "incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"gpt-4.1-2025",
         "output":[{"type":"message","id":"msg_2","status":"completed","role":"assistant",
                    "content":[{"type":"output_text","text":"Hello!","annotations":[]}]}],
         "parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":true,
         "temperature":null,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":null,
         "truncation":"disabled",
         "usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":4},"output_tokens":3,
                  "output_tokens_details":{"reasoning_tokens":0},"total_tokens":13},
         "user":null,"metadata":{"k":"v"}}
        """#)
        // Stored for retrieval and continuation, with the configured lifetime.
        let stored = try XCTUnwrap(store.stored("resp_1"))
        XCTAssertEqual(stored.response, try JSONValue.parse(answer.body))
        assertJSON(JSONValue.array(stored.messages).jsonText,
                   #"[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"}]"#)
        XCTAssertEqual(store.ttls.withLock { $0["resp:resp_1"] }, 3600)
    }

    func testEncodeReasoningAndToolCalls() throws {
        let exchange = ResponsesExchange(environment())
        _ = forwarded(decode(exchange, #"{"model":"m","input":"Weather?"}"#))
        let answer = try encode(exchange, #"""
        {"id":"c","object":"chat.completion","created":1,"model":"m",
         "choices":[{"index":0,"message":{"role":"assistant","content":null,"reasoning_content":"Need the tool.",
           "tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                         {"id":"call_2","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
           "finish_reason":"tool_calls"}],
         "usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12,"completion_tokens_details":{"reasoning_tokens":3}}}
        """#)
        let response = try JSONValue.parse(answer.body)
        XCTAssertEqual(response["status"], .string("completed"))
        assertJSON(response["output"]!.jsonText, #"""
        [{"type":"reasoning","id":"rs_2","summary":[{"type":"summary_text","text":"Need the tool."}]},
         {"type":"function_call","id":"fc_3","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}","status":"completed"},
         {"type":"function_call","id":"fc_4","call_id":"call_2","name":"get_time","arguments":"{}","status":"completed"}]
        """#)
        assertJSON(response["usage"]!.jsonText, #"""
        {"input_tokens":5,"input_tokens_details":{"cached_tokens":0},"output_tokens":7,
         "output_tokens_details":{"reasoning_tokens":3},"total_tokens":12}
        """#)
    }

    func testEncodeIncompleteAnswer() throws {
        let exchange = ResponsesExchange(environment())
        _ = forwarded(decode(exchange, #"{"model":"m","input":"Write","max_output_tokens":5}"#))
        let answer = try encode(exchange, #"""
        {"id":"c","object":"chat.completion","created":1,"model":"m",
         "choices":[{"index":0,"message":{"role":"assistant","content":"Once upon"},"finish_reason":"length"}],
         "usage":{"prompt_tokens":2,"completion_tokens":5,"total_tokens":7}}
        """#)
        let response = try JSONValue.parse(answer.body)
        XCTAssertEqual(response["status"], .string("incomplete"))
        assertJSON(response["incomplete_details"]!.jsonText, #"{"reason":"max_output_tokens"}"#)
        XCTAssertEqual(response["max_output_tokens"], .number("5"))
        assertJSON(response["output"]!.jsonText, #"""
        [{"type":"message","id":"msg_2","status":"incomplete","role":"assistant",
          "content":[{"type":"output_text","text":"Once upon","annotations":[]}]}]
        """#)
    }

    func testEncodeError() {
        let answer = ResponsesExchange(environment()).encodeError(
            IngressError(status: 429, type: "rate_limit_error", code: "rate_limit_exceeded", message: "Slow down."),
            inStream: false)
        XCTAssertEqual(answer.status, 429)
        assertJSON(String(decoding: answer.body, as: UTF8.self), #"""
        {"error":{"message":"Slow down.","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}
        """#)
    }

    // MARK: Streams

    func testStreamTextThenToolCall() throws {
        let store = MemoryStore()
        let exchange = ResponsesExchange(environment(store: store))
        _ = forwarded(decode(exchange, #"{"model":"gpt-4.1","input":"Weather?","stream":true}"#))
        let head = #""id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4.1-2025""#
        let bytes = try stream(exchange, [
            #"{\#(head),"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            #"{\#(head),"choices":[{"index":0,"delta":{"content":"Let me "},"finish_reason":null}]}"#,
            #"{\#(head),"choices":[{"index":0,"delta":{"content":"check."},"finish_reason":null}]}"#,
            #"{\#(head),"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_9","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}"#,
            #"{\#(head),"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}]}"#,
            #"{\#(head),"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"finish_reason":null}]}"#,
            #"{\#(head),"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            #"{\#(head),"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}}"#,
        ])
        let list = try events(bytes)
        XCTAssertEqual(list.map(\.event), [
            "response.created", "response.in_progress",
            "response.output_item.added", "response.content_part.added",
            "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
            "response.content_part.done", "response.output_item.done",
            "response.output_item.added", "response.function_call_arguments.delta",
            "response.function_call_arguments.delta", "response.function_call_arguments.done",
            "response.output_item.done", "response.completed",
        ])
        let payloads = try list.map { try JSONValue.parse($0.data) }
        for (index, payload) in payloads.enumerated() {
            XCTAssertEqual(payload["type"], .string(list[index].event))
            XCTAssertEqual(payload["sequence_number"], .number(String(index)))
        }
        XCTAssertFalse(String(decoding: bytes, as: UTF8.self).contains("[DONE]"))
        XCTAssertEqual(payloads[0]["response"]?["status"], .string("in_progress"))
        XCTAssertEqual(payloads[0]["response"]?["id"], .string("resp_1"))
        XCTAssertEqual(payloads[0]["response"]?["output"], .array([]))
        assertJSON(payloads[2].jsonText, #"""
        {"type":"response.output_item.added","output_index":0,
         "item":{"type":"message","id":"msg_2","status":"in_progress","role":"assistant","content":[]},"sequence_number":2}
        """#)
        assertJSON(payloads[3].jsonText, #"""
        {"type":"response.content_part.added","item_id":"msg_2","output_index":0,"content_index":0,
         "part":{"type":"output_text","text":"","annotations":[]},"sequence_number":3}
        """#)
        assertJSON(payloads[4].jsonText, #"""
        {"type":"response.output_text.delta","item_id":"msg_2","output_index":0,"content_index":0,"delta":"Let me ",
         "logprobs":[],"sequence_number":4}
        """#)
        assertJSON(payloads[6].jsonText, #"""
        {"type":"response.output_text.done","item_id":"msg_2","output_index":0,"content_index":0,"text":"Let me check.",
         "logprobs":[],"sequence_number":6}
        """#)
        assertJSON(payloads[8].jsonText, #"""
        {"type":"response.output_item.done","output_index":0,
         "item":{"type":"message","id":"msg_2","status":"completed","role":"assistant",
                 "content":[{"type":"output_text","text":"Let me check.","annotations":[]}]},"sequence_number":8}
        """#)
        assertJSON(payloads[9].jsonText, #"""
        {"type":"response.output_item.added","output_index":1,
         "item":{"type":"function_call","id":"fc_3","call_id":"call_9","name":"get_weather","arguments":"","status":"in_progress"},
         "sequence_number":9}
        """#)
        assertJSON(payloads[10].jsonText, #"""
        {"type":"response.function_call_arguments.delta","item_id":"fc_3","output_index":1,"delta":"{\"city\":","sequence_number":10}
        """#)
        assertJSON(payloads[12].jsonText, #"""
        {"type":"response.function_call_arguments.done","item_id":"fc_3","output_index":1,"name":"get_weather",
         "arguments":"{\"city\":\"Paris\"}","sequence_number":12}
        """#)
        let completed = try XCTUnwrap(payloads[14]["response"])
        XCTAssertEqual(completed["status"], .string("completed"))
        XCTAssertEqual(completed["model"], .string("gpt-4.1-2025"))
        assertJSON(completed["output"]!.jsonText, #"""
        [{"type":"message","id":"msg_2","status":"completed","role":"assistant",
          "content":[{"type":"output_text","text":"Let me check.","annotations":[]}]},
         {"type":"function_call","id":"fc_3","call_id":"call_9","name":"get_weather","arguments":"{\"city\":\"Paris\"}","status":"completed"}]
        """#)
        assertJSON(completed["usage"]!.jsonText, #"""
        {"input_tokens":9,"input_tokens_details":{"cached_tokens":0},"output_tokens":12,
         "output_tokens_details":{"reasoning_tokens":0},"total_tokens":21}
        """#)
        // The streamed answer is stored as the conversation's next turn.
        let stored = try XCTUnwrap(store.stored("resp_1"))
        XCTAssertEqual(stored.response, completed)
        assertJSON(JSONValue.array(stored.messages).jsonText, #"""
        [{"role":"user","content":"Weather?"},
         {"role":"assistant","content":"Let me check.","tool_calls":[
           {"id":"call_9","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}]
        """#)
    }

    func testStreamReasoningAndLengthEndsIncomplete() throws {
        let exchange = ResponsesExchange(environment())
        _ = forwarded(decode(exchange, #"{"model":"m","input":"x","stream":true}"#))
        let head = #""id":"c","object":"chat.completion.chunk","created":1,"model":"m""#
        let list = try events(try stream(exchange, [
            #"{\#(head),"choices":[{"index":0,"delta":{"reasoning_content":"Hmm."},"finish_reason":null}]}"#,
            #"{\#(head),"choices":[{"index":0,"delta":{"content":"Ans"},"finish_reason":"length"}]}"#,
        ], usage: Usage(inputTokens: 3, outputTokens: 4)))
        XCTAssertEqual(list.map(\.event), [
            "response.created", "response.in_progress",
            "response.output_item.added", "response.reasoning_summary_part.added", "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done",
            "response.output_item.added", "response.content_part.added", "response.output_text.delta",
            "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.incomplete",
        ])
        let last = try JSONValue.parse(list.last!.data)
        XCTAssertEqual(last["response"]?["status"], .string("incomplete"))
        assertJSON(last["response"]!["incomplete_details"]!.jsonText, #"{"reason":"max_output_tokens"}"#)
        XCTAssertEqual(last["response"]?["usage"]?["total_tokens"], .number("7"))
        assertJSON(last["response"]!["output"]!.jsonText, #"""
        [{"type":"reasoning","id":"rs_2","summary":[{"type":"summary_text","text":"Hmm."}]},
         {"type":"message","id":"msg_3","status":"incomplete","role":"assistant",
          "content":[{"type":"output_text","text":"Ans","annotations":[]}]}]
        """#)
    }

    func testErrorInAStreamItNeverWrote() throws {
        // A pass-through stream that broke off: the upstream's events reached the client, not ours.
        let exchange = ResponsesExchange(environment())
        _ = forwarded(decode(exchange, #"{"model":"m","input":"x","stream":true}"#))
        let answer = exchange.encodeError(IngressError(status: 502, type: "provider_error", code: "provider_error",
                                                       message: "upstream went away"), inStream: true)
        XCTAssertEqual(try events(answer.body).map(\.event), ["error"])
    }

    func testErrorInStream() throws {
        let exchange = ResponsesExchange(environment())
        _ = forwarded(decode(exchange, #"{"model":"m","input":"x","stream":true}"#))
        var out: [UInt8] = []
        var chunk = Array(#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#.utf8)
        try chunk.withUnsafeMutableBytes { try exchange.encodeEvent(UnsafeRawBufferPointer($0), into: &out) }
        let answer = exchange.encodeError(IngressError(status: 502, type: "provider_error", code: "provider_error",
                                                       message: "upstream went away"), inStream: true)
        let list = try events(out + answer.body)
        XCTAssertEqual(list.map(\.event), [
            "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
            "response.output_text.delta", "response.output_text.done", "response.content_part.done",
            "response.output_item.done", "error", "response.failed",
        ])
        assertJSON(String(decoding: list[8].data, as: UTF8.self), #"""
        {"type":"error","code":"provider_error","message":"upstream went away","param":null,
         "error":{"type":"provider_error","code":"provider_error","message":"upstream went away","param":null},
         "sequence_number":8}
        """#)
        let failed = try JSONValue.parse(list[9].data)
        XCTAssertEqual(failed["sequence_number"], .number("9"))
        XCTAssertEqual(failed["response"]?["status"], .string("failed"))
        assertJSON(failed["response"]!["error"]!.jsonText, #"{"code":"provider_error","message":"upstream went away"}"#)
        XCTAssertEqual(failed["response"]?["output"]?.arrayValue?.count, 1)
    }

    // MARK: Stored responses

    func testPreviousResponseRetrieveAndDelete() throws {
        let store = MemoryStore()
        let env = environment(store: store)
        let first = ResponsesExchange(env)
        _ = forwarded(decode(first, #"{"model":"m","instructions":"Old rules.","input":"My name is Ada."}"#))
        _ = try encode(first, #"""
        {"id":"c","object":"chat.completion","created":1,"model":"m",
         "choices":[{"index":0,"message":{"role":"assistant","content":"Hello Ada."},"finish_reason":"stop"}]}
        """#)

        let second = ResponsesExchange(env)
        let body = forwarded(decode(second, #"""
        {"model":"m","instructions":"New rules.","previous_response_id":"resp_1","input":"What is my name?"}
        """#))
        assertJSON(body, #"""
        {"model":"m","messages":[{"role":"system","content":"New rules."},
          {"role":"user","content":"My name is Ada."},{"role":"assistant","content":"Hello Ada."},
          {"role":"user","content":"What is my name?"}],"stream":false}
        """#)
        let answer = try encode(second, #"""
        {"id":"c2","object":"chat.completion","created":2,"model":"m",
         "choices":[{"index":0,"message":{"role":"assistant","content":"Ada."},"finish_reason":"stop"}]}
        """#)
        let response = try JSONValue.parse(answer.body)
        XCTAssertEqual(response["id"], .string("resp_3"))
        XCTAssertEqual(response["previous_response_id"], .string("resp_1"))
        XCTAssertEqual(store.stored("resp_3")?.messages.count, 4)

        guard case let .answer(status, retrieved)? = decode(ResponsesExchange(env), "", api: "openai.responses.retrieve",
                                                            method: "GET", path: "/v1/responses/resp_3")
        else { return XCTFail("expected the stored response") }
        XCTAssertEqual(status, 200)
        XCTAssertEqual(try JSONValue.parse(retrieved), response)

        let gone = failure(decode(ResponsesExchange(env), "", api: "openai.responses.retrieve", method: "GET",
                                  path: "/v1/responses/resp_unknown"))
        XCTAssertEqual(gone?.httpStatus, 404)
        XCTAssertEqual(gone?.code, "response_not_found")
        XCTAssertEqual(gone?.message, "Response with id 'resp_unknown' not found: it was never stored, was deleted or has expired.")
    }

    func testPreviousResponseFailures() {
        let missing = failure(decode(ResponsesExchange(environment()), #"{"model":"m","previous_response_id":"resp_x","input":"hi"}"#))
        XCTAssertEqual(missing?.httpStatus, 404)
        XCTAssertEqual(missing?.type, "invalid_request_error")
        XCTAssertEqual(missing?.code, "previous_response_not_found")
        XCTAssertEqual(missing?.message,
                       "Previous response with id 'resp_x' not found: it was never stored, was deleted or has expired.")

        let noState = failure(decode(ResponsesExchange(environment(store: nil)),
                                     #"{"model":"m","previous_response_id":"resp_x","input":"hi"}"#))
        XCTAssertEqual(noState?.httpStatus, 400)
        XCTAssertEqual(noState?.code, "previous_response_not_supported")

        let disabled = failure(decode(ResponsesExchange(environment(storeSetting: false)),
                                      #"{"model":"m","previous_response_id":"resp_x","input":"hi"}"#))
        XCTAssertEqual(disabled?.httpStatus, 400)
        XCTAssertEqual(disabled?.code, "previous_response_not_supported")

        let down = failure(decode(ResponsesExchange(environment(store: MemoryStore(available: false))),
                                  #"{"model":"m","previous_response_id":"resp_x","input":"hi"}"#))
        XCTAssertEqual(down?.httpStatus, 503)
    }

    func testStoreFalseIsNotKept() throws {
        let store = MemoryStore()
        let exchange = ResponsesExchange(environment(store: store))
        _ = forwarded(decode(exchange, #"{"model":"m","input":"x","store":false}"#))
        let answer = try encode(exchange, #"""
        {"id":"c","object":"chat.completion","created":1,"model":"m",
         "choices":[{"index":0,"message":{"role":"assistant","content":"y"},"finish_reason":"stop"}]}
        """#)
        XCTAssertEqual(try JSONValue.parse(answer.body)["store"], .bool(false))
        XCTAssertTrue(store.values.withLock { $0.isEmpty })
    }

    // MARK: Pass-through

    func testObserveNativeUsage() {
        let exchange = ResponsesExchange(environment())
        var usage = Usage()
        var completed = Array(#"""
        {"type":"response.completed","sequence_number":9,"response":{"id":"resp_a","usage":{"input_tokens":11,
         "input_tokens_details":{"cached_tokens":2},"output_tokens":5,"output_tokens_details":{"reasoning_tokens":1},"total_tokens":16}}}
        """#.utf8)
        completed.withUnsafeMutableBytes {
            exchange.observeNative(event: "response.completed", data: UnsafeRawBufferPointer($0), usage: &usage)
        }
        XCTAssertEqual(usage, Usage(inputTokens: 11, outputTokens: 5, cachedInputTokens: 2, reasoningTokens: 1))
        var whole = Array(#"{"id":"resp_b","object":"response","usage":{"input_tokens":3,"output_tokens":4,"total_tokens":7}}"#.utf8)
        whole.withUnsafeMutableBytes { exchange.observeNative(event: "", data: UnsafeRawBufferPointer($0), usage: &usage) }
        XCTAssertEqual(usage, Usage(inputTokens: 3, outputTokens: 4))
    }
}
