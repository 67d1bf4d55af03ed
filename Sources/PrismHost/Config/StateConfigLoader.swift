// The sections behind shared state: `redis`, and the `cache` and `rate_limiting` sections that
// their middleware plugins read (checked here so that a typo fails at load with file:line:col).

extension ConfigLoader {
    static let redisKeys: Set<String> = ["enabled", "address", "password", "db", "prefix", "timeout"]

    /// nil when the section is absent or disabled: state stays in this process.
    mutating func readRedis(_ node: YAMLNode?) -> RedisSettings? {
        guard let node, !node.isNull else { return nil }
        for (key, location, _) in entries(node) where !ConfigLoader.redisKeys.contains(key) {
            warning(location, "redis.\(key)", "unknown key (ignored)")
        }
        var settings = RedisSettings()
        if let enabled = boolean(node["enabled"], "redis.enabled") { settings.enabled = enabled }
        if let addressNode = node["address"], let address = string(addressNode, "redis.address") {
            var text = Substring(address)
            if text.hasPrefix("redis://") { text = text.dropFirst(8) }
            if text.contains("@") {
                // Credentials in the address would end up in logs and /-/health/state.
                error(addressNode.location, "redis.address",
                      "put the password in redis.password, not in the address (expected host:port)")
                return nil
            }
            if let colon = text.lastIndex(of: ":"), let port = Int32(text[text.index(after: colon)...]),
               (1...65535).contains(port), colon != text.startIndex
            {
                settings.host = String(text[..<colon])
                settings.port = port
            } else if !text.isEmpty, !text.contains(":") {
                settings.host = String(text)
            } else {
                error(addressNode.location, "redis.address", "expected host:port, e.g. 127.0.0.1:6379, got '\(address)'")
            }
        }
        if let password = string(node["password"], "redis.password") { settings.password = password }
        if let database = integer(node["db"], "redis.db", range: 0...1_000_000) { settings.database = database }
        if let prefix = string(node["prefix"], "redis.prefix") { settings.prefix = prefix }
        if let timeout = duration(node["timeout"], "redis.timeout") {
            settings.timeout = max(timeout, .milliseconds(1))
        }
        return settings.enabled ? settings : nil
    }


    /// `cost_tracking: {enabled, prices_file, custom_pricing: {MODEL: {input_per_mtok, output_per_mtok,
    /// cached_input_per_mtok, cache_write_per_mtok}}}`.
    mutating func readCostTracking(_ node: YAMLNode?) -> CostTrackingSettings {
        var settings = CostTrackingSettings()
        guard let node else { return settings }
        for (key, location, _) in entries(node) where !["enabled", "prices_file", "custom_pricing"].contains(key) {
            warning(location, "cost_tracking.\(key)", "unknown key (ignored)")
        }
        if let enabled = boolean(node["enabled"], "cost_tracking.enabled") { settings.enabled = enabled }
        settings.pricesFile = string(node["prices_file"], "cost_tracking.prices_file")
        for (model, location, entry) in entries(node["custom_pricing"]) {
            let path = "cost_tracking.custom_pricing.\(model)"
            func price(_ key: String) -> Double? {
                guard let text = string(entry[key], "\(path).\(key)") else { return nil }
                guard let value = Double(text), value >= 0, value.isFinite else {
                    error(entry[key]?.location ?? location, "\(path).\(key)", "expected a price in USD per million tokens, got '\(text)'")
                    return nil
                }
                return value
            }
            for (key, keyLocation, _) in entries(entry)
            where !["input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "cache_write_per_mtok"].contains(key) {
                warning(keyLocation, "\(path).\(key)", "unknown key (ignored)")
            }
            guard let input = price("input_per_mtok") else {
                error(location, "\(path).input_per_mtok", "a custom price needs input_per_mtok (and output_per_mtok)")
                continue
            }
            settings.customPricing[model] = ModelPrice(input: input, output: price("output_per_mtok") ?? 0,
                                                       cachedInput: price("cached_input_per_mtok"),
                                                       cacheWrite: price("cache_write_per_mtok"))
        }
        return settings
    }
}

