import PluginKit
import PrismPluginABI
import PrismWire

/// One client request of the Responses dialect.
///
/// `@unchecked Sendable`: a pending decode finishes on a host thread (after the shared-state
/// lookup), and the host never overlaps calls for one exchange: the resume happens before any
/// later call, so the state is never touched from two threads at once.
package final class ResponsesExchange: IngressExchange, @unchecked Sendable {
    let environment: ResponsesEnvironment

    private var request: ResponsesRequest?
    private(set) var responseID = ""
    private var createdAt: Int64 = 0
    /// The conversation so far (earlier turns and this input), canonical messages: stored with
    /// the answer for a later `previous_response_id`.
    private var conversation: [JSONValue] = []
    private var shouldStore = false

    // Stream state.
    private var sequence = 0
    private var started = false
    private var items: [(item: OutputItem, status: String)] = []
    private var open: OpenItem = .none
    private var finishReason: String?
    private var streamUsage: Usage?
    private var streamModel = ""
    private var modelAnswered = false
    private var assembler = ChatStreamAssembler()

    private enum OpenItem: Equatable {
        case none, reasoning, message
        /// A function call, by its index among the chat answer's tool calls.
        case function(Int)
    }

    package init(_ environment: ResponsesEnvironment) {
        self.environment = environment
    }

    // MARK: Decode

    package func decode(_ request: IngressRequest, later: @escaping @Sendable (DecodeResult) -> Void) -> DecodeResult? {
        switch request.api {
        case ResponsesAPI.create:
            return decodeCreate(request, later: later)
        case ResponsesAPI.retrieve, ResponsesAPI.delete:
            return decodeStored(request, delete: request.api == ResponsesAPI.delete, later: later)
        case ResponsesAPI.websocket:
            return .answer(ClientAnswer(
                status: 405, headers: [ClientAnswer.Header("content-type", "application/json"), ClientAnswer.Header("allow", "POST")],
                body: OpenAIErrorBody.make(message: "WebSocket mode is not supported; use HTTP POST /v1/responses",
                                           type: "invalid_request_error", code: "websocket_not_supported")))
        default:
            return .failure(PluginError(status: PRISM_ERROR_INVALID_REQUEST, httpStatus: 404, type: "invalid_request_error",
                                        code: "unknown_url", message: "Unknown Responses API operation '\(request.api)'."))
        }
    }

    private func decodeCreate(_ incoming: IngressRequest, later: @escaping @Sendable (DecodeResult) -> Void) -> DecodeResult? {
        let body: JSONValue
        do {
            body = try JSONValue.parse(incoming.body)
        } catch {
            return .failure(.invalidRequest("The request body is not valid JSON: \(error.reason)", code: "invalid_json"))
        }
        let parsed: ResponsesRequest
        do {
            parsed = try ResponsesRequest(body)
        } catch {
            // Hosted tools, background mode, stored prompts...: OpenAI's own Responses API serves
            // them when routing reaches it (pass-through); other providers answer this error.
            if error.code.hasPrefix("unsupported_"), let routing = CanonicalRequest.routing(from: incoming.body) {
                return .nativeOnly(routing, error)
            }
            return .failure(error)
        }
        request = parsed
        streamModel = parsed.model
        responseID = environment.newID("resp_")
        createdAt = environment.now()
        shouldStore = environment.settings.store && parsed.store && environment.store != nil
        guard let previous = parsed.previousResponseID else { return forward(parsed, history: []) }
        guard environment.settings.store else {
            return .failure(.invalidRequest(
                "`previous_response_id` cannot be used: this gateway does not store responses (its responses ingress has `store: false`); send the whole conversation in `input` instead.",
                code: "previous_response_not_supported"))
        }
        guard let store = environment.store else {
            return .failure(.invalidRequest(
                "`previous_response_id` cannot be used: this gateway has no shared state to keep responses in; send the whole conversation in `input` instead.",
                code: "previous_response_not_supported"))
        }
        store.load(ResponsesEnvironment.key(previous)) { lookup in
            switch lookup {
            case let .found(bytes):
                guard let stored = StoredResponse(bytes) else { return later(.failure(Self.previousNotFound(previous))) }
                later(self.forward(parsed, history: stored.messages))
            case .notFound:
                // Perhaps OpenAI stored it (an answer passed through): it may still serve the request.
                later(.nativeOnly(.routing(model: parsed.model, stream: parsed.stream), Self.previousNotFound(previous)))
            case .unavailable:
                later(.failure(Self.storeUnavailable))
            }
        }
        return nil
    }

    private func forward(_ parsed: ResponsesRequest, history: [JSONValue]) -> DecodeResult {
        conversation = history + parsed.input
        let canonical = CanonicalRequest(body: parsed.canonicalBody(history: history))
        // A conversation this gateway stored is in the canonical request only: the client's own
        // body (previous_response_id) must not go to OpenAI, which never saw that response.
        return history.isEmpty ? .forward(canonical) : .forwardTranslated(canonical)
    }

    static func previousNotFound(_ id: String) -> PluginError {
        PluginError(status: PRISM_ERROR_INVALID_REQUEST, httpStatus: 404, type: "invalid_request_error",
                    code: "previous_response_not_found",
                    message: "Previous response with id '\(id)' not found: it was never stored, was deleted or has expired.")
    }

    static func responseNotFound(_ id: String) -> PluginError {
        PluginError(status: PRISM_ERROR_INVALID_REQUEST, httpStatus: 404, type: "invalid_request_error",
                    code: "response_not_found",
                    message: "Response with id '\(id)' not found: it was never stored, was deleted or has expired.")
    }

    static let storeUnavailable = PluginError(
        status: PRISM_ERROR_UNAVAILABLE, httpStatus: 503, type: "service_unavailable_error", code: "store_unavailable",
        message: "The store of responses (the gateway's shared state) cannot be reached right now; try again.")

    /// `GET` or `DELETE /v1/responses/{id}`.
    private func decodeStored(_ request: IngressRequest, delete: Bool,
                              later: @escaping @Sendable (DecodeResult) -> Void) -> DecodeResult?
    {
        let prefix = "/v1/responses/"
        let id = request.path.hasPrefix(prefix) ? String(request.path.dropFirst(prefix.count)) : ""
        guard !id.isEmpty, !id.contains("/") else {
            return .failure(PluginError(status: PRISM_ERROR_INVALID_REQUEST, httpStatus: 404, type: "invalid_request_error",
                                        code: "unknown_url",
                                        message: "\(request.method) \(request.path) is not supported by this gateway (only /v1/responses/{id})."))
        }
        guard environment.settings.store, let store = environment.store else { return .failure(Self.responseNotFound(id)) }
        let key = ResponsesEnvironment.key(id)
        store.load(key) { lookup in
            switch lookup {
            case let .found(bytes):
                guard let stored = StoredResponse(bytes) else { return later(.failure(Self.responseNotFound(id))) }
                if delete {
                    store.remove(key)
                    later(.answer(.json(200, JSONValue.object([("id", .string(id)), ("object", .string("response")),
                                                               ("deleted", .bool(true))]).jsonBytes)))
                } else {
                    later(.answer(.json(200, stored.response.jsonBytes)))
                }
            case .notFound:
                later(.failure(Self.responseNotFound(id)))
            case .unavailable:
                later(.failure(Self.storeUnavailable))
            }
        }
        return nil
    }

    // MARK: Whole answers

    package func encodeResponse(status: UInt32, body: UnsafeRawBufferPointer) throws(PluginError) -> ClientAnswer {
        let answer = try CanonicalRequest.parseAnswer(body)
        guard let choice = answer["choices"]?.arrayValue?.first, let message = choice["message"] else {
            throw PluginError.internalError("The canonical answer has no choices[0].message.")
        }
        var output: [OutputItem] = []
        if let reasoning = message["reasoning_content"]?.stringValue, !reasoning.isEmpty {
            output.append(.reasoning(id: environment.newID("rs_"), text: reasoning))
        }
        let text = message["content"]?.stringValue
        let refusal = message["refusal"]?.stringValue
        let calls = message["tool_calls"]?.arrayValue ?? []
        if (text.map { !$0.isEmpty } ?? false) || refusal != nil || calls.isEmpty {
            output.append(.message(id: environment.newID("msg_"), text: text ?? "", refusal: refusal))
        }
        for call in calls {
            output.append(.functionCall(id: environment.newID("fc_"), callID: call["id"]?.stringValue ?? "",
                                        name: call["function"]?["name"]?.stringValue ?? "",
                                        arguments: call["function"]?["arguments"]?.stringValue ?? ""))
        }
        let outcome = ResponseObject.outcome(finishReason: choice["finish_reason"]?.stringValue)
        let usage = answer["usage"].flatMap { $0.isNull ? nil : Usage(openAI: $0) } ?? Usage()
        let itemStatus = outcome.status == "completed" ? "completed" : "incomplete"
        let response = ResponseObject.make(
            id: responseID, createdAt: createdAt, status: outcome.status,
            model: answer["model"]?.stringValue ?? streamModel, echo: echo,
            output: output.map { $0.json(status: itemStatus) }, usage: ResponseObject.usage(usage),
            incomplete: outcome.incomplete)
        persist(response, assistant: Self.assistantMessage(message))
        return .json(200, response.jsonBytes)
    }

    private var echo: ResponseEcho { request?.echo ?? ResponseEcho(model: streamModel, store: false) }

    /// The answer as the conversation's next canonical message.
    static func assistantMessage(_ message: JSONValue) -> JSONValue {
        var members: [(String, JSONValue)] = [("role", .string("assistant")), ("content", message["content"] ?? .null)]
        for name in ["reasoning_content", "thinking_blocks", "tool_calls"] {
            if let value = message[name], !value.isNull { members.append((name, value)) }
        }
        return .object(members)
    }

    private func persist(_ response: JSONValue, assistant: JSONValue) {
        guard shouldStore, let store = environment.store else { return }
        store.save(ResponsesEnvironment.key(responseID),
                   StoredResponse(response: response, messages: conversation + [assistant]).jsonBytes,
                   ttlSeconds: environment.settings.ttlSeconds)
    }

    // MARK: Streams

    package func encodeEvent(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(PluginError) {
        start(&out)
        guard let chunk = try? CanonicalChunk(bytes) else { return }
        assembler.add(chunk)
        if !modelAnswered, let model = chunk.model, !model.isEmpty {
            streamModel = model // the model that answered, as the provider names it
            modelAnswered = true
        }
        if let usage = chunk.usage { streamUsage = usage }
        guard chunk.choiceRange != nil else { return }
        if let reason = chunk.finishReason { finishReason = reason }
        if let text = chunk.reasoning, !text.isEmpty {
            if open != .reasoning { openReasoning(&out) }
            openText.append(text)
            emitDelta("response.reasoning_summary_text.delta", indexKey: "summary_index", text, logprobs: false, into: &out)
        }
        if let text = chunk.content, !text.isEmpty { outputText(text, into: &out) }
        if let text = chunk.refusal, !text.isEmpty { outputText(text, into: &out) }
        guard chunk.toolCallsRange != nil else { return }
        for call in chunk.value(chunk.toolCallsRange)?.arrayValue ?? [] {
            let index = Int(call["index"]?.integerValue ?? 0)
            if open != .function(index) {
                guard call["id"]?.stringValue != nil || call["function"]?["name"]?.stringValue != nil else { continue }
                openFunction(index, callID: call["id"]?.stringValue ?? "",
                             name: call["function"]?["name"]?.stringValue ?? "", into: &out)
            }
            if let fragment = call["function"]?["arguments"]?.stringValue, !fragment.isEmpty {
                openText.append(fragment)
                emitDelta("response.function_call_arguments.delta", indexKey: nil, fragment, logprobs: false, into: &out)
            }
        }
    }

    private func outputText(_ text: String, into out: inout [UInt8]) {
        if open != .message { openMessage(&out) }
        openText.append(text)
        emitDelta("response.output_text.delta", indexKey: "content_index", text, logprobs: true, into: &out)
    }

    /// A delta event, written directly (the hot path of a stream): `{"type","item_id","output_index",
    /// [indexKey: 0],"delta",["logprobs":[]],"sequence_number"}`.
    private func emitDelta(_ type: StaticString, indexKey: StaticString?, _ delta: String, logprobs: Bool,
                           into out: inout [UInt8])
    {
        // Written in place: `event: <type>\ndata: <json>\n\n` (ServerSentEventWriter's framing).
        let name = UnsafeRawBufferPointer(start: type.utf8Start, count: type.utf8CodeUnitCount)
        out.append(contentsOf: "event: ".utf8)
        out.append(contentsOf: name)
        out.append(contentsOf: "\ndata: ".utf8)
        let outputIndex = Int64(max(0, items.count - 1))
        let sequenceNumber = Int64(sequence)
        let itemID = currentID
        JSONWriter.append(to: &out) { writer in
            writer.beginObject()
            writer.key(literal: "type")
            writer.string(literal: type)
            writer.key(literal: "item_id")
            writer.string(itemID)
            writer.key(literal: "output_index")
            writer.integer(outputIndex)
            if let indexKey {
                writer.key(literal: indexKey)
                writer.integer(0)
            }
            writer.key(literal: "delta")
            writer.string(delta)
            if logprobs { writer.member(#""logprobs":[]"#) }
            writer.key(literal: "sequence_number")
            writer.integer(sequenceNumber)
            writer.endObject()
        }
        out.append(0x0A)
        out.append(0x0A)
        sequence += 1
    }

    package func finishStream(usage: Usage, into out: inout [UInt8]) throws(PluginError) {
        start(&out)
        let outcome = ResponseObject.outcome(finishReason: finishReason)
        close(status: outcome.status == "completed" ? "completed" : "incomplete", into: &out)
        let response = ResponseObject.make(
            id: responseID, createdAt: createdAt, status: outcome.status, model: streamModel, echo: echo,
            output: items.map { $0.item.json(status: $0.status) }, usage: ResponseObject.usage(streamUsage ?? usage),
            incomplete: outcome.incomplete)
        emit(outcome.status == "completed" ? "response.completed" : "response.incomplete", [("response", response)], into: &out)
        persist(response, assistant: streamedAssistantMessage())
    }

    /// The streamed answer as a canonical message: what the assembler folded (with thinking
    /// blocks), else what the items hold.
    private func streamedAssistantMessage() -> JSONValue {
        if let completion = assembler.completion(), let value = try? JSONValue.parse(completion),
           let message = value["choices"]?.arrayValue?.first?["message"]
        {
            return Self.assistantMessage(message)
        }
        var text: String?
        var reasoning: String?
        var calls: [JSONValue] = []
        for (item, _) in items {
            switch item {
            case let .reasoning(_, value): reasoning = (reasoning ?? "") + value
            case let .message(_, value, _): text = (text ?? "") + value
            case let .functionCall(_, callID, name, arguments):
                calls.append(.object([("id", .string(callID)), ("type", .string("function")),
                                      ("function", .object([("name", .string(name)), ("arguments", .string(arguments))]))]))
            }
        }
        var message: [(String, JSONValue)] = [("role", .string("assistant")), ("content", text.map { .string($0) } ?? .null)]
        if let reasoning { message.append(("reasoning_content", .string(reasoning))) }
        if !calls.isEmpty { message.append(("tool_calls", .array(calls))) }
        return .object(message)
    }

    private func emit(_ type: String, _ members: [(String, JSONValue)], into out: inout [UInt8]) {
        let event = JSONValue.object([("type", .string(type))] + members + [("sequence_number", .number(String(sequence)))])
        sequence += 1
        ServerSentEventWriter.frame(event: type, event.jsonBytes, into: &out)
    }

    private func start(_ out: inout [UInt8]) {
        guard !started else { return }
        started = true
        let response = ResponseObject.make(id: responseID, createdAt: createdAt, status: "in_progress", model: streamModel,
                                           echo: echo, output: [])
        emit("response.created", [("response", response)], into: &out)
        emit("response.in_progress", [("response", response)], into: &out)
    }

    private var currentID: String { items.last?.item.id ?? "" }
    private var outputIndex: JSONValue { .number(String(max(0, items.count - 1))) }

    /// The open item's text (or arguments) so far, appended in place (a long answer must not be
    /// copied once per event) and given to the item when it closes.
    private var openText = ""

    private func commitOpenText() {
        guard let last = items.indices.last, !openText.isEmpty else { return }
        let text = openText
        openText = ""
        switch items[last].item {
        case let .reasoning(id, value): items[last].item = .reasoning(id: id, text: value + text)
        case let .message(id, value, refusal): items[last].item = .message(id: id, text: value + text, refusal: refusal)
        case let .functionCall(id, callID, name, arguments):
            items[last].item = .functionCall(id: id, callID: callID, name: name, arguments: arguments + text)
        }
    }

    private func openReasoning(_ out: inout [UInt8]) {
        close(status: "completed", into: &out)
        let item = OutputItem.reasoning(id: environment.newID("rs_"), text: "")
        items.append((item, "in_progress"))
        open = .reasoning
        emit("response.output_item.added", [("output_index", outputIndex), ("item", item.json(status: "in_progress"))], into: &out)
        emit("response.reasoning_summary_part.added", [
            ("item_id", .string(item.id)), ("output_index", outputIndex), ("summary_index", .number("0")),
            ("part", ResponseObject.summaryPart("")),
        ], into: &out)
    }

    private func openMessage(_ out: inout [UInt8]) {
        close(status: "completed", into: &out)
        let id = environment.newID("msg_")
        items.append((.message(id: id, text: "", refusal: nil), "in_progress"))
        open = .message
        emit("response.output_item.added", [("output_index", outputIndex), ("item", .object([
            ("type", .string("message")), ("id", .string(id)), ("status", .string("in_progress")),
            ("role", .string("assistant")), ("content", .array([])),
        ]))], into: &out)
        emit("response.content_part.added", [
            ("item_id", .string(id)), ("output_index", outputIndex), ("content_index", .number("0")),
            ("part", ResponseObject.textPart("")),
        ], into: &out)
    }

    private func openFunction(_ index: Int, callID: String, name: String, into out: inout [UInt8]) {
        close(status: "completed", into: &out)
        let item = OutputItem.functionCall(id: environment.newID("fc_"), callID: callID, name: name, arguments: "")
        items.append((item, "in_progress"))
        open = .function(index)
        emit("response.output_item.added", [("output_index", outputIndex), ("item", item.json(status: "in_progress"))], into: &out)
    }

    /// Ends the open item with its closing events.
    private func close(status: String, into out: inout [UInt8]) {
        guard open != .none, let last = items.indices.last else { return }
        commitOpenText()
        open = .none
        items[last].status = status
        let item = items[last].item
        let id = JSONValue.string(item.id)
        switch item {
        case let .reasoning(_, text):
            emit("response.reasoning_summary_text.done", [
                ("item_id", id), ("output_index", outputIndex), ("summary_index", .number("0")), ("text", .string(text)),
            ], into: &out)
            emit("response.reasoning_summary_part.done", [
                ("item_id", id), ("output_index", outputIndex), ("summary_index", .number("0")),
                ("part", ResponseObject.summaryPart(text)),
            ], into: &out)
        case let .message(_, text, _):
            emit("response.output_text.done", [
                ("item_id", id), ("output_index", outputIndex), ("content_index", .number("0")), ("text", .string(text)),
                ("logprobs", .array([])),
            ], into: &out)
            emit("response.content_part.done", [
                ("item_id", id), ("output_index", outputIndex), ("content_index", .number("0")),
                ("part", ResponseObject.textPart(text)),
            ], into: &out)
        case let .functionCall(_, _, name, arguments):
            emit("response.function_call_arguments.done", [
                ("item_id", id), ("output_index", outputIndex), ("name", .string(name)), ("arguments", .string(arguments)),
            ], into: &out)
        }
        emit("response.output_item.done", [("output_index", outputIndex), ("item", item.json(status: status))], into: &out)
    }

    // MARK: Errors and pass-through

    package func encodeError(_ error: IngressError, inStream: Bool) -> ClientAnswer {
        let code = error.code.isEmpty ? error.type : error.code
        guard inStream else {
            return .json(error.status, OpenAIErrorBody.make(message: error.message, type: error.type,
                                                            code: error.code.isEmpty ? nil : error.code))
        }
        var out: [UInt8] = []
        // A stream this exchange never wrote (a pass-through answer that broke off) gets only the
        // error event: the client has the upstream's own response.created, with its id.
        let ownStream = started
        if ownStream { close(status: "incomplete", into: &out) }
        // `error` first: its nested `error` object is what OpenAI's SDKs raise on; then
        // `response.failed`, the terminal event typed clients (Codex) wait for.
        emit("error", [
            ("code", .string(code)), ("message", .string(error.message)), ("param", .null),
            ("error", .object([("type", .string(error.type)), ("code", .string(code)),
                               ("message", .string(error.message)), ("param", .null)])),
        ], into: &out)
        guard ownStream else { return ClientAnswer(status: error.status, body: out) }
        let response = ResponseObject.make(
            id: responseID, createdAt: createdAt, status: "failed", model: streamModel, echo: echo,
            output: items.map { $0.item.json(status: $0.status) }, usage: streamUsage.map(ResponseObject.usage) ?? .null,
            error: .object([("code", .string(code)), ("message", .string(error.message))]))
        emit("response.failed", [("response", response)], into: &out)
        return ClientAnswer(status: error.status, body: out)
    }

    package func observeNative(event: String, data: UnsafeRawBufferPointer, usage: inout Usage) {
        // Scanned, not parsed: only the usage object becomes a tree (a response object is large).
        let holder: JSONFields?
        switch event {
        case "": holder = try? JSONFields(data)
        case "response.completed", "response.incomplete", "response.failed": holder = (try? JSONFields(data))?.object("response")
        default: return
        }
        if let reported = holder?.value("usage"), !reported.isNull { usage = ResponseObject.gatewayUsage(reported) }
    }
}
