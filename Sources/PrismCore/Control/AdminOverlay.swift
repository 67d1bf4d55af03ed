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
            if FirstParty.addClientKeys(live.map(FirstParty.authEntry), to: &configuration.middleware) {
                // A key's own budget joins `budgets.keys`, winning over one of the same name in the file.
                for key in live {
                    if let budget = key.extras.budget { configuration.budgets.keys[key.name] = budget }
                }
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
