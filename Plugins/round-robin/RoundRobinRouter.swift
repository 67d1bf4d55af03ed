import PluginKit
import PrismPluginABI
import PrismWire
import Synchronization

/// The default routing strategy: healthy candidates in turn, then the unhealthy ones as a last
/// resort (so a request still has somewhere to go when the host's health view is pessimistic).
final class RoundRobinRouter: RoutingStrategy {
    static let configurationKeys: [String]? = []

    private let counter = Atomic<UInt64>(0)

    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {}

    func select(_ request: PluginRequest, candidates: [Candidate]) throws(PluginError) -> [Int] {
        guard !candidates.isEmpty else { return [] }
        let turn = Int(counter.add(1, ordering: .relaxed).oldValue % UInt64(candidates.count))
        var healthy: [Int] = []
        var unhealthy: [Int] = []
        for offset in 0..<candidates.count {
            let index = (turn + offset) % candidates.count
            if candidates[index].healthy { healthy.append(index) } else { unhealthy.append(index) }
        }
        return healthy + unhealthy
    }
}

@c(prism_plugin_entry_v1)
public func prismPluginEntry(_ host: UnsafePointer<prism_host_api>?,
                             _ out: UnsafeMutablePointer<UnsafePointer<prism_plugin_descriptor>?>?) -> prism_status
{
    PluginExport.entry(host, out, id: "dev.prism.router.round-robin", version: "1.0.0",
                       components: [.router("round-robin", RoundRobinRouter.self)])
}
