import Synchronization

/// One window claim with its key already namespaced.
package struct WindowRequest: Sendable {
    package var key: String
    package var window: UInt64
    package var limit: Int64
    package var cost: Int64

    package init(key: String, window: UInt64, limit: Int64, cost: Int64) {
        self.key = key
        self.window = window
        self.limit = limit
        self.cost = cost
    }
}

/// What window_take answers, per claim and overall.
package struct WindowReply: Sendable {
    package var granted: Bool
    package var windows: [WindowCounter.Evaluation]
}

/// Shared state in this process: values in one LRU table per plugin namespace, windows in one
/// table. Every operation is one short critical section (no I/O), so callers answer inline.
package final class MemoryStateBackend: Sendable {
    private let values = Mutex<[String: ValueTable]>([:])
    private let windows = Mutex<WindowTable>(WindowTable())

    package init() {}

    private struct WindowTable {
        package var counters: [String: (window: UInt64, counter: WindowCounter)] = [:]
        package var takesSinceSweep = 0
    }

    // MARK: Values

    package func get(namespace: String, key: String, now: UInt64) -> [UInt8]? {
        values.withLock { tables in tables[namespace]?.get(key, now: now) }
    }

    package func set(namespace: String, key: String, value: [UInt8], ttlMilliseconds: UInt64, now: UInt64) {
        values.withLock { tables in
            tables[namespace, default: ValueTable()].set(
                key, value, expiresAt: ttlMilliseconds == 0 || ttlMilliseconds > UInt64.max - now ? 0 : now + ttlMilliseconds,
                now: now)
        }
    }

    package func remove(namespace: String, key: String) {
        values.withLock { tables in tables[namespace]?.remove(key) }
    }

    package func setCapacity(namespace: String, _ capacity: Int) {
        values.withLock { tables in tables[namespace, default: ValueTable()].capacity = capacity }
    }

    package func valueCount(namespace: String) -> Int { values.withLock { $0[namespace]?.count ?? 0 } }

    // MARK: Windows

    /// All claims or none; `now` in wall-clock milliseconds.
    package func take(_ claims: [WindowRequest], now: UInt64) -> WindowReply {
        windows.withLock { table in
            var evaluations: [WindowCounter.Evaluation] = []
            evaluations.reserveCapacity(claims.count)
            var granted = true
            for claim in claims {
                var entry = table.counters[claim.key] ?? (claim.window, WindowCounter())
                let evaluation = entry.counter.evaluate(now: now, window: claim.window, limit: claim.limit, cost: claim.cost)
                table.counters[claim.key] = entry
                granted = granted && evaluation.fits
                evaluations.append(evaluation)
            }
            if granted {
                for (index, claim) in claims.enumerated() {
                    table.counters[claim.key]!.counter.commit(&evaluations[index], now: now, window: claim.window,
                                                                cost: claim.cost)
                }
            }
            table.takesSinceSweep += 1
            if table.takesSinceSweep >= 4096 {
                table.takesSinceSweep = 0
                table.counters = table.counters.filter { !$0.value.counter.isEmpty(now: now, window: $0.value.window) }
            }
            return WindowReply(granted: granted, windows: evaluations)
        }
    }

    package func adjust(key: String, slot: UInt64, delta: Int64) {
        windows.withLock { table in table.counters[key]?.counter.adjust(slot: slot, delta: delta) }
    }
}

/// Values with expiry and least-recently-used eviction above `capacity` (0 = unbounded): a hash
/// map into a doubly linked list kept in arrays (no per-entry allocation beyond the value).
package struct ValueTable {
    private struct Node {
        package var key: String
        package var value: [UInt8]
        package var expiresAt: UInt64 // wall-clock milliseconds; 0 = never
        package var newer: Int
        package var older: Int
    }

    package var capacity = 0 {
        didSet { while capacity > 0 && index.count > capacity { evictOldest() } }
    }
    private var index: [String: Int] = [:]
    private var nodes: [Node] = []
    private var freeList: [Int] = []
    private var newest = -1
    private var oldest = -1

    package init() {}

    package var count: Int { index.count }

    package mutating func get(_ key: String, now: UInt64) -> [UInt8]? {
        guard let position = index[key] else { return nil }
        if nodes[position].expiresAt != 0 && nodes[position].expiresAt <= now {
            unlink(position)
            return nil
        }
        moveToFront(position)
        return nodes[position].value
    }

    package mutating func set(_ key: String, _ value: [UInt8], expiresAt: UInt64, now: UInt64) {
        if let position = index[key] {
            nodes[position].value = value
            nodes[position].expiresAt = expiresAt
            moveToFront(position)
            return
        }
        let node = Node(key: key, value: value, expiresAt: expiresAt, newer: -1, older: newest)
        let position: Int
        if let reused = freeList.popLast() {
            nodes[reused] = node
            position = reused
        } else {
            nodes.append(node)
            position = nodes.count - 1
        }
        if newest >= 0 { nodes[newest].newer = position }
        newest = position
        if oldest < 0 { oldest = position }
        index[key] = position
        // Expired entries go first, then the least recently used.
        if capacity > 0 && index.count > capacity {
            if nodes[oldest].expiresAt == 0 || nodes[oldest].expiresAt > now { evictOldest() } else { unlink(oldest) }
        }
    }

    package mutating func remove(_ key: String) {
        if let position = index[key] { unlink(position) }
    }

    private mutating func evictOldest() {
        if oldest >= 0 { unlink(oldest) }
    }

    private mutating func moveToFront(_ position: Int) {
        guard position != newest else { return }
        detach(position)
        nodes[position].older = newest
        nodes[position].newer = -1
        if newest >= 0 { nodes[newest].newer = position }
        newest = position
        if oldest < 0 { oldest = position }
    }

    private mutating func detach(_ position: Int) {
        let node = nodes[position]
        if node.newer >= 0 { nodes[node.newer].older = node.older } else { newest = node.older }
        if node.older >= 0 { nodes[node.older].newer = node.newer } else { oldest = node.newer }
    }

    private mutating func unlink(_ position: Int) {
        detach(position)
        index[nodes[position].key] = nil
        nodes[position].value = []
        nodes[position].key = ""
        freeList.append(position)
    }
}
