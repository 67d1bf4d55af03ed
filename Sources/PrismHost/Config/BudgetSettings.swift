/// `budgets:`: how much each organization, team, user, key or model may spend per calendar period
/// (the logic that applies them is Governance/).
public enum BudgetPeriod: String, Sendable, CaseIterable {
    case daily, weekly, monthly, total

    var ordinal: Int {
        switch self {
        case .daily: return 0
        case .weekly: return 1
        case .monthly: return 2
        case .total: return 3
        }
    }
}

/// One budget: a limit in USD over a period; `hard` refuses requests once it is spent, a soft one
/// only warns.
public struct BudgetLimit: Sendable, Equatable {
    /// Nano-dollars, as the counters count.
    public var limitNanoUSD: Int64
    public var period: BudgetPeriod
    public var hard: Bool

    public init(limitUSD: Double, period: BudgetPeriod, hard: Bool) {
        limitNanoUSD = Int64((limitUSD * 1_000_000_000).rounded())
        self.period = period
        self.hard = hard
    }
}

/// `budgets:` in config.yaml. `"*"` in teams, users, keys or per_model gives each one not named
/// its own budget of that size.
public struct BudgetSettings: Sendable {
    /// Budgets apply when some are set; `enabled: false` switches every one off (those of
    /// admin-created keys too).
    public var enabled = true
    public var defaultPeriod = BudgetPeriod.monthly
    public var warnThreshold = 0.8
    public var organization: BudgetLimit?
    public var teams: [String: BudgetLimit] = [:]
    public var users: [String: BudgetLimit] = [:]
    public var keys: [String: BudgetLimit] = [:]
    public var models: [String: BudgetLimit] = [:]

    public init() {}

    public var isEmpty: Bool {
        organization == nil && teams.isEmpty && users.isEmpty && keys.isEmpty && models.isEmpty
    }
}
