import PrismPluginABI

/// Makes the routing decision a request makes, without sending anything: alias resolution,
/// candidates, the strategy plugin's ranking through the C ABI (with live statistics), circuit
/// admission, and the outcome reported back (health and router feedback). `prism-routing-bench`
/// times it; it is also a cheap way to see what a model routes to.
public struct RoutingProbe {
    let gateway: Gateway
    let view: RequestView

    public init(gateway: Gateway, model: String) {
        self.gateway = gateway
        view = RequestView(api: "chat.completions", method: "POST", path: "/v1/chat/completions", headers: [],
                           body: Array(#"{"model":"x","messages":[]}"#.utf8), model: model, requestID: "probe")
    }

    /// Routes once; returns the chosen provider's name (nil when nothing is routable).
    @discardableResult
    public func decide() -> String? {
        let planner = gateway.planner
        let model = planner.resolve(view.pointer.pointee.model.hostString)
        let ranked = planner.rank(planner.candidates(for: model, lockedTo: nil), request: view)
        for candidate in ranked {
            guard let health = gateway.health.byProvider[candidate.provider.settings.name], health.admit() else { continue }
            health.record(failed: false, latencyMilliseconds: 1)
            if let router = planner.router {
                withCompletion(status: 200, provider: candidate.provider.settings.name, model: candidate.upstreamModel,
                               latencyNanoseconds: 1_000_000) { router.feedback($0) }
            }
            return candidate.provider.settings.name
        }
        return nil
    }
}
