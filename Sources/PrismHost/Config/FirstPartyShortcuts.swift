import PrismWire

// THE ONE PLACE where the host knows first-party plugins by name and schema. config.yaml's
// shortcut sections `auth:`, `cache:` and `rate_limiting:` configure the auth, cache and
// rate_limit middleware plugins (checked here, so that a typo is told with its file:line:col, and
// put in the default middleware order), and an organization's generation switches auth on (its
// keys reach auth through prism.client_keys.v1, like the admin API's other keys). Everything else
// in the host knows plugins only through the C ABI.
package enum FirstParty {
    /// The `auth:` section of an organization's generation: on, with no keys of the file (the
    /// organization's come from prism.client_keys.v1).
    package static func authSection() -> (String, JSONValue) {
        ("auth", .object([("enabled", .bool(true))]))
    }

    /// The top-level shortcut sections (config.yaml).
    package static let shortcutSections: Set<String> = ["auth", "cache", "rate_limiting"]

    /// The top-level sections that belong to the auth plugin.
    package static let authSections: Set<String> = ["auth"]

    /// The shortcut sections an organization's config may set (its own limits and cache).
    package static let organizationSections = ["rate_limiting", "cache"]

    /// Whether the list has the middleware that checks the admin API's client keys.
    package static func checksClientKeys(_ middleware: [MiddlewareSettings]) -> Bool {
        middleware.contains { $0.name == "auth" }
    }

    /// Whether the list has the auth middleware switched on.
    package static func authenticates(_ middleware: [MiddlewareSettings]) -> Bool {
        middleware.contains { $0.name == "auth" && $0.configuration["enabled"]?.switchValue == true }
    }

    /// The client keys config.yaml lists, as `GET /-/keys` shows them: name, the key itself (to
    /// be masked), owner.
    package static func fileClientKeys(_ document: JSONValue) -> [(name: JSONValue, key: String, owner: JSONValue)] {
        (document["auth"]?["keys"]?.arrayValue ?? []).map { key in
            (key["name"] ?? .null, key["key"]?.stringValue ?? "", key["owner"] ?? .string(""))
        }
    }

    /// A middleware the configuration names that may be left out when no plugin provides it:
    /// auth, alone and plainly off (an unreadable switch is not "off").
    package static func mayBeAbsent(_ settings: MiddlewareSettings, listCount: Int) -> Bool {
        let enabled = settings.configuration["enabled"]
        let off = enabled == nil || enabled == .null || enabled?.switchValue == false
        return settings.name == "auth" && off && listCount == 1
    }
}

extension ConfigLoader {
    static let authKeys: Set<String> = ["enabled", "keys"]
    static let cacheKeys: Set<String> = ["enabled", "default_ttl", "max_entries", "scope"]
    static let rateLimitingKeys: Set<String> = ["enabled", "global_rpm", "per_user", "per_model"]
    static let authKeyEntryKeys: Set<String> = ["name", "key", "key_sha256", "owner", "models", "rate_limit_rpm",
                                                "rate_limit_tpm", "metadata", "expires_at"]

    /// `middleware:` (names, or `{name, config}`), else the default order: auth when configured.
    mutating func readMiddleware(_ root: YAMLNode) -> [MiddlewareSettings] {
        let authSection = root["auth"]
        authenticatesClients = false
        if let auth = authSection {
            authenticatesClients = boolean(auth["enabled"], "auth.enabled") ?? false
            for (key, location, _) in entries(auth) where !ConfigLoader.authKeys.contains(key) {
                warning(location, "auth.\(key)", "unknown key (ignored)")
            }
            if case let .sequence(keys, _)? = auth["keys"] {
                for (index, entry) in keys.enumerated() {
                    for (key, location, _) in entries(entry) where !ConfigLoader.authKeyEntryKeys.contains(key) {
                        warning(location, "auth.keys[\(index)].\(key)", "unknown key (ignored)")
                    }
                    _ = integer(entry["rate_limit_rpm"], "auth.keys[\(index)].rate_limit_rpm", range: 0...1_000_000_000)
                    _ = integer(entry["rate_limit_tpm"], "auth.keys[\(index)].rate_limit_tpm", range: 0...1_000_000_000_000)
                    _ = integer(entry["expires_at"], "auth.keys[\(index)].expires_at", range: 1...253_402_300_799)
                    if entry["key"] == nil && entry["key_sha256"] == nil {
                        error(entry.location, "auth.keys[\(index)].key", "every client key needs `key` (or `key_sha256`)")
                    }
                }
            }
        }
        /// Config section a first-party middleware reads.
        func section(for name: String) -> YAMLNode? {
            switch name {
            case "auth": return authSection
            case "rate_limit", "rate_limiting": return root["rate_limiting"]
            case "cache": return root["cache"]
            default: return root[name]
            }
        }
        let enabled = checkStateSections(root)
        guard let list = root["middleware"] else {
            // The default order: who you are, then whether you may (limits), then a cached answer.
            var names = ["auth"]
            if enabled.rateLimiting { names.append("rate_limit") }
            if enabled.cache { names.append("cache") }
            return names.map { name in
                let section = section(for: name)
                return MiddlewareSettings(name: name, configuration: section.map(toJSON) ?? .object([]),
                                          location: section?.location)
            }
        }
        guard case let .sequence(items, _) = list else {
            error(list.location, "middleware", "expected a list of middleware names, in the order they run")
            return []
        }
        let listed = Set(items.compactMap { item -> String? in
            if case let .scalar(name, _, _) = item { return name }
            if case let .scalar(name, _, _)? = item["name"] { return name }
            return nil
        })
        if enabled.rateLimiting && listed.isDisjoint(with: ["rate_limit", "rate_limiting"]) {
            warning(list.location, "middleware", "rate_limiting.enabled is true but `rate_limit` is not in this list: no limits apply")
        }
        if enabled.cache && !listed.contains("cache") {
            warning(list.location, "middleware", "cache.enabled is true but `cache` is not in this list: nothing is cached")
        }
        var result: [MiddlewareSettings] = []
        for (index, item) in items.enumerated() {
            if case let .scalar(listedName, _, location) = item {
                let name = listedName == "rate_limiting" ? "rate_limit" : listedName
                result.append(MiddlewareSettings(name: name, configuration: section(for: name).map(toJSON) ?? .object([]),
                                                 location: location))
            } else if let name = string(item["name"], "middleware[\(index)].name") {
                let configuration = item["config"].map(toJSON) ?? section(for: name).map(toJSON) ?? .object([])
                result.append(MiddlewareSettings(name: name, configuration: configuration, location: item.location))
            } else {
                error(item.location, "middleware[\(index)]", "expected a middleware name or {name, config}")
            }
        }
        return result
    }

    /// Checks `cache` and `rate_limiting`; returns which of them are enabled.
    mutating func checkStateSections(_ root: YAMLNode) -> (cache: Bool, rateLimiting: Bool) {
        var cacheEnabled = false
        var rateLimitingEnabled = false
        if let cache = root["cache"], !cache.isNull {
            for (key, location, _) in entries(cache) where !ConfigLoader.cacheKeys.contains(key) {
                warning(location, "cache.\(key)", "unknown key (ignored)")
            }
            cacheEnabled = boolean(cache["enabled"], "cache.enabled") ?? false
            _ = duration(cache["default_ttl"], "cache.default_ttl")
            _ = integer(cache["max_entries"], "cache.max_entries", range: 0...100_000_000)
            if let node = cache["scope"], let scope = string(node, "cache.scope"), !["key", "owner", "global"].contains(scope) {
                error(node.location, "cache.scope", "expected key, owner or global, got '\(scope)'")
            }
        }
        if let limits = root["rate_limiting"], !limits.isNull {
            for (key, location, _) in entries(limits) where !ConfigLoader.rateLimitingKeys.contains(key) {
                warning(location, "rate_limiting.\(key)", "unknown key (ignored)")
            }
            rateLimitingEnabled = boolean(limits["enabled"], "rate_limiting.enabled") ?? false
            _ = integer(limits["global_rpm"], "rate_limiting.global_rpm", range: 0...1_000_000_000)
            // `per_user: {rpm, tpm}` (each end user), `per_model: {MODEL: {rpm, tpm}}`.
            func checkPair(_ node: YAMLNode?, _ path: String) {
                guard let node else { return }
                for (key, location, _) in entries(node) where key != "rpm" && key != "tpm" {
                    warning(location, "\(path).\(key)", "unknown key (ignored): expected rpm and tpm")
                }
                _ = integer(node["rpm"], "\(path).rpm", range: 0...1_000_000_000)
                _ = integer(node["tpm"], "\(path).tpm", range: 0...1_000_000_000_000)
            }
            checkPair(limits["per_user"], "rate_limiting.per_user")
            for (model, _, pair) in entries(limits["per_model"]) { checkPair(pair, "rate_limiting.per_model.\(model)") }
        }
        return (cacheEnabled, rateLimitingEnabled)
    }
}
