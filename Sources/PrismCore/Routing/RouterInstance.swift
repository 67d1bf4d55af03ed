import PrismPluginABI
import PrismWire

/// The configured routing strategy.
public final class RouterInstance: @unchecked Sendable {
    public let name: String
    let table: UnsafePointer<prism_router_v1>
    let instance: UnsafeMutableRawPointer

    /// `configuration` is the `routing` section (prices, race width, ... for the strategy to read).
    init(name: String, component: LoadedComponent<prism_router_v1>, registry: PluginRegistry,
         configuration: JSONValue, scope: String = "") throws(InstanceError)
    {
        self.name = name
        table = component.table
        let host = registry.hostTable(pluginID: component.pluginID, component: component.name, instance: name, scope: scope)
        instance = try createInstance(table.pointee.instance_new, host: host, name: name, configuration: configuration)
    }

    deinit { table.pointee.instance_destroy?(instance) }

    /// Candidate indices in the order to try; nil when the strategy failed.
    func select(_ request: RequestView, candidates: [RouteCandidate], health: HealthRegistry) -> [Int]? {
        var order = [UInt32](repeating: 0, count: candidates.count)
        var count = candidates.count
        let error = ErrorCapture()
        let status = withCandidateArray(candidates, health: health) { array in
            order.withUnsafeMutableBufferPointer { buffer in
                error.withSink { sink in
                    table.pointee.select?(instance, request.pointer, array, candidates.count, buffer.baseAddress, &count, sink)
                        ?? PRISM_ERROR_INTERNAL
                }
            }
        }
        guard status == PRISM_OK else { return nil }
        return order.prefix(min(count, candidates.count)).map { Int($0) }
    }

    func feedback(_ completion: UnsafePointer<prism_completion>) {
        table.pointee.feedback?(instance, completion)
    }

    /// How many candidates to race (1 = one at a time). Read only when the plugin's table is large
    /// enough to have the 1.1 field.
    var parallelAttempts: Int {
        let size = Int(table.pointee.struct_size)
        guard size >= MemoryLayout<prism_router_v1>.offset(of: \prism_router_v1.parallel_attempts)! + 8,
              let function = table.pointee.parallel_attempts
        else { return 1 }
        return max(1, Int(function(instance)))
    }

    private func withCandidateArray<Result>(_ candidates: [RouteCandidate], health: HealthRegistry,
                                            _ body: (UnsafePointer<prism_candidate>) -> Result) -> Result
    {
        // Names are kept alive by `candidates` (their providers' settings) for the whole call.
        var views: [prism_candidate] = []
        var keepAlive: [UnsafeMutableRawPointer] = []
        defer { keepAlive.forEach { $0.deallocate() } }
        func copy(_ text: String) -> prism_string {
            let count = text.utf8.count
            let storage = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 1)
            var text = text
            text.withUTF8 { if let base = $0.baseAddress { storage.copyMemory(from: base, byteCount: count) } }
            keepAlive.append(storage)
            return prism_string(data: storage.assumingMemoryBound(to: CChar.self), length: count)
        }
        for candidate in candidates {
            let providerHealth = health.byProvider[candidate.provider.settings.name]
            let state = providerHealth?.snapshot
            views.append(prism_candidate(
                struct_size: UInt32(MemoryLayout<prism_candidate>.size), weight: candidate.weight,
                provider: copy(candidate.provider.settings.name), model: copy(candidate.upstreamModel),
                healthy: (providerHealth?.isAvailable ?? true) ? 1 : 0, reserved: 0,
                in_flight: candidate.provider.inFlightCount,
                latency_milliseconds: state?.latencyMilliseconds ?? 0, error_rate: state?.errorRate ?? 0))
        }
        return views.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
