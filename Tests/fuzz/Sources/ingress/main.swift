// libFuzzer target: one client dialect (ingress plugin), called through the C ABI as the gateway
// calls it (TranslationHarness: the real loader, host tables, request view and sinks).
//
//   fuzz-ingress -dialect=NAME [libFuzzer flags] [corpus dirs]
//   (or PRISM_FUZZ_DIALECT=NAME); NAME: anthropic, responses, completions. The plugin file comes
//   from PRISM_FUZZ_PLUGINS (default .build-fuzz/plugins), instrumented like this program.
//
// Input: one selector byte, then the payload. mode = byte % 4, variant = (byte / 4) % 4:
//   mode 0  the client's body → decode_request on the dialect's routes (variant picks the route)
//   mode 1  a canonical answer → encode_response, after a fixed decode
//   mode 2  canonical stream chunks (the payload's lines) → encode_event each, then finish_stream
//           (variant 1: an error after the first byte, in the dialect)
//   mode 3  a pass-through answer → observe_native (variant: the whole body, or one of the
//           dialect's event names)
// Besides crashes and sanitizer reports: a decode that forwards gives a JSON object with a model,
// an answer's body is JSON, and every SSE frame of a stream is `event:`/`data:` lines whose data is
// JSON (or `[DONE]`, or an NDJSON line).

import FuzzSupport
@testable import PrismCore
import PrismPluginABI
import PrismWire

#if canImport(Glibc)
import Glibc
#endif

struct Dialect {
    let component: String
    let routes: [(api: String, path: String)]
    let request: String
    let events: [String]
}

let dialects = [
    Dialect(component: "anthropic",
            routes: [("anthropic.messages", "/v1/messages"), ("anthropic.count_tokens", "/v1/messages/count_tokens")],
            request: #"{"model":"m","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hi"}],"stop_sequences":["END"]}"#,
            events: ["message_start", "message_delta", "content_block_delta"]),
    Dialect(component: "responses",
            routes: [("openai.responses", "/v1/responses"), ("openai.responses.retrieve", "/v1/responses/resp_1"),
                     ("openai.responses.delete", "/v1/responses/resp_1")],
            request: #"{"model":"m","input":"Hi","stream":true,"store":false}"#,
            events: ["response.completed", "response.incomplete", "response.output_text.delta"]),
    Dialect(component: "completions", routes: [("openai.completions", "/v1/completions")],
            request: #"{"model":"m","prompt":"Hi","stream":true,"echo":true}"#, events: ["", "message", "done"]),
]

func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

func chosenDialect() -> Dialect {
    let flag = CommandLine.arguments.first { $0.hasPrefix("-dialect=") }.map { String($0.dropFirst("-dialect=".count)) }
    guard let name = flag ?? environment("PRISM_FUZZ_DIALECT"), let dialect = dialects.first(where: { $0.component == name })
    else { fatalError("say which dialect: -dialect=NAME or PRISM_FUZZ_DIALECT=NAME (anthropic, responses, completions)") }
    return dialect
}

let dialect = chosenDialect()
let harness = TranslationHarness(pluginFile: (environment("PRISM_FUZZ_PLUGINS") ?? ".build-fuzz/plugins") + "/ingress-\(dialect.component).so")
for refusal in harness.refusals { fatalError("\(refusal.file): \(refusal.reason)") }
let ingress: HarnessIngress
do {
    ingress = try harness.ingress(dialect.component, configuration: .object([("store", .bool(false))]))
} catch {
    fatalError("instance_new \(dialect.component): \(error.message)")
}

func isJSON(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { (try? JSONScanner.validate($0)) != nil } }

/// Every frame of a client stream: SSE (`event:` and `data:` lines, data JSON or `[DONE]`) or NDJSON.
func checkStream(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    for frame in text.split(separator: "\n\n", omittingEmptySubsequences: true) {
        for line in frame.split(separator: "\n") {
            if line.hasPrefix("event: ") || line.hasPrefix(":") { continue }
            let data = line.hasPrefix("data: ") ? line.dropFirst(6) : line
            if data == "[DONE]" { continue }
            require(isJSON(Array(data.utf8)), "a stream line that is not JSON: \(line.prefix(200))")
        }
    }
}

func forwarded(_ exchange: HarnessIngressExchange, _ route: (api: String, path: String), _ body: [UInt8]) -> Bool {
    let decoded = exchange.decode(api: route.api, path: route.path, body: body, headers: [("x-api-key", "k")])
    if decoded.status == PRISM_OK || decoded.status == PRISM_TRANSLATE_ONLY {
        require(decoded.canonical.withUnsafeBytes { raw in
            (try? JSONScanner.members(raw)).flatMap { JSONScanner.member(named: "model", in: $0, of: raw) } != nil
        }, "a canonical request without a model: \(String(decoding: decoded.canonical.prefix(300), as: UTF8.self))")
        return true
    }
    return false
}

runFuzzer { data in
    guard let selector = data.first else { return }
    let payload = Array(data.dropFirst())
    let mode = Int(selector % 4), variant = Int(selector / 4) % 4
    guard let exchange = ingress.newExchange() else { fatalError("exchange_new failed") }
    switch mode {
    case 0:
        _ = forwarded(exchange, dialect.routes[variant % dialect.routes.count], payload)
    case 1:
        guard forwarded(exchange, dialect.routes[0], Array(dialect.request.utf8)) else { fatalError("the fixed request is refused") }
        let answer = exchange.encodeResponse(status: 200, body: payload)
        if answer.status == PRISM_OK { require(isJSON(answer.body), "an answer that is not JSON") }
    case 2:
        guard forwarded(exchange, dialect.routes[0], Array(dialect.request.utf8)) else { fatalError("the fixed request is refused") }
        var output: [UInt8] = []
        for line in payload.split(separator: 0x0A) { output += exchange.encodeEvent(Array(line)).output }
        if variant == 1 {
            output += exchange.encodeError(status: 502, type: "provider_error", code: "provider_error", message: "cut",
                                           inStream: true).body
        } else {
            output += exchange.finishStream().output
        }
        checkStream(output)
    default:
        _ = exchange.observeNative(event: variant == 0 ? "" : dialect.events[(variant - 1) % dialect.events.count], data: payload)
    }
}
