import PrismWire

/// OpenAI messages → the alternating user/assistant turns that Anthropic- and Bedrock-style APIs
/// require, with the plugin's own block type. System and developer messages are skipped (the
/// plugin hoists them); an assistant's tool calls become blocks after its content; a `tool`
/// message becomes one tool-result block in a user turn; consecutive turns of one role are merged,
/// tool results placed ahead of any other content of the turn; turns left empty are dropped.
public enum ConversationTurns {
    @inlinable
    public static func group<Block>(
        _ messages: [ChatMessage],
        isToolResult: (Block) -> Bool,
        content: (_ parts: [ContentPart], _ messageIndex: Int) throws(PluginError) -> [Block],
        toolUse: (_ call: ToolCall, _ messageIndex: Int, _ callIndex: Int) throws(PluginError) -> Block,
        toolResult: (_ message: ChatMessage, _ messageIndex: Int) throws(PluginError) -> Block
    ) throws(PluginError) -> [(role: String, blocks: [Block])] {
        var turns: [(role: String, blocks: [Block])] = []
        for (index, message) in messages.enumerated() {
            let role: String
            var blocks: [Block]
            switch message.role {
            case "system", "developer":
                continue
            case "user":
                role = "user"
                blocks = try content(message.content, index)
            case "assistant":
                role = "assistant"
                blocks = try content(message.content, index)
                for (callIndex, call) in message.toolCalls.enumerated() {
                    blocks.append(try toolUse(call, index, callIndex))
                }
            case "tool":
                role = "user"
                blocks = [try toolResult(message, index)]
            default:
                throw PluginError.invalidRequest(
                    "messages[\(index)]: role `\(message.role)` is not supported (use system, developer, user, assistant or tool).",
                    code: "invalid_messages")
            }
            if blocks.isEmpty { continue }
            if let last = turns.indices.last, turns[last].role == role {
                for block in blocks {
                    if isToolResult(block) {
                        let position = turns[last].blocks.firstIndex { !isToolResult($0) } ?? turns[last].blocks.count
                        turns[last].blocks.insert(block, at: position)
                    } else {
                        turns[last].blocks.append(block)
                    }
                }
            } else {
                turns.append((role, blocks))
            }
        }
        return turns
    }

    /// `group` with what Anthropic-style APIs add on top: an assistant's replayable
    /// `thinking_blocks` first in its turn (`thinking`), and the client's `cache_control` markers
    /// applied by `cached`: a part's to its block (`content` gets them, by part), a message's to
    /// the message's last block (its last tool call, or its tool result).
    @inlinable
    public static func groupMarked<Block>(
        _ messages: [ChatMessage],
        isToolResult: (Block) -> Bool,
        thinking: (ThinkingBlock) -> Block,
        cached: (Block, JSONValue?) -> Block,
        content: (_ parts: [ContentPart], _ cacheControls: [JSONValue?], _ messageIndex: Int) throws(PluginError) -> [Block],
        toolUse: (_ call: ToolCall, _ messageIndex: Int, _ callIndex: Int) throws(PluginError) -> Block,
        toolResult: (_ message: ChatMessage, _ messageIndex: Int) throws(PluginError) -> Block
    ) throws(PluginError) -> [(role: String, blocks: [Block])] {
        try group(
            messages, isToolResult: isToolResult,
            content: { parts, index throws(PluginError) in
                let message = messages[index]
                var blocks = message.role == "assistant" ? message.thinkingBlocks.filter(\.isReplayable).map(thinking) : []
                blocks += try content(parts, message.partCacheControls, index)
                if message.toolCalls.isEmpty, let last = blocks.indices.last {
                    blocks[last] = cached(blocks[last], message.cacheControl)
                }
                return blocks
            },
            toolUse: { call, index, callIndex throws(PluginError) in
                let block = try toolUse(call, index, callIndex)
                let message = messages[index]
                return callIndex == message.toolCalls.count - 1 ? cached(block, message.cacheControl) : block
            },
            toolResult: { message, index throws(PluginError) in cached(try toolResult(message, index), message.cacheControl) })
    }
}
