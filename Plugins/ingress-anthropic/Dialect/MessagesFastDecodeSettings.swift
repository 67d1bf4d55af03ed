import PluginKit
import PrismWire

// The fast decoder's system prompt, tools and settings (MessagesFastDecode.swift has the walk).
extension MessagesFastDecode {
    // MARK: System, tools, settings

    func writeSystem(_ system: Range<Int>, into writer: inout JSONWriter) throws(Fallback) {
        switch bytes[system.lowerBound] {
        case UInt8(ascii: "n"):
            return
        case UInt8(ascii: "\""):
            guard system.count > 2 else { return }
            writer.beginObject()
            writer.member(#""role":"system""#)
            writer.key(literal: "content")
            writer.raw(bytes: slice(system))
            writer.endObject()
        case UInt8(ascii: "["):
            var reader = JSONReader(bytes, in: system)
            try check { () throws(JSONSyntaxError) in try reader.enterArray() }
            var parts = JSONWriter(capacity: system.count + 32)
            parts.beginArray()
            var count = 0
            while try check({ () throws(JSONSyntaxError) in try reader.nextElement() }) {
                let block = try Block(&reader, bytes: bytes)
                guard let type = block.type, matchesValue(bytes, type, "text") else { throw Fallback() }
                try writeTextPart(block, into: &parts)
                count += 1
            }
            parts.endArray()
            guard count > 0 else { return }
            writer.beginObject()
            writer.member(#""role":"system""#)
            writer.key(literal: "content")
            writer.raw(bytes: parts.bytes)
            writer.endObject()
        default:
            throw Fallback()
        }
    }

    /// `tools` → the canonical tools array in `out`; returns how many.
    func writeTools(_ reader: inout JSONReader, into out: inout JSONWriter) throws(Fallback) -> Int {
        if reader.peek() == UInt8(ascii: "n") {
            _ = try check { () throws(JSONSyntaxError) in try reader.skipValue() }
            return 0
        }
        try check { () throws(JSONSyntaxError) in try reader.enterArray() }
        out = JSONWriter(capacity: 1024)
        out.beginArray()
        var count = 0
        while try check({ () throws(JSONSyntaxError) in try reader.nextElement() }) {
            try check { () throws(JSONSyntaxError) in try reader.enterObject() }
            var type: Range<Int>?
            var name: Range<Int>?
            var description: Range<Int>?
            var schema: Range<Int>?
            var strict: Range<Int>?
            var control: Range<Int>?
            while let key = try check({ () throws(JSONSyntaxError) in try reader.nextKey() }) {
                let value = try check { () throws(JSONSyntaxError) in try reader.skipValue() }
                if matches(bytes, key, "type") { try claim(&type, value)
                } else if matches(bytes, key, "name") { try claim(&name, value)
                } else if matches(bytes, key, "description") { try claim(&description, value)
                } else if matches(bytes, key, "input_schema") { try claim(&schema, value)
                } else if matches(bytes, key, "strict") { try claim(&strict, value)
                } else if matches(bytes, key, "cache_control") { try claim(&control, value)
                } else if bytes[key].contains(UInt8(ascii: "\\")) { throw Fallback() }
            }
            if let type, !matchesValue(bytes, type, "custom") { throw Fallback() }
            guard let name, isString(name), name.count > 2,
                  let schema, bytes[schema.lowerBound] == UInt8(ascii: "{") else { throw Fallback() }
            out.beginObject()
            out.member(#""type":"function""#)
            out.key(literal: "function")
            out.beginObject()
            out.key(literal: "name")
            out.raw(bytes: slice(name))
            if let description, !isNull(description) {
                guard isString(description) else { throw Fallback() }
                out.key(literal: "description")
                out.raw(bytes: slice(description))
            }
            out.key(literal: "parameters")
            out.raw(bytes: slice(schema))
            if let strict, bytes[strict.lowerBound] == UInt8(ascii: "t") || bytes[strict.lowerBound] == UInt8(ascii: "f") {
                out.key(literal: "strict")
                out.raw(bytes: slice(strict))
            }
            out.endObject()
            if let control, bytes[control.lowerBound] == UInt8(ascii: "{") {
                out.key(literal: "cache_control")
                out.raw(bytes: slice(control))
            }
            out.endObject()
            count += 1
        }
        out.endArray()
        return count
    }

    func writeToolChoice(_ choice: Range<Int>, into writer: inout JSONWriter) throws(Fallback) {
        guard bytes[choice.lowerBound] == UInt8(ascii: "{") else { throw Fallback() }
        var reader = JSONReader(bytes, in: choice)
        try check { () throws(JSONSyntaxError) in try reader.enterObject() }
        var type: Range<Int>?
        var name: Range<Int>?
        var parallel: Range<Int>?
        while let key = try check({ () throws(JSONSyntaxError) in try reader.nextKey() }) {
            let value = try check { () throws(JSONSyntaxError) in try reader.skipValue() }
            if matches(bytes, key, "type") { guard type == nil else { throw Fallback() }; type = value
            } else if matches(bytes, key, "name") { guard name == nil else { throw Fallback() }; name = value
            } else if matches(bytes, key, "disable_parallel_tool_use") { guard parallel == nil else { throw Fallback() }; parallel = value
            } else if bytes[key].contains(UInt8(ascii: "\\")) { throw Fallback() }
        }
        guard let type else { throw Fallback() }
        if matchesValue(bytes, type, "auto") {
            writer.member(#""tool_choice":"auto""#)
        } else if matchesValue(bytes, type, "any") {
            writer.member(#""tool_choice":"required""#)
        } else if matchesValue(bytes, type, "none") {
            writer.member(#""tool_choice":"none""#)
        } else if matchesValue(bytes, type, "tool") {
            guard let name, isString(name) else { throw Fallback() }
            writer.key(literal: "tool_choice")
            writer.beginObject()
            writer.member(#""type":"function""#)
            writer.key(literal: "function")
            writer.beginObject()
            writer.key(literal: "name")
            writer.raw(bytes: slice(name))
            writer.endObject()
            writer.endObject()
        } else {
            throw Fallback()
        }
        if let parallel, JSONScanner.isTrue(bytes, in: parallel) { writer.bool("parallel_tool_calls", false) }
    }

    func writeThinking(_ thinking: Range<Int>, into writer: inout JSONWriter) throws(Fallback) {
        guard bytes[thinking.lowerBound] == UInt8(ascii: "{") else { throw Fallback() }
        var reader = JSONReader(bytes, in: thinking)
        try check { () throws(JSONSyntaxError) in try reader.enterObject() }
        var type: Range<Int>?
        var budget: Range<Int>?
        while let key = try check({ () throws(JSONSyntaxError) in try reader.nextKey() }) {
            let value = try check { () throws(JSONSyntaxError) in try reader.skipValue() }
            if matches(bytes, key, "type") { guard type == nil else { throw Fallback() }; type = value
            } else if matches(bytes, key, "budget_tokens") { guard budget == nil else { throw Fallback() }; budget = value
            } else if bytes[key].contains(UInt8(ascii: "\\")) { throw Fallback() }
        }
        guard let type, isString(type) else { throw Fallback() }
        if matchesValue(bytes, type, "disabled") { return }
        if matchesValue(bytes, type, "enabled") {
            guard let budget, let tokens = JSONScanner.integer(bytes, in: budget) else { throw Fallback() }
            writer.key(literal: "thinking")
            writer.raw(bytes: compact(thinking))
            writer.string("reasoning_effort", tokens <= 2048 ? "low" : tokens <= 8192 ? "medium" : "high")
            return
        }
        if bytes[type].contains(UInt8(ascii: "\\")) { throw Fallback() }
        writer.key(literal: "thinking")
        writer.raw(bytes: compact(thinking))
    }
}
