import CFFI
import PrismPluginABI

// The prism_shared_state_service_v1 table each identity gets: libffi closures bound to the
// identity (its namespace), like the key-value table in Plugins/HostServices.swift.

extension HostFunctionTables {
    func makeSharedStateTable(for identity: PluginIdentity) -> UnsafePointer<prism_shared_state_service_v1> {
        let table = UnsafeMutablePointer<prism_shared_state_service_v1>.allocate(capacity: 1)
        table.initialize(to: prism_shared_state_service_v1(
            struct_size: UInt32(MemoryLayout<prism_shared_state_service_v1>.size),
            get: unsafeBitCast(bind(stateLookupInterface, identity, stateGetTrampoline), to: type(of: table.pointee.get)),
            set: unsafeBitCast(bind(stateSetInterface, identity, stateSetTrampoline), to: type(of: table.pointee.set)),
            remove: unsafeBitCast(bind(stateLookupInterface, identity, stateRemoveTrampoline),
                                  to: type(of: table.pointee.remove)),
            window_take: unsafeBitCast(bind(stateTakeInterface, identity, stateTakeTrampoline),
                                       to: type(of: table.pointee.window_take)),
            window_adjust: unsafeBitCast(bind(stateAdjustInterface, identity, stateAdjustTrampoline),
                                         to: type(of: table.pointee.window_adjust)),
            set_value_capacity: unsafeBitCast(bind(stateCapacityInterface, identity, stateCapacityTrampoline),
                                              to: type(of: table.pointee.set_value_capacity))))
        return UnsafePointer(table)
    }
}

/// A plugin's callback and its user data, carried to whichever thread answers.
private struct StateCallback: @unchecked Sendable {
    let function: prism_state_callback?
    let userData: UnsafeMutableRawPointer?

    /// A status-only answer, or nil when the plugin passed no callback (fire and forget).
    var completion: SharedStateService.ValueAnswer? {
        guard function != nil else { return nil }
        let callback = self
        return { status, _ in callback.answer(status) }
    }

    func answer(_ status: prism_status, value: [UInt8]? = nil, flags: UInt32 = 0,
                windows: [prism_window_usage] = [])
    {
        guard let function else { return }
        (value ?? []).withUnsafeBufferPointer { bytes in
            windows.withUnsafeBufferPointer { usages in
                var result = prism_state_result(
                    struct_size: UInt32(MemoryLayout<prism_state_result>.size), status: status, flags: flags,
                    reserved: 0, value: prism_bytes(data: bytes.baseAddress, length: bytes.count),
                    windows: usages.baseAddress, window_count: usages.count)
                function(userData, &result)
            }
        }
    }
}

private let stateGetTrampoline: HostFunctionTables.Trampoline = { _, _, arguments, userData in
    let owner = identity(userData)
    let key = argument(arguments, 0, prism_string.self).hostString
    let callback = StateCallback(function: argument(arguments, 1, prism_state_callback?.self),
                                 userData: argument(arguments, 2, UnsafeMutableRawPointer?.self))
    owner.sharedState.get(namespace: owner.keyNamespace, key: key) { status, value in
        callback.answer(status, value: value)
    }
}

private let stateSetTrampoline: HostFunctionTables.Trampoline = { _, _, arguments, userData in
    let owner = identity(userData)
    let key = argument(arguments, 0, prism_string.self).hostString
    let value = Array(argument(arguments, 1, prism_bytes.self).hostBuffer)
    let callback = StateCallback(function: argument(arguments, 3, prism_state_callback?.self),
                                 userData: argument(arguments, 4, UnsafeMutableRawPointer?.self))
    let done = callback.completion
    owner.sharedState.set(namespace: owner.keyNamespace, key: key, value: value,
                          ttlMilliseconds: argument(arguments, 2, UInt64.self), done)
}

private let stateRemoveTrampoline: HostFunctionTables.Trampoline = { _, _, arguments, userData in
    let owner = identity(userData)
    let key = argument(arguments, 0, prism_string.self).hostString
    let callback = StateCallback(function: argument(arguments, 1, prism_state_callback?.self),
                                 userData: argument(arguments, 2, UnsafeMutableRawPointer?.self))
    let done = callback.completion
    owner.sharedState.remove(namespace: owner.keyNamespace, key: key, done)
}

private let stateTakeTrampoline: HostFunctionTables.Trampoline = { _, _, arguments, userData in
    let owner = identity(userData)
    let claims = argument(arguments, 0, UnsafePointer<prism_window_claim>?.self)
    let count = argument(arguments, 1, Int.self)
    let callback = StateCallback(function: argument(arguments, 2, prism_state_callback?.self),
                                 userData: argument(arguments, 3, UnsafeMutableRawPointer?.self))
    guard let claims, count > 0, count <= 64 else { return callback.answer(PRISM_ERROR_INVALID_REQUEST) }
    var requests: [WindowRequest] = []
    requests.reserveCapacity(count)
    for index in 0..<count {
        let claim = claims[index]
        // Costs and limits stay below 2^53 so that Redis's Lua (doubles) and this host agree exactly.
        guard claim.window_milliseconds >= 1000, claim.window_milliseconds <= 86_400_000, claim.cost >= 0,
              claim.cost <= WindowCounter.largestAmount, claim.limit <= WindowCounter.largestAmount
        else {
            return callback.answer(PRISM_ERROR_INVALID_REQUEST)
        }
        requests.append(WindowRequest(key: owner.scopedKey(claim.key), window: claim.window_milliseconds,
                                      limit: claim.limit, cost: claim.cost))
    }
    owner.sharedState.takeWindows(requests) { reply, localFallback in
        let usages = reply.windows.map { window in
            prism_window_usage(struct_size: UInt32(MemoryLayout<prism_window_usage>.size), granted: window.fits ? 1 : 0,
                               used: window.used, retry_after_milliseconds: window.retryAfterMilliseconds,
                               reset_milliseconds: window.resetMilliseconds, slot: window.slot)
        }
        callback.answer(reply.granted ? PRISM_OK : PRISM_ERROR_LIMIT,
                        flags: localFallback ? PRISM_STATE_LOCAL_FALLBACK : 0, windows: usages)
    }
}

private let stateAdjustTrampoline: HostFunctionTables.Trampoline = { _, _, arguments, userData in
    let owner = identity(userData)
    owner.sharedState.adjustWindow(key: owner.scopedKey(argument(arguments, 0, prism_string.self)),
                                   slot: argument(arguments, 2, UInt64.self),
                                   delta: min(max(argument(arguments, 3, Int64.self), -WindowCounter.largestAmount),
                                              WindowCounter.largestAmount))
}

private let stateCapacityTrampoline: HostFunctionTables.Trampoline = { _, _, arguments, userData in
    let owner = identity(userData)
    owner.sharedState.setValueCapacity(namespace: owner.keyNamespace, argument(arguments, 0, UInt64.self))
}
