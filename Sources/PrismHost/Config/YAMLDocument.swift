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
    /// How many values a config may hold once its aliases are expanded: far above any real config,
    /// far below what a "billion laughs" document (a few hundred bytes of nested aliases) asks for.
    public static let maximumExpandedNodes = 200_000
    /// How many bytes of scalar text it may hold once its aliases are expanded: an alias repeats
    /// its anchor's text, so a few nested aliases of one long value (a small file) would otherwise
    /// become gigabytes in the document, the plugins' configuration and GET /-/config. Four times
    /// the largest config file (ConfigFile.maximumSize).
    public static let maximumExpandedBytes = 16 * 1_048_576

    /// Parses the one document of `text`. An empty document is an empty mapping; a second
    /// document is an error (it would be silently ignored).
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
            var documents = 0
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
                if event.type == YAML_STREAM_END_EVENT { break }
                if event.type == YAML_DOCUMENT_START_EVENT {
                    documents += 1
                    if documents > 1 {
                        throw YAMLError(location: builder.location(event.start_mark),
                                        message: "a second YAML document: a config file holds one (remove the `---`)")
                    }
                }
                try builder.handle(&event)
            }
            return builder.root ?? .mapping([], SourceLocation(file: file, line: 1, column: 1))
        }
    }

    /// Assembles nodes from events with an explicit stack (no recursion on untrusted depth).
    /// Collections under construction are reference frames, appended to in place (linear in the
    /// document's size); duplicate keys are found with a set.
    private struct Builder {
        let file: String
        var root: YAMLNode?
        /// Each anchor's node, and how many values and bytes of scalar text it expands to.
        var anchors: [String: (node: YAMLNode, weight: Int, bytes: Int)] = [:]
        /// Values in the document with every alias expanded, so far.
        var expanded = 0
        /// Bytes of scalar text in the document with every alias expanded, so far.
        var expandedBytes = 0

        final class Frame {
            let start: SourceLocation
            let anchor: String?
            let isMapping: Bool
            /// `expanded` and `expandedBytes` when the collection began: its weight is what was
            /// added since.
            let expandedAtStart: Int
            let expandedBytesAtStart: Int
            var items: [YAMLNode] = []
            var entries: [(key: String, keyLocation: SourceLocation, value: YAMLNode)] = []
            var keys: Set<String> = []
            var pendingKey: (String, SourceLocation)?

            init(start: SourceLocation, anchor: String?, isMapping: Bool, expandedAtStart: Int, expandedBytesAtStart: Int) {
                self.start = start
                self.anchor = anchor
                self.isMapping = isMapping
                self.expandedAtStart = expandedAtStart
                self.expandedBytesAtStart = expandedBytesAtStart
            }
        }

        var stack: [Frame] = []

        init(file: String) { self.file = file }

        func location(_ mark: yaml_mark_t) -> SourceLocation {
            SourceLocation(file: file, line: Int(mark.line) + 1, column: Int(mark.column) + 1)
        }

        mutating func count(_ weight: Int, bytes: Int, at here: SourceLocation) throws(YAMLError) {
            expanded += weight
            expandedBytes += bytes
            if expanded > YAMLDocument.maximumExpandedNodes {
                throw YAMLError(location: here, message: "the config expands to more than "
                    + "\(YAMLDocument.maximumExpandedNodes) values (YAML aliases nested too far)")
            }
            if expandedBytes > YAMLDocument.maximumExpandedBytes {
                throw YAMLError(location: here, message: "the config expands to more than "
                    + "\(YAMLDocument.maximumExpandedBytes / 1_048_576) MiB of text (YAML aliases repeat long values)")
            }
        }

        mutating func handle(_ event: inout yaml_event_t) throws(YAMLError) {
            let here = location(event.start_mark)
            switch event.type {
            case YAML_SCALAR_EVENT:
                let scalar = event.data.scalar
                let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self)
                let node = YAMLNode.scalar(text, plain: scalar.style == YAML_PLAIN_SCALAR_STYLE, here)
                try count(1, bytes: scalar.length, at: here)
                if let anchor = scalar.anchor { anchors[String(cString: anchor)] = (node, 1, scalar.length) }
                try add(node)
            case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                if stack.count > 64 { throw YAMLError(location: here, message: "config nested too deeply") }
                let isMapping = event.type == YAML_MAPPING_START_EVENT
                let anchor = (isMapping ? event.data.mapping_start.anchor : event.data.sequence_start.anchor)
                    .map { String(cString: $0) }
                try count(1, bytes: 0, at: here)
                stack.append(Frame(start: here, anchor: anchor, isMapping: isMapping, expandedAtStart: expanded - 1,
                                   expandedBytesAtStart: expandedBytes))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                guard let frame = stack.popLast() else { return }
                let node: YAMLNode = frame.isMapping ? .mapping(frame.entries, frame.start) : .sequence(frame.items, frame.start)
                if let anchor = frame.anchor {
                    anchors[anchor] = (node, expanded - frame.expandedAtStart, expandedBytes - frame.expandedBytesAtStart)
                }
                try add(node)
            case YAML_ALIAS_EVENT:
                let name = String(cString: event.data.alias.anchor)
                guard let anchored = anchors[name] else {
                    throw YAMLError(location: here, message: "unknown alias *\(name)")
                }
                try count(anchored.weight, bytes: anchored.bytes, at: here)
                try add(anchored.node)
            default:
                break
            }
        }

        mutating func add(_ node: YAMLNode) throws(YAMLError) {
            guard let top = stack.last else {
                root = node
                return
            }
            guard top.isMapping else {
                top.items.append(node)
                return
            }
            if let (key, keyLocation) = top.pendingKey {
                guard top.keys.insert(key).inserted else {
                    throw YAMLError(location: keyLocation, message: "duplicate key '\(key)'")
                }
                top.entries.append((key: key, keyLocation: keyLocation, value: node))
                top.pendingKey = nil
            } else {
                guard case let .scalar(key, _, keyLocation) = node else {
                    throw YAMLError(location: node.location, message: "mapping keys must be plain strings")
                }
                top.pendingKey = (key, keyLocation)
            }
        }
    }
}
