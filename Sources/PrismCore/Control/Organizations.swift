import PrismWire

/// Organizations: each one owns its providers, routing, limits, cache and budgets (`PUT
/// /-/orgs/{id}/config`, the sections of config.yaml it may set), and its client keys (created
/// with `org`). A request made with an organization's key is served by a gateway generation built
/// from the file's configuration with those sections replaced by the organization's: its plugin
/// instances keep state in a namespace of their own, so organizations share nothing but the
/// process. The file's configuration is the default organization.
enum Organizations {
    /// The sections an organization's config may set; every other section is the gateway's.
    static let ownedSections = ["providers", "model_map", "routing"] + FirstParty.organizationSections + ["budgets"]

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
    /// on (its keys come from prism.client_keys.v1, scoped to the organization). Loaded by the same
    /// loader as config.yaml, without
    /// `${ENV}` substitution (the environment is the operator's, not an API client's).
    static func configuration(file: GatewayConfiguration, id: String, section: JSONValue) throws(ConfigError)
        -> GatewayConfiguration
    {
        var document = (file.document.objectValue ?? []).filter {
            !ownedSections.contains($0.0) && !FirstParty.authSections.contains($0.0)
        }
        for (key, value) in section.objectValue ?? [] { document.append((key, value)) }
        document.append(FirstParty.authSection())
        var loader = ConfigLoader(environment: { _ in nil })
        let (configuration, _) = try loader.load(text: String(decoding: JSONValue.object(document).jsonBytes, as: UTF8.self),
                                                 file: "admin:orgs/\(id)")
        return configuration
    }
}
