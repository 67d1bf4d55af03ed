import PluginKit
import PrismPluginABI
import PrismWire
import Synchronization

/// Requests-per-minute and tokens-per-minute limits: `rate_limiting.global_rpm` across all
/// clients, per client key the `rate_limit_rpm` / `rate_limit_tpm` that the auth middleware
/// publishes as request attributes, per end user (`rate_limiting.per_user`: each user, named by
/// `x-prism-user-id` or the body's `user`) and per model (`rate_limiting.per_model.<model>`). Every applicable limit is checked in one atomic window_take
/// of the host's shared state (one Redis round trip when replicas share Redis), all or none, so
/// the most restrictive limit wins and a refused request consumes nothing.
///
/// Tokens: an estimate (prompt characters / 4, plus max_tokens) is reserved before the call and
/// reconciled with the reported usage when the request completes, streams included.
final class RateLimitMiddleware: Middleware {
    private static let minute: UInt64 = 60_000

    private struct Reservation {
        var key: String
        var slot: UInt64
        var estimate: Int64
    }

    private enum LimitKind: Sendable, Equatable {
        case globalRequests, keyRequests, keyTokens, userRequests, userTokens, modelRequests, modelTokens

        var metricLabel: String {
            switch self {
            case .globalRequests: return "global_requests"
            case .keyRequests: return "key_requests"
            case .keyTokens: return "key_tokens"
            case .userRequests: return "user_requests"
            case .userTokens: return "user_tokens"
            case .modelRequests: return "model_requests"
            case .modelTokens: return "model_tokens"
            }
        }

        var countsTokens: Bool { self == .keyTokens || self == .userTokens || self == .modelTokens }
    }

    /// A requests-per-minute and tokens-per-minute pair (0: no limit).
    private struct Limits {
        var rpm: Int64 = 0
        var tpm: Int64 = 0

        init(_ value: JSONValue?) {
            rpm = max(0, value?["rpm"]?.integerValue ?? 0)
            tpm = max(0, value?["tpm"]?.integerValue ?? 0)
        }

        var isEmpty: Bool { rpm == 0 && tpm == 0 }
    }

    private let enabled: Bool
    private let globalRequestsPerMinute: Int64
    private let perUser: Limits
    private let perModel: [String: Limits]
    private let state: SharedState?
    private let metrics: Metrics?
    private let host: PluginHost
    /// Token reservations to reconcile, by `RequestContext.requestKey`.
    private let reservations = Mutex<[UInt: [Reservation]]>([:])

    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {
        self.host = host
        enabled = try configuration.configurationSwitch("enabled", section: "rate_limiting")
        globalRequestsPerMinute = max(0, configuration["global_rpm"]?.integerValue ?? 0)
        perUser = Limits(configuration["per_user"])
        var perModel: [String: Limits] = [:]
        for (model, value) in configuration["per_model"]?.objectValue ?? [] {
            let limits = Limits(value)
            if !limits.isEmpty { perModel[model] = limits }
        }
        self.perModel = perModel
        state = host.sharedState
        metrics = host.metrics
        if enabled && state == nil {
            throw PluginError.configuration("rate limiting needs the host's prism.shared_state.v1 service (ABI 1.2)")
        }
        if enabled {
            host.log(.info, "rate limiting enabled: global \(globalRequestsPerMinute == 0 ? "unlimited" : "\(globalRequestsPerMinute) rpm"), per-key limits from auth.keys")
        }
    }

    func onRequest(_ request: PluginRequest, context: RequestContext, localResponse: HTTPBuilder) -> MiddlewareAction {
        // The model list costs an upstream nothing: it is not counted.
        guard enabled, let state, request.api != "models.list" else { return .proceed }
        var claims: [WindowClaim] = []
        var kinds: [LimitKind] = []
        if globalRequestsPerMinute > 0 {
            claims.append(WindowClaim(key: "requests:*", windowMilliseconds: Self.minute, limit: globalRequestsPerMinute, cost: 1))
            kinds.append(.globalRequests)
        }
        let keyName = context.attribute("key.name")
        if let keyName {
            if let limit = context.attribute("key.rate_limit_rpm").flatMap(Int64.init), limit > 0 {
                claims.append(WindowClaim(key: "requests:key:" + keyName, windowMilliseconds: Self.minute, limit: limit, cost: 1))
                kinds.append(.keyRequests)
            }
            if let limit = context.attribute("key.rate_limit_tpm").flatMap(Int64.init), limit > 0 {
                claims.append(WindowClaim(key: "tokens:key:" + keyName, windowMilliseconds: Self.minute, limit: limit,
                                          cost: TokenEstimate.of(request)))
                kinds.append(.keyTokens)
            }
        }
        // End users: each one named by the client, within the key's own limits.
        if !perUser.isEmpty, let user = Self.user(of: request) {
            addPair(perUser, key: "user:" + user, requests: .userRequests, tokens: .userTokens)
        }
        if let limits = perModel[request.model] {
            addPair(limits, key: "model:" + request.model, requests: .modelRequests, tokens: .modelTokens)
        }
        func addPair(_ limits: Limits, key: String, requests: LimitKind, tokens: LimitKind) {
            if limits.rpm > 0 {
                claims.append(WindowClaim(key: "requests:" + key, windowMilliseconds: Self.minute, limit: limits.rpm, cost: 1))
                kinds.append(requests)
            }
            if limits.tpm > 0 {
                claims.append(WindowClaim(key: "tokens:" + key, windowMilliseconds: Self.minute, limit: limits.tpm,
                                          cost: TokenEstimate.of(request)))
                kinds.append(tokens)
            }
        }
        guard !claims.isEmpty else { return .proceed }
        let user = Self.user(of: request)
        let model = request.model
        let decision = PendingDecision(context: context, localResponse: localResponse)
        let requestID = request.requestID
        let requestKey = context.requestKey
        state.takeWindows(claims) { [self, claims, kinds] outcome in
            guard outcome.windows.count == claims.count else {
                // Not answerable at all (the host falls back to local counters, so this is a
                // malformed claim): let the request through rather than fail every client.
                host.log(.error, "rate limit check failed; request \(requestID) let through")
                return decision.proceed()
            }
            writeHeaders(claims, kinds, outcome.windows, context: decision.context)
            if outcome.status == .granted {
                let held = kinds.indices.filter { kinds[$0].countsTokens }.map { index in
                    Reservation(key: claims[index].key, slot: outcome.windows[index].slot, estimate: claims[index].cost)
                }
                if !held.isEmpty { reservations.withLock { $0[requestKey] = held } }
                return decision.proceed()
            }
            refuse(claims, kinds, outcome.windows, keyName: keyName, user: user, model: model,
                   response: decision.localResponse)
            decision.respond()
        }
        return .pause
    }

    func onComplete(_ request: PluginRequest, context: RequestContext, completion: Completion) {
        guard let held = reservations.withLock({ $0.removeValue(forKey: context.requestKey) }), let state,
              let estimate = held.first?.estimate
        else { return }
        let reported = Int64(clamping: completion.usage.inputTokens + completion.usage.outputTokens)
        let actual: Int64
        if !(200..<300).contains(completion.status) || completion.provider.isEmpty {
            actual = 0 // failed, or answered without a provider (a cache hit): no tokens spent
        } else {
            actual = reported > 0 ? reported : estimate // usage not reported: keep the estimate
        }
        for reservation in held {
            state.adjustWindow(reservation.key, windowMilliseconds: Self.minute, slot: reservation.slot,
                               delta: actual - reservation.estimate)
        }
    }

    /// The end user a request is for: `x-prism-user-id`, else the body's `user` (OpenAI's field).
    static func user(of request: PluginRequest) -> String? {
        if let header = request.header("x-prism-user-id"), !header.isEmpty { return String(header.prefix(256)) }
        guard request.body.count > 0, let body = try? JSONValue.parse(request.body),
              let user = body["user"]?.stringValue, !user.isEmpty
        else { return nil }
        return String(user.prefix(256))
    }

    // MARK: Answers

    /// OpenAI's headers: the request limit and the token limit with the least room left (the
    /// ones that bind).
    private func writeHeaders(_ claims: [WindowClaim], _ kinds: [LimitKind], _ windows: [WindowUsage],
                              context: RequestContext)
    {
        var tightest: Int?
        for index in claims.indices where !kinds[index].countsTokens {
            if let current = tightest, remaining(claims[current], windows[current]) <= remaining(claims[index], windows[index]) {
                continue
            }
            tightest = index
        }
        if let index = tightest {
            context.addResponseHeader("x-ratelimit-limit-requests", String(claims[index].limit))
            context.addResponseHeader("x-ratelimit-remaining-requests", String(remaining(claims[index], windows[index])))
            context.addResponseHeader("x-ratelimit-reset-requests", Self.formatDuration(windows[index].resetMilliseconds))
        }
        var tightestTokens: Int?
        for index in claims.indices where kinds[index].countsTokens {
            if let current = tightestTokens, remaining(claims[current], windows[current]) <= remaining(claims[index], windows[index]) {
                continue
            }
            tightestTokens = index
        }
        if let index = tightestTokens {
            context.addResponseHeader("x-ratelimit-limit-tokens", String(claims[index].limit))
            context.addResponseHeader("x-ratelimit-remaining-tokens", String(remaining(claims[index], windows[index])))
            context.addResponseHeader("x-ratelimit-reset-tokens", Self.formatDuration(windows[index].resetMilliseconds))
        }
    }

    private func remaining(_ claim: WindowClaim, _ window: WindowUsage) -> Int64 { max(0, claim.limit - window.used) }

    private func refuse(_ claims: [WindowClaim], _ kinds: [LimitKind], _ windows: [WindowUsage], keyName: String?,
                        user: String?, model: String, response: HTTPBuilder)
    {
        var retryAfter: UInt64 = 0
        var reasons: [String] = []
        for index in claims.indices where !windows[index].granted {
            retryAfter = max(retryAfter, windows[index].retryAfterMilliseconds)
            let claim = claims[index]
            metrics?.increment("prism_rate_limit_exceeded_total", labels: [("limit", kinds[index].metricLabel)])
            switch kinds[index] {
            case .globalRequests:
                reasons.append("the gateway-wide limit of \(claim.limit) requests per minute")
            case .keyRequests:
                reasons.append("key '\(keyName ?? "-")' is limited to \(claim.limit) requests per minute")
            case .userRequests:
                reasons.append("user '\(user ?? "-")' is limited to \(claim.limit) requests per minute")
            case .modelRequests:
                reasons.append("model '\(model)' is limited to \(claim.limit) requests per minute")
            case .keyTokens, .userTokens, .modelTokens:
                let detail = claim.cost > claim.limit
                    ? " (this request alone needs an estimated \(claim.cost), more than the whole limit)"
                    : " (this request needs an estimated \(claim.cost), \(remaining(claim, windows[index])) left)"
                let who = kinds[index] == .keyTokens ? "key '\(keyName ?? "-")'"
                    : kinds[index] == .userTokens ? "user '\(user ?? "-")'" : "model '\(model)'"
                reasons.append("\(who) is limited to \(claim.limit) tokens per minute" + detail)
            }
        }
        let seconds = max(1, (retryAfter + 999) / 1000)
        response.setStatus(429)
        response.setHeader("content-type", "application/json")
        response.setHeader("retry-after", String(seconds))
        response.writeBody(OpenAIErrorBody.make(
            message: "Rate limit exceeded: \(reasons.joined(separator: "; ")). Retry after \(seconds) s.",
            type: "rate_limit_exceeded", code: "rate_limit_exceeded"))
    }

    /// OpenAI's reset format: "850ms", "12s", "1.5s", "6m0s".
    static func formatDuration(_ milliseconds: UInt64) -> String {
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        let minutes = milliseconds / 60_000
        let rest = milliseconds % 60_000
        var seconds = String(rest / 1000)
        if minutes == 0, rest % 1000 != 0 {
            let tenths = (rest % 1000) / 100
            if tenths > 0 { seconds += ".\(tenths)" }
        }
        return minutes > 0 ? "\(minutes)m\(seconds)s" : "\(seconds)s"
    }
}

/// A cheap upper-leaning token estimate for a request before it runs: about 4 characters per
/// token of the prompt text, 4 tokens of overhead per message, plus the output cap when given.
enum TokenEstimate {
    static func of(_ request: PluginRequest) -> Int64 {
        guard let body = try? JSONValue.parse(request.body) else { return Int64(request.body.count / 4 + 1) }
        var characters = 0
        var overhead = 0
        for message in body["messages"]?.arrayValue ?? [] {
            overhead += 4
            characters += OpenAIShapes.text(ofContent: message["content"]).utf8.count
        }
        switch body["input"] {
        case let .string(text)?: characters += text.utf8.count
        case let .array(items)?: for item in items { characters += item.stringValue?.utf8.count ?? 0 }
        default: break
        }
        // Capped far above any real limit, so that absurd values cannot overflow anything.
        let output = min(max(0, body["max_completion_tokens"]?.integerValue ?? body["max_tokens"]?.integerValue ?? 0), 1 << 40)
        return Int64((characters + 3) / 4 + overhead) + output
    }
}

@c(prism_plugin_entry_v1)
public func prismPluginEntry(_ host: UnsafePointer<prism_host_api>?,
                             _ out: UnsafeMutablePointer<UnsafePointer<prism_plugin_descriptor>?>?) -> prism_status
{
    PluginExport.entry(host, out, id: "dev.prism.middleware.rate-limit", version: "1.0.0",
                       components: [.middleware("rate_limit", RateLimitMiddleware.self)])
}
