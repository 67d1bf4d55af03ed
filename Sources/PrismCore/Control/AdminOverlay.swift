import PrismWire

/// The running configuration = config.yaml + what the admin API stored: stored providers replace
/// or add providers by name; live stored client keys join `auth.keys` as SHA-256 hashes.
enum AdminOverlay {
    /// Parses one provider section (JSON, the same keys as config.yaml) through the config
    /// loader, so a stored provider is validated exactly like a configured one. JSON is YAML.
    static func providerSettings(name: String, section: JSONValue) throws(ConfigError) -> ProviderSettings {
        var loader = ConfigLoader()
        let text = "providers:\n  " + String(decoding: JSONValue.string(name).jsonBytes, as: UTF8.self) + ": "
            + String(decoding: section.jsonBytes, as: UTF8.self) + "\n"
        let (configuration, _) = try loader.load(text: text, file: "admin:providers/\(name)")
        guard let settings = configuration.providers.first else { throw ConfigError(diagnostics: []) }
        return settings
    }

    /// A stored key as an entry of `auth.keys`.
    static func authEntry(_ key: AdminStore.StoredKey) -> JSONValue {
        var entry: [(String, JSONValue)] = [
            ("name", .string(key.name)), ("key_sha256", .string(key.keyHash)), ("owner", .string(key.owner)),
            ("models", .array(key.models.map { .string($0) })),
            ("rate_limit_rpm", .number(String(key.requestsPerMinute))),
            ("rate_limit_tpm", .number(String(key.tokensPerMinute))),
        ]
        if let expiresAt = key.extras.expiresAt { entry.append(("expires_at", .number(String(expiresAt)))) }
        return .object(entry)
    }

    static func apply(to file: GatewayConfiguration, providers: [AdminStore.StoredProvider],
                      keys: [AdminStore.StoredKey]) -> (GatewayConfiguration, [String])
    {
        var configuration = file
        var problems: [String] = []
        var documentProviders = configuration.document["providers"]?.objectValue ?? []
        for stored in providers {
            do {
                let settings = try providerSettings(name: stored.name, section: stored.section)
                configuration.providers.removeAll { $0.name == stored.name }
                configuration.providers.append(settings)
                documentProviders.removeAll { $0.0 == stored.name }
                documentProviders.append((stored.name, stored.section))
            } catch {
                problems.append("stored provider '\(stored.name)' is not valid and was left out: \(error)")
            }
        }
        // Keys of an organization are served by its own generation (Organizations), not this one.
        let live = keys.filter { $0.revokedAt == nil && $0.extras.organization == nil }
        if !live.isEmpty {
            if let index = configuration.middleware.firstIndex(where: { $0.name == "auth" }) {
                var section = configuration.middleware[index].configuration.objectValue ?? []
                var list = section.first { $0.0 == "keys" }?.1.arrayValue ?? []
                for key in live {
                    list.append(authEntry(key))
                    // A key's own budget joins `budgets.keys`, winning over one of the same name in the file.
                    if let budget = key.extras.budget { configuration.budgets.keys[key.name] = budget }
                }
                section.removeAll { $0.0 == "keys" }
                section.append(("keys", .array(list)))
                configuration.middleware[index].configuration = .object(section)
            } else {
                problems.append("client keys from the admin API are not enforced: `auth` is not in the middleware list")
            }
        }
        if var document = configuration.document.objectValue {
            document.removeAll { $0.0 == "providers" }
            document.append(("providers", .object(documentProviders)))
            configuration.document = .object(document)
        }
        return (configuration, problems)
    }
}
