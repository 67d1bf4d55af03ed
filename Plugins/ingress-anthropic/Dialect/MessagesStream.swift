import PluginKit
import PrismWire

/// Canonical chat.completion.chunk events → Anthropic's stream, in Anthropic's order:
///
///     message_start, ping,
///     (content_block_start, content_block_delta*, content_block_stop)*,
///     message_delta, message_stop
///
/// Blocks are numbered in order of appearance. A block opens when a delta of another kind
/// arrives (text, reasoning, a new tool call index), after the open one is closed: Anthropic
/// streams one block at a time. `reasoning_content` deltas stream as a thinking block; the
/// finished block with its signature (`thinking_blocks`, as the Anthropic and Bedrock providers
/// send it at the block's end) adds a `signature_delta` and closes it. message_delta and
/// message_stop are written only by `finish`, so that the usage they carry is final (the
/// usage-only chunk comes after the one with finish_reason).
struct MessagesStream {
    /// Anthropic's ping, byte for byte.
    static let pingPayload: [UInt8] = Array(#"{"type": "ping"}"#.utf8)

    let context: RequestContext
    private var started = false
    private var finished = false
    private var messageID = ""

    private enum Kind: Equatable {
        case text
        case thinking
        /// A tool call, by its canonical `index`.
        case tool(Int)
    }

    /// The block being streamed: its kind and Anthropic index.
    private var open: (kind: Kind, index: Int)?
    private var nextIndex = 0
    /// Canonical tool-call index → the block index it got.
    private var toolBlocks: [Int: Int] = [:]
    private var finishReason: String?
    private var matchedStop: String?
    /// The last usage a chunk carried.
    private var usage: MessagesResponse.TokenUsage?

    init(context: RequestContext) { self.context = context }

    /// One canonical chunk → zero or more Anthropic events.
    mutating func translate(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(PluginError) {
        let chunk = try CanonicalChunk(bytes)
        if let counters = chunk.value(chunk.usageRange) {
            usage = MessagesResponse.TokenUsage(canonical: counters)
        }
        if !started { start(id: chunk.id, model: chunk.model, into: &out) }
        guard !finished, chunk.choiceRange != nil else { return }
        apply(chunk, into: &out)
        if let reason = chunk.finishReason {
            finishReason = reason
            if !context.stopSequences.isEmpty, let choice = chunk.value(chunk.choiceRange) {
                matchedStop = MessagesResponse.matchedStop(choice, stops: context.stopSequences)
            }
            close(into: &out)
        }
    }

    /// The closing events: message_delta (stop reason, final usage: the stream's own usage chunk,
    /// else the host's) and message_stop. A stream without chunks still gets a whole, empty
    /// message.
    mutating func finish(hostUsage: Usage, into out: inout [UInt8]) {
        guard !finished else { return }
        start(id: nil, model: nil, into: &out)
        close(into: &out)
        finished = true
        let final = usage ?? MessagesResponse.TokenUsage(hostUsage)
        let reason = MessagesResponse.stopReason(finishReason, hasToolCalls: !toolBlocks.isEmpty, matchedStop: matchedStop)
        emit("message_delta", into: &out) { writer in
            writer.key(literal: "delta")
            writer.beginObject()
            writer.string("stop_reason", reason)
            writer.optionalString("stop_sequence", reason == "stop_sequence" ? matchedStop : nil)
            writer.endObject()
            writer.key(literal: "usage")
            final.write(to: &writer)
        }
        emit("message_stop", into: &out) { _ in }
    }

    // MARK: Deltas

    private mutating func apply(_ chunk: CanonicalChunk, into out: inout [UInt8]) {
        if let text = chunk.reasoning, !text.isEmpty {
            if open?.kind != .thinking { openThinking(into: &out) }
            thinkingDelta(text, into: &out)
        }
        for element in chunk.value(chunk.thinkingBlocksRange)?.arrayValue ?? [] {
            guard let block = ThinkingBlock(element) else { continue }
            switch block {
            case let .thinking(text, signature):
                // Its text already streamed as reasoning_content when a thinking block is open.
                if open?.kind != .thinking {
                    openThinking(into: &out)
                    if !text.isEmpty { thinkingDelta(text, into: &out) }
                }
                if let signature, !signature.isEmpty, let index = open?.index {
                    emit("content_block_delta", into: &out) { writer in
                        writer.integer("index", Int64(index))
                        writer.key(literal: "delta")
                        writer.beginObject()
                        writer.member(#""type":"signature_delta""#)
                        writer.string("signature", signature)
                        writer.endObject()
                    }
                }
                close(into: &out)
            case let .redacted(data):
                openBlock(.thinking, into: &out) { writer in
                    writer.member(#""type":"redacted_thinking""#)
                    writer.string("data", data)
                }
                close(into: &out)
            }
        }
        if let text = chunk.content, !text.isEmpty { textDelta(text, into: &out) }
        if let text = chunk.refusal, !text.isEmpty { textDelta(text, into: &out) }
        guard chunk.toolCallsRange != nil else { return }
        for (position, call) in (chunk.value(chunk.toolCallsRange)?.arrayValue ?? []).enumerated() {
            toolCall(call, position: position, into: &out)
        }
    }

    private mutating func textDelta(_ text: String, into out: inout [UInt8]) {
        if open?.kind != .text {
            openBlock(.text, into: &out) { writer in
                writer.member(#""type":"text""#)
                writer.member(#""text":"""#)
            }
        }
        blockDelta(into: &out) { writer in
            writer.member(#""type":"text_delta""#)
            writer.string("text", text)
        }
    }

    private mutating func toolCall(_ call: JSONValue, position: Int, into out: inout [UInt8]) {
        let key = call["index"]?.integerValue.map { Int(clamping: $0) } ?? position
        let fragment = call["function"]?["arguments"]?.stringValue ?? ""
        let index: Int
        if let known = toolBlocks[key] {
            index = known
        } else {
            let id = call["id"]?.stringValue ?? ""
            let name = call["function"]?["name"]?.stringValue ?? ""
            let fallbackID = MessagesResponse.fallbackToolID(messageID: messageID, index: key)
            openBlock(.tool(key), into: &out) { writer in
                writer.member(#""type":"tool_use""#)
                writer.string("id", id.isEmpty ? fallbackID : id)
                writer.string("name", name)
                writer.key(literal: "input")
                writer.beginObject()
                writer.endObject()
            }
            index = open?.index ?? 0
            toolBlocks[key] = index
        }
        guard !fragment.isEmpty else { return }
        // Arguments of an earlier call after another block opened (providers that interleave
        // calls): the delta still names that call's block, which SDKs accumulate by index.
        emit("content_block_delta", into: &out) { writer in
            writer.integer("index", Int64(index))
            writer.key(literal: "delta")
            writer.beginObject()
            writer.member(#""type":"input_json_delta""#)
            writer.string("partial_json", fragment)
            writer.endObject()
        }
    }

    // MARK: Blocks and events

    /// message_start (and a ping, as Anthropic sends one) before anything else.
    private mutating func start(id: String?, model: String?, into out: inout [UInt8]) {
        guard !started else { return }
        started = true
        if let id, !id.isEmpty { messageID = MessagesResponse.messageID(id) } else { messageID = context.fallbackMessageID }
        let model = model.flatMap { $0.isEmpty ? nil : $0 } ?? context.model
        let initial = MessagesResponse.TokenUsage(input: usage?.input ?? 0, cacheRead: usage?.cacheRead ?? 0,
                                                  cacheWrite: usage?.cacheWrite ?? 0)
        let messageID = self.messageID
        emit("message_start", into: &out) { writer in
            writer.key(literal: "message")
            writer.beginObject()
            writer.string("id", messageID)
            writer.member(#""type":"message""#)
            writer.member(#""role":"assistant""#)
            writer.string("model", model)
            writer.key(literal: "content")
            writer.beginArray()
            writer.endArray()
            writer.null("stop_reason")
            writer.null("stop_sequence")
            writer.key(literal: "usage")
            initial.write(to: &writer)
            writer.endObject()
        }
        ServerSentEventWriter.frame(event: "ping", MessagesStream.pingPayload, into: &out)
    }

    private mutating func openThinking(into out: inout [UInt8]) {
        openBlock(.thinking, into: &out) { writer in
            writer.member(#""type":"thinking""#)
            writer.member(#""thinking":"""#)
            writer.member(#""signature":"""#)
        }
    }

    private func thinkingDelta(_ text: String, into out: inout [UInt8]) {
        blockDelta(into: &out) { writer in
            writer.member(#""type":"thinking_delta""#)
            writer.string("thinking", text)
        }
    }

    /// Closes the open block and starts the next one; `shell` writes its content_block members.
    private mutating func openBlock(_ kind: Kind, into out: inout [UInt8], shell: (inout JSONWriter) -> Void) {
        close(into: &out)
        let index = nextIndex
        nextIndex += 1
        open = (kind, index)
        emit("content_block_start", into: &out) { writer in
            writer.integer("index", Int64(index))
            writer.key(literal: "content_block")
            writer.beginObject()
            shell(&writer)
            writer.endObject()
        }
    }

    /// A content_block_delta for the open block; `members` writes the delta's.
    private func blockDelta(into out: inout [UInt8], _ members: (inout JSONWriter) -> Void) {
        guard let index = open?.index else { return }
        emit("content_block_delta", into: &out) { writer in
            writer.integer("index", Int64(index))
            writer.key(literal: "delta")
            writer.beginObject()
            members(&writer)
            writer.endObject()
        }
    }

    private mutating func close(into out: inout [UInt8]) {
        guard let index = open?.index else { return }
        open = nil
        emit("content_block_stop", into: &out) { writer in writer.integer("index", Int64(index)) }
    }

    /// `event: <type>\ndata: {"type":"<type>",…}\n\n`.
    private func emit(_ type: String, into out: inout [UInt8], _ members: (inout JSONWriter) -> Void) {
        // Written in place: `event: <type>\ndata: <json>\n\n` (ServerSentEventWriter's framing).
        out.append(contentsOf: "event: ".utf8)
        out.append(contentsOf: type.utf8)
        out.append(contentsOf: "\ndata: ".utf8)
        JSONWriter.append(to: &out) { writer in
            writer.beginObject()
            writer.string("type", type)
            members(&writer)
            writer.endObject()
        }
        out.append(0x0A)
        out.append(0x0A)
    }
}

extension MessagesResponse.TokenUsage {
    init(input: Int64, output: Int64 = 0, cacheRead: Int64, cacheWrite: Int64) {
        self.init()
        self.input = input
        self.output = output
        self.cacheRead = cacheRead
        self.cacheWrite = cacheWrite
    }
}
