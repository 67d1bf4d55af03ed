// What the fuzz targets share: libFuzzer's driver and the way a stream is cut into chunks.

import CFuzzerDriver

#if canImport(Glibc)
import Glibc
#endif

nonisolated(unsafe) private var target: ((UnsafeRawBufferPointer) -> Void)?

/// Runs libFuzzer (its flags are the program's arguments) with `body` as the fuzz target, and
/// exits with libFuzzer's status. A crash, a failed precondition or a sanitizer report in `body`
/// is a finding: libFuzzer saves the input as crash-<sha1>.
public func runFuzzer(_ body: @escaping (UnsafeRawBufferPointer) -> Void) -> Never {
    target = body
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    let status = LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        target!(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
        return 0
    }
    exit(status)
}

/// A check on what the code under test did; unlike `precondition`, its message survives -O, so a
/// finding says what went wrong.
public func require(_ condition: Bool, _ message: @autoclosure () -> String,
                    file: StaticString = #fileID, line: UInt = #line) {
    if !condition { fatalError(message(), file: file, line: line) }
}

/// Whether PRISM_FUZZ_TRACE is set: targets then print what they see (to replay one finding).
public let tracing = getenv("PRISM_FUZZ_TRACE") != nil

/// One line to standard error when tracing.
public func trace(_ line: @autoclosure () -> String) {
    guard tracing else { return }
    let text = line() + "\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
}

/// An anonymous in-memory file (memfd), for code that reads a path: /proc/self/fd/<descriptor>.
public func anonymousFile(_ name: String) -> Int32 { prism_fuzz_memfd(name) }

/// Where to cut `bytes` into chunks the way a network delivers them: mostly short pieces (a CR
/// and its LF, a frame's prelude, split apart), sometimes longer ones. The cut points come from a
/// hash of the input, so a finding replays exactly. The last cut is `bytes.count`.
public func chunkBoundaries(_ bytes: UnsafeRawBufferPointer, salt: UInt64 = 0) -> [Int] {
    var state: UInt64 = 0xcbf29ce484222325 ^ salt
    for byte in bytes { state = (state ^ UInt64(byte)) &* 0x100000001b3 }
    if state == 0 { state = 1 }
    var cuts: [Int] = []
    var position = 0
    while position < bytes.count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        let step = state % 4 == 0 ? Int((state >> 8) % 64) + 1 : Int((state >> 8) % 5) + 1
        position = min(bytes.count, position + step)
        cuts.append(position)
    }
    return cuts
}

/// `bytes` handed to `feed` in the pieces `cuts` gives.
public func inPieces(_ bytes: UnsafeRawBufferPointer, cuts: [Int], _ feed: (UnsafeRawBufferPointer) throws -> Void) rethrows {
    var start = 0
    for end in cuts where end > start {
        try feed(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
        start = end
    }
}

// MARK: AWS event-stream

/// CRC-32 (IEEE, as zlib and the AWS event-stream framing compute it).
public func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
}

/// Rewrites both CRCs of every AWS event-stream frame in `bytes` whose declared length fits, so
/// that mutations of headers and payloads get past the checksums to the code that reads them.
public func fixEventStreamChecksums(_ bytes: inout [UInt8]) {
    func read(_ offset: Int) -> Int { bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | Int($1) } }
    func write(_ value: UInt32, at offset: Int) {
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (24 - 8 * index)) }
    }
    var offset = 0
    while offset + 16 <= bytes.count {
        let total = read(offset)
        guard total >= 16, total <= bytes.count - offset else { return }
        write(crc32(bytes[offset..<(offset + 8)]), at: offset + 8)
        write(crc32(bytes[offset..<(offset + total - 4)]), at: offset + total - 4)
        offset += total
    }
}
