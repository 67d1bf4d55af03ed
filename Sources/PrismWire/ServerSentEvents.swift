#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One server-sent event: the fields the WHATWG event-stream format defines.
public struct ServerSentEvent: Sendable, Equatable {
    public var event: String
    public var data: [UInt8]
    public var id: String

    public init(event: String = "", data: [UInt8], id: String = "") {
        self.event = event
        self.data = data
        self.id = id
    }
}

/// Incremental parser for `text/event-stream` bytes that arrive in chunks split anywhere.
///
/// Handles `\n`, `\r\n` and `\r` line endings, multi-line `data:` (joined with `\n`), comments and
/// keep-alive lines (ignored), and a final event without a trailing blank line (`finish()`).
public struct ServerSentEventParser: Sendable {
    private var line: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false
    private var event = ""
    private var id = ""
    private var lastWasCarriageReturn = false
    /// A line longer than this is an upstream fault, not something to buffer without bound.
    public let maximumLineLength: Int

    public init(maximumLineLength: Int = 8 << 20) {
        self.maximumLineLength = maximumLineLength
    }

    public enum ParseError: Error, Sendable { case lineTooLong }

    /// Bytes fed that do not end an event yet (a line, or fields waiting for their blank line).
    public var hasPartialEvent: Bool { !line.isEmpty || hasData || !event.isEmpty || !id.isEmpty }

    /// Feeds bytes and calls `onEvent` for each complete event.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer,
                              onEvent: (ServerSentEvent) throws -> Void) throws
    {
        var index = 0
        let count = bytes.count
        while index < count {
            let byte = bytes[index]
            if lastWasCarriageReturn {
                lastWasCarriageReturn = false
                if byte == 0x0A {
                    index += 1
                    continue
                }
            }
            if byte == 0x0A || byte == 0x0D {
                lastWasCarriageReturn = byte == 0x0D
                try endLine(onEvent)
                index += 1
                continue
            }
            // The run up to the next line break, found with memchr (not byte by byte).
            let end = nextLineBreak(bytes, from: index + 1)
            if line.count + (end - index) > maximumLineLength { throw ParseError.lineTooLong }
            if line.isEmpty && end < count {
                // The whole line is in this chunk (the usual case): read in place, not copied.
                try take(UnsafeRawBufferPointer(rebasing: bytes[index..<end]), onEvent)
                lastWasCarriageReturn = bytes[end] == 0x0D
                index = end + 1
                continue
            }
            line.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[index..<end]))
            index = end
        }
    }

    public mutating func feed(_ bytes: [UInt8], onEvent: (ServerSentEvent) throws -> Void) throws {
        try bytes.withUnsafeBytes { buffer in try feed(buffer, onEvent: onEvent) }
    }

    /// The stream ended: dispatches a pending event that lacked its closing blank line.
    public mutating func finish(onEvent: (ServerSentEvent) throws -> Void) throws {
        if !line.isEmpty { try endLine(onEvent) }
        if hasData { try dispatch(onEvent) }
    }

    private mutating func endLine(_ onEvent: (ServerSentEvent) throws -> Void) throws {
        guard !line.isEmpty else { return try take(UnsafeRawBufferPointer(start: nil, count: 0), onEvent) }
        // Taken out while it is read (take mutates self), then put back emptied, its buffer kept.
        var held: [UInt8] = []
        swap(&held, &line)
        defer {
            held.removeAll(keepingCapacity: true)
            swap(&held, &line)
        }
        try held.withUnsafeBytes { try take($0, onEvent) }
    }

    /// One line, without its line break.
    private mutating func take(_ line: UnsafeRawBufferPointer, _ onEvent: (ServerSentEvent) throws -> Void) throws {
        guard let base = line.baseAddress, !line.isEmpty else {
            if hasData { try dispatch(onEvent) } else {
                event = ""
            }
            return
        }
        if line[0] == UInt8(ascii: ":") { return } // comment / keep-alive
        let colon = memchr(base, Int32(UInt8(ascii: ":")), line.count).map { base.distance(to: UnsafeRawPointer($0)) } ?? line.count
        var valueStart = colon < line.count ? colon + 1 : line.count
        if valueStart < line.count, line[valueStart] == 0x20 { valueStart += 1 }
        let value = UnsafeRawBufferPointer(rebasing: line[valueStart..<line.count])
        if Self.isField(base, colon, "data") {
            if hasData { data.append(0x0A) }
            data.append(contentsOf: value)
            hasData = true
        } else if Self.isField(base, colon, "event") {
            event = String(decoding: value, as: UTF8.self)
        } else if Self.isField(base, colon, "id") {
            id = String(decoding: value, as: UTF8.self)
        }
        // "retry" and unknown fields are ignored, as the format requires.
    }

    /// Whether the line's first `length` bytes are the field name `name`: a direct byte compare
    /// (`elementsEqual` against a String's UTF-8 view took about 280 instructions an event).
    private static func isField(_ line: UnsafeRawPointer, _ length: Int, _ name: StaticString) -> Bool {
        length == name.utf8CodeUnitCount && memcmp(line, name.utf8Start, length) == 0
    }

    private mutating func dispatch(_ onEvent: (ServerSentEvent) throws -> Void) throws {
        // The event borrows `data` for the call; cleared after it, the buffer is ours alone again
        // and is kept (no new buffer per event).
        defer {
            data.removeAll(keepingCapacity: true)
            hasData = false
            event = ""
        }
        try onEvent(ServerSentEvent(event: event, data: data, id: id))
    }
}

/// The index of the first CR or LF in `bytes` at or after `start` (`bytes.count` when none).
public func nextLineBreak(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
    guard start < bytes.count, let base = bytes.baseAddress else { return bytes.count }
    let length = bytes.count - start
    let newline = memchr(base + start, 0x0A, length).map { base.distance(to: UnsafeRawPointer($0)) } ?? bytes.count
    // A CR is rare (CRLF or CR line endings): looked for only before the LF.
    guard newline > start else { return newline }
    let carriageReturn = memchr(base + start, 0x0D, newline - start).map { base.distance(to: UnsafeRawPointer($0)) }
    return carriageReturn ?? newline
}

/// Writes SSE frames for the client side.
public enum ServerSentEventWriter {
    /// `data: <payload>\n\n`. The payload must not contain line breaks (compact JSON does not).
    public static func frame(_ payload: UnsafeRawBufferPointer, into output: inout [UInt8]) {
        output.append(contentsOf: dataField)
        output.append(contentsOf: payload)
        output.append(0x0A)
        output.append(0x0A)
    }

    private static let dataField: [UInt8] = Array("data: ".utf8)

    /// `event: <name>\ndata: <payload>\n\n` (the dialects with typed events: Anthropic Messages,
    /// OpenAI Responses). `name` must not contain line breaks.
    public static func frame(event name: String, _ payload: UnsafeRawBufferPointer, into output: inout [UInt8]) {
        output.append(contentsOf: "event: ".utf8)
        output.append(contentsOf: name.utf8)
        output.append(0x0A)
        frame(payload, into: &output)
    }

    public static func frame(event name: String, _ payload: [UInt8], into output: inout [UInt8]) {
        payload.withUnsafeBytes { frame(event: name, $0, into: &output) }
    }

    public static let done: [UInt8] = Array("data: [DONE]\n\n".utf8)
}

/// Splits a byte stream into lines (for NDJSON framing), across chunk boundaries.
public struct LineSplitter: Sendable {
    private var pending: [UInt8] = []
    public init() {}

    /// Bytes fed after the last line break.
    public var hasPartialLine: Bool { !pending.isEmpty }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer, onLine: ([UInt8]) throws -> Void) rethrows {
        var start = 0
        for index in 0..<bytes.count where bytes[index] == 0x0A {
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
            if pending.last == 0x0D { pending.removeLast() }
            if !pending.isEmpty { try onLine(pending) }
            pending.removeAll(keepingCapacity: true)
            start = index + 1
        }
        pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<bytes.count]))
    }

    public mutating func finish(onLine: ([UInt8]) throws -> Void) rethrows {
        if !pending.isEmpty { try onLine(pending) }
        pending.removeAll()
    }
}

/// An upstream stream cut into the events a provider plugin (or a dialect's observer) reads:
/// Server-Sent Events, or NDJSON lines as events that carry only `data`. One per stream.
public struct StreamEventFramer: Sendable {
    public enum Mode: Sendable {
        case serverSentEvents
        case lines
    }

    public let mode: Mode
    private var events = ServerSentEventParser()
    private var lines = LineSplitter()

    public init(mode: Mode) { self.mode = mode }

    /// Bytes of an event (or line) not complete yet.
    public var holdsPartialEvent: Bool { mode == .lines ? lines.hasPartialLine : events.hasPartialEvent }

    /// Feeds `bytes`, or the end of the stream (nil: what is still held is delivered); `onEvent`
    /// gets every complete event. Throws for an SSE line past its maximum length.
    public mutating func feed(_ bytes: [UInt8]?, onEvent: (ServerSentEvent) throws -> Void) throws {
        switch mode {
        case .lines:
            guard let bytes else { return try lines.finish { try onEvent(ServerSentEvent(data: $0)) } }
            try bytes.withUnsafeBytes { raw in try lines.feed(raw) { try onEvent(ServerSentEvent(data: $0)) } }
        case .serverSentEvents:
            guard let bytes else { return try events.finish(onEvent: onEvent) }
            try events.feed(bytes, onEvent: onEvent)
        }
    }
}
