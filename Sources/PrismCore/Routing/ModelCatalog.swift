import PrismWire

/// One deployment that can serve a request: a provider instance and the model name it knows.
struct RouteCandidate {
    let provider: ProviderInstance
    let upstreamModel: String
    var weight: UInt32
    /// Lower is tried first; the strategy orders candidates within one priority.
    var priority: Int = 0
}

/// Which providers serve which model. Built at startup (configured `models` lists plus models
/// discovered from self-hosted servers) and read-only afterwards.
final class ModelCatalog: @unchecked Sendable {
    private(set) var candidatesByModel: [String: [RouteCandidate]] = [:]
    private(set) var providersByName: [String: ProviderInstance] = [:]
    /// Model ids in listing order, with the provider that owns each.
    private(set) var listing: [(model: String, owner: String)] = []

    init(providers: [ProviderInstance]) {
        for provider in providers {
            providersByName[provider.settings.name] = provider
            for model in provider.settings.models { add(model, provider) }
        }
    }

    func add(_ model: String, _ provider: ProviderInstance) {
        var list = candidatesByModel[model, default: []]
        guard !list.contains(where: { $0.provider === provider }) else { return }
        list.append(RouteCandidate(provider: provider, upstreamModel: model, weight: 1))
        candidatesByModel[model] = list
        listing.append((model, provider.settings.name))
    }

    /// The candidates for a client's model: a configured name first (model names may contain '/'),
    /// then the `provider/model` form.
    func candidates(for model: String) -> [RouteCandidate] {
        if let configured = candidatesByModel[model] { return configured }
        guard let slash = model.firstIndex(of: "/") else { return [] }
        let providerName = String(model[..<slash])
        let upstreamModel = String(model[model.index(after: slash)...])
        guard !upstreamModel.isEmpty, let provider = providersByName[providerName] else { return [] }
        return [RouteCandidate(provider: provider, upstreamModel: upstreamModel, weight: 1)]
    }

    /// The OpenAI `GET /v1/models` answer.
    func modelsResponse(created: Int64) -> [UInt8] {
        var writer = JSONWriter(capacity: 64 * listing.count + 32)
        writer.beginObject()
        writer.string("object", "list")
        writer.key("data")
        writer.beginArray()
        for entry in listing {
            writer.beginObject()
            writer.string("id", entry.model)
            writer.string("object", "model")
            writer.integer("created", created)
            writer.string("owned_by", entry.owner)
            writer.endObject()
        }
        writer.endArray()
        writer.endObject()
        return writer.bytes
    }
}
