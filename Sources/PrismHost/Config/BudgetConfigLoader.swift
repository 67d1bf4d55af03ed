extension ConfigLoader {
    /// `budgets: {enabled, default_period, warn_threshold, org: {limit, period, hard}, teams: {OWNER:
    /// {...}}, users: {USER: {...}}, keys: {KEY_NAME: {...}}, per_model: {MODEL: {...}}}`. A budget's
    /// `period` defaults to `default_period` (monthly) and `hard` to true; `"*"` names every team,
    /// user, key or model not listed.
    mutating func readBudgets(_ node: YAMLNode?) -> BudgetSettings {
        var settings = BudgetSettings()
        guard let node else { return settings }
        let known = ["enabled", "default_period", "warn_threshold", "org", "teams", "users", "keys", "per_model"]
        for (key, location, _) in entries(node) where !known.contains(key) {
            warning(location, "budgets.\(key)", "unknown key (ignored): expected one of \(known.joined(separator: ", "))")
        }
        settings.enabled = boolean(node["enabled"], "budgets.enabled") ?? true
        if let period = budgetPeriod(node["default_period"], "budgets.default_period") { settings.defaultPeriod = period }
        if let text = string(node["warn_threshold"], "budgets.warn_threshold") {
            if let value = Double(text), value > 0, value <= 1 {
                settings.warnThreshold = value
            } else {
                error(node["warn_threshold"]!.location, "budgets.warn_threshold", "expected a fraction of the limit in (0, 1], got '\(text)'")
            }
        }
        settings.organization = budgetLimit(node["org"], "budgets.org", defaultPeriod: settings.defaultPeriod)
        func table(_ name: String) -> [String: BudgetLimit] {
            var out: [String: BudgetLimit] = [:]
            for (member, _, entry) in entries(node[name]) {
                if let limit = budgetLimit(entry, "budgets.\(name).\(member)", defaultPeriod: settings.defaultPeriod) {
                    out[member] = limit
                }
            }
            return out
        }
        settings.teams = table("teams")
        settings.users = table("users")
        settings.keys = table("keys")
        settings.models = table("per_model")
        return settings
    }

    mutating func budgetLimit(_ node: YAMLNode?, _ path: String, defaultPeriod: BudgetPeriod) -> BudgetLimit? {
        guard let node, !node.isNull else { return nil }
        for (key, location, _) in entries(node) where !["limit", "period", "hard"].contains(key) {
            warning(location, "\(path).\(key)", "unknown key (ignored): expected limit, period and hard")
        }
        guard let text = string(node["limit"], "\(path).limit") else {
            error(node.location, "\(path).limit", "a budget needs a limit in USD")
            return nil
        }
        guard let limit = Double(text), limit >= 0, limit < 1e9 else {
            error(node["limit"]!.location, "\(path).limit", "expected an amount in USD, got '\(text)'")
            return nil
        }
        return BudgetLimit(limitUSD: limit, period: budgetPeriod(node["period"], "\(path).period") ?? defaultPeriod,
                           hard: boolean(node["hard"], "\(path).hard") ?? true)
    }

    mutating func budgetPeriod(_ node: YAMLNode?, _ path: String) -> BudgetPeriod? {
        guard let text = string(node, path), let node else { return nil }
        guard let period = BudgetPeriod(rawValue: text) else {
            error(node.location, path, "expected daily, weekly, monthly or total, got '\(text)'")
            return nil
        }
        return period
    }
}
