import PluginKit
import PrismPluginABI
import PrismWire
import Synchronization

/// Exact-match response cache for chat completions and embeddings, kept in the host's shared
/// state (this process's memory with LRU eviction at `max_entries`, or Redis shared by every
/// replica).
///
/// The key is a SHA-256 of the API and the normalized request: every member that can change the
/// answer, objects with sorted keys, without `stream` / `stream_options` (a streamed and a
/// non-streamed request share one entry: the entry is the whole answer, replayed as a well-formed
/// stream when the client streams). Only successful answers are stored; a stream is stored once it
/// finished well, never partially. Per request: `x-prism-cache-namespace`, `x-prism-cache-ttl`
/// (seconds or a duration like 10m), `x-prism-cache-force-refresh: true`, `Cache-Control: no-store`.
/// Every answer carries `x-prism-cache: hit | miss | skip`.
final class CacheMiddleware: Middleware {
    private struct Pending {
        var api: String
        var key: String
        var ttlMilliseconds: UInt64
        var streaming: Bool
        var assembler = ChatStreamAssembler()
    }

    /// Who may be served an answer cached for another: only the same client key (the default,
    /// since prompts can carry private data), keys of the same owner, or everyone.
    enum Scope: String { case key, owner, global }

    private let enabled: Bool
    private let scope: Scope
    private let defaultTTLMilliseconds: UInt64
    private let state: SharedState?
    private let metrics: Metrics?
    private let host: PluginHost
    /// Misses whose answer is to be stored, by `RequestContext.requestKey`.
    private let pending = Mutex<[UInt: Pending]>([:])

    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {
        self.host = host
        enabled = try configuration.configurationSwitch("enabled", section: "cache")
        let scopeText = configuration["scope"]?.stringValue ?? "key"
        guard let scope = Scope(rawValue: scopeText) else {
            throw PluginError.configuration("cache.scope: expected key, owner or global, got '\(scopeText)'")
        }
        self.scope = scope
        var ttl: Int64 = 300_000
        if let text = configuration["default_ttl"]?.stringValue {
            guard let value = DurationText.milliseconds(text) else {
                throw PluginError.configuration("cache.default_ttl: invalid duration '\(text)'")
            }
            ttl = value
        } else if let seconds = configuration["default_ttl"]?.doubleValue {
            ttl = Int64(seconds * 1000)
        }
        defaultTTLMilliseconds = UInt64(max(ttl, 0))
        let maximumEntries = configuration["max_entries"]?.integerValue ?? 10_000
        state = host.sharedState
        metrics = host.metrics
        if enabled && state == nil {
            throw PluginError.configuration("the cache needs the host's prism.shared_state.v1 service (ABI 1.2)")
        }
        state?.setValueCapacity(UInt64(max(maximumEntries, 0)))
        if enabled {
            host.log(.info, "cache enabled: ttl \(defaultTTLMilliseconds) ms, at most \(maximumEntries) entries in memory")
        }
    }

    func onRequest(_ request: PluginRequest, context: RequestContext, localResponse: HTTPBuilder) -> MiddlewareAction {
        guard enabled, let state, request.api == "chat.completions" || request.api == "embeddings" else {
            return .proceed
        }
        if let control = request.header("cache-control")?.lowercased(), control.contains("no-store") {
            return skip(context)
        }
        var ttl = defaultTTLMilliseconds
        if let text = request.header("x-prism-cache-ttl") {
            guard let value = DurationText.milliseconds(text) else { return skip(context) }
            ttl = UInt64(value)
        }
        let namespace = request.header("x-prism-cache-namespace") ?? "default"
        // The body is parsed once: for the key, and for whether a replayed stream ends with usage.
        guard ttl > 0, isUsableNamespace(namespace), case let .object(members)? = try? JSONValue.parse(request.body) else {
            return skip(context)
        }
        let key = cacheKey(members, api: request.api, namespace: namespace + ":" + scopePart(context))
        let entry = Pending(api: request.api, key: key, ttlMilliseconds: ttl, streaming: request.isStreaming)
        let requestKey = context.requestKey
        if request.header("x-prism-cache-force-refresh")?.lowercased() == "true" {
            miss(entry, requestKey: requestKey, context: context)
            return .proceed
        }
        let decision = PendingDecision(context: context, localResponse: localResponse)
        let includeUsage = request.isStreaming
            && (members.last { $0.0 == "stream_options" }?.1["include_usage"]?.boolValue ?? false)
        state.get(key) { [self] lookup in
            switch lookup {
            case let .found(stored):
                if answer(stored, streaming: entry.streaming, includeUsage: includeUsage, into: decision.localResponse) {
                    decision.context.addResponseHeader("x-prism-cache", "hit")
                    metrics?.increment("prism_cache_hits_total", labels: [("api", entry.api)])
                    return decision.respond()
                }
                miss(entry, requestKey: requestKey, context: decision.context) // unreadable entry: replace it
            case .notFound:
                miss(entry, requestKey: requestKey, context: decision.context)
            case .unavailable:
                decision.context.addResponseHeader("x-prism-cache", "skip")
                metrics?.increment("prism_cache_skips_total", labels: [("reason", "store_unavailable")])
            }
            decision.proceed()
        }
        return .pause
    }

    func onResponse(_ request: PluginRequest, context: RequestContext, response: PluginResponse) {
        guard let entry = pending.withLock({ $0.removeValue(forKey: context.requestKey) }) else { return }
        guard (200..<300).contains(response.status), let state else { return }
        state.set(entry.key, Array(response.body), ttlMilliseconds: entry.ttlMilliseconds)
    }

    func onStreamEvent(_ request: PluginRequest, context: RequestContext, event: UnsafeRawBufferPointer) {
        pending.withLock { table in table[context.requestKey]?.assembler.add(event) }
    }

    func onComplete(_ request: PluginRequest, context: RequestContext, completion: Completion) {
        guard let entry = pending.withLock({ $0.removeValue(forKey: context.requestKey) }) else { return }
        // Streams are stored here, once they ended well; a broken stream ends with another status.
        guard entry.streaming, completion.status == 200, let state, let whole = entry.assembler.completion() else { return }
        state.set(entry.key, whole, ttlMilliseconds: entry.ttlMilliseconds)
    }

    // MARK: Helpers

    private func skip(_ context: RequestContext) -> MiddlewareAction {
        context.addResponseHeader("x-prism-cache", "skip")
        metrics?.increment("prism_cache_skips_total", labels: [("reason", "request")])
        return .proceed
    }

    private func miss(_ entry: Pending, requestKey: UInt, context: RequestContext) {
        pending.withLock { $0[requestKey] = entry }
        context.watchResponse()
        context.addResponseHeader("x-prism-cache", "miss")
        metrics?.increment("prism_cache_misses_total", labels: [("api", entry.api)])
    }

    /// Writes a stored answer for the client; false when it cannot be used.
    private func answer(_ stored: [UInt8], streaming: Bool, includeUsage: Bool, into response: HTTPBuilder) -> Bool {
        response.setStatus(200)
        guard streaming else {
            response.setHeader("content-type", "application/json")
            response.writeBody(stored)
            return true
        }
        guard let completion = try? JSONValue.parse(stored),
              let body = ChatCompletionReplay.streamBody(completion, includeUsage: includeUsage)
        else { return false }
        response.setHeader("content-type", "text/event-stream")
        response.setHeader("cache-control", "no-cache")
        response.writeBody(body)
        return true
    }

    /// The part of the cache key that keeps one client's answers from another (auth runs first and
    /// names the key; without auth every caller is the same anonymous client).
    private func scopePart(_ context: RequestContext) -> String {
        switch scope {
        case .global: return "*"
        case .key: return "k=" + (context.attribute("key.name") ?? "-")
        case .owner: return "o=" + (context.attribute("key.owner") ?? context.attribute("key.name").map { "k=" + $0 } ?? "-")
        }
    }

    private func isUsableNamespace(_ namespace: String) -> Bool {
        !namespace.isEmpty && namespace.utf8.count <= 128 && namespace.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// namespace:api:sha256(normalized body members).
    private func cacheKey(_ members: [(String, JSONValue)], api: String, namespace: String) -> String {
        let relevant = members.filter { $0.0 != "stream" && $0.0 != "stream_options" }
        var digest = SHA256()
        digest.update(api)
        digest.update([0])
        digest.update(CacheMiddleware.normalized(.object(relevant)).jsonBytes)
        return namespace + ":" + api + ":" + Hex.encode(digest.finalize())
    }

    /// Objects with their members sorted by key (and the last of duplicate keys kept), so that
    /// member order does not split the cache.
    static func normalized(_ value: JSONValue) -> JSONValue {
        switch value {
        case let .object(members):
            var latest: [String: JSONValue] = [:]
            for (key, member) in members { latest[key] = normalized(member) }
            return .object(latest.keys.sorted().map { ($0, latest[$0]!) })
        case let .array(items):
            return .array(items.map(normalized))
        default:
            return value
        }
    }
}

@c(prism_plugin_entry_v1)
public func prismPluginEntry(_ host: UnsafePointer<prism_host_api>?,
                             _ out: UnsafeMutablePointer<UnsafePointer<prism_plugin_descriptor>?>?) -> prism_status
{
    PluginExport.entry(host, out, id: "dev.prism.middleware.cache", version: "1.0.0",
                       components: [.middleware("cache", CacheMiddleware.self)])
}
