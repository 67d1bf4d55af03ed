import PrismSupport
import Synchronization

/// Integer counters that every replica adds to atomically (budgets' spend, in nano-dollars): in
/// this process's memory, or in Redis when `redis:` is on. A read of several counters is one MGET;
/// an add of several is one EVAL (INCRBY + PEXPIREAT each), so the value a replica gets back is
/// the exact total after its own add, whatever the others did meanwhile.
///
/// While Redis is unreachable, counters are kept in memory (each replica its own) and the fallback
/// is counted, as windows are.
package final class MemoryCounters: Sendable {
    private struct Table {
        package var values: [String: (value: Int64, expiresAt: UInt64)] = [:]
        package var addsSinceSweep = 0
    }

    private let table = Mutex(Table())

    package func read(_ keys: [String], now: UInt64) -> [Int64] {
        table.withLock { table in
            keys.map { key in
                guard let entry = table.values[key], entry.expiresAt == 0 || entry.expiresAt > now else { return 0 }
                return entry.value
            }
        }
    }

    /// Adds `deltas[i]` to `keys[i]` (expiring at `expiresAt[i]`, 0: never); the new values.
    package func add(_ keys: [String], _ deltas: [Int64], expiresAt: [UInt64], now: UInt64) -> [Int64] {
        table.withLock { table in
            table.addsSinceSweep += 1
            if table.addsSinceSweep >= 4096 {
                table.addsSinceSweep = 0
                table.values = table.values.filter { $0.value.expiresAt == 0 || $0.value.expiresAt > now }
            }
            var results: [Int64] = []
            results.reserveCapacity(keys.count)
            for index in keys.indices {
                var entry = table.values[keys[index]] ?? (0, expiresAt[index])
                if entry.expiresAt != 0 && entry.expiresAt <= now { entry = (0, expiresAt[index]) }
                entry.value = entry.value &+ deltas[index]
                table.values[keys[index]] = entry
                results.append(entry.value)
            }
            return results
        }
    }
}

extension SharedStateService {
    package typealias CounterAnswer = @Sendable (_ values: [Int64], _ localFallback: Bool) -> Void

    /// The current values of `keys` (0 for a missing one).
    package func readCounters(_ keys: [String], _ done: @escaping CounterAnswer) {
        guard !keys.isEmpty else { return done([], false) }
        guard let redis, redis.isConnected else { return readCountersLocally(keys, done) }
        redis.send([Array("MGET".utf8)] + keys.map { redisCounterKey($0) }) { [self] reply in
            guard case let .array(items)? = reply, items.count == keys.count else { return readCountersLocally(keys, done) }
            done(items.map { item in
                if case let .string(bytes) = item { return Int64(String(decoding: bytes, as: UTF8.self)) ?? 0 }
                return 0
            }, false)
        }
    }

    /// Adds to each counter and answers the new values.
    package func addCounters(_ keys: [String], _ deltas: [Int64], expiresAt: [UInt64], _ done: @escaping CounterAnswer) {
        guard !keys.isEmpty else { return done([], false) }
        guard let redis, redis.isConnected else { return addCountersLocally(keys, deltas, expiresAt, done) }
        var built: [[UInt8]] = [Array(String(keys.count).utf8)]
        built += keys.map { redisCounterKey($0) }
        for index in keys.indices {
            built += [Array(String(deltas[index]).utf8), Array(String(expiresAt[index]).utf8)]
        }
        evaluate(redis, SharedStateService.addScript, digest: SharedStateService.addScriptDigest, built) { [self] reply in
            guard case let .array(items)? = reply, items.count == keys.count else {
                return addCountersLocally(keys, deltas, expiresAt, done)
            }
            done(items.map { $0.integer ?? 0 }, false)
        }
    }

    private func readCountersLocally(_ keys: [String], _ done: CounterAnswer) {
        noteCounterFallback()
        done(counters.read(keys, now: wallClockMilliseconds()), redis != nil)
    }

    private func addCountersLocally(_ keys: [String], _ deltas: [Int64], _ expiresAt: [UInt64], _ done: CounterAnswer) {
        noteCounterFallback()
        done(counters.add(keys, deltas, expiresAt: expiresAt, now: wallClockMilliseconds()), redis != nil)
    }

    private func noteCounterFallback() {
        guard redis != nil else { return }
        localFallbacks.add(1, ordering: .relaxed)
        SharedStateService.recordFallback("counter")
    }

    private func redisCounterKey(_ key: String) -> [UInt8] { Array((redisPrefix + "counter:" + key).utf8) }

    /// KEYS: the counters; ARGV: (delta, expire-at in ms since the epoch or 0) per key.
    package static let addScript = """
        local out = {}
        for i, key in ipairs(KEYS) do
          local value = redis.call('INCRBY', key, ARGV[2 * i - 1])
          local at = tonumber(ARGV[2 * i])
          if at > 0 then redis.call('PEXPIREAT', key, at) end
          out[i] = value
        end
        return out
        """
    package static let addScriptDigest = digestHex(addScript, sha1: true)
}
