import PrismPluginABI

/// The host's shared state ("prism.shared_state.v1"): values with expiry and sliding-window
/// counters, in memory or in Redis shared by every replica. Every call answers through its
/// closure exactly once: at once, or later on a host thread.
public struct SharedState: @unchecked Sendable {
    // The table lives until the process exits, and its functions are thread-safe.
    let table: UnsafePointer<prism_shared_state_service_v1>

    init(_ table: UnsafePointer<prism_shared_state_service_v1>) { self.table = table }

    public enum Lookup: Sendable {
        case found([UInt8])
        case notFound
        /// The shared backend cannot be reached right now.
        case unavailable
    }

    public func get(_ key: String, _ done: @escaping @Sendable (Lookup) -> Void) {
        guard let get = table.pointee.get else { return done(.unavailable) }
        let box = Unmanaged.passRetained(CallbackBox { result in
            switch result?.status {
            case PRISM_OK?: done(.found(result!.value.array))
            case PRISM_KEY_NOT_FOUND?: done(.notFound)
            default: done(.unavailable)
            }
        }).toOpaque()
        withPrismString(key) { get($0, CallbackBox.trampoline, box) }
    }

    /// Stores a value (fire and forget).
    public func set(_ key: String, _ value: [UInt8], ttlMilliseconds: UInt64) {
        guard let set = table.pointee.set else { return }
        withPrismString(key) { key in withPrismBytes(value) { set(key, $0, ttlMilliseconds, nil, nil) } }
    }

    public func remove(_ key: String) {
        guard let remove = table.pointee.remove else { return }
        withPrismString(key) { remove($0, nil, nil) }
    }

    /// Bounds the values this plugin keeps in the host's memory (LRU); 0 = unbounded.
    public func setValueCapacity(_ maximum: UInt64) {
        table.pointee.set_value_capacity?(maximum)
    }

    /// Counts each claim's cost in its window, all or none, in one atomic step.
    public func takeWindows(_ claims: [WindowClaim], _ done: @escaping @Sendable (WindowOutcome) -> Void) {
        guard let take = table.pointee.window_take else {
            return done(WindowOutcome(status: .unavailable, windows: [], localFallback: false))
        }
        let box = Unmanaged.passRetained(CallbackBox { result in
            guard let result else { return done(WindowOutcome(status: .unavailable, windows: [], localFallback: false)) }
            var windows: [WindowUsage] = []
            if let array = result.windows {
                for index in 0..<result.window_count {
                    let usage = array[index]
                    windows.append(WindowUsage(granted: usage.granted != 0, used: usage.used,
                                               retryAfterMilliseconds: usage.retry_after_milliseconds,
                                               resetMilliseconds: usage.reset_milliseconds, slot: usage.slot))
                }
            }
            let status: WindowOutcome.Status
            switch result.status {
            case PRISM_OK: status = .granted
            case PRISM_ERROR_LIMIT: status = .refused
            default: status = .unavailable
            }
            done(WindowOutcome(status: status, windows: windows,
                               localFallback: result.flags & PRISM_STATE_LOCAL_FALLBACK != 0))
        }).toOpaque()
        withClaimArray(claims) { array in take(array, claims.count, CallbackBox.trampoline, box) }
    }

    /// Corrects what the take at `slot` counted by `delta` (reconciling an estimate).
    public func adjustWindow(_ key: String, windowMilliseconds: UInt64, slot: UInt64, delta: Int64) {
        guard let adjust = table.pointee.window_adjust, delta != 0 else { return }
        withPrismString(key) { adjust($0, windowMilliseconds, slot, delta) }
    }

    private func withClaimArray<Result>(_ claims: [WindowClaim],
                                        _ body: (UnsafePointer<prism_window_claim>) -> Result) -> Result
    {
        // The keys' bytes must outlive the call: copy them into one buffer.
        var storage: [UInt8] = []
        for claim in claims { storage.append(contentsOf: claim.key.utf8) }
        return storage.withUnsafeBufferPointer { bytes in
            var offset = 0
            var array: [prism_window_claim] = []
            array.reserveCapacity(claims.count)
            for claim in claims {
                let length = claim.key.utf8.count
                let start = bytes.baseAddress.map { UnsafeRawPointer($0 + offset).assumingMemoryBound(to: CChar.self) }
                array.append(prism_window_claim(
                    struct_size: UInt32(MemoryLayout<prism_window_claim>.size), reserved: 0,
                    key: prism_string(data: start, length: length),
                    window_milliseconds: claim.windowMilliseconds, limit: claim.limit, cost: claim.cost))
                offset += length
            }
            return array.withUnsafeBufferPointer { body($0.baseAddress!) }
        }
    }
}

public struct WindowClaim: Sendable {
    public var key: String
    public var windowMilliseconds: UInt64
    /// Units allowed per window; 0 = count only.
    public var limit: Int64
    public var cost: Int64

    public init(key: String, windowMilliseconds: UInt64, limit: Int64, cost: Int64) {
        self.key = key
        self.windowMilliseconds = windowMilliseconds
        self.limit = limit
        self.cost = cost
    }
}

public struct WindowUsage: Sendable {
    /// This claim alone would have fit.
    public var granted: Bool
    public var used: Int64
    public var retryAfterMilliseconds: UInt64
    public var resetMilliseconds: UInt64
    public var slot: UInt64
}

public struct WindowOutcome: Sendable {
    public enum Status: Sendable { case granted, refused, unavailable }
    public var status: Status
    /// One per claim, in claim order (empty when unavailable).
    public var windows: [WindowUsage]
    /// The shared backend was down: counted in this process only.
    public var localFallback: Bool
}

/// Carries a Swift closure through a C callback's user data (retained once, released on call).
private final class CallbackBox {
    let body: (prism_state_result?) -> Void
    init(_ body: @escaping (prism_state_result?) -> Void) { self.body = body }

    static let trampoline: prism_state_callback = { userData, result in
        guard let userData else { return }
        let box = Unmanaged<CallbackBox>.fromOpaque(userData).takeRetainedValue()
        box.body(result?.pointee)
    }
}
