import PrismWire

/// The running configuration = config.yaml + what the admin API stored: stored providers replace
/// or add providers by name. Stored client keys are not configuration: they reach the auth
/// middleware through prism.client_keys.v1 (`clientKeys`), so creating one rebuilds nothing.
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
        if keys.contains(where: { $0.revokedAt == nil && $0.extras.organization == nil }),
           !FirstParty.checksClientKeys(configuration.middleware)
        {
            problems.append("client keys from the admin API are not enforced: `auth` is not in the middleware list")
        }
        if var document = configuration.document.objectValue {
            document.removeAll { $0.0 == "providers" }
            document.append(("providers", .object(documentProviders)))
            configuration.document = .object(document)
        }
        return (configuration, problems)
    }

    /// The live stored keys as prism.client_keys.v1 serves them.
    static func clientKeys(_ keys: [AdminStore.StoredKey]) -> [ClientKeyTable.Key] {
        keys.compactMap { key in
            guard key.revokedAt == nil, let digest = Hex.decode(key.keyHash), digest.count == 32 else { return nil }
            let record = ClientKeyTable.record(name: key.name, owner: key.owner, models: key.models,
                                               requestsPerMinute: key.requestsPerMinute,
                                               tokensPerMinute: key.tokensPerMinute, expiresAt: key.extras.expiresAt)
            return ClientKeyTable.Key(digest: digest, organization: key.extras.organization ?? "", name: key.name,
                                      record: record, budget: key.extras.budget)
        }
    }
}
