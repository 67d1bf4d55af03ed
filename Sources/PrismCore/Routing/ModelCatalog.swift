import PrismWire
import Synchronization

/// One deployment that can serve a request: a provider instance and the model name it knows.
struct RouteCandidate {
    let provider: ProviderInstance
    let upstreamModel: String
    var weight: UInt32
    /// Lower is tried first; the strategy orders candidates within one priority.
    var priority: Int = 0
}

/// Which providers serve which model: the configured `models` lists, the models discovered from
/// self-hosted servers (which change while the gateway runs: a model pulled later appears), and
/// the model families the provider plugins declare. Read on every request, from every thread.
final class ModelCatalog: Sendable {
    /// The names models are listed and resolved by, at one moment. Replaced whole when discovery
    /// finds something new, so a reader never sees half an update.
    final class Snapshot: Sendable {
        let candidatesByModel: [String: [RouteCandidate]]
        /// Model ids in listing order, with the provider that owns each.
        let listing: [(model: String, owner: String)]
        /// The `GET /v1/models` answer for a caller that may use every model.
        let modelsBody: [UInt8]

        init(candidatesByModel: [String: [RouteCandidate]], listing: [(model: String, owner: String)], created: Int64) {
            self.candidatesByModel = candidatesByModel
            self.listing = listing
            modelsBody = ModelCatalog.modelsResponse(listing, created: created)
        }
    }

    let providers: [ProviderInstance]
    let providersByName: [String: ProviderInstance]
    /// Providers that declared model families, in configuration order.
    private let familyProviders: [ProviderInstance]
    /// Their patterns by the first byte a matching name must have (`claude-*` under `c`), and
    /// those that start with `*`: a name is checked only against patterns it could match.
    private let patternsByFirstByte: [UInt8: [(provider: Int, pattern: ModelPattern)]]
    private let patternsStartingWithWildcard: [(provider: Int, pattern: ModelPattern)]
    private let configured: [(model: String, provider: ProviderInstance)]
    private let discovered = Mutex<[String: [String]]>([:]) // provider name -> model ids
    private let current: Mutex<Snapshot>
    private let created: Int64

    init(providers: [ProviderInstance], created: Int64 = Int64(wallClockMilliseconds() / 1000)) {
        self.providers = providers
        self.created = created
        providersByName = Dictionary(providers.map { ($0.settings.name, $0) }, uniquingKeysWith: { first, _ in first })
        let familyProviders = providers.filter { !$0.modelPatterns.isEmpty }
        self.familyProviders = familyProviders
        var byFirstByte: [UInt8: [(provider: Int, pattern: ModelPattern)]] = [:]
        var wildcardFirst: [(provider: Int, pattern: ModelPattern)] = []
        for (index, provider) in familyProviders.enumerated() {
            for pattern in provider.modelPatterns {
                if let first = pattern.text.utf8.first, first != UInt8(ascii: "*") {
                    byFirstByte[first, default: []].append((index, pattern))
                } else {
                    wildcardFirst.append((index, pattern))
                }
            }
        }
        patternsByFirstByte = byFirstByte
        patternsStartingWithWildcard = wildcardFirst
        configured = providers.flatMap { provider in provider.settings.models.map { ($0, provider) } }
        current = Mutex(ModelCatalog.build(configured, discovered: [:], providers: providers, created: created))
    }

    var snapshot: Snapshot { current.withLock { $0 } }

    /// Replaces what discovery found for `provider`; true when the list changed.
    @discardableResult
    func setDiscovered(_ models: [String], for provider: ProviderInstance) -> Bool {
        let all = discovered.withLock { lists -> [String: [String]]? in
            guard lists[provider.settings.name] != models else { return nil }
            lists[provider.settings.name] = models
            return lists
        }
        guard let all else { return false }
        let next = ModelCatalog.build(configured, discovered: all, providers: providers, created: created)
        current.withLock { $0 = next }
        return true
    }

    private static func build(_ configured: [(model: String, provider: ProviderInstance)], discovered: [String: [String]],
                              providers: [ProviderInstance], created: Int64) -> Snapshot
    {
        var candidates: [String: [RouteCandidate]] = [:]
        var listing: [(model: String, owner: String)] = []
        func add(_ model: String, _ provider: ProviderInstance) {
            var list = candidates[model, default: []]
            guard !list.contains(where: { $0.provider === provider }) else { return }
            list.append(RouteCandidate(provider: provider, upstreamModel: model, weight: 1))
            candidates[model] = list
            listing.append((model, provider.settings.name))
        }
        for (model, provider) in configured { add(model, provider) }
        for provider in providers {
            for model in discovered[provider.settings.name] ?? [] { add(model, provider) }
        }
        return Snapshot(candidatesByModel: candidates, listing: listing, created: created)
    }

    /// True when a `models` list or discovery names the model.
    func isListed(_ model: String) -> Bool { snapshot.candidatesByModel[model] != nil }

    /// The candidates for a client's model, in the order the README states: a `models` list (or
    /// discovery) names it; else the `provider/model` form; else every provider whose declared
    /// family matches it (model names may contain '/', so the list is asked first).
    func candidates(for model: String) -> [RouteCandidate] {
        if let listed = snapshot.candidatesByModel[model] { return listed }
        if let slash = model.firstIndex(of: "/") {
            let upstreamModel = String(model[model.index(after: slash)...])
            if !upstreamModel.isEmpty, let provider = providersByName[String(model[..<slash])] {
                return [RouteCandidate(provider: provider, upstreamModel: upstreamModel, weight: 1)]
            }
        }
        return familyCandidates(for: model)
    }

    /// The providers whose declared families include `model`, in configuration order.
    func familyCandidates(for model: String) -> [RouteCandidate] {
        guard !familyProviders.isEmpty else { return [] }
        var name = model
        let matched: [Int] = name.withUTF8 { utf8 in
            let bytes = UnsafeRawBufferPointer(utf8)
            guard let first = bytes.first else { return [] }
            var matched: [Int] = []
            func scan(_ patterns: [(provider: Int, pattern: ModelPattern)]) {
                for entry in patterns where matched.last != entry.provider && !matched.contains(entry.provider)
                    && entry.pattern.matches(bytes)
                {
                    matched.append(entry.provider)
                }
            }
            if let candidates = patternsByFirstByte[first] { scan(candidates) }
            scan(patternsStartingWithWildcard)
            return matched
        }
        // In configuration order, like every other list of candidates.
        return matched.sorted().map { RouteCandidate(provider: familyProviders[$0], upstreamModel: model, weight: 1) }
    }

    /// The families configured providers declare, for an error message: `anthropic: claude-*`.
    var familySummary: String {
        familyProviders.prefix(6).map { "\($0.settings.name): \($0.modelPatterns.prefix(3).map(\.text).joined(separator: ", "))" }
            .joined(separator: "; ")
    }

    /// The OpenAI `GET /v1/models` answer, for the models `allowed` admits (nil: every one).
    func modelsBody(allowed: Set<String>?) -> [UInt8] {
        let snapshot = self.snapshot
        guard let allowed else { return snapshot.modelsBody }
        return ModelCatalog.modelsResponse(snapshot.listing.filter { allowed.contains($0.model) }, created: created)
    }

    /// One model as `GET /v1/models/{id}` answers it: listed, or resolvable (family, provider/model).
    func modelObject(_ id: String) -> [UInt8]? {
        let owner = snapshot.listing.first { $0.model == id }?.owner ?? candidates(for: id).first?.provider.settings.name
        guard let owner else { return nil }
        var writer = JSONWriter(capacity: 128)
        ModelCatalog.write(model: id, owner: owner, created: created, to: &writer)
        return writer.bytes
    }

    static func modelsResponse(_ listing: [(model: String, owner: String)], created: Int64) -> [UInt8] {
        var writer = JSONWriter(capacity: 64 * listing.count + 32)
        writer.beginObject()
        writer.string("object", "list")
        writer.key("data")
        writer.beginArray()
        for entry in listing { write(model: entry.model, owner: entry.owner, created: created, to: &writer) }
        writer.endArray()
        writer.endObject()
        return writer.bytes
    }

    private static func write(model: String, owner: String, created: Int64, to writer: inout JSONWriter) {
        writer.beginObject()
        writer.string("id", model)
        writer.string("object", "model")
        writer.integer("created", created)
        writer.string("owned_by", owner)
        writer.endObject()
    }
}
