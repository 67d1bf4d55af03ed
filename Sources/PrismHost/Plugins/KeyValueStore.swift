import Synchronization

/// The host's shared state for plugins ("prism.key_value.v1"): values and counters with expiry.
/// This is the in-memory backend (one process); keys arrive already namespaced per plugin.
final class KeyValueStore: Sendable {
    private struct Entry {
        var value: [UInt8]
        var counter: Int64
        /// Monotonic deadline in nanoseconds; 0 = never.
        var expiresAt: UInt64
    }

    private let entries = Mutex<[String: Entry]>([:])
    /// Entry count above which expired entries are swept on write.
    private let sweepThreshold = 10_000

    func get(_ key: String) -> [UInt8]? {
        let now = monotonicNanoseconds()
        return entries.withLock { table in
            guard let entry = table[key] else { return nil }
            if entry.expiresAt != 0, entry.expiresAt <= now {
                table[key] = nil
                return nil
            }
            return entry.value.isEmpty && entry.counter != 0 ? Array(String(entry.counter).utf8) : entry.value
        }
    }

    func set(_ key: String, _ value: [UInt8], ttlMilliseconds: UInt64) {
        let now = monotonicNanoseconds()
        entries.withLock { table in
            table[key] = Entry(value: value, counter: 0, expiresAt: deadline(now, ttlMilliseconds))
            if table.count > sweepThreshold { sweep(&table, now) }
        }
    }

    func remove(_ key: String) {
        _ = entries.withLock { $0.removeValue(forKey: key) }
    }

    func increment(_ key: String, by delta: Int64, ttlMilliseconds: UInt64) -> Int64 {
        let now = monotonicNanoseconds()
        return entries.withLock { table in
            var entry = table[key] ?? Entry(value: [], counter: 0, expiresAt: deadline(now, ttlMilliseconds))
            if entry.expiresAt != 0, entry.expiresAt <= now {
                entry = Entry(value: [], counter: 0, expiresAt: deadline(now, ttlMilliseconds))
            }
            entry.counter &+= delta
            entry.value = []
            table[key] = entry
            if table.count > sweepThreshold { sweep(&table, now) }
            return entry.counter
        }
    }

    private func deadline(_ now: UInt64, _ ttlMilliseconds: UInt64) -> UInt64 {
        ttlMilliseconds == 0 ? 0 : now &+ ttlMilliseconds &* 1_000_000
    }

    private func sweep(_ table: inout [String: Entry], _ now: UInt64) {
        table = table.filter { $0.value.expiresAt == 0 || $0.value.expiresAt > now }
    }
}
