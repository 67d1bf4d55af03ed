import PrismPluginABI

/// Turns a client's model into the ordered deployments to try: `model_map` aliases first, then
/// `routing.targets` or the providers' `models` lists (or `provider/model`), the provider lock,
/// weights and priorities, and the strategy plugin's ranking with the host's live statistics.
final class RoutePlanner: Sendable {
    let settings: RoutingSettings
    let catalog: ModelCatalog
    let health: HealthRegistry
    let router: RouterInstance?
    /// Shown in `x-prism-routing-strategy`.
    let strategyName: String

    init(settings: RoutingSettings, catalog: ModelCatalog, health: HealthRegistry, router: RouterInstance?) {
        self.settings = settings
        self.catalog = catalog
        self.health = health
        self.router = router
        strategyName = router?.name ?? "config-order"
    }

    /// The model an alias stands for (aliases may chain, up to a few hops).
    func resolve(_ model: String) -> String {
        var current = model
        for _ in 0..<8 {
            guard let next = settings.modelMap[current], next != current else { break }
            current = next
        }
        return current
    }

    /// Every deployment that serves `model`, optionally pinned to one provider.
    func candidates(for model: String, lockedTo lock: String?) -> [RouteCandidate] {
        var list: [RouteCandidate]
        if let targets = settings.targets[model] {
            list = targets.compactMap { target in
                guard let provider = catalog.providersByName[target.provider] else { return nil }
                return RouteCandidate(provider: provider, upstreamModel: target.modelOverride ?? model,
                                      weight: target.weight ?? settings.weights[target.provider] ?? 1,
                                      priority: target.priority)
            }
        } else {
            list = catalog.candidates(for: model).map { candidate in
                var weighted = candidate
                weighted.weight = settings.weights[candidate.provider.settings.name] ?? candidate.weight
                return weighted
            }
        }
        if let lock, !lock.isEmpty {
            // A lock only narrows the deployments that serve the model; it never sends the model
            // to a provider that does not serve it (a key allowed `m` could reach any provider).
            list = list.filter { $0.provider.settings.name == lock }
        }
        return list
    }

    /// Candidates in the order to try: priorities ascending, the strategy's ranking within each.
    func rank(_ candidates: [RouteCandidate], request: RequestView) -> [RouteCandidate] {
        guard candidates.count > 1 else { return candidates }
        let priorities = Set(candidates.map(\.priority)).sorted()
        var ordered: [RouteCandidate] = []
        for priority in priorities {
            let group = candidates.filter { $0.priority == priority }
            guard group.count > 1, let router, let order = router.select(request, candidates: group, health: health),
                  !order.isEmpty
            else {
                ordered += group
                continue
            }
            var seen = Set<Int>()
            for index in order where index < group.count && seen.insert(index).inserted { ordered.append(group[index]) }
        }
        return ordered
    }

    /// How many candidates to try at once (the strategy's race width).
    var raceWidth: Int { router?.parallelAttempts ?? 1 }

    func fallbacks(for model: String) -> [String] { settings.modelFallbacks[model] ?? [] }
}
