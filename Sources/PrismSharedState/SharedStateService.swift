import CoreMetrics
import PrismSupport
import Logging
import PrismWire
import PrismPluginABI
import Synchronization

/// The host side of "prism.shared_state.v1": values and sliding windows, in this process's
/// memory or, when `redis:` is enabled, in Redis shared by every replica.
///
/// With Redis, a window take is one EVAL of `SlidingWindow.takeScript` (atomic on the server, one
/// round trip). While Redis is unreachable, windows are counted in memory (the result says
/// PRISM_STATE_LOCAL_FALLBACK) and value operations answer PRISM_ERROR_UNAVAILABLE; the client
/// reconnects by itself. Both outcomes are counted for the operator.
package final class SharedStateService: Sendable {
    package let memory = MemoryStateBackend()
    /// Counters (budgets) in memory: the backend without Redis, the fallback with it.
    package let counters = MemoryCounters()
    package let redis: RedisClient?
    private let prefix: String

    /// Window takes answered from local counters because Redis was unreachable.
    package let localFallbacks = Atomic<Int>(0)
    /// Value operations that failed because Redis was unreachable (a cache skip each).
    package let unavailableAnswers = Atomic<Int>(0)

    /// prism_shared_state_fallbacks_total{operation}: window takes answered locally, and value
    /// operations that failed, because Redis was down.
    static func recordFallback(_ operation: String) {
        Counter(label: "prism_shared_state_fallbacks_total", dimensions: [("operation", operation)]).increment()
    }

    /// Marks a slot counted by the local fallback, so window_adjust corrects the same store.
    private static let localSlotFlag: UInt64 = 1 << 63

    /// What this backend was made for (nil: memory).
    package let settings: RedisSettings?

    package init(settings: RedisSettings?, logger: Logger) {
        self.settings = settings
        if let settings, settings.enabled {
            redis = RedisClient(host: settings.host, port: settings.port, password: settings.password,
                                database: settings.database, commandTimeoutMilliseconds: Int(settings.timeout.milliseconds),
                                logger: logger)
            prefix = settings.prefix
        } else {
            redis = nil
            prefix = ""
        }
    }

    package var redisPrefix: String { prefix }

    package var backendName: String { redis == nil ? "memory" : "redis" }

    /// After a reload moved the state elsewhere: closes the Redis connection once the requests
    /// that started on this backend have had time to finish.
    package func retire(afterSeconds seconds: UInt32) {
        guard let redis else { return }
        redis.stop(afterSeconds: seconds)
    }

    /// `GET /-/health/state`: the backend, whether Redis is reachable, and the fallback counters.
    package func report() -> [UInt8] {
        var writer = JSONWriter(capacity: 160)
        writer.beginObject()
        writer.string("backend", backendName)
        if let redis {
            writer.string("address", redis.address)
            writer.bool("connected", redis.isConnected)
        }
        writer.integer("local_rate_limit_checks", Int64(localFallbacks.load(ordering: .relaxed)))
        writer.integer("unavailable_answers", Int64(unavailableAnswers.load(ordering: .relaxed)))
        writer.endObject()
        return writer.bytes
    }

    private func redisKey(_ namespace: String, _ key: String) -> [UInt8] {
        Array((prefix + namespace + ":" + key).utf8)
    }

    // MARK: Values

    package typealias ValueAnswer = @Sendable (prism_status, [UInt8]?) -> Void

    package func get(namespace: String, key: String, _ done: @escaping ValueAnswer) {
        guard let redis else {
            let value = memory.get(namespace: namespace, key: key, now: wallClockMilliseconds())
            return done(value == nil ? PRISM_KEY_NOT_FOUND : PRISM_OK, value)
        }
        redis.send([Array("GET".utf8), redisKey(namespace, key)]) { [self] reply in
            switch reply {
            case let .string(value)?: done(PRISM_OK, value)
            case .null?: done(PRISM_KEY_NOT_FOUND, nil)
            default: unavailable(done)
            }
        }
    }

    package func set(namespace: String, key: String, value: [UInt8], ttlMilliseconds: UInt64, _ done: ValueAnswer?) {
        guard let redis else {
            memory.set(namespace: namespace, key: key, value: value, ttlMilliseconds: ttlMilliseconds,
                       now: wallClockMilliseconds())
            done?(PRISM_OK, nil)
            return
        }
        var command = [Array("SET".utf8), redisKey(namespace, key), value]
        if ttlMilliseconds > 0 { command += [Array("PX".utf8), Array(String(ttlMilliseconds).utf8)] }
        redis.send(command) { [self] reply in
            if case .status? = reply { done?(PRISM_OK, nil) } else if let done { unavailable(done) } else { countUnavailable() }
        }
    }

    package func remove(namespace: String, key: String, _ done: ValueAnswer?) {
        guard let redis else {
            memory.remove(namespace: namespace, key: key)
            done?(PRISM_OK, nil)
            return
        }
        redis.send([Array("DEL".utf8), redisKey(namespace, key)]) { [self] reply in
            if case .integer? = reply { done?(PRISM_OK, nil) } else if let done { unavailable(done) } else { countUnavailable() }
        }
    }

    package func setValueCapacity(namespace: String, _ capacity: UInt64) {
        memory.setCapacity(namespace: namespace, Int(clamping: capacity))
    }

    private func unavailable(_ done: ValueAnswer) {
        countUnavailable()
        done(PRISM_ERROR_UNAVAILABLE, nil)
    }

    private func countUnavailable() {
        unavailableAnswers.add(1, ordering: .relaxed)
        SharedStateService.recordFallback("value")
    }

    // MARK: Windows

    package typealias WindowAnswer = @Sendable (WindowReply, _ localFallback: Bool) -> Void

    /// `claims` carry scoped keys ("<plugin id>:<key>").
    package func takeWindows(_ claims: [WindowRequest], _ done: @escaping WindowAnswer) {
        guard let redis, redis.isConnected else { return takeLocally(claims, done) }
        var arguments: [[UInt8]] = [Array(String(claims.count).utf8)]
        for claim in claims { arguments.append(Array((prefix + claim.key).utf8)) }
        for claim in claims {
            arguments += [Array(String(claim.window).utf8), Array(String(claim.limit).utf8), Array(String(claim.cost).utf8)]
        }
        evaluate(redis, SlidingWindow.takeScript, digest: SlidingWindow.takeScriptDigest, arguments) { [self] reply in
            guard case let .array(items)? = reply, items.count == 1 + 5 * claims.count,
                  let granted = items[0].integer
            else { return takeLocally(claims, done) }
            var windows: [WindowCounter.Evaluation] = []
            for index in 0..<claims.count {
                let base = 1 + 5 * index
                windows.append(WindowCounter.Evaluation(
                    fits: items[base].integer == 1, used: items[base + 1].integer ?? 0,
                    retryAfterMilliseconds: UInt64(max(0, items[base + 2].integer ?? 0)),
                    resetMilliseconds: UInt64(max(0, items[base + 3].integer ?? 0)),
                    slot: UInt64(max(0, items[base + 4].integer ?? 0))))
            }
            done(WindowReply(granted: granted == 1, windows: windows), false)
        }
    }

    private func takeLocally(_ claims: [WindowRequest], _ done: WindowAnswer) {
        let fallback = redis != nil
        if fallback {
            localFallbacks.add(1, ordering: .relaxed)
            SharedStateService.recordFallback("window")
        }
        var reply = memory.take(claims, now: wallClockMilliseconds())
        if fallback {
            for index in reply.windows.indices { reply.windows[index].slot |= SharedStateService.localSlotFlag }
        }
        done(reply, fallback)
    }

    /// `key` is scoped ("<plugin id>:<key>").
    package func adjustWindow(key: String, slot: UInt64, delta: Int64) {
        guard delta != 0 else { return }
        guard let redis, slot & SharedStateService.localSlotFlag == 0 else {
            return memory.adjust(key: key, slot: slot & ~SharedStateService.localSlotFlag, delta: delta)
        }
        evaluate(redis, SlidingWindow.adjustScript, digest: SlidingWindow.adjustScriptDigest,
                 [Array("1".utf8), Array((prefix + key).utf8), Array(String(slot).utf8), Array(String(delta).utf8)]) { _ in }
    }

    /// EVALSHA (the script's body is not sent, nor hashed by Redis, each time); when Redis does not
    /// know the script yet (first use, or after a restart) it answers NOSCRIPT and EVAL follows,
    /// which also caches it.
    package func evaluate(_ redis: RedisClient, _ script: String, digest: String, _ arguments: [[UInt8]],
                          _ done: @escaping RedisClient.Completion)
    {
        redis.send([Array("EVALSHA".utf8), Array(digest.utf8)] + arguments) { reply in
            guard case let .error(message)? = reply, message.hasPrefix("NOSCRIPT") else { return done(reply) }
            redis.send([Array("EVAL".utf8), Array(script.utf8)] + arguments, done)
        }
    }
}
