import PluginKit
import PrismWire

/// JSON Schema (as OpenAI clients write it) → the OpenAPI subset Gemini's `Schema` accepts.
///
/// Gemini answers 400 "Invalid JSON payload received. Unknown name …" for keys outside its
/// subset, so only these are kept: type, format, title, description, nullable, enum, items,
/// properties, required, anyOf, propertyOrdering, default, example, minimum, maximum, minItems,
/// maxItems, minLength, maxLength, minProperties, maxProperties, pattern. Rewrites:
/// - local `$ref`s (`#/$defs/X`, `#/definitions/X`) are inlined (8 levels deep; a deeper or
///   unknown reference becomes a plain object);
/// - `allOf` is merged into its parent; `oneOf` becomes `anyOf`;
/// - `type: [T, "null"]` becomes `type: T, nullable: true` (several types: `anyOf`), and an
///   `anyOf` member `{type: null}` becomes `nullable: true`;
/// - `const: "x"` becomes `enum: ["x"]` (with `type: string` when no type is given);
/// - `format` is kept only where Gemini allows it (string: enum, date-time; integer: int32, int64;
///   number: float, double);
/// - an object with no properties loses `properties` (Gemini rejects an empty map), and
///   `required` keeps only names that exist.
/// Dropped: `$schema`, `$id`, `$defs`, `additionalProperties`, `patternProperties`,
/// `propertyNames`, `examples`, `exclusiveMinimum`/`Maximum`, `multipleOf`, `uniqueItems`, `not`,
/// `if`/`then`/`else`, `strict` and every other keyword.
enum GeminiSchema {
    static let kept: Set<String> = [
        "type", "format", "title", "description", "nullable", "enum", "items", "properties", "required", "anyOf",
        "propertyOrdering", "default", "example", "minimum", "maximum", "minItems", "maxItems", "minLength",
        "maxLength", "minProperties", "maxProperties", "pattern",
    ]
    static let maximumReferenceDepth = 8

    /// True when a tool's sanitized `parameters` would be empty or an object without properties:
    /// Gemini wants them omitted then.
    static func omitsParameters(_ schema: JSONValue) -> Bool {
        guard case let .object(source) = schema else { return true }
        let sanitized = source.contains(where: { folds($0.0) }) ? sanitize(schema) : schema
        if let properties = sanitized["properties"]?.objectValue, !properties.isEmpty { return false }
        if sanitized["type"]?.stringValue?.lowercased() == "object" { return true }
        return !(sanitized.objectValue ?? []).contains { kept.contains($0.0) && $0.0 != "properties" }
    }

    /// Writes the sanitized schema: the same JSON as `sanitize(schema)`, but nodes that fold in no
    /// other schema (no allOf, anyOf, oneOf, $ref) are written straight from the source, with no
    /// intermediate tree (the common case, and the request path's hot spot).
    static func write(_ schema: JSONValue, to writer: inout JSONWriter) {
        write(schema, definitions: definitions(in: schema), depth: 0, to: &writer)
    }

    static func sanitize(_ schema: JSONValue) -> JSONValue {
        sanitize(schema, definitions: definitions(in: schema), depth: 0)
    }

    private static func definitions(in schema: JSONValue) -> [String: JSONValue] {
        var definitions: [String: JSONValue] = [:]
        for container in ["$defs", "definitions"] {
            for (name, value) in schema[container]?.objectValue ?? [] { definitions[name] = value }
        }
        return definitions
    }

    /// Keys whose schemas are merged into their parent (the tree path handles those nodes).
    private static func folds(_ key: String) -> Bool {
        // First-byte test first: this runs for every key of every schema on the request path.
        switch key.utf8.first {
        case UInt8(ascii: "a"): return key == "allOf" || key == "anyOf"
        case UInt8(ascii: "o"): return key == "oneOf"
        case UInt8(ascii: "$"): return key == "$ref"
        default: return false
        }
    }

    /// The single type a node will have after sanitizing, for the `format` rule.
    private static func typeName(_ value: JSONValue?) -> String? {
        if let name = value?.stringValue { return name.lowercased() }
        let concrete = (value?.arrayValue ?? []).compactMap(\.stringValue).filter { $0 != "null" }
        return concrete.count == 1 ? concrete[0].lowercased() : nil
    }

    private static func write(_ schema: JSONValue, definitions: [String: JSONValue], depth: Int,
                              to writer: inout JSONWriter)
    {
        guard case let .object(source) = schema else {
            writer.beginObject()
            writer.endObject()
            return
        }
        if source.contains(where: { folds($0.0) }) {
            sanitize(schema, definitions: definitions, depth: depth).write(to: &writer)
            return
        }
        writer.beginObject()
        var nullable = false
        var wroteNullable = false
        for (key, value) in source {
            switch key {
            case "type":
                if let list = value.arrayValue {
                    let types = list.compactMap(\.stringValue)
                    let concrete = types.filter { $0 != "null" }
                    if concrete.count < types.count { nullable = true }
                    if concrete.count == 1 {
                        writer.string("type", concrete[0])
                    } else if concrete.count > 1 {
                        writer.key("anyOf")
                        writer.beginArray()
                        for type in concrete {
                            writer.beginObject()
                            writer.string("type", type)
                            writer.endObject()
                        }
                        writer.endArray()
                    }
                } else if value.stringValue == "null" {
                    nullable = true
                } else {
                    writer.key("type")
                    value.write(to: &writer)
                }
            case "properties":
                guard let properties = value.objectValue, !properties.isEmpty else { continue }
                writer.key("properties")
                writer.beginObject()
                for (name, property) in properties {
                    writer.key(name)
                    write(property, definitions: definitions, depth: depth, to: &writer)
                }
                writer.endObject()
            case "items":
                guard case .object = value else { continue }
                writer.key("items")
                write(value, definitions: definitions, depth: depth, to: &writer)
            case "const":
                guard case .string = value else { continue }
                if schema["type"] == nil { writer.string("type", "string") } // Gemini allows enum on strings only
                writer.key("enum")
                writer.beginArray()
                value.write(to: &writer)
                writer.endArray()
            case "format":
                guard let format = value.stringValue,
                      allowedFormats[typeName(schema["type"]) ?? ""]?.contains(format) == true
                else { continue }
                writer.string("format", format)
            case "required":
                let names = schema["properties"]?.objectValue ?? []
                let kept = (value.arrayValue ?? []).filter { name in names.contains { $0.0 == name.stringValue } }
                guard !kept.isEmpty else { continue }
                writer.key("required")
                JSONValue.array(kept).write(to: &writer)
            case "nullable":
                wroteNullable = true
                writer.key(key)
                value.write(to: &writer)
            default:
                guard kept.contains(key) else { continue }
                writer.key(key)
                value.write(to: &writer)
            }
        }
        if nullable, !wroteNullable { writer.bool("nullable", true) }
        writer.endObject()
    }

    private static func sanitize(_ schema: JSONValue, definitions: [String: JSONValue], depth: Int) -> JSONValue {
        guard case let .object(source) = schema else { return .object([]) }
        var members: [(String, JSONValue)] = []
        var nullable = false

        func set(_ key: String, _ value: JSONValue) {
            if let index = members.firstIndex(where: { $0.0 == key }) {
                members[index].1 = value
            } else {
                members.append((key, value))
            }
        }
        /// Copies a sanitized schema's members in without overriding what this schema says itself.
        func merge(_ other: JSONValue) {
            for (key, value) in other.objectValue ?? [] {
                if key == "properties", case let .object(existing)? = members.first(where: { $0.0 == key })?.1,
                   case let .object(more) = value
                {
                    set(key, .object(existing + more.filter { name, _ in !existing.contains { $0.0 == name } }))
                } else if key == "required", case let .array(existing)? = members.first(where: { $0.0 == key })?.1,
                          case let .array(more) = value
                {
                    set(key, .array(existing + more.filter { !existing.contains($0) }))
                } else if key == "properties", case .object = value {
                    set(key, value)
                } else if !members.contains(where: { $0.0 == key }) {
                    members.append((key, value))
                }
            }
        }

        // Schemas folded in (allOf, a single anyOf option, $ref) are merged after the own keys.
        var folded: [JSONValue] = []
        for (key, value) in source {
            switch key {
            case "type":
                if let list = value.arrayValue {
                    let types = list.compactMap(\.stringValue)
                    let concrete = types.filter { $0 != "null" }
                    if concrete.count < types.count { nullable = true }
                    if concrete.count == 1 {
                        set("type", .string(concrete[0]))
                    } else if concrete.count > 1, source.first(where: { $0.0 == "anyOf" }) == nil {
                        set("anyOf", .array(concrete.map { .object([("type", .string($0))]) }))
                    }
                } else if value.stringValue == "null" {
                    nullable = true
                } else {
                    set("type", value)
                }
            case "properties":
                let properties = (value.objectValue ?? []).map { name, property in
                    (name, sanitize(property, definitions: definitions, depth: depth))
                }
                if !properties.isEmpty { set("properties", .object(properties)) }
            case "items":
                if case .object = value { set("items", sanitize(value, definitions: definitions, depth: depth)) }
            case "anyOf", "oneOf":
                var options: [JSONValue] = []
                for option in value.arrayValue ?? [] {
                    let sanitized = sanitize(option, definitions: definitions, depth: depth)
                    if sanitized["nullable"]?.boolValue == true, sanitized.objectValue?.count == 1 {
                        nullable = true // was {type: null}
                    } else {
                        options.append(sanitized)
                    }
                }
                if options.count == 1 {
                    folded.append(options[0])
                } else if !options.isEmpty {
                    set("anyOf", .array(options))
                }
            case "allOf":
                for part in value.arrayValue ?? [] { folded.append(sanitize(part, definitions: definitions, depth: depth)) }
            case "$ref":
                folded.append(resolve(value.stringValue ?? "", definitions: definitions, depth: depth))
            case "const":
                guard case .string = value else { continue }
                if schema["type"] == nil { set("type", .string("string")) }
                set("enum", .array([value]))
            case "format":
                break // decided below, once the type is known
            default:
                if kept.contains(key) { set(key, value) }
            }
        }
        for schema in folded { merge(schema) }
        if let format = source.first(where: { $0.0 == "format" })?.1.stringValue,
           allowedFormats[members.first(where: { $0.0 == "type" })?.1.stringValue?.lowercased() ?? ""]?
           .contains(format) == true
        {
            set("format", .string(format))
        }
        if nullable { set("nullable", .bool(true)) }
        if let required = members.first(where: { $0.0 == "required" })?.1.arrayValue {
            let names = Set((members.first(where: { $0.0 == "properties" })?.1.objectValue ?? []).map(\.0))
            let kept = required.filter { $0.stringValue.map(names.contains) ?? false }
            if kept.isEmpty {
                members.removeAll { $0.0 == "required" }
            } else {
                set("required", .array(kept))
            }
        }
        return .object(members)
    }

    static let allowedFormats: [String: Set<String>] = [
        "string": ["enum", "date-time"], "integer": ["int32", "int64"], "number": ["float", "double"],
    ]

    private static func resolve(_ reference: String, definitions: [String: JSONValue], depth: Int) -> JSONValue {
        var name: Substring?
        for prefix in ["#/$defs/", "#/definitions/"] where reference.hasPrefix(prefix) {
            name = reference.dropFirst(prefix.count)
        }
        guard depth < maximumReferenceDepth, let name, let target = definitions[String(name)] else {
            return .object([("type", .string("object"))])
        }
        return sanitize(target, definitions: definitions, depth: depth + 1)
    }
}
