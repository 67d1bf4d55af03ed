import CCrypto
import PrismWire

/// Organizations: each one owns its providers, routing, limits, cache and budgets (`PUT
/// /-/orgs/{id}/config`, the sections of config.yaml it may set), and its client keys (created
/// with `org`). A request made with an organization's key is served by a gateway generation built
/// from the file's configuration with those sections replaced by the organization's: its plugin
/// instances keep state in a namespace of their own, so organizations share nothing but the
/// process. The file's configuration is the default organization.
enum Organizations {
    /// The sections an organization's config may set; every other section is the gateway's.
    static let ownedSections = ["providers", "model_map", "routing", "rate_limiting", "cache", "budgets"]

    static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 64 && id.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A) || byte == 0x2D || byte == 0x5F || byte == 0x2E
        }
    }

    /// What is wrong with an organization's config before it is loaded (nil: nothing).
    static func shapeProblem(_ configuration: JSONValue) -> String? {
        guard let members = configuration.objectValue else { return "the body must be a JSON object: the organization's config" }
        for (key, _) in members where !ownedSections.contains(key) {
            return "`\(key)` cannot be set per organization (it is the gateway's, in config.yaml); an organization sets "
                + ownedSections.joined(separator: ", ")
        }
        guard let providers = configuration["providers"]?.objectValue, !providers.isEmpty else {
            return "an organization's config needs `providers` (it owns its providers: it uses none of the file's)"
        }
        return nil
    }

    /// The organization's configuration: the file's with the owned sections replaced and `auth`
    /// holding the organization's live keys. Loaded by the same loader as config.yaml, without
    /// `${ENV}` substitution (the environment is the operator's, not an API client's).
    static func configuration(file: GatewayConfiguration, id: String, section: JSONValue,
                              keys: [AdminStore.StoredKey]) throws(ConfigError) -> GatewayConfiguration
    {
        var document = (file.document.objectValue ?? []).filter {
            !ownedSections.contains($0.0) && !FirstParty.authSections.contains($0.0)
        }
        for (key, value) in section.objectValue ?? [] { document.append((key, value)) }
        var entries = keys.filter { $0.revokedAt == nil && $0.extras.organization == id }.map(FirstParty.authEntry)
        if entries.isEmpty {
            // No key yet: a key nobody holds (the SHA-256 of fresh random bytes), so that the
            // generation builds, validates the config, and lets no request in.
            var random = [UInt8](repeating: 0, count: 32)
            _ = prism_random_bytes(&random, 32)
            let digest = random.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
            entries.append(.object([("name", .string("-")), ("key_sha256", .string(digest))]))
        }
        document.append(FirstParty.authSection(keys: entries))
        var loader = ConfigLoader(environment: { _ in nil })
        var (configuration, _) = try loader.load(text: String(decoding: JSONValue.object(document).jsonBytes, as: UTF8.self),
                                                 file: "admin:orgs/\(id)")
        for key in keys where key.revokedAt == nil && key.extras.organization == id {
            if let budget = key.extras.budget { configuration.budgets.keys[key.name] = budget }
        }
        return configuration
    }
}
