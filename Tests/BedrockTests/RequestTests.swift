import PrismPluginABI
import PrismWire
import XCTest
import PluginKit
import PrismProviderBedrock

/// Converse request bodies (goldens), tool configuration and the checks that answer 400 early.
final class RequestTests: XCTestCase {
    func testSimple() throws {
        XCTAssertJSON(try converse(#"{"model":"m","messages":[{"role":"user","content":"Hi"}]}"#),
                      #"{"messages":[{"role":"user","content":[{"text":"Hi"}]}]}"#)
    }

    func testSystemMultiTurnAndInferenceConfig() throws {
        let body = try converse("""
            {"model":"m","temperature":0.2,"top_p":0.9,"max_tokens":256,"stop":["END","","STOP"],"seed":7,
             "presence_penalty":0.1,"user":"u-1",
             "messages":[{"role":"system","content":"Be terse."},{"role":"developer","content":"Answer in French."},
                         {"role":"user","content":"Hi"},{"role":"assistant","content":"Bonjour."},
                         {"role":"user","content":[{"type":"text","text":"Again"},{"type":"text","text":""}]}]}
            """)
        XCTAssertJSON(body, """
            {"messages":[{"role":"user","content":[{"text":"Hi"}]},{"role":"assistant","content":[{"text":"Bonjour."}]},
                         {"role":"user","content":[{"text":"Again"}]}],
             "system":[{"text":"Be terse."},{"text":"Answer in French."}],
             "inferenceConfig":{"maxTokens":256,"temperature":0.2,"topP":0.9,"stopSequences":["END","STOP"]}}
            """)
        // max_completion_tokens wins; a single stop string; the configured default applies otherwise.
        XCTAssertJSON(try converse(#"{"model":"m","max_completion_tokens":9,"max_tokens":5,"stop":"X","messages":[{"role":"user","content":"Hi"}]}"#),
                      #"{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":9,"stopSequences":["X"]}}"#)
        XCTAssertJSON(try converse(#"{"model":"m","messages":[{"role":"user","content":"Hi"}]}"#, defaultMaxTokens: 1024),
                      #"{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":1024}}"#)
    }

    func testImages() throws {
        let body = try converse("""
            {"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"Compare"},
              {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
              {"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AAQ","detail":"high"}},
              {"type":"image_url","image_url":{"url":"data:image/webp;base64,UklGRg=="}},
              {"type":"image_url","image_url":{"url":"data:image/gif;base64,R0lGODlh"}}]}]}
            """)
        XCTAssertJSON(body, """
            {"messages":[{"role":"user","content":[{"text":"Compare"},
              {"image":{"format":"png","source":{"bytes":"iVBORw0KGgo="}}},
              {"image":{"format":"jpeg","source":{"bytes":"/9j/4AAQ"}}},
              {"image":{"format":"webp","source":{"bytes":"UklGRg=="}}},
              {"image":{"format":"gif","source":{"bytes":"R0lGODlh"}}}]}]}
            """)
        XCTAssertThrowsError(try converse(#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]}"#)) {
            XCTAssertTrue(($0 as! PluginError).message.contains("does not fetch image URLs"))
            XCTAssertEqual(($0 as! PluginError).httpStatus, 400)
        }
        XCTAssertThrowsError(try converse(#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,Qk0="}}]}]}"#))
    }

    static let weatherTool = #"{"type":"function","function":{"name":"get_weather","description":"Current weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}"#
    static let weatherSpec = #"{"toolSpec":{"name":"get_weather","description":"Current weather","inputSchema":{"json":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}}"#

    func testToolsAndToolChoice() throws {
        let base = #"{"model":"m","messages":[{"role":"user","content":"Weather?"}],"tools":[\#(RequestTests.weatherTool)]"#
        let messages = #""messages":[{"role":"user","content":[{"text":"Weather?"}]}]"#
        XCTAssertJSON(try converse(base + "}"), #"{\#(messages),"toolConfig":{"tools":[\#(RequestTests.weatherSpec)]}}"#)
        XCTAssertJSON(try converse(base + #","tool_choice":"auto"}"#),
                      #"{\#(messages),"toolConfig":{"tools":[\#(RequestTests.weatherSpec)],"toolChoice":{"auto":{}}}}"#)
        XCTAssertJSON(try converse(base + #","tool_choice":"required"}"#),
                      #"{\#(messages),"toolConfig":{"tools":[\#(RequestTests.weatherSpec)],"toolChoice":{"any":{}}}}"#)
        XCTAssertJSON(try converse(base + #","tool_choice":{"type":"function","function":{"name":"get_weather"}}}"#),
                      #"{\#(messages),"toolConfig":{"tools":[\#(RequestTests.weatherSpec)],"toolChoice":{"tool":{"name":"get_weather"}}}}"#)
        XCTAssertJSON(try converse(base + #","tool_choice":"none"}"#), #"{\#(messages)}"#)
        // A schema without `type` gets type object; a tool without description or parameters works.
        XCTAssertJSON(try converse(#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"ping"}}]}"#),
                      #"{"messages":[{"role":"user","content":[{"text":"x"}]}],"toolConfig":{"tools":[{"toolSpec":{"name":"ping","inputSchema":{"json":{"type":"object"}}}}]}}"#)
    }

    func testResponseFormatForcesTheAnswerTool() throws {
        let schema = #"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#
        let answer = #"{"toolSpec":{"name":"json_response","description":"Answer with a JSON value that matches this schema.","inputSchema":{"json":\#(schema)}}}"#
        let messages = #""messages":[{"role":"user","content":[{"text":"Capital?"}]}]"#
        let format = #""response_format":{"type":"json_schema","json_schema":{"name":"answer","strict":true,"schema":\#(schema)}}"#
        XCTAssertJSON(try converse(#"{"model":"m",\#(format),"messages":[{"role":"user","content":"Capital?"}]}"#),
                      #"{\#(messages),"toolConfig":{"tools":[\#(answer)],"toolChoice":{"tool":{"name":"json_response"}}}}"#)
        // With client tools the model may call one of them or answer: toolChoice any.
        XCTAssertJSON(try converse(#"{"model":"m",\#(format),"tools":[\#(RequestTests.weatherTool)],"messages":[{"role":"user","content":"Capital?"}]}"#),
                      #"{\#(messages),"toolConfig":{"tools":[\#(RequestTests.weatherSpec),\#(answer)],"toolChoice":{"any":{}}}}"#)
        XCTAssertJSON(try converse(#"{"model":"m",\#(format),"tools":[\#(RequestTests.weatherTool)],"tool_choice":"none","messages":[{"role":"user","content":"Capital?"}]}"#),
                      #"{\#(messages),"toolConfig":{"tools":[\#(RequestTests.weatherSpec),\#(answer)],"toolChoice":{"tool":{"name":"json_response"}}}}"#)
        XCTAssertJSON(try converse(#"{"model":"m","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"Capital?"}]}"#),
                      #"{\#(messages),"toolConfig":{"tools":[{"toolSpec":{"name":"json_response","description":"Answer with a JSON value that matches this schema.","inputSchema":{"json":{"type":"object"}}}}],"toolChoice":{"tool":{"name":"json_response"}}}}"#)
        XCTAssertJSON(try converse(#"{"model":"m","response_format":{"type":"text"},"messages":[{"role":"user","content":"Capital?"}]}"#),
                      "{\(messages)}")
    }

    static let toolHistory = """
        "messages":[{"role":"system","content":"Use tools."},{"role":"user","content":"Weather in Paris and Rome?"},
          {"role":"assistant","content":"","tool_calls":[
            {"id":"tooluse_1","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\": \\"Paris\\"}"}},
            {"id":"call.2/x","type":"function","function":{"name":"get_weather","arguments":""}}]},
          {"role":"tool","tool_call_id":"tooluse_1","content":"21C"},
          {"role":"tool","tool_call_id":"call.2/x","content":[{"type":"text","text":"18C"}]},
          {"role":"user","content":"Thanks"},
          {"role":"assistant","content":"You're welcome."},{"role":"assistant","content":"Anything else?"},
          {"role":"user","content":"No"}]
        """

    static let translatedHistory = """
        "messages":[{"role":"user","content":[{"text":"Weather in Paris and Rome?"}]},
          {"role":"assistant","content":[
            {"toolUse":{"toolUseId":"tooluse_1","name":"get_weather","input":{"city":"Paris"}}},
            {"toolUse":{"toolUseId":"call_2_x","name":"get_weather","input":{}}}]},
          {"role":"user","content":[
            {"toolResult":{"toolUseId":"tooluse_1","content":[{"text":"21C"}]}},
            {"toolResult":{"toolUseId":"call_2_x","content":[{"text":"18C"}]}},
            {"text":"Thanks"}]},
          {"role":"assistant","content":[{"text":"You're welcome."},{"text":"Anything else?"}]},
          {"role":"user","content":[{"text":"No"}]}],
        "system":[{"text":"Use tools."}]
        """

    func testToolHistoryIsMergedIntoAlternatingTurns() throws {
        XCTAssertJSON(try converse("{\"model\":\"m\",\(RequestTests.toolHistory),\"tools\":[\(RequestTests.weatherTool)]}"),
                      "{\(RequestTests.translatedHistory),\"toolConfig\":{\"tools\":[\(RequestTests.weatherSpec)]}}")
        // tool_choice none with tool blocks in the history: tools are still declared (Bedrock requires it).
        XCTAssertJSON(try converse("{\"model\":\"m\",\(RequestTests.toolHistory),\"tools\":[\(RequestTests.weatherTool)],\"tool_choice\":\"none\"}"),
                      "{\(RequestTests.translatedHistory),\"toolConfig\":{\"tools\":[\(RequestTests.weatherSpec)]}}")
        // No tools offered: a minimal spec per tool the history uses.
        XCTAssertJSON(try converse("{\"model\":\"m\",\(RequestTests.toolHistory)}"),
                      "{\(RequestTests.translatedHistory),\"toolConfig\":{\"tools\":[{\"toolSpec\":{\"name\":\"get_weather\",\"inputSchema\":{\"json\":{\"type\":\"object\"}}}}]}}")
    }

    func testEmptyToolResultAndToolUseIDs() throws {
        let body = try converse("""
            {"model":"m","messages":[{"role":"user","content":"x"},
              {"role":"assistant","tool_calls":[{"id":"","type":"function","function":{"name":"f","arguments":" "}}]},
              {"role":"tool","tool_call_id":"","content":""}]}
            """)
        XCTAssertJSON(body["messages"] ?? .null, """
            [{"role":"user","content":[{"text":"x"}]},
             {"role":"assistant","content":[{"toolUse":{"toolUseId":"call","name":"f","input":{}}}]},
             {"role":"user","content":[{"toolResult":{"toolUseId":"call","content":[{"json":{}}]}}]}]
            """)
        XCTAssertEqual(BedrockRequest.toolUseID(String(repeating: "a", count: 70)), String(repeating: "a", count: 64))
    }

    func testRequestsRefusedBeforeTheUpstream() {
        let refused = [
            (#"{"model":"m","messages":[{"role":"assistant","content":"Hello"},{"role":"user","content":"Hi"}]}"#, "start with a user message"),
            (#"{"model":"m","messages":[{"role":"system","content":"Only system"}]}"#, "at least one user message"),
            (#"{"model":"m","n":2,"messages":[{"role":"user","content":"Hi"}]}"#, "`n` must be 1"),
            (#"{"model":"m","response_format":{"type":"json_object"},"tools":[{"type":"function","function":{"name":"json_response"}}],"messages":[{"role":"user","content":"Hi"}]}"#, "cannot be combined with `response_format`"),
            (#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}"#, "JSON object text"),
            (#"{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}"#, "input_audio"),
            (#"{"model":"m","messages":[{"role":"function","content":"x"}]}"#, "role `function`"),
        ]
        for (body, text) in refused {
            XCTAssertThrowsError(try converse(body), text) { error in
                let error = error as! PluginError
                XCTAssertEqual(error.httpStatus, 400, text)
                XCTAssertTrue(error.message.contains(text), "\(error.message) lacks \(text)")
            }
        }
    }
}
