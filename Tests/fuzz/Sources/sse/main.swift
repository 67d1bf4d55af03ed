// libFuzzer target: PrismWire's stream decoders, ServerSentEventParser (text/event-stream) and
// LineSplitter (NDJSON), on raw upstream bytes.
//
// The input is the upstream's byte stream as is (seeds are real streams). Each input is decoded
// whole, in pseudo-random chunks (cut points derived from the input, so a run is reproducible)
// and, when short, a byte at a time; every way must give the same events/lines, and they must
// equal what a plain reference decoder (below, written from the formats' rules) gives. A parser
// with a small line limit must refuse exactly the streams that have a longer line.

import FuzzSupport
import PrismWire

// MARK: Server-sent events

func decodeEvents(_ bytes: UnsafeRawBufferPointer, cuts: [Int]?, maximumLineLength: Int = 8 << 20)
    -> (events: [ServerSentEvent], tooLong: Bool)
{
    var parser = ServerSentEventParser(maximumLineLength: maximumLineLength)
    var events: [ServerSentEvent] = []
    do {
        if let cuts {
            try inPieces(bytes, cuts: cuts) { piece in try parser.feed(piece) { events.append($0) } }
        } else {
            try parser.feed(bytes) { events.append($0) }
        }
        try parser.finish { events.append($0) }
    } catch ServerSentEventParser.ParseError.lineTooLong {
        return (events, true)
    } catch {
        fatalError("unexpected error \(error)")
    }
    return (events, false)
}

/// Lines of a stream as the event-stream format splits them: CRLF, LF or CR.
func referenceLines(_ bytes: UnsafeRawBufferPointer) -> (lines: [[UInt8]], unterminated: [UInt8]) {
    var lines: [[UInt8]] = []
    var line: [UInt8] = []
    var index = 0
    while index < bytes.count {
        let byte = bytes[index]
        if byte == 0x0D || byte == 0x0A {
            lines.append(line)
            line = []
            if byte == 0x0D, index + 1 < bytes.count, bytes[index + 1] == 0x0A { index += 1 }
        } else {
            line.append(byte)
        }
        index += 1
    }
    return (lines, line)
}

/// The reference: the WHATWG rules as ServerSentEventParser documents them (data lines joined
/// with LF, `event` reset after each event, `id` kept, comments and unknown fields ignored, a
/// blank line without data resets the event name) plus its own rule that a final event without
/// its blank line is still dispatched at the end.
func referenceEvents(_ bytes: UnsafeRawBufferPointer) -> [ServerSentEvent] {
    var (lines, rest) = referenceLines(bytes)
    if !rest.isEmpty { lines.append(rest) }
    var events: [ServerSentEvent] = []
    var data: [UInt8] = []
    var hasData = false
    var event = ""
    var id = ""
    for line in lines {
        if line.isEmpty {
            if hasData { events.append(ServerSentEvent(event: event, data: data, id: id)) }
            data = []
            hasData = false
            event = ""
            continue
        }
        if line[0] == UInt8(ascii: ":") { continue }
        let name: ArraySlice<UInt8>
        var value: ArraySlice<UInt8>
        if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            name = line[..<colon]
            value = line[(colon + 1)...]
            if value.first == 0x20 { value = value.dropFirst() }
        } else {
            name = line[...]
            value = []
        }
        switch String(decoding: name, as: UTF8.self) {
        case "data":
            if hasData { data.append(0x0A) }
            data += value
            hasData = true
        case "event": event = String(decoding: value, as: UTF8.self)
        case "id": id = String(decoding: value, as: UTF8.self)
        default: break
        }
    }
    if hasData { events.append(ServerSentEvent(event: event, data: data, id: id)) }
    return events
}

func checkServerSentEvents(_ bytes: UnsafeRawBufferPointer, cuts: [Int]) {
    let whole = decodeEvents(bytes, cuts: nil)
    require(!whole.tooLong, "a line under the fuzzer's input size was refused")
    let expected = referenceEvents(bytes)
    require(whole.events == expected, "SSE: events differ from the reference decoder")
    let pieces = decodeEvents(bytes, cuts: cuts)
    require(pieces.events == whole.events, "SSE: events depend on how the stream was cut into chunks")
    if bytes.count <= 512 {
        let single = decodeEvents(bytes, cuts: Array(stride(from: 1, through: bytes.count, by: 1)))
        require(single.events == whole.events, "SSE: byte-at-a-time decoding differs")
    }
    for event in whole.events {
        require(!event.data.contains(0x0D), "SSE: CR inside event data")
        require(!event.event.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D }), "SSE: line break in event name")
    }
    // A 32-byte line limit: refused exactly when some line is longer; otherwise nothing changes.
    let limit = 32
    let (lines, rest) = referenceLines(bytes)
    let longest = (lines + [rest]).map(\.count).max() ?? 0
    let limited = decodeEvents(bytes, cuts: cuts, maximumLineLength: limit)
    require(limited.tooLong == (longest > limit), "SSE: line limit refused \(limited.tooLong), longest line \(longest)")
    if !limited.tooLong { require(limited.events == whole.events, "SSE: a line limit changed the events") }
}

// MARK: NDJSON lines

func splitLines(_ bytes: UnsafeRawBufferPointer, cuts: [Int]?) -> [[UInt8]] {
    var splitter = LineSplitter()
    var lines: [[UInt8]] = []
    if let cuts {
        inPieces(bytes, cuts: cuts) { piece in splitter.feed(piece) { lines.append($0) } }
    } else {
        splitter.feed(bytes) { lines.append($0) }
    }
    splitter.finish { lines.append($0) }
    return lines
}

/// NDJSON as the gateway reads it: LF-terminated lines, one CR before the LF dropped, empty lines
/// skipped, a last line without LF still delivered.
func referenceNDJSON(_ bytes: UnsafeRawBufferPointer) -> [[UInt8]] {
    var lines: [[UInt8]] = []
    var line: [UInt8] = []
    for byte in bytes {
        if byte == 0x0A {
            if line.last == 0x0D { line.removeLast() }
            if !line.isEmpty { lines.append(line) }
            line = []
        } else {
            line.append(byte)
        }
    }
    if !line.isEmpty { lines.append(line) }
    return lines
}

func checkLines(_ bytes: UnsafeRawBufferPointer, cuts: [Int]) {
    let whole = splitLines(bytes, cuts: nil)
    require(whole == referenceNDJSON(bytes), "NDJSON: lines differ from the reference splitter")
    require(splitLines(bytes, cuts: cuts) == whole, "NDJSON: lines depend on how the stream was cut into chunks")
    for line in whole {
        require(!line.isEmpty && !line.contains(0x0A), "NDJSON: empty line or LF inside a line")
    }
}

runFuzzer { bytes in
    let cuts = chunkBoundaries(bytes)
    checkServerSentEvents(bytes, cuts: cuts)
    checkLines(bytes, cuts: cuts)
}
