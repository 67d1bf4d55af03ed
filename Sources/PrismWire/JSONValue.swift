/// A JSON document as a tree, for the places that must read or build whole documents
/// (translation between wire formats, plugin configuration). Objects keep member order.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// Numbers keep their source text so that forwarding never changes them.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (left: JSONValue, right: JSONValue) -> Bool {
        switch (left, right) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.number(a), .number(b)): return a == b || Double(a) == Double(b)
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public subscript(key: String) -> JSONValue? {
        guard case let .object(members) = self else { return nil }
        for (name, value) in members where name == key { return value }
        return nil
    }

    public var stringValue: String? {
        if case let .string(value) = self { return value }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case let .array(value) = self { return value }
        return nil
    }

    public var objectValue: [(String, JSONValue)]? {
        if case let .object(value) = self { return value }
        return nil
    }

    public var boolValue: Bool? {
        if case let .bool(value) = self { return value }
        return nil
    }

    /// A configuration switch read strictly: a JSON boolean, or one of YAML 1.2's spellings of
    /// true and false as a string (what `enabled: "${AUTH_ON}"` becomes). Anything else is nil, and
    /// the caller refuses the configuration: a security switch never falls back to off.
    public var switchValue: Bool? {
        switch self {
        case let .bool(value): return value
        case let .string(text): return JSONValue.switchValue(text)
        default: return nil
        }
    }

    /// YAML 1.2's core-schema booleans; `yes`, `on`, `1` and the like are not booleans there.
    public static func switchValue(_ text: String) -> Bool? {
        switch text {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: return nil
        }
    }

    public var doubleValue: Double? {
        if case let .number(text) = self { return Double(text) }
        return nil
    }

    public var integerValue: Int64? {
        if case let .number(text) = self { return Int64(text) ?? Double(text).flatMap { Int64(exactly: $0) } }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    // MARK: Parsing

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(JSONSyntaxError) -> JSONValue {
        var parser = TreeParser(cursor: Cursor(bytes))
        parser.cursor.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.cursor.skipWhitespace()
        if parser.cursor.position != bytes.count {
            throw parser.cursor.error("unexpected data after the JSON value")
        }
        return value
    }

    public static func parse(_ bytes: [UInt8]) throws(JSONSyntaxError) -> JSONValue {
        do {
            return try bytes.withUnsafeBytes { buffer in try JSONValue.parse(buffer) }
        } catch let error as JSONSyntaxError {
            throw error
        } catch {
            throw JSONSyntaxError(offset: 0, reason: "\(error)")
        }
    }

    public static func parse(_ text: String) throws(JSONSyntaxError) -> JSONValue {
        try parse(Array(text.utf8))
    }

    // MARK: Writing

    /// Appends this value's compact JSON text to `writer`.
    public func write(to writer: inout JSONWriter) {
        switch self {
        case .null: writer.raw("null")
        case let .bool(value): writer.raw(value ? "true" : "false")
        case let .number(text): writer.raw(text)
        case let .string(text): writer.string(text)
        case let .array(elements):
            writer.beginArray()
            for element in elements {
                writer.comma()
                element.write(to: &writer)
            }
            writer.endArray()
        case let .object(members):
            writer.beginObject()
            for (name, value) in members {
                writer.key(name)
                value.write(to: &writer)
            }
            writer.endObject()
        }
    }

    public var jsonBytes: [UInt8] {
        var writer = JSONWriter()
        write(to: &writer)
        return writer.bytes
    }

    public var jsonText: String { String(decoding: jsonBytes, as: UTF8.self) }
}

struct TreeParser {
    var cursor: Cursor

    mutating func parseValue(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        guard let byte = cursor.peek() else { throw cursor.error("unexpected end of JSON") }
        switch byte {
        case UInt8(ascii: "\""):
            let range = try cursor.skipString()
            return .string(JSONScanner.unescape(cursor.bytes, range))
        case UInt8(ascii: "{"):
            guard depth < Cursor.maximumDepth else { throw cursor.error("JSON nested too deeply") }
            cursor.position += 1
            var members: [(String, JSONValue)] = []
            members.reserveCapacity(8) // one allocation for typical objects instead of 1→2→4→8
            cursor.skipWhitespace()
            if cursor.peek() == UInt8(ascii: "}") {
                cursor.position += 1
                return .object(members)
            }
            while true {
                cursor.skipWhitespace()
                guard cursor.peek() == UInt8(ascii: "\"") else { throw cursor.error("expected a member name") }
                let keyRange = try cursor.skipString()
                let key = JSONScanner.unescape(cursor.bytes, keyRange)
                cursor.skipWhitespace()
                guard cursor.peek() == UInt8(ascii: ":") else { throw cursor.error("expected ':'") }
                cursor.position += 1
                cursor.skipWhitespace()
                members.append((key, try parseValue(depth: depth + 1)))
                cursor.skipWhitespace()
                guard let next = cursor.peek() else { throw cursor.error("unexpected end of JSON") }
                cursor.position += 1
                if next == UInt8(ascii: "}") { return .object(members) }
                if next != UInt8(ascii: ",") { throw cursor.error("expected ',' or '}'") }
            }
        case UInt8(ascii: "["):
            guard depth < Cursor.maximumDepth else { throw cursor.error("JSON nested too deeply") }
            cursor.position += 1
            var elements: [JSONValue] = []
            elements.reserveCapacity(4)
            cursor.skipWhitespace()
            if cursor.peek() == UInt8(ascii: "]") {
                cursor.position += 1
                return .array(elements)
            }
            while true {
                cursor.skipWhitespace()
                elements.append(try parseValue(depth: depth + 1))
                cursor.skipWhitespace()
                guard let next = cursor.peek() else { throw cursor.error("unexpected end of JSON") }
                cursor.position += 1
                if next == UInt8(ascii: "]") { return .array(elements) }
                if next != UInt8(ascii: ",") { throw cursor.error("expected ',' or ']'") }
            }
        case UInt8(ascii: "t"):
            try cursor.skipLiteral()
            return .bool(true)
        case UInt8(ascii: "f"):
            try cursor.skipLiteral()
            return .bool(false)
        case UInt8(ascii: "n"):
            try cursor.skipLiteral()
            return .null
        default:
            let start = cursor.position
            try cursor.skipNumber()
            let text = UnsafeRawBufferPointer(rebasing: cursor.bytes[start..<cursor.position])
            return .number(String(decoding: text, as: UTF8.self))
        }
    }
}
