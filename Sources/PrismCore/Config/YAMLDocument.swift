import CYAML

/// Where a value came from in the config file (1-based line and column).
public struct SourceLocation: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public var description: String { "\(file):\(line):\(column)" }
}

/// A YAML node that remembers its position, built from libyaml's event stream. Only what a
/// config needs: mappings (ordered), sequences and scalars; anchors and aliases are resolved.
public indirect enum YAMLNode: Sendable {
    case scalar(String, plain: Bool, SourceLocation)
    case sequence([YAMLNode], SourceLocation)
    case mapping([(key: String, keyLocation: SourceLocation, value: YAMLNode)], SourceLocation)

    public var location: SourceLocation {
        switch self {
        case let .scalar(_, _, location), let .sequence(_, location), let .mapping(_, location): return location
        }
    }

    public subscript(key: String) -> YAMLNode? {
        guard case let .mapping(entries, _) = self else { return nil }
        return entries.first { $0.key == key }?.value
    }

    /// A plain scalar `null`, `~` or empty value.
    public var isNull: Bool {
        if case let .scalar(text, plain, _) = self { return plain && (text.isEmpty || text == "null" || text == "~") }
        return false
    }
}

public struct YAMLError: Error, Sendable, CustomStringConvertible {
    public let location: SourceLocation
    public let message: String
    public var description: String { "\(location): error: \(message)" }
}

public enum YAMLDocument {
    /// Parses the first document of `text`. An empty document is an empty mapping.
    public static func parse(_ text: String, file: String) throws(YAMLError) -> YAMLNode {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) != 0 else {
            throw YAMLError(location: SourceLocation(file: file, line: 1, column: 1), message: "libyaml failed to initialize")
        }
        defer { yaml_parser_delete(&parser) }
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBufferPointer { buffer throws(YAMLError) in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var builder = Builder(file: file)
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) != 0 else {
                    let mark = parser.problem_mark
                    let problem = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
                    let context = parser.context.map { String(cString: $0) + ": " } ?? ""
                    throw YAMLError(location: SourceLocation(file: file, line: Int(mark.line) + 1,
                                                             column: Int(mark.column) + 1),
                                    message: "YAML syntax error: \(context)\(problem)")
                }
                defer { yaml_event_delete(&event) }
                if event.type == YAML_STREAM_END_EVENT || event.type == YAML_DOCUMENT_END_EVENT {
                    break
                }
                try builder.handle(&event)
            }
            return builder.root ?? .mapping([], SourceLocation(file: file, line: 1, column: 1))
        }
    }

    /// Assembles nodes from events with an explicit stack (no recursion on untrusted depth).
    private struct Builder {
        let file: String
        var root: YAMLNode?
        var anchors: [String: YAMLNode] = [:]

        enum Frame {
            case sequence([YAMLNode], SourceLocation, anchor: String?)
            case mapping([(key: String, keyLocation: SourceLocation, value: YAMLNode)], SourceLocation,
                         pendingKey: (String, SourceLocation)?, anchor: String?)
        }

        var stack: [Frame] = []

        init(file: String) { self.file = file }

        func location(_ mark: yaml_mark_t) -> SourceLocation {
            SourceLocation(file: file, line: Int(mark.line) + 1, column: Int(mark.column) + 1)
        }

        mutating func handle(_ event: inout yaml_event_t) throws(YAMLError) {
            let here = location(event.start_mark)
            switch event.type {
            case YAML_SCALAR_EVENT:
                let scalar = event.data.scalar
                let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self)
                let node = YAMLNode.scalar(text, plain: scalar.style == YAML_PLAIN_SCALAR_STYLE, here)
                if let anchor = scalar.anchor { anchors[String(cString: anchor)] = node }
                try add(node)
            case YAML_SEQUENCE_START_EVENT:
                if stack.count > 64 { throw YAMLError(location: here, message: "config nested too deeply") }
                stack.append(.sequence([], here, anchor: event.data.sequence_start.anchor.map { String(cString: $0) }))
            case YAML_MAPPING_START_EVENT:
                if stack.count > 64 { throw YAMLError(location: here, message: "config nested too deeply") }
                stack.append(.mapping([], here, pendingKey: nil,
                                      anchor: event.data.mapping_start.anchor.map { String(cString: $0) }))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                guard let frame = stack.popLast() else { return }
                let node: YAMLNode
                let anchor: String?
                switch frame {
                case let .sequence(items, start, name):
                    node = .sequence(items, start)
                    anchor = name
                case let .mapping(entries, start, _, name):
                    node = .mapping(entries, start)
                    anchor = name
                }
                if let anchor { anchors[anchor] = node }
                try add(node)
            case YAML_ALIAS_EVENT:
                let name = String(cString: event.data.alias.anchor)
                guard let node = anchors[name] else {
                    throw YAMLError(location: here, message: "unknown alias *\(name)")
                }
                try add(node)
            default:
                break
            }
        }

        mutating func add(_ node: YAMLNode) throws(YAMLError) {
            guard let top = stack.popLast() else {
                root = node
                return
            }
            switch top {
            case .sequence(var items, let start, let anchor):
                items.append(node)
                stack.append(.sequence(items, start, anchor: anchor))
            case .mapping(var entries, let start, let pendingKey, let anchor):
                if let (key, keyLocation) = pendingKey {
                    if entries.contains(where: { $0.key == key }) {
                        throw YAMLError(location: keyLocation, message: "duplicate key '\(key)'")
                    }
                    entries.append((key: key, keyLocation: keyLocation, value: node))
                    stack.append(.mapping(entries, start, pendingKey: nil, anchor: anchor))
                } else {
                    guard case let .scalar(key, _, keyLocation) = node else {
                        throw YAMLError(location: node.location, message: "mapping keys must be plain strings")
                    }
                    stack.append(.mapping(entries, start, pendingKey: (key, keyLocation), anchor: anchor))
                }
            }
        }
    }
}
