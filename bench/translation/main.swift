// prism-translation-bench [plugins dir]
//
// Measures what each provider plugin costs per request and per streamed event, called through
// the C ABI exactly as the gateway calls it (PrismCore's loader, host tables, request view and
// sinks; see TranslationHarness): no network, no server.
//
//   build_request: exchange_new + build_request + exchange_destroy on a ~2 KB chat request
//                  (system, user, assistant tool call, tool result, user; two tools with JSON
//                  Schema parameters), with a fresh upstream builder each time.
//   translate_event: one representative streamed text event in the provider's own wire format,
//                  translated into OpenAI chunks, on one streaming exchange.
//
// Each figure is the best of several short timed runs (the machine's noise only ever adds time).

import PrismCore
import PrismWire

#if canImport(Glibc)
import Glibc
#endif

let budgetRequestMicroseconds = 20.0
let budgetEventMicroseconds = 5.0
/// Client dialects (ingress plugins): a ~2 KB request to the canonical form, one chunk back.
let budgetDecodeMicroseconds = 10.0
let budgetEncodeMicroseconds = 2.0
/// Many short runs: on a shared machine the best short run is the one that was not interrupted.
let runs = 15

/// Best-of-`runs` microseconds per call of `body`, each run `iterations` calls long.
func measure(iterations: Int, _ body: () -> Void) -> Double {
    for _ in 0..<(iterations / 10 + 1) { body() } // warm caches and lazy paths
    var best = Double.infinity
    for _ in 0..<runs {
        let start = monotonicNanoseconds()
        for _ in 0..<iterations { body() }
        let elapsed = Double(monotonicNanoseconds() - start) / 1000 / Double(iterations)
        best = min(best, elapsed)
    }
    return best
}

// MARK: Inputs

let chatRequest = #"""
{"model":"MODEL","messages":[{"role":"system","content":"You are a travel assistant for a European rail operator. Answer in at most three sentences, quote prices in euros, and call a tool whenever live data (weather, timetables, fares) is needed instead of guessing. Never invent train numbers."},{"role":"user","content":"I am going from Paris to Rome next Tuesday with two children (ages 6 and 11). Which connection leaves after 9:00, what will the weather be like when we arrive, and is there a family fare I should book?"},{"role":"assistant","content":"","tool_calls":[{"id":"call_9f2c4e1a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\",\"unit\":\"celsius\",\"days\":3}"}}]},{"role":"tool","tool_call_id":"call_9f2c4e1a","content":"{\"city\":\"Rome\",\"forecast\":[{\"day\":\"Tue\",\"high\":24,\"low\":15,\"sky\":\"sunny\"},{\"day\":\"Wed\",\"high\":22,\"low\":14,\"sky\":\"cloudy\"},{\"day\":\"Thu\",\"high\":19,\"low\":12,\"sky\":\"rain\"}]}"},{"role":"user","content":"Great, thanks. Now please look up the fares and the timetable too, and tell me if a seat reservation is mandatory."}],"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather forecast for a city, one entry per day.","parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name, e.g. Rome"},"unit":{"type":"string","enum":["celsius","fahrenheit"]},"days":{"type":"integer","minimum":1,"maximum":10}},"required":["city"],"additionalProperties":false}}},{"type":"function","function":{"name":"search_connections","description":"Train connections and fares between two stations on a date.","parameters":{"type":"object","properties":{"from":{"type":"string"},"to":{"type":"string"},"date":{"type":"string","format":"date"},"depart_after":{"type":"string","description":"HH:MM, local time"},"passengers":{"type":"array","items":{"type":"object","properties":{"age":{"type":"integer"},"railcard":{"type":["string","null"]}},"required":["age"]}}},"required":["from","to","date"],"additionalProperties":false}}}],"tool_choice":"auto","temperature":0.3,"max_tokens":512}
"""#

struct Case {
    let component: String
    let model: String
    let configuration: JSONValue
    /// Events that put the exchange in mid-stream state (not timed).
    let prelude: [ServerSentEvent]
    /// The timed event.
    let event: ServerSentEvent
}

func event(_ name: String, _ json: String) -> ServerSentEvent {
    ServerSentEvent(event: name, data: Array(json.utf8))
}

let openAIChunk = event("", #"{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf","choices":[{"index":0,"delta":{"content":" the"},"logprobs":null,"finish_reason":null}]}"#)
let geminiChunk = event("", #"{"candidates":[{"content":{"parts":[{"text":" the"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":412,"totalTokenCount":412,"promptTokensDetails":[{"modality":"TEXT","tokenCount":412}]},"modelVersion":"gemini-2.0-flash-001","responseId":"pXbAaKPxJ7ydz7IPmcrC8Qs"}"#)

let cases: [Case] = [
    Case(component: "openai", model: "gpt-4o",
         configuration: .object([("api_key", .string("sk-bench")), ("base_url", .string("https://api.openai.com/v1"))]),
         prelude: [], event: openAIChunk),
    Case(component: "anthropic", model: "claude-sonnet-4-20250514",
         configuration: .object([("api_key", .string("sk-ant-bench"))]),
         prelude: [
             event("message_start", #"{"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-20250514","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":412,"output_tokens":1}}}"#),
             event("content_block_start", #"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
         ],
         event: event("content_block_delta", #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" the"}}"#)),
    Case(component: "gemini", model: "gemini-2.0-flash",
         configuration: .object([("api_key", .string("AIza-bench"))]), prelude: [], event: geminiChunk),
    Case(component: "vertexai", model: "gemini-2.0-flash",
         configuration: .object([("api_key", .string("ya29.bench")), ("project", .string("bench")),
                                 ("location", .string("us-central1"))]),
         prelude: [], event: geminiChunk),
    Case(component: "cohere", model: "command-r-plus",
         configuration: .object([("api_key", .string("co-bench"))]),
         prelude: [
             event("message-start", #"{"id":"29f14a5a-11de-4cae-9800-25e4747408ea","type":"message-start","delta":{"message":{"role":"assistant","content":[],"tool_plan":"","tool_calls":[],"citations":[]}}}"#),
             event("content-start", #"{"type":"content-start","index":0,"delta":{"message":{"content":{"type":"text","text":""}}}}"#),
         ],
         event: event("content-delta", #"{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":" the"}}}}"#)),
    Case(component: "azure", model: "gpt-4o",
         configuration: .object([("api_key", .string("azure-bench")),
                                 ("base_url", .string("https://bench.openai.azure.com"))]),
         prelude: [], event: openAIChunk),
]

// MARK: Run

let arguments = CommandLine.arguments
let directory = arguments.count > 1 ? arguments[1] : "dist/plugins"
let harness = TranslationHarness(pluginsDirectory: directory)
for refusal in harness.refusals { print("refused: \(refusal.file): \(refusal.reason)") }

struct Row {
    var provider: String
    var requestBytes = 0
    var upstreamBytes = 0
    var requestMicroseconds: Double?
    var eventMicroseconds: Double?
    var note = ""
}

func run(_ test: Case, harness: TranslationHarness) -> Row? {
    guard harness.providerComponents.contains(test.component) else { return nil }
    var row = Row(provider: test.component)
    let provider: HarnessProvider
    do {
        provider = try harness.provider(test.component, configuration: test.configuration)
    } catch {
        row.note = "instance_new failed: \(error.message)"
        return row
    }
    let body = Array(chatRequest.replacingOccurrences(of: "MODEL", with: test.model).utf8)
    row.requestBytes = body.count

    let request = provider.request(model: test.model, body: body, stream: false)
    guard let check = request.newExchange()?.buildRequest(), check.status == 0 else {
        row.note = "build_request failed"
        return row
    }
    row.upstreamBytes = check.body.count
    row.requestMicroseconds = measure(iterations: 4_000) {
        _ = request.newExchange()?.buildRequest()
    }

    let streaming = provider.request(model: test.model, body: body, stream: true)
    guard let exchange = streaming.newExchange() else { return row }
    guard exchange.buildRequest().status == 0 else {
        row.note = "build_request (stream) failed"
        return row
    }
    for event in test.prelude { exchange.translateEvent(event) }
    let first = exchange.translateEvent(test.event)
    guard first.status == 0, first.produced > 0 else {
        row.note = "translate_event failed: \(first.error ?? "status \(first.status), \(first.produced) bytes")"
        return row
    }
    row.eventMicroseconds = measure(iterations: 40_000) {
        exchange.translateEvent(test.event)
    }
    return row
}

extension String {
    /// Foundation-free replace for the one template substitution above.
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        var result = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound] + replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}

func format(_ value: Double?, budget: Double) -> String {
    guard let value else { return "—" }
    let text = value < 10 ? String(Double(Int(value * 100 + 0.5)) / 100) : String(Double(Int(value * 10 + 0.5)) / 10)
    return value <= budget ? "\(text)" : "\(text) (over budget)"
}

var rows: [Row] = []
for test in cases {
    if let row = run(test, harness: harness) { rows.append(row) }
}
let missing = cases.map(\.component).filter { name in !rows.contains { $0.provider == name } }

print("Translation cost per provider plugin, through the C ABI (best of \(runs) runs; plugins from \(directory))")
print("")
print("| provider | request bytes | upstream bytes | µs per build_request (≤ \(Int(budgetRequestMicroseconds))) | µs per translate_event (≤ \(Int(budgetEventMicroseconds))) | note |")
print("|---|---:|---:|---:|---:|---|")
for row in rows {
    print("| \(row.provider) | \(row.requestBytes) | \(row.upstreamBytes) | \(format(row.requestMicroseconds, budget: budgetRequestMicroseconds)) | \(format(row.eventMicroseconds, budget: budgetEventMicroseconds)) | \(row.note) |")
}
if !missing.isEmpty { print("\nnot loaded (no plugin in \(directory)): \(missing.joined(separator: ", "))") }

// What the shared JSON layer costs on the same 2 KB body: the floor under any translator that
// builds a tree (ChatRequest does) or re-encodes one.
let referenceBody = Array(chatRequest.utf8)
let referenceTree = (try? JSONValue.parse(referenceBody)) ?? .null
let validateCost = measure(iterations: 4_000) { referenceBody.withUnsafeBytes { _ = try? JSONScanner.validate($0) } }
let parseCost = measure(iterations: 4_000) { _ = try? JSONValue.parse(referenceBody) }
let writeCost = measure(iterations: 4_000) {
    var writer = JSONWriter(capacity: 2048)
    referenceTree.write(to: &writer)
    precondition(!writer.bytes.isEmpty)
}
print("\nPrismWire on the same \(referenceBody.count)-byte body: JSONScanner.validate \(format(validateCost, budget: .infinity)) µs, "
    + "JSONValue.parse \(format(parseCost, budget: .infinity)) µs, JSONValue.write \(format(writeCost, budget: .infinity)) µs")
let failed = rows.contains { row in
    row.requestMicroseconds.map { $0 > budgetRequestMicroseconds } ?? true
        || row.eventMicroseconds.map { $0 > budgetEventMicroseconds } ?? true
}

// MARK: Client dialects (ingress plugins)

/// The same conversation as `chatRequest` in each dialect (~2 KB each).
let messagesRequest = #"""
{"model":"claude-sonnet-4-20250514","max_tokens":512,"temperature":0.3,"system":[{"type":"text","text":"You are a travel assistant for a European rail operator. Answer in at most three sentences, quote prices in euros, and call a tool whenever live data (weather, timetables, fares) is needed instead of guessing. Never invent train numbers.","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"I am going from Paris to Rome next Tuesday with two children (ages 6 and 11). Which connection leaves after 9:00, what will the weather be like when we arrive, and is there a family fare I should book?"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_9f2c4e1a","name":"get_weather","input":{"city":"Rome","unit":"celsius","days":3}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_9f2c4e1a","content":"{\"city\":\"Rome\",\"forecast\":[{\"day\":\"Tue\",\"high\":24,\"low\":15,\"sky\":\"sunny\"},{\"day\":\"Wed\",\"high\":22,\"low\":14,\"sky\":\"cloudy\"},{\"day\":\"Thu\",\"high\":19,\"low\":12,\"sky\":\"rain\"}]}"},{"type":"text","text":"Great, thanks. Now please look up the fares and the timetable too, and tell me if a seat reservation is mandatory."}]}],"tools":[{"name":"get_weather","description":"Weather forecast for a city, one entry per day.","input_schema":{"type":"object","properties":{"city":{"type":"string","description":"City name, e.g. Rome"},"unit":{"type":"string","enum":["celsius","fahrenheit"]},"days":{"type":"integer","minimum":1,"maximum":10}},"required":["city"],"additionalProperties":false}},{"name":"search_connections","description":"Train connections and fares between two stations on a date.","input_schema":{"type":"object","properties":{"from":{"type":"string"},"to":{"type":"string"},"date":{"type":"string","format":"date"},"depart_after":{"type":"string","description":"HH:MM, local time"},"passengers":{"type":"array","items":{"type":"object","properties":{"age":{"type":"integer"},"railcard":{"type":["string","null"]}},"required":["age"]}}},"required":["from","to","date"],"additionalProperties":false}}],"tool_choice":{"type":"auto"},"stream":true}
"""#

let responsesRequest = #"""
{"model":"gpt-4o","instructions":"You are a travel assistant for a European rail operator. Answer in at most three sentences, quote prices in euros, and call a tool whenever live data (weather, timetables, fares) is needed instead of guessing. Never invent train numbers.","input":[{"role":"user","content":"I am going from Paris to Rome next Tuesday with two children (ages 6 and 11). Which connection leaves after 9:00, what will the weather be like when we arrive, and is there a family fare I should book?"},{"type":"function_call","call_id":"call_9f2c4e1a","name":"get_weather","arguments":"{\"city\":\"Rome\",\"unit\":\"celsius\",\"days\":3}"},{"type":"function_call_output","call_id":"call_9f2c4e1a","output":"{\"city\":\"Rome\",\"forecast\":[{\"day\":\"Tue\",\"high\":24,\"low\":15,\"sky\":\"sunny\"},{\"day\":\"Wed\",\"high\":22,\"low\":14,\"sky\":\"cloudy\"},{\"day\":\"Thu\",\"high\":19,\"low\":12,\"sky\":\"rain\"}]}"},{"role":"user","content":"Great, thanks. Now please look up the fares and the timetable too, and tell me if a seat reservation is mandatory."}],"tools":[{"type":"function","name":"get_weather","description":"Weather forecast for a city, one entry per day.","parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name, e.g. Rome"},"unit":{"type":"string","enum":["celsius","fahrenheit"]},"days":{"type":"integer","minimum":1,"maximum":10}},"required":["city"],"additionalProperties":false}},{"type":"function","name":"search_connections","description":"Train connections and fares between two stations on a date.","parameters":{"type":"object","properties":{"from":{"type":"string"},"to":{"type":"string"},"date":{"type":"string","format":"date"},"depart_after":{"type":"string","description":"HH:MM, local time"},"passengers":{"type":"array","items":{"type":"object","properties":{"age":{"type":"integer"},"railcard":{"type":["string","null"]}},"required":["age"]}}},"required":["from","to","date"],"additionalProperties":false}}],"tool_choice":"auto","temperature":0.3,"max_output_tokens":512,"store":false,"stream":true}
"""#

let completionsRequest = Array(#"{"model":"gpt-3.5-turbo-instruct","prompt":"#.utf8)
    + Array(String(repeating: "Summarise the following timetable note for a traveller. ", count: 34).debugDescription.utf8)
    + Array(#","max_tokens":512,"temperature":0.3,"stream":true}"#.utf8)

struct DialectCase {
    let component: String
    let api: String
    let path: String
    let body: [UInt8]
}

let dialectCases = [
    DialectCase(component: "anthropic", api: "anthropic.messages", path: "/v1/messages", body: Array(messagesRequest.utf8)),
    DialectCase(component: "responses", api: "openai.responses", path: "/v1/responses", body: Array(responsesRequest.utf8)),
    DialectCase(component: "completions", api: "openai.completions", path: "/v1/completions", body: completionsRequest),
]
/// A canonical text chunk, as the providers emit them (the first one opens the message; not timed).
let openingChunk = Array(#"{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#.utf8)
let textChunk = Array(openAIChunk.data)

struct DialectRow {
    var dialect: String
    var requestBytes = 0
    var canonicalBytes = 0
    var decodeMicroseconds: Double?
    var eventMicroseconds: Double?
    var note = ""
}

func runDialect(_ test: DialectCase, harness: TranslationHarness) -> DialectRow? {
    guard harness.ingressComponents.contains(test.component) else { return nil }
    var row = DialectRow(dialect: test.component, requestBytes: test.body.count)
    guard let ingress = try? harness.ingress(test.component) else {
        row.note = "instance_new failed"
        return row
    }
    guard let check = ingress.newExchange()?.decode(api: test.api, path: test.path, body: test.body), check.status == 0 else {
        row.note = "decode_request failed"
        return row
    }
    row.canonicalBytes = check.canonical.count
    row.decodeMicroseconds = measure(iterations: 4_000) {
        _ = ingress.newExchange()?.decode(api: test.api, path: test.path, body: test.body)
    }
    guard let exchange = ingress.newExchange() else { return row }
    _ = exchange.decode(api: test.api, path: test.path, body: test.body)
    exchange.encodeEvent(openingChunk)
    let first = exchange.encodeEvent(textChunk)
    guard first.status == 0, !first.output.isEmpty else {
        row.note = "encode_event failed (status \(first.status))"
        return row
    }
    row.eventMicroseconds = measure(iterations: 40_000) { exchange.encodeEvent(textChunk) }
    return row
}

func dialectRowsMet(_ harness: TranslationHarness) -> Bool {
    let dialectRows = dialectCases.compactMap { runDialect($0, harness: harness) }
    print("\nClient dialects (ingress plugins), through the C ABI: the client's ~2 KB request to the canonical chat request, "
        + "and one canonical text chunk to the client's stream")
    print("")
    print("| dialect | request bytes | canonical bytes | µs per decode_request (≤ \(Int(budgetDecodeMicroseconds))) | µs per encode_event (≤ \(Int(budgetEncodeMicroseconds))) | note |")
    print("|---|---:|---:|---:|---:|---|")
    for row in dialectRows {
        print("| \(row.dialect) | \(row.requestBytes) | \(row.canonicalBytes) | \(format(row.decodeMicroseconds, budget: budgetDecodeMicroseconds)) | \(format(row.eventMicroseconds, budget: budgetEncodeMicroseconds)) | \(row.note) |")
    }
    return dialectRows.allSatisfy { row in
        row.decodeMicroseconds.map { $0 <= budgetDecodeMicroseconds } ?? false
            && row.eventMicroseconds.map { $0 <= budgetEncodeMicroseconds } ?? false
    }
}

let dialectsMet = dialectRowsMet(harness)
exit(failed || !dialectsMet ? 1 : 0)
