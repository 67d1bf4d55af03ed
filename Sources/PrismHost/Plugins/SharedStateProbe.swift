import Logging
import PrismPluginABI
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// For bench/state: drives prism.shared_state.v1 exactly as a plugin does, through the C table
/// of libffi closures a plugin instance receives, and Redis through the host's client.
public final class SharedStateProbe: @unchecked Sendable {
    private let registry: PluginRegistry
    private let table: prism_shared_state_service_v1

    public init(redis: RedisSettings?, logger: Logger) {
        registry = PluginRegistry(logger: logger, redis: redis)
        let api = registry.hostTable(pluginID: "bench.state", component: "bench", instance: "bench")
        table = api.pointee.get_service!(PRISM_SHARED_STATE_SERVICE_V1)!
            .assumingMemoryBound(to: prism_shared_state_service_v1.self).pointee
    }

    /// Whether the Redis backend (if any) is connected.
    public var isConnected: Bool { registry.sharedState.redis?.isConnected ?? true }

    /// One rate-limit check as the rate_limit middleware makes it (a global and a per-key window,
    /// all or none), waited for; returns the status.
    @discardableResult
    public func check(key: String) -> prism_status {
        let waiter = Waiter()
        let userData = Unmanaged.passUnretained(waiter).toOpaque()
        "requests:*".withPrismString { global in
            key.withPrismString { perKey in
                var claims = [
                    prism_window_claim(struct_size: UInt32(MemoryLayout<prism_window_claim>.size), reserved: 0, key: global,
                                       window_milliseconds: 60_000, limit: 1 << 40, cost: 1),
                    prism_window_claim(struct_size: UInt32(MemoryLayout<prism_window_claim>.size), reserved: 0, key: perKey,
                                       window_milliseconds: 60_000, limit: 1 << 40, cost: 1),
                ]
                table.window_take!(&claims, 2, { userData, result in
                    Unmanaged<Waiter>.fromOpaque(userData!).takeUnretainedValue().signal(result!.pointee.status)
                }, userData)
            }
        }
        return waiter.wait()
    }

    /// One Redis PING through the host's client, waited for (the round-trip floor).
    public func ping() {
        guard let redis = registry.sharedState.redis else { return }
        let waiter = Waiter()
        redis.send([Array("PING".utf8)]) { _ in waiter.signal(PRISM_OK) }
        _ = waiter.wait()
    }
}

/// A one-shot wait for a callback from another thread (spins briefly, then yields).
private final class Waiter: Sendable {
    private let state = Atomic<Int32>(Int32.min)

    func signal(_ status: prism_status) { state.store(status, ordering: .releasing) }

    func wait() -> prism_status {
        while true {
            let value = state.load(ordering: .acquiring)
            if value != Int32.min { return value }
            sched_yield()
        }
    }
}
