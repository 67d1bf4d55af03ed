import CZlib
import CZstd

/// Request bodies a client compressed (`Content-Encoding: gzip`, `deflate`, `zstd`, or a list of
/// them): decoded before anything reads them, never past `limit` bytes (server.max_request_body_size),
/// so a small bomb cannot become a large allocation.
package enum BodyDecoding {
    package enum Failure: Error, Equatable {
        /// An encoding the gateway does not decode (415).
        case unsupported(String)
        /// The decoded body would pass the limit (413).
        case tooLarge
        /// The bytes are not what their encoding says (400).
        case corrupt(String)
    }

    /// Decodes `body` as `header` says (codings in the order they were applied).
    package static func decode(_ body: [UInt8], contentEncoding header: String, limit: Int) throws(Failure) -> [UInt8] {
        let codings = header.split(separator: ",").map { String($0).trimmingSpaces.lowercased() }.filter { !$0.isEmpty }
        var bytes = body
        for coding in codings.reversed() {
            switch coding {
            case "identity": continue
            case "gzip", "x-gzip", "deflate": bytes = try inflate(bytes, limit: limit, coding: coding)
            case "zstd": bytes = try zstd(bytes, limit: limit)
            default: throw .unsupported(coding)
            }
        }
        return bytes
    }

    private static func inflate(_ input: [UInt8], limit: Int, coding: String) throws(Failure) -> [UInt8] {
        // 15 + 32: zlib or gzip, told by the header; raw deflate (what some clients send as
        // "deflate") is tried when that fails on the first byte.
        do {
            return try inflate(input, limit: limit, windowBits: 15 + 32)
        } catch {
            guard coding == "deflate", case let .corrupt(reason) = error else { throw error }
            do { return try inflate(input, limit: limit, windowBits: -15) } catch { throw .corrupt(reason) }
        }
    }

    private static func inflate(_ input: [UInt8], limit: Int, windowBits: Int32) throws(Failure) -> [UInt8] {
        var stream = z_stream()
        guard inflateInit2_(&stream, windowBits, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw .corrupt("the decoder could not start")
        }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        output.reserveCapacity(min(limit, max(input.count * 4, 4096)))
        var chunk = [UInt8](repeating: 0, count: 65_536)
        var result: Int32 = Z_OK
        try input.withUnsafeBufferPointer { source throws(Failure) in
            stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress)
            stream.avail_in = UInt32(source.count)
            repeat {
                let produced: Int = chunk.withUnsafeMutableBufferPointer { target in
                    stream.next_out = target.baseAddress
                    stream.avail_out = UInt32(target.count)
                    result = CZlib.inflate(&stream, Z_NO_FLUSH)
                    return target.count - Int(stream.avail_out)
                }
                guard result == Z_OK || result == Z_STREAM_END || (result == Z_BUF_ERROR && produced > 0) else {
                    throw .corrupt(stream.msg.map { String(cString: $0) } ?? String(cString: zError(result)))
                }
                if output.count + produced > limit { throw .tooLarge }
                output.append(contentsOf: chunk[0..<produced])
                if result == Z_BUF_ERROR || (produced == 0 && stream.avail_in == 0) { break }
            } while result != Z_STREAM_END
        }
        guard result == Z_STREAM_END else { throw .corrupt("the compressed body is truncated") }
        return output
    }

    private static func zstd(_ input: [UInt8], limit: Int) throws(Failure) -> [UInt8] {
        guard let context = ZSTD_createDStream() else { throw .corrupt("the decoder could not start") }
        defer { ZSTD_freeDStream(context) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: ZSTD_DStreamOutSize())
        var lastHint = 1
        try input.withUnsafeBufferPointer { source throws(Failure) in
            var inBuffer = ZSTD_inBuffer(src: UnsafeRawPointer(source.baseAddress), size: source.count, pos: 0)
            while true {
                let (hint, produced): (Int, Int) = chunk.withUnsafeMutableBufferPointer { target in
                    var outBuffer = ZSTD_outBuffer(dst: UnsafeMutableRawPointer(target.baseAddress), size: target.count, pos: 0)
                    let hint = ZSTD_decompressStream(context, &outBuffer, &inBuffer)
                    return (hint, outBuffer.pos)
                }
                if ZSTD_isError(hint) != 0 { throw .corrupt(String(cString: ZSTD_getErrorName(hint))) }
                if output.count + produced > limit { throw .tooLarge }
                output.append(contentsOf: chunk[0..<produced])
                lastHint = hint
                // Done when the input is used up and the decoder holds nothing more.
                if inBuffer.pos == inBuffer.size && produced < chunk.count { break }
            }
        }
        guard lastHint == 0 else { throw .corrupt("the compressed body is truncated") }
        return output
    }
}
