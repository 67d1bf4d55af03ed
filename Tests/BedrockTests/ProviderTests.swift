import AWSKit
import PrismPluginABI
import PrismWire
import XCTest
import PluginKit
import PrismProviderBedrock

/// Configuration, the exchange as the host drives it (URLs, regions per attempt, signed headers),
/// Converse answers, embeddings and error mapping.
final class ProviderTests: XCTestCase {
    let model = "anthropic.claude-3-5-sonnet-20240620-v1:0"

    func configuration(_ json: String, environment: [String: String] = [:]) throws -> BedrockConfiguration {
        try BedrockConfiguration(JSONValue(json), name: "bedrock") { environment[$0] }
    }

    func testConfigurationAndEnvironmentFallback() throws {
        let full = try configuration("""
            {"aws_region":"us-east-1","aws_access_key_id":"AKID1","aws_secret_access_key":"S1","aws_session_token":"",
             "regions":["us-east-1","us-west-2"],"default_max_tokens":2048}
            """, environment: ["AWS_SESSION_TOKEN": "env-token"])
        // A session token from the environment never joins keys from the config.
        XCTAssertEqual(full.credentials, AWSCredentials(accessKeyID: "AKID1", secretAccessKey: "S1"))
        XCTAssertEqual(full.endpoints.map(\.region), ["us-east-1", "us-west-2"])
        XCTAssertEqual(full.endpoints[1].base, "https://bedrock-runtime.us-west-2.amazonaws.com")
        XCTAssertEqual(full.endpoints[1].host, "bedrock-runtime.us-west-2.amazonaws.com")
        XCTAssertEqual(full.defaultMaxTokens, 2048)

        let fromEnvironment = try configuration(#"{"aws_access_key_id":""}"#, environment: [
            "AWS_ACCESS_KEY_ID": "AKID2", "AWS_SECRET_ACCESS_KEY": "S2", "AWS_SESSION_TOKEN": "T2", "AWS_DEFAULT_REGION": "eu-central-1",
        ])
        XCTAssertEqual(fromEnvironment.credentials, AWSCredentials(accessKeyID: "AKID2", secretAccessKey: "S2", sessionToken: "T2"))
        XCTAssertEqual(fromEnvironment.endpoints.map(\.region), ["eu-central-1"])
        XCTAssertNil(fromEnvironment.defaultMaxTokens)
        let regionFromEnvironment = try configuration(#"{"aws_access_key_id":"A","aws_secret_access_key":"S"}"#,
                                                      environment: ["AWS_REGION": "ap-south-1", "AWS_DEFAULT_REGION": "x"])
        XCTAssertEqual(regionFromEnvironment.endpoints.map(\.region), ["ap-south-1"])

        let placeholder = try configuration(#"{"aws_access_key_id":"A","aws_secret_access_key":"S","regions":["r-1","r-2"],"base_url":"http://127.0.0.1:9000/{region}/"}"#)
        XCTAssertEqual(placeholder.endpoints.map(\.base), ["http://127.0.0.1:9000/r-1", "http://127.0.0.1:9000/r-2"])
        XCTAssertEqual(placeholder.endpoints.map(\.pathPrefix), ["/r-1", "/r-2"])
        let https = try configuration(#"{"aws_access_key_id":"A","aws_secret_access_key":"S","aws_region":"us-east-1","base_url":"https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com:443"}"#)
        XCTAssertEqual(https.endpoints[0].host, "vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com")
    }

    func testConfigurationErrors() {
        let cases = [
            (#"{"aws_region":"us-east-1"}"#, "no AWS credentials"),
            (#"{"aws_access_key_id":"A","aws_region":"us-east-1"}"#, "aws_secret_access_key is not"),
            (#"{"aws_access_key_id":"A","aws_secret_access_key":"S"}"#, "no AWS region"),
            (#"{"aws_access_key_id":"A","aws_secret_access_key":"S","regions":["us-east-1/../x"]}"#, "not an AWS region name"),
            (#"{"aws_access_key_id":"A","aws_secret_access_key":"S","aws_region":"r","base_url":"ftp://x"}"#, "https:// or http://"),
            (#"{"aws_access_key_id":"A","aws_secret_access_key":"S","aws_region":"r","base_url":"http://u@x"}"#, "without user info"),
        ]
        for (json, text) in cases {
            XCTAssertThrowsError(try configuration(json), text) { error in
                XCTAssertTrue((error as! PluginError).message.contains(text), (error as! PluginError).message)
                XCTAssertFalse((error as! PluginError).message.contains("\"S\""), "no secret in errors")
            }
        }
    }

    func provider(regions: [String] = ["us-east-1", "us-west-2"], token: String? = nil) throws -> BedrockProvider {
        var json = #"{"aws_access_key_id":"AKIDEXAMPLE","aws_secret_access_key":"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY","regions":["#
            + regions.map { "\"\($0)\"" }.joined(separator: ",") + "]"
        if let token { json += #","aws_session_token":"\#(token)""# }
        return try BedrockProvider(host: Host.pluginHost, instanceName: "bedrock", configuration: JSONValue(json + "}"))
    }

    func build(_ exchange: any ProviderExchange, api: String = "chat.completions", body: String, model: String? = nil,
               attempt: UInt32 = 0, stream: Bool = false) throws -> (Host.Message, UpstreamPlan)
    {
        let message = Host.Message()
        let plan = try Host.withRequest(api: api, body: body, model: model ?? self.model, attempt: attempt, stream: stream) { request in
            try Host.withBuilder(message) { try exchange.buildRequest(request, upstream: $0) }
        }
        return (message, plan)
    }

    func testEachAttemptGoesToTheNextRegion() throws {
        let provider = try provider(token: "tok")
        let body = #"{"model":"claude","messages":[{"role":"user","content":"Hi"}]}"#
        for (attempt, region) in [(0, "us-east-1"), (1, "us-west-2"), (2, "us-east-1")] {
            let (upstream, plan) = try build(provider.makeExchange(), body: body, attempt: UInt32(attempt))
            XCTAssertEqual(upstream.method, "POST")
            XCTAssertEqual(upstream.url, "https://bedrock-runtime.\(region).amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse")
            XCTAssertEqual(plan.framing, PRISM_FRAMING_NONE)
            XCTAssertEqual(upstream.header("host"), "bedrock-runtime.\(region).amazonaws.com")
            XCTAssertEqual(upstream.header("x-amz-date"), "20260821T120000Z")
            XCTAssertEqual(upstream.header("x-amz-security-token"), "tok")
            XCTAssertEqual(upstream.header("accept"), "application/json")
            XCTAssertEqual(upstream.header("x-amz-content-sha256"), Hex.encode(SHA256.hash(upstream.body)))
            XCTAssertTrue(upstream.header("authorization")!.hasPrefix(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260821/\(region)/bedrock/aws4_request, "
                    + "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature="))
            XCTAssertJSON(upstream.json, #"{"messages":[{"role":"user","content":[{"text":"Hi"}]}]}"#)
        }
        let (streamed, plan) = try build(provider.makeExchange(), body: body, stream: true)
        XCTAssertTrue(streamed.url.hasSuffix("/converse-stream"))
        XCTAssertEqual(plan.framing, PRISM_FRAMING_RAW)
        XCTAssertEqual(streamed.header("accept"), "application/vnd.amazon.eventstream")
        XCTAssertThrowsError(try build(provider.makeExchange(), api: "models.list", body: "")) {
            XCTAssertEqual(($0 as! PluginError).status, PRISM_ERROR_UNSUPPORTED)
        }
    }

    func testConverseAnswer() throws {
        let exchange = try provider().makeExchange()
        _ = try build(exchange, body: #"{"model":"claude","messages":[{"role":"user","content":"Weather?"}]}"#)
        let answer = """
            {"metrics":{"latencyMs":913},"output":{"message":{"content":[{"text":"Checking."},
              {"toolUse":{"input":{"city":"Paris","days":[1, 2]},"name":"get_weather","toolUseId":"tooluse_xyz"}},
              {"reasoningContent":{"reasoningText":{"text":"hmm"}}}],"role":"assistant"}},
             "stopReason":"tool_use","usage":{"inputTokens":412,"outputTokens":57,"totalTokens":469,"cacheReadInputTokens":30,"cacheWriteInputTokens":5}}
            """
        let client = Host.Message()
        let usage = try Host.withResponse(status: 200, body: answer) { response in
            try Host.withBuilder(client) { try exchange.translateResponse(response, client: $0) }
        }
        XCTAssertEqual(usage, Usage(inputTokens: 447, outputTokens: 57, cachedInputTokens: 30, cacheWriteTokens: 5))
        XCTAssertEqual(client.status, 200)
        XCTAssertJSON(client.json, """
            {"id":"chatcmpl-req-1","object":"chat.completion","created":1787313600,"model":"anthropic.claude-3-5-sonnet-20240620-v1:0",
             "choices":[{"index":0,"message":{"role":"assistant","content":"Checking.","refusal":null,
               "reasoning_content":"hmm","thinking_blocks":[{"type":"thinking","thinking":"hmm"}],"tool_calls":[{"id":"tooluse_xyz","type":"function",
               "function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\",\\"days\\":[1,2]}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],
             "usage":{"prompt_tokens":447,"completion_tokens":57,"total_tokens":504,"cache_creation_input_tokens":5,"prompt_tokens_details":{"cached_tokens":30},
                      "completion_tokens_details":{"reasoning_tokens":0}}}
            """)
        let malformed = #"{"output":{"message":{"role":"assistant","content":[]}},"stopReason":"malformed_model_output","usage":{}}"#
        XCTAssertThrowsError(try Host.withResponse(status: 200, body: malformed) { response in
            try Host.withBuilder(Host.Message()) { try exchange.translateResponse(response, client: $0) }
        })
    }

    func testJSONAnswerThroughTheAnswerTool() throws {
        let exchange = try provider().makeExchange()
        _ = try build(exchange, body: #"{"model":"c","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"Capital?"}]}"#)
        let answer = #"{"output":{"message":{"role":"assistant","content":[{"toolUse":{"toolUseId":"t1","name":"json_response","input":{"city": "Paris"}}}]}},"stopReason":"tool_use","usage":{"inputTokens":5,"outputTokens":3}}"#
        let client = Host.Message()
        _ = try Host.withResponse(status: 200, body: answer) { response in
            try Host.withBuilder(client) { try exchange.translateResponse(response, client: $0) }
        }
        let message = client.json["choices"]?.arrayValue?.first
        XCTAssertEqual(message?["message"]?["content"]?.stringValue, #"{"city":"Paris"}"#)
        XCTAssertNil(message?["message"]?["tool_calls"])
        XCTAssertEqual(message?["finish_reason"]?.stringValue, "stop")

        // Streamed: the answer tool's input fragments are the content.
        let frames = [("messageStart", #"{"role":"assistant"}"#),
                      ("contentBlockStart", #"{"contentBlockIndex":0,"start":{"toolUse":{"toolUseId":"t1","name":"json_response"}}}"#),
                      ("contentBlockDelta", #"{"contentBlockIndex":0,"delta":{"toolUse":{"input":"{\"city\":"}}}"#),
                      ("contentBlockDelta", #"{"contentBlockIndex":0,"delta":{"toolUse":{"input":" \"Paris\"}"}}}"#),
                      ("messageStop", #"{"stopReason":"tool_use"}"#)]
        let bytes = frames.flatMap { AWSEventStream.encode(headers: [(":event-type", $0.0), (":message-type", "event")], payload: Array($0.1.utf8)) }
        var translator = BedrockStream(id: "x", model: "m", created: 0, includeUsage: false, answerTool: true)
        let stream = Host.Stream()
        try Host.withSink(stream) { sink in
            try bytes.withUnsafeBytes { try translator.feed($0, client: sink) }
            try translator.finish(client: sink)
        }
        let deltas = stream.events.compactMap { $0["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue }
        XCTAssertEqual(deltas.joined(), #"{"city": "Paris"}"#)
        XCTAssertEqual(stream.events.last?["choices"]?.arrayValue?.first?["finish_reason"]?.stringValue, "stop")
    }

    func testErrorMapping() throws {
        let exchange = try provider().makeExchange()
        let cases: [(UInt32, String?, String, UInt32, String, String)] = [
            (429, "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/", #"{"message":"Too many requests, please wait before trying again."}"#,
             429, "rate_limit_error", "Too many requests"),
            (400, "ValidationException", #"{"message":"A conversation must alternate between user and assistant roles."}"#,
             400, "invalid_request_error", "must alternate"),
            (403, "AccessDeniedException", #"{"message":"You don't have access to the model with the specified model ID."}"#,
             502, "provider_error", "don't have access"),
            (403, "UnrecognizedClientException", #"{"message":"The security token included in the request is invalid."}"#,
             502, "provider_error", "security token"),
            (403, "InvalidSignatureException", #"{"message":"The request signature we calculated does not match the signature you provided."}"#,
             502, "provider_error", "signature we calculated"),
            (503, "ServiceUnavailableException", #"{"message":"Service unavailable"}"#, 503, "overloaded_error", "unavailable"),
            (429, "ModelNotReadyException", #"{"message":"Model is not ready"}"#, 503, "overloaded_error", "not ready"),
            (404, "ResourceNotFoundException", #"{"message":"Model not found"}"#, 502, "provider_error", "Model not found"),
            (424, "ModelErrorException", #"{"Message":"The model failed"}"#, 502, "provider_error", "The model failed"),
            (500, "InternalServerException", #"{"message":"Internal"}"#, 502, "provider_error", "Internal"),
            (429, nil, "<html>Too Many</html>", 429, "rate_limit_error", "<html>Too Many</html>"),
        ]
        for (status, errorType, body, expectedStatus, type, text) in cases {
            let headers = errorType.map { [("x-amzn-errortype", $0)] } ?? []
            let error = Host.withResponse(status: status, headers: headers, body: body) { exchange.translateError($0) }
            XCTAssertEqual(error.httpStatus, expectedStatus, body)
            XCTAssertEqual(error.type, type, body)
            XCTAssertEqual(error.status, PRISM_ERROR_UPSTREAM)
            XCTAssertTrue(error.message.contains(text) && error.message.hasPrefix("upstream returned HTTP \(status): "), error.message)
        }
        let auth = Host.withResponse(status: 403, headers: [("x-amzn-errortype", "AccessDeniedException")], body: "{}") {
            exchange.translateError($0)
        }
        XCTAssertEqual(auth.code, "provider_auth_error")
    }

    func testTitanEmbeddings() throws {
        let exchange = try provider().makeExchange()
        let (upstream, _) = try build(exchange, api: "embeddings", body: #"{"model":"titan","input":"hello world","dimensions":512}"#,
                                      model: "amazon.titan-embed-text-v2:0")
        XCTAssertEqual(upstream.url, "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.titan-embed-text-v2%3A0/invoke")
        XCTAssertJSON(upstream.json, #"{"inputText":"hello world","dimensions":512,"normalize":true}"#)
        let client = Host.Message()
        let usage = try Host.withResponse(status: 200, body: #"{"embedding":[0.5,-0.25],"embeddingsByType":{"float":[0.5,-0.25]},"inputTextTokenCount":3}"#) { response in
            try Host.withBuilder(client) { try exchange.translateResponse(response, client: $0) }
        }
        XCTAssertEqual(usage.inputTokens, 3)
        XCTAssertJSON(client.json, """
            {"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-0.25]}],"model":"amazon.titan-embed-text-v2:0",
             "usage":{"prompt_tokens":3,"total_tokens":3}}
            """)
        XCTAssertThrowsError(try build(provider().makeExchange(), api: "embeddings", body: #"{"model":"t","input":["a","b"]}"#,
                                       model: "amazon.titan-embed-text-v2:0")) {
            XCTAssertTrue(($0 as! PluginError).message.contains("one text per request"))
        }
        XCTAssertThrowsError(try build(provider().makeExchange(), api: "embeddings", body: #"{"model":"t","input":"a"}"#,
                                       model: "meta.llama3-8b-instruct-v1:0"))
        let (v1, _) = try build(provider().makeExchange(), api: "embeddings", body: #"{"model":"t","input":"a"}"#,
                                model: "amazon.titan-embed-text-v1")
        XCTAssertJSON(v1.json, #"{"inputText":"a"}"#)
    }

    func testCohereEmbeddingsTakeSeveralInputs() throws {
        let exchange = try provider().makeExchange()
        let (upstream, _) = try build(exchange, api: "embeddings", body: #"{"model":"c","input":["a","b"],"encoding_format":"base64"}"#,
                                      model: "cohere.embed-english-v3")
        XCTAssertJSON(upstream.json, #"{"texts":["a","b"],"input_type":"search_document"}"#)
        let client = Host.Message()
        _ = try Host.withResponse(status: 200, body: #"{"embeddings":[[1.0],[0.5]],"id":"x","response_type":"embeddings_floats","texts":["a","b"]}"#) { response in
            try Host.withBuilder(client) { try exchange.translateResponse(response, client: $0) }
        }
        XCTAssertJSON(client.json, """
            {"object":"list","data":[{"object":"embedding","index":0,"embedding":"AACAPw=="},{"object":"embedding","index":1,"embedding":"AAAAPw=="}],
             "model":"cohere.embed-english-v3","usage":{"prompt_tokens":0,"total_tokens":0}}
            """)
    }
}
