import Glibc

/// Bytes at an address that does not move while this object lives. A request body is one: it is
/// appended to as it arrives, then plugins read it through the `prism_request` the host hands
/// them for as long as the request runs, with no copy made for them (a body may be megabytes).
///
/// Appending may move the bytes: it is for the time before anything took their address.
package final class PinnedBytes {
    private var base: UnsafeMutableRawPointer?
    private var capacity: Int
    package private(set) var count = 0

    package init(capacity: Int = 0) {
        self.capacity = max(capacity, 0)
        guard capacity > 0 else { return }
        guard let memory = malloc(capacity) else { fatalError("PinnedBytes: out of memory (\(capacity) bytes)") }
        base = memory
    }

    package convenience init(copying bytes: UnsafeRawBufferPointer) {
        self.init(capacity: bytes.count)
        append(bytes)
    }

    package convenience init(_ bytes: [UInt8]) {
        self.init(capacity: bytes.count)
        bytes.withUnsafeBytes { append($0) }
    }

    deinit { free(base) }

    package var isEmpty: Bool { count == 0 }

    /// The bytes; the address stays valid while this object lives and nothing is appended.
    package var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    package func withUnsafeBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result) throws(Failure) -> Result
    {
        try body(bytes)
    }

    package func append(_ more: UnsafeRawBufferPointer) {
        guard let source = more.baseAddress, more.count > 0 else { return }
        if count + more.count > capacity {
            // Doubling: a body of unknown length (chunked) is copied a logarithmic number of times.
            let wanted = max(count + more.count, capacity * 2, 64)
            guard let grown = realloc(base, wanted) else { fatalError("PinnedBytes: out of memory (\(wanted) bytes)") }
            base = grown
            capacity = wanted
        }
        (base! + count).copyMemory(from: source, byteCount: more.count)
        count += more.count
    }

    /// A copy as an array (for code that needs one; the request path reads `bytes`).
    package var array: [UInt8] { Array(bytes) }
}
