import Logging
import PrismWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One line per record on stderr: `2026-11-24T07:40:00.123Z info prism: message key=value`, or
/// with `logging.format: json` one JSON object per line (`time`, `level`, `logger`, `message`,
/// then the metadata as members, numbers and booleans as JSON values).
/// No Foundation: timestamps come from clock_gettime/gmtime_r.
///
/// The level and the format are process-wide, so that a configuration reload changes them for
/// every logger at once (each Logger asks its handler for the level).
public struct LineLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    private let label: String

    private static let level = Atomic<UInt8>(2) // index into Logger.Level.allCases: info
    private static let json = Atomic<Bool>(false)

    public init(label: String, level: Logger.Level) {
        self.label = label
    }

    /// Applies `logging.level` and `logging.format` to every logger.
    public static func configure(level: Logger.Level, json: Bool) {
        LineLogHandler.level.store(UInt8(Logger.Level.allCases.firstIndex(of: level) ?? 2), ordering: .relaxed)
        LineLogHandler.json.store(json, ordering: .relaxed)
    }

    public static var writesJSON: Bool { json.load(ordering: .relaxed) }

    public var logLevel: Logger.Level {
        get { Logger.Level.allCases[Int(LineLogHandler.level.load(ordering: .relaxed))] }
        set { LineLogHandler.configure(level: newValue, json: LineLogHandler.writesJSON) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        if LineLogHandler.writesJSON { return writeJSON(event) }
        var line = LineLogHandler.timestamp()
        line += " "
        line += event.level == .warning ? "warning" : event.level.rawValue
        line += " "
        line += label
        line += ": "
        line += LineLogHandler.escapingControls(SecretRedactor.shared.redact(event.message.description))
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            line += LineLogHandler.escapingControls(" \(key)=\(value)")
        }
        line += "\n"
        // One write per line: lines from different threads never interleave.
        var bytes = line
        bytes.withUTF8 { utf8 in _ = write(2, utf8.baseAddress, utf8.count) }
    }

    /// A text line is one line: control characters a client put in (a model named "x\nlevel=…")
    /// are written escaped (`\n`, `\r`, `\t`, `\u{1b}`), so no one can forge a log line.
    package static func escapingControls(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return text }
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                escaped += "\\u{" + String(scalar.value, radix: 16) + "}"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    private func writeJSON(_ event: LogEvent) {
        var writer = JSONWriter(capacity: 256)
        writer.beginObject()
        writer.string("time", LineLogHandler.timestamp())
        writer.string("level", event.level == .warning ? "warning" : event.level.rawValue)
        writer.string("logger", label)
        writer.string("message", SecretRedactor.shared.redact(event.message.description))
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            writer.key(key)
            LineLogHandler.writeValue(value, to: &writer)
        }
        writer.endObject()
        var bytes = writer.bytes
        bytes.append(0x0A)
        bytes.withUnsafeBytes { raw in _ = write(2, raw.baseAddress, raw.count) }
    }

    private static func writeValue(_ value: Logger.MetadataValue, to writer: inout JSONWriter) {
        switch value {
        case let .string(text): writer.string(SecretRedactor.shared.redact(text))
        case let .stringConvertible(item):
            switch item {
            case let number as Int: writer.integer(Int64(number))
            case let number as Int64: writer.integer(number)
            case let number as UInt64: writer.integer(Int64(clamping: number))
            case let number as Double: writer.number(number)
            case let flag as Bool: writer.bool(flag)
            default: writer.string(SecretRedactor.shared.redact(item.description))
            }
        case let .array(items):
            writer.beginArray()
            for item in items { writeValue(item, to: &writer) }
            writer.endArray()
        case let .dictionary(members):
            writer.beginObject()
            for (key, member) in members.sorted(by: { $0.key < $1.key }) {
                writer.key(key)
                writeValue(member, to: &writer)
            }
            writer.endObject()
        }
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(now.tv_nsec / 1_000_000), 3))Z"
    }
}

extension LogLevelSetting {
    public var loggerLevel: Logger.Level {
        switch self {
        case .debug: return .debug
        case .info: return .info
        case .warn: return .warning
        case .error: return .error
        }
    }
}
