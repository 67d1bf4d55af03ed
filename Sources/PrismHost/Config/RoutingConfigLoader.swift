import PrismWire

extension ConfigLoader {
    /// The `routing:` keys the gateway reads; the strategy plugin declares its own (config_keys).
    static let routingKeys: Set<String> = ["default_strategy", "weights", "targets", "model_fallbacks", "failover",
                                           "circuit_breaker", "retry", "health_check"]

    /// `routing:` and the top-level `model_map:`.
    mutating func readRouting(_ node: YAMLNode?, modelMap: YAMLNode?) -> RoutingSettings {
        var settings = RoutingSettings()
        for (alias, location, target) in entries(modelMap) {
            if let model = string(target, "model_map.\(alias)") {
                settings.modelMap[alias] = model
            } else {
                error(location, "model_map.\(alias)", "expected the model name this alias stands for")
            }
        }
        guard let node else { return settings }
        settings.section = toJSON(node)
        settings.pluginKeys = entries(node).filter { !ConfigLoader.routingKeys.contains($0.0) }.map { ($0.0, $0.1) }
        if let strategy = string(node["default_strategy"], "routing.default_strategy") { settings.defaultStrategy = strategy }
        for (provider, _, weight) in entries(node["weights"]) {
            if let value = integer(weight, "routing.weights.\(provider)", range: 0...1_000_000) {
                settings.weights[provider] = UInt32(value)
            }
        }
        for (model, _, list) in entries(node["targets"]) {
            guard case let .sequence(items, _) = list else {
                error(list.location, "routing.targets.\(model)", "expected a list of {provider, weight, priority, model_override}")
                continue
            }
            var targets: [RouteTarget] = []
            for (index, item) in items.enumerated() {
                let path = "routing.targets.\(model)[\(index)]"
                guard let provider = string(item["provider"], "\(path).provider") else {
                    error(item.location, "\(path).provider", "every target names a provider")
                    continue
                }
                targets.append(RouteTarget(
                    provider: provider,
                    weight: integer(item["weight"], "\(path).weight", range: 0...1_000_000).map(UInt32.init),
                    priority: integer(item["priority"], "\(path).priority", range: -1_000_000...1_000_000) ?? 0,
                    modelOverride: string(item["model_override"], "\(path).model_override")))
            }
            settings.targets[model] = targets
        }
        for (model, _, list) in entries(node["model_fallbacks"]) {
            guard case let .sequence(items, _) = list else {
                error(list.location, "routing.model_fallbacks.\(model)", "expected a list of model names")
                continue
            }
            settings.modelFallbacks[model] = items.enumerated().compactMap { string($1, "routing.model_fallbacks.\(model)[\($0)]") }
        }
        if let failover = node["failover"] {
            let path = "routing.failover"
            if let enabled = boolean(failover["enabled"], "\(path).enabled") { settings.failover.enabled = enabled }
            if let attempts = integer(failover["max_attempts"], "\(path).max_attempts", range: 1...100) {
                settings.failover.maxAttempts = attempts
            }
            if let codes = failover["on_status_codes"] {
                if case let .sequence(items, _) = codes {
                    settings.failover.onStatusCodes = Set(items.enumerated().compactMap {
                        integer($1, "\(path).on_status_codes[\($0)]", range: 100...599)
                    })
                } else {
                    error(codes.location, "\(path).on_status_codes", "expected a list of HTTP status codes")
                }
            }
            if let onTimeout = boolean(failover["on_timeout"], "\(path).on_timeout") { settings.failover.onTimeout = onTimeout }
        }
        if let breaker = node["circuit_breaker"] {
            let path = "routing.circuit_breaker"
            if let enabled = boolean(breaker["enabled"], "\(path).enabled") { settings.circuitBreaker.enabled = enabled }
            if let value = integer(breaker["failure_threshold"], "\(path).failure_threshold", range: 1...1_000_000) {
                settings.circuitBreaker.failureThreshold = value
            }
            if let value = integer(breaker["success_threshold"], "\(path).success_threshold", range: 1...1_000_000) {
                settings.circuitBreaker.successThreshold = value
            }
            if let value = duration(breaker["cooldown"], "\(path).cooldown") { settings.circuitBreaker.cooldown = value }
        }
        if let check = node["health_check"] {
            let path = "routing.health_check"
            if let enabled = boolean(check["enabled"], "\(path).enabled") { settings.healthCheck.enabled = enabled }
            if let value = positiveDuration(check["interval"], "\(path).interval") { settings.healthCheck.interval = value }
            if let value = positiveDuration(check["timeout"], "\(path).timeout") { settings.healthCheck.timeout = value }
        }
        if let retry = node["retry"] {
            let path = "routing.retry"
            if let enabled = boolean(retry["enabled"], "\(path).enabled") { settings.retry.enabled = enabled }
            if let value = integer(retry["max_retries"], "\(path).max_retries", range: 0...100) { settings.retry.maxRetries = value }
            if let value = duration(retry["initial_delay"], "\(path).initial_delay") { settings.retry.initialDelay = value }
            if let value = duration(retry["max_delay"], "\(path).max_delay") { settings.retry.maxDelay = value }
            if let text = string(retry["multiplier"], "\(path).multiplier") {
                if let value = Double(text), value >= 1 {
                    settings.retry.multiplier = value
                } else if let node = retry["multiplier"] {
                    error(node.location, "\(path).multiplier", "expected a number ≥ 1, got '\(text)'")
                }
            }
        }
        return settings
    }

    mutating func boolean(_ node: YAMLNode?, _ path: String) -> Bool? {
        guard let text = string(node, path), let node else { return nil }
        // Strict (YAML 1.2): a switch that is neither true nor false stops the load, so a value
        // such as "yes please" or 1 can never leave auth, limits or the cache silently off.
        guard let value = JSONValue.switchValue(text) else {
            error(node.location, path, "expected true or false, got '\(text)'")
            return nil
        }
        return value
    }
}
