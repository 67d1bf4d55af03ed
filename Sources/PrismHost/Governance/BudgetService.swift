import Logging
import PrismWire
import Synchronization

/// Budgets that change while the gateway runs (the admin API's keys' own), by key name.
package protocol KeyBudgetSource: Sendable {
    /// Changes whenever the budgets may have.
    var version: UInt64 { get }
    func budgets(of organization: String) -> [String: BudgetLimit]
}

/// Budgets at work: before a request is routed, one read of the counters of every budget it falls
/// under (one MGET on Redis, a dictionary look-up in memory); after it completed with a cost, one
/// atomic add to each (off the request's path). Spend is counted in nano-dollars in the shared
/// state, so with Redis every replica holds the same budget exactly.

package final class BudgetService: Sendable {
    /// config.yaml's budgets (or an organization's).
    private let configured: BudgetSettings
    /// The admin API's keys' own budgets, which change without a reload (nil: none).
    private let keyBudgets: (any KeyBudgetSource)?
    private let organization: String
    /// `configured` with the key budgets of `keyBudgets` at `version`.
    private let merged: Mutex<(version: UInt64, settings: BudgetSettings)>
    private let state: SharedStateService
    private let logger: Logger
    private let clock: @Sendable () -> UInt64
    /// Before every counter key: an organization's budgets count apart from the file's.
    private let counterPrefix: String

    package init(settings: BudgetSettings, state: SharedStateService, logger: Logger, counterPrefix: String = "",
         keyBudgets: (any KeyBudgetSource)? = nil, organization: String = "",
         clock: @escaping @Sendable () -> UInt64 = { wallClockMilliseconds() })
    {
        configured = settings
        self.keyBudgets = keyBudgets
        self.organization = organization
        merged = Mutex((UInt64.max, settings))
        self.counterPrefix = counterPrefix
        self.state = state
        self.logger = logger
        self.clock = clock
    }

    /// The budgets in force: the configured ones, and a key's own budget (admin API) winning over
    /// one of the same name in the file. Re-merged only after the key table changed.
    package var settings: BudgetSettings {
        guard let keyBudgets else { return configured }
        let version = keyBudgets.version
        return merged.withLock { cache in
            if cache.version != version {
                var settings = configured
                for (name, limit) in keyBudgets.budgets(of: organization) { settings.keys[name] = limit }
                cache = (version, settings)
            }
            return cache.settings
        }
    }

    /// The claims of `subject` now and whether spend so far refuses the request.
    package func check(_ subject: BudgetSubject, _ done: @escaping @Sendable ([BudgetClaim], BudgetDecision) -> Void) {
        let claims = settings.claims(for: subject, now: clock())
        guard !claims.isEmpty else { return done([], .allow) }
        state.readCounters(counterKeys(claims)) { values, _ in
            let decision = BudgetSettings.decide(claims, spent: values)
            if case let .refuse(claim, _) = decision { GatewayMetrics.shared.recordBudgetRefusal(scope: claim.scope.rawValue) }
            done(claims, decision)
        }
    }

    private func counterKeys(_ claims: [BudgetClaim]) -> [String] {
        counterPrefix.isEmpty ? claims.map(\.counterKey) : claims.map { counterPrefix + $0.counterKey }
    }

    /// Adds a request's cost to its budgets; warns (log and metric) at the threshold and the limit.
    package func record(_ claims: [BudgetClaim], cost: Double) {
        let nano = Int64((cost * 1_000_000_000).rounded())
        guard nano > 0, !claims.isEmpty else { return }
        // A counter outlives its period by a day, so a late add to it is still counted.
        let expiries = claims.map { $0.periodEndsAt == 0 ? 0 : $0.periodEndsAt + 86_400_000 }
        state.addCounters(counterKeys(claims), Array(repeating: nano, count: claims.count), expiresAt: expiries) { [self] totals, _ in
            for crossing in settings.crossings(claims, added: nano, totals: totals) {
                let (claim, total, reachedLimit) = (crossing.claim, crossing.total, crossing.reachedLimit)
                let level = reachedLimit ? "limit" : "warn"
                GatewayMetrics.shared.recordBudgetWarning(scope: claim.scope.rawValue, level: level)
                let what = reachedLimit ? "reached its limit" : "passed \(Int((settings.warnThreshold * 100).rounded())) % of its limit"
                logger.warning("budget \(claim.scope.rawValue) '\(claim.name)' \(what): spent \(BudgetService.usd(total)) of \(BudgetService.usd(claim.limit.limitNanoUSD)) USD this \(claim.limit.period.rawValue) period (\(claim.limit.hard ? "hard: further requests are refused" : "soft: requests go on"))")
            }
        }
    }

    /// The spend of one budget in its current period (nil: no such budget).
    package func spend(scope: BudgetScope, name: String, _ done: @escaping @Sendable (BudgetClaim?, Int64) -> Void) {
        var subject = BudgetSubject(team: "", user: "", key: "", model: "")
        switch scope {
        case .org: break
        case .team: subject.team = name
        case .user: subject.user = name
        case .key: subject.key = name
        case .model: subject.model = name
        }
        guard let claim = settings.claims(for: subject, now: clock()).first(where: { $0.scope == scope }) else {
            return done(nil, 0)
        }
        state.readCounters([counterPrefix + claim.counterKey]) { values, _ in done(claim, values.first ?? 0) }
    }

    /// `GET /-/budgets`: every budget named in the configuration with its spend this period.
    package func report(_ done: @escaping @Sendable ([UInt8]) -> Void) {
        let now = clock()
        var claims: [BudgetClaim] = []
        if settings.organization != nil {
            claims += settings.claims(for: BudgetSubject(team: "", user: "", key: "", model: ""), now: now)
        }
        func named(_ table: [String: BudgetLimit], _ subject: (String) -> BudgetSubject, _ scope: BudgetScope) {
            for name in table.keys.sorted() where name != "*" {
                claims += settings.claims(for: subject(name), now: now).filter { $0.scope == scope }
            }
        }
        named(settings.teams, { BudgetSubject(team: $0, user: "", key: "", model: "") }, .team)
        named(settings.users, { BudgetSubject(team: "", user: $0, key: "", model: "") }, .user)
        named(settings.keys, { BudgetSubject(team: "", user: "", key: $0, model: "") }, .key)
        named(settings.models, { BudgetSubject(team: "", user: "", key: "", model: $0) }, .model)
        let backend = state.backendName
        let all = claims
        state.readCounters(all.map { counterPrefix + $0.counterKey }) { values, fallback in
            var writer = JSONWriter(capacity: 128 + all.count * 160)
            writer.beginObject()
            writer.string("backend", fallback ? "memory (redis unreachable)" : backend)
            writer.key("budgets")
            writer.beginArray()
            for (claim, spent) in zip(all, values) {
                writer.beginObject()
                BudgetService.describe(claim, spent: spent, into: &writer)
                writer.endObject()
            }
            writer.endArray()
            writer.endObject()
            done(writer.bytes)
        }
    }

    /// A budget's members in a JSON object: scope, name, period and its end, limit, spent, remaining.
    package static func describe(_ claim: BudgetClaim, spent: Int64, into writer: inout JSONWriter) {
        writer.string("scope", claim.scope.rawValue)
        writer.string("name", claim.name)
        writer.string("period", claim.limit.period.rawValue)
        if claim.periodEndsAt > 0 { writer.integer("resets_at_ms", Int64(claim.periodEndsAt)) } else { writer.null("resets_at_ms") }
        writer.bool("hard", claim.limit.hard)
        writer.key("limit_usd")
        writer.raw(usd(claim.limit.limitNanoUSD))
        writer.key("spent_usd")
        writer.raw(usd(spent))
        writer.key("remaining_usd")
        writer.raw(usd(max(0, claim.limit.limitNanoUSD - spent)))
    }

    package static func usd(_ nano: Int64) -> String { PriceTable.format(Double(nano) / 1_000_000_000) }
}

/// For bench/state: one request's budget work as the gateway does it (the check before routing,
/// the add after the answer), over in-memory counters.
public final class BudgetProbe: Sendable {
    private let service: BudgetService

    /// An organization budget, one for every key and one for every user: three claims a request.
    public init(logger: Logger) {
        var settings = BudgetSettings()
        settings.organization = BudgetLimit(limitUSD: 1_000_000, period: .monthly, hard: true)
        settings.keys = ["*": BudgetLimit(limitUSD: 1_000_000, period: .monthly, hard: true)]
        settings.users = ["*": BudgetLimit(limitUSD: 1_000_000, period: .daily, hard: true)]
        service = BudgetService(settings: settings, state: SharedStateService(settings: nil, logger: logger), logger: logger)
    }

    /// Returns whether the request was allowed.
    @discardableResult
    public func request(key: String, user: String, cost: Double) -> Bool {
        let allowed = Atomic<Bool>(false)
        service.check(BudgetSubject(team: "", user: user, key: key, model: "gpt-4o-mini")) { [service] claims, decision in
            allowed.store(decision == .allow, ordering: .relaxed)
            service.record(claims, cost: cost)
        }
        return allowed.load(ordering: .relaxed)
    }
}
