// libFuzzer target: one provider plugin's translators, called through the C ABI as the gateway
// calls them (TranslationHarness: the real loader, host tables, request view and sinks).
//
//   fuzz-translate -provider=NAME [libFuzzer flags] [corpus dirs]
//   (or PRISM_FUZZ_PROVIDER=NAME); NAME: openai, azure, anthropic, gemini, vertexai, cohere, bedrock.
//   The plugin file comes from PRISM_FUZZ_PLUGINS (default .build-fuzz/plugins), built with
//   the same coverage and ASan instrumentation as this program (scripts/fuzz.sh does it).
//
// Input: one selector byte, then the payload. mode = byte % 4, variant = (byte / 4) % 4:
//   mode 0  the client's request body → build_request (chat.completions; embeddings for variant 2),
//           after the gateway's own checks (a JSON object with a usable `model`, `messages` for chat)
//   mode 1  a 2xx upstream body → translate_response, for a fixed request (variant: simple chat,
//           chat with tools, embeddings, chat with a JSON schema)
//   mode 2  a 4xx/5xx upstream body → translate_error; status = statuses[(byte / 16) % 16]
//   mode 3  upstream stream bytes for a fixed streaming request, framed as build_request says
//           (SSE through ServerSentEventParser, NDJSON through LineSplitter, RAW such as Bedrock's
//           AWS event-stream through translate_chunk), cut into chunks anywhere, then finish_stream;
//           with bit 4 of the selector set, the CRCs of AWS event-stream frames are fixed up first
//           (so the fuzzer reaches what reads their headers and payloads)
// Besides crashes and sanitizer reports, what the client or the upstream would receive is
// checked: upstream URL and headers without control characters, JSON bodies that are JSON,
// and every event of a translated stream a JSON object.

import FuzzSupport
@testable import PrismCore
import PrismPluginABI
import PrismWire

#if canImport(Glibc)
import Glibc
#endif

struct Provider {
    let component: String
    let configuration: JSONValue
    let chatModel: String
    let embeddingModel: String
}

func object(_ members: [(String, String)]) -> JSONValue { .object(members.map { ($0.0, .string($0.1)) }) }

let providers: [Provider] = [
    Provider(component: "openai", configuration: object([("api_key", "sk-fuzz")]),
             chatModel: "gpt-4o", embeddingModel: "text-embedding-3-small"),
    Provider(component: "azure", configuration: .object([
        ("api_key", .string("azure-fuzz-key")), ("base_url", .string("https://fuzz.openai.azure.com")),
        ("deployments", object([("gpt-4o", "prod-gpt4o"), ("text-embedding-3-small", "embed-small")])),
    ]), chatModel: "gpt-4o", embeddingModel: "text-embedding-3-small"),
    Provider(component: "anthropic", configuration: object([("api_key", "sk-ant-fuzz")]),
             chatModel: "claude-sonnet-4-20250514", embeddingModel: "claude-sonnet-4-20250514"),
    Provider(component: "gemini", configuration: object([("api_key", "AIza-fuzz")]),
             chatModel: "gemini-2.0-flash", embeddingModel: "text-embedding-004"),
    Provider(component: "vertexai", configuration: object([
        ("api_key", "ya29.fuzz"), ("project", "fuzz-project"), ("location", "us-central1"),
    ]), chatModel: "gemini-2.0-flash", embeddingModel: "text-embedding-005"),
    Provider(component: "cohere", configuration: object([("api_key", "co-fuzz")]),
             chatModel: "command-r-plus", embeddingModel: "embed-english-v3.0"),
    Provider(component: "bedrock", configuration: object([
        ("aws_access_key_id", "AKIDEXAMPLE"), ("aws_secret_access_key", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        ("aws_region", "us-east-1"),
    ]), chatModel: "anthropic.claude-3-5-sonnet-20240620-v1:0", embeddingModel: "amazon.titan-embed-text-v2:0"),
]

func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

/// `-provider=NAME` among libFuzzer's flags (libFuzzer ignores flags it does not know), or
/// $PRISM_FUZZ_PROVIDER.
func chosenProvider() -> Provider {
    let flag = CommandLine.arguments.first { $0.hasPrefix("-provider=") }.map { String($0.dropFirst("-provider=".count)) }
    guard let name = flag ?? environment("PRISM_FUZZ_PROVIDER"),
          let provider = providers.first(where: { $0.component == name })
    else {
        fatalError("say which provider: -provider=NAME or PRISM_FUZZ_PROVIDER=NAME, NAME one of "
            + providers.map(\.component).joined(separator: ", "))
    }
    return provider
}

let provider = chosenProvider()
let pluginFile = (environment("PRISM_FUZZ_PLUGINS") ?? ".build-fuzz/plugins") + "/provider-"
    + (provider.component == "vertexai" ? "gemini" : provider.component) + ".so"
let harness = TranslationHarness(pluginFile: pluginFile)
for refusal in harness.refusals { fatalError("\(refusal.file): \(refusal.reason)") }
let instance: HarnessProvider
do {
    instance = try harness.provider(provider.component, configuration: provider.configuration)
} catch {
    fatalError("instance_new \(provider.component): \(error.message)")
}

// MARK: Fixed requests (modes 1 to 3)

let tools = #"[{"type":"function","function":{"name":"get_weather","description":"Weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city"]}}}]"#
let schema = #"{"type":"json_schema","json_schema":{"name":"answer","strict":true,"schema":{"type":"object","properties":{"text":{"type":"string"}},"required":["text"],"additionalProperties":false}}}"#

@MainActor func chatBody(variant: Int, stream: Bool) -> [UInt8] {
    let model = provider.chatModel
    var text = #"{"model":"\#(model)","messages":["#
    switch variant {
    case 1:
        text += #"{"role":"system","content":"Use tools."},{"role":"user","content":"Weather in Rome?"}],"tools":\#(tools),"tool_choice":"auto""#
    case 3:
        text += #"{"role":"user","content":"Answer in JSON."}],"response_format":\#(schema),"max_tokens":256"#
    default:
        text += #"{"role":"user","content":"Hi"}]"#
    }
    if stream {
        text += #","stream":true"#
        if variant != 0 { text += #","stream_options":{"include_usage":true}"# }
    }
    return Array((text + "}").utf8)
}

let embeddingBody = Array(#"{"model":"\#(provider.embeddingModel)","input":["hello","world"]}"#.utf8)

/// The harness requests of modes 1-3, made once (a request view is per client request).
let answerRequests: [HarnessRequest] = (0..<4).map { variant in
    variant == 2 ? instance.request(api: "embeddings", model: provider.embeddingModel, body: embeddingBody, stream: false)
        : instance.request(model: provider.chatModel, body: chatBody(variant: variant, stream: false), stream: false)
}
let streamRequests: [HarnessRequest] = (0..<4).map { variant in
    instance.request(model: provider.chatModel, body: chatBody(variant: variant, stream: true), stream: true)
}

let statuses = [400, 401, 403, 404, 408, 413, 422, 429, 498, 500, 502, 503, 504, 529, 418, 599]

// MARK: Checks

func isJSON(_ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { raw in (try? JSONScanner.validate(raw)) != nil }
}

func isJSONObject(_ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { raw in (try? JSONScanner.members(raw)) != nil }
}

func checkUpstream(_ built: HarnessExchange.BuiltRequest) {
    guard built.status == PRISM_OK else { return }
    require(!built.url.utf8.contains { $0 <= 0x20 || $0 == 0x7F }, "upstream URL with a control character or space: \(built.url)")
    require(built.url.hasPrefix("https://") || built.url.hasPrefix("http://"), "upstream URL without a scheme: \(built.url)")
    for (name, value) in built.headers {
        require(!name.isEmpty && !name.utf8.contains { $0 <= 0x20 || $0 == 0x7F || $0 == UInt8(ascii: ":") },
                     "invalid upstream header name \(name)")
        require(!value.utf8.contains { $0 == 0x0A || $0 == 0x0D || $0 == 0 }, "upstream header \(name) with a line break")
    }
    if !built.body.isEmpty {
        require(isJSON(built.body), "the upstream body is not JSON: \(String(decoding: built.body, as: UTF8.self))")
    }
}

/// What a client receives in a stream: `data: <JSON object>` events, nothing else.
func checkClientStream(_ output: [UInt8]) {
    guard !output.isEmpty else { return }
    var parser = ServerSentEventParser()
    var events: [ServerSentEvent] = []
    try! parser.feed(output) { events.append($0) }
    try! parser.finish { events.append($0) }
    for event in events {
        require(event.event.isEmpty && isJSONObject(event.data),
                     "a client stream event is not a JSON object: \(String(decoding: event.data, as: UTF8.self))")
    }
}

// MARK: Modes

/// The gateway's checks before any plugin sees a body (ProxyRequest.run): nil when it refuses it.
func gatewayAccepts(_ body: [UInt8], api: String) -> (model: String, stream: Bool)? {
    body.withUnsafeBytes { raw -> (String, Bool)? in
        guard let members = try? JSONScanner.members(raw),
              let modelMember = JSONScanner.member(named: "model", in: members, of: raw),
              let model = JSONScanner.string(raw, in: modelMember.valueRange), !model.isEmpty,
              ProxyRequest.modelNameProblem(model) == nil
        else { return nil }
        if api == "chat.completions" {
            guard let messages = JSONScanner.member(named: "messages", in: members, of: raw),
                  raw[messages.valueRange.lowerBound] == UInt8(ascii: "[")
            else { return nil }
        }
        let stream = api == "chat.completions"
            && (JSONScanner.member(named: "stream", in: members, of: raw).map { JSONScanner.isTrue(raw, in: $0.valueRange) } ?? false)
        return (model, stream)
    }
}

@MainActor func buildRequest(_ payload: [UInt8], variant: Int) {
    let api = variant == 2 ? "embeddings" : "chat.completions"
    guard let (model, stream) = gatewayAccepts(payload, api: api) else { return }
    let request = instance.request(api: api, model: model, body: payload, stream: stream)
    guard let exchange = request.newExchange() else { return }
    checkUpstream(exchange.buildRequest())
}

@MainActor func translateAnswer(_ payload: [UInt8], variant: Int, status: Int) {
    guard let exchange = answerRequests[variant].newExchange() else { return }
    let built = exchange.buildRequest()
    guard built.status == PRISM_OK else { return }
    let result = exchange.answer(status: status, body: payload)
    if (200..<300).contains(status), result.status == PRISM_OK {
        require(isJSONObject(result.clientBody),
                     "the client's answer is not a JSON object: \(String(decoding: result.clientBody, as: UTF8.self))")
    }
}

@MainActor func translateStream(_ payload: [UInt8], variant: Int, fixChecksums: Bool) {
    guard let exchange = streamRequests[variant].newExchange() else { return }
    let built = exchange.buildRequest()
    guard built.status == PRISM_OK else { return }
    var payload = payload
    if fixChecksums && built.framing == PRISM_FRAMING_RAW { fixEventStreamChecksums(&payload) }
    var output: [UInt8] = []
    var status = PRISM_OK
    func take(_ result: (status: Int32, output: [UInt8], error: String?)) {
        output += result.output
        if status == PRISM_OK { status = result.status }
    }
    func event(_ event: ServerSentEvent) {
        guard status == PRISM_OK else { return }
        let result = exchange.translateEvent(event, keepOutput: true)
        take((result.status, result.output, result.error))
    }
    payload.withUnsafeBytes { raw in
        let cuts = chunkBoundaries(raw)
        switch built.framing {
        case PRISM_FRAMING_RAW:
            inPieces(raw, cuts: cuts) { piece in
                if status == PRISM_OK { take(exchange.translateChunk(Array(piece))) }
            }
        case PRISM_FRAMING_NDJSON:
            var lines = LineSplitter()
            inPieces(raw, cuts: cuts) { piece in lines.feed(piece) { event(ServerSentEvent(data: $0)) } }
            lines.finish { event(ServerSentEvent(data: $0)) }
        default:
            var parser = ServerSentEventParser()
            do {
                try inPieces(raw, cuts: cuts) { piece in try parser.feed(piece) { event($0) } }
                try parser.finish { event($0) }
            } catch {
                status = PRISM_ERROR_UPSTREAM // a line over the limit: the gateway fails the stream
            }
        }
    }
    if status == PRISM_OK { take(exchange.finishStream()) }
    checkClientStream(output)
}

runFuzzer { bytes in
    guard let selector = bytes.first else { return }
    let payload = Array(bytes.dropFirst())
    let mode = Int(selector) % 4
    let variant = Int(selector) / 4 % 4
    switch mode {
    case 0: buildRequest(payload, variant: variant)
    case 1: translateAnswer(payload, variant: variant, status: 200)
    case 2: translateAnswer(payload, variant: variant, status: statuses[Int(selector) / 16 % 16])
    default: translateStream(payload, variant: variant, fixChecksums: selector & 0x10 != 0)
    }
}
