import PrismWire

#if canImport(Glibc)
import Glibc
#endif

/// Reads Prism's `config.yaml`: libyaml tree → `${VAR}` expansion → typed settings with defaults.
/// Every error names `file:line:col` and the key path; unknown keys are warnings.
public struct ConfigLoader {
    public var environment: (String) -> String?
    var diagnostics: [ConfigDiagnostic] = []
    /// `auth.enabled`, as read by readMiddleware (the shortcut sections are read in one place).
    var authenticatesClients = false

    public init(environment: @escaping (String) -> String? = ConfigLoader.processEnvironment) {
        self.environment = environment
    }

    public static func processEnvironment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// config.yaml's top-level sections: the gateway's own, and the first-party shortcuts.
    static let topLevelKeys: Set<String> = Set(["server", "providers", "logging", "plugins", "middleware",
                                                "routing", "redis", "model_map", "admin",
                                                "cost_tracking", "spend_ledger", "budgets", "telemetry", "ingress"])
        .union(FirstParty.shortcutSections)
    static let serverKeys: Set<String> = ["port", "host", "read_timeout", "write_timeout", "idle_timeout",
                                          "shutdown_timeout", "drain_delay", "operational_routes", "header_timeout", "body_timeout",
                                          "max_response_body_size", "stream_idle_timeout", "stream_keepalive", "max_request_body_size", "default_request_timeout",
                                          "busy_poll", "cpu_affinity"]
    /// Keys of any first-party provider; others are passed to the plugin but warned about.
    /// The provider keys the gateway itself reads (or, the last four, accepts as the seed documents
    /// them). Every other key belongs to the provider plugin, which declares the ones it reads
    /// (ABI 1.4 `config_keys`); Gateway warns about the rest once the plugins are known.
    package static let providerKeys: Set<String> = [
        "api_key", "api_format", "base_url", "type", "models", "default_timeout", "max_concurrent",
        "conn_pool_size", "headers", "weight", "priority", "auto_discover", "discovery_interval",
        "credentials_file", "skip_tls", "local",
    ]

    /// Loads a configuration, or throws every error found (warnings are in `warnings`).
    public mutating func load(text: String, file: String) throws(ConfigError) -> (GatewayConfiguration, [ConfigDiagnostic]) {
        diagnostics = []
        let tree: YAMLNode
        do {
            tree = try YAMLDocument.parse(text, file: file)
        } catch {
            throw ConfigError(diagnostics: [ConfigDiagnostic(severity: .error, location: error.location, keyPath: "",
                                                             message: error.message)])
        }
        let root = expand(tree, path: "")
        var configuration = GatewayConfiguration()
        configuration.source = file
        if case .mapping = root {} else if !root.isNull {
            error(root.location, "", "the config must be a mapping of sections (server, providers, ...)")
        }
        for (key, location, value) in entries(root) {
            if !ConfigLoader.topLevelKeys.contains(key) {
                warning(location, key, "unknown key (ignored)")
            }
            _ = value
        }
        readServer(root["server"], into: &configuration.server)
        configuration.providers = readProviders(root["providers"])
        configuration.logging = readLogging(root["logging"])
        if let plugins = root["plugins"] {
            for (key, location, _) in entries(plugins) where key != "dir" {
                warning(location, "plugins.\(key)", "unknown key (ignored)")
            }
            configuration.pluginsDirectory = string(plugins["dir"], "plugins.dir")
        }
        configuration.redis = readRedis(root["redis"])
        configuration.costTracking = readCostTracking(root["cost_tracking"])
        configuration.budgets = readBudgets(root["budgets"])
        configuration.admin = readAdmin(root["admin"], file: file)
        configuration.spendLedger = readSpendLedger(root["spend_ledger"], file: file)
        configuration.telemetry = readTelemetry(root["telemetry"], root: root)
        configuration.document = toJSON(root)
        configuration.middleware = readMiddleware(root)
        configuration.ingress = readIngress(root["ingress"])
        // From the final list: `auth:` or `middleware: [{name: auth, config: {enabled: true}}]`.
        configuration.authenticatesClients = authenticatesClients || FirstParty.authenticates(configuration.middleware)
        configuration.routing = readRouting(root["routing"], modelMap: root["model_map"])
        let errors = diagnostics.filter { $0.severity == .error }
        if !errors.isEmpty { throw ConfigError(diagnostics: diagnostics) }
        return (configuration, diagnostics)
    }

    // MARK: Sections

    mutating func readServer(_ node: YAMLNode?, into server: inout ServerSettings) {
        guard let node else { return }
        for (key, location, _) in entries(node) where !ConfigLoader.serverKeys.contains(key) {
            warning(location, "server.\(key)", "unknown key (ignored)")
        }
        if let port = integer(node["port"], "server.port", range: 0...65535) { server.port = port }
        if let host = string(node["host"], "server.host") { server.host = host }
        if let value = positiveDuration(node["read_timeout"], "server.read_timeout") { server.readTimeout = value }
        if let value = positiveDuration(node["header_timeout"], "server.header_timeout") { server.headerTimeout = value }
        if let value = positiveDuration(node["body_timeout"], "server.body_timeout") { server.bodyTimeout = value }
        if let value = duration(node["write_timeout"], "server.write_timeout") { server.writeTimeout = value }
        if let value = duration(node["idle_timeout"], "server.idle_timeout") { server.idleTimeout = value }
        if let value = duration(node["shutdown_timeout"], "server.shutdown_timeout") { server.shutdownTimeout = value }
        if let value = duration(node["drain_delay"], "server.drain_delay") { server.drainDelay = value }
        if let routesNode = node["operational_routes"], let text = string(routesNode, "server.operational_routes") {
            if let routes = OperationalRoutes(rawValue: text) {
                server.operationalRoutes = routes
            } else {
                error(routesNode.location, "server.operational_routes", "expected auto, public or admin, got '\(text)'")
            }
        }
        if let value = duration(node["default_request_timeout"], "server.default_request_timeout") {
            server.defaultRequestTimeout = value
        }
        if let size = integer(node["max_request_body_size"], "server.max_request_body_size", range: 1...Int(Int32.max)) {
            server.maxRequestBodySize = size
        }
        if let size = integer(node["max_response_body_size"], "server.max_response_body_size", range: 1024...Int(Int32.max)) {
            server.maxResponseBodySize = size
        }
        if let value = positiveDuration(node["stream_idle_timeout"], "server.stream_idle_timeout") {
            server.streamIdleTimeout = value
        }
        if let value = duration(node["stream_keepalive"], "server.stream_keepalive") { server.streamKeepAlive = value }
        if let pollNode = node["busy_poll"], let text = string(pollNode, "server.busy_poll") {
            if let microseconds = DurationText.microseconds(text), microseconds <= 10_000 {
                server.busyPoll = .microseconds(microseconds)
            } else {
                error(pollNode.location, "server.busy_poll",
                      "expected a duration from 0 to 10ms (e.g. 200us, 0.5ms, 0 for off), got '\(text)'")
            }
        }
        if let affinityNode = node["cpu_affinity"], let text = string(affinityNode, "server.cpu_affinity") {
            // YAML 1.1 reads an unquoted `off` as false: both mean off.
            if let affinity = CPUAffinity(rawValue: text == "false" ? "off" : text) {
                server.cpuAffinity = affinity
            } else {
                error(affinityNode.location, "server.cpu_affinity", "expected auto or off, got '\(text)'")
            }
        }
    }

    /// `ingress: {anthropic: false, responses: {store_ttl_seconds: 600}}`: a dialect's config
    /// (what its plugin reads), `false` (or `enabled: false`) to turn it off.
    mutating func readIngress(_ node: YAMLNode?) -> [IngressSettings] {
        guard let node else { return [] }
        guard case .mapping = node else {
            error(node.location, "ingress", "expected a mapping of dialect name to its settings (or false)")
            return []
        }
        var list: [IngressSettings] = []
        for (name, location, value) in entries(node) {
            var settings = IngressSettings(name: name, location: location)
            if case .mapping = value {
                settings.enabled = boolean(value["enabled"], "ingress.\(name).enabled") ?? true
                if case let .object(members) = toJSON(value) {
                    settings.configuration = .object(members.filter { $0.0 != "enabled" })
                }
            } else if let enabled = boolean(value, "ingress.\(name)") {
                settings.enabled = enabled
            }
            list.append(settings)
        }
        return list
    }

    mutating func readProviders(_ node: YAMLNode?) -> [ProviderSettings] {
        guard let node else { return [] }
        guard case .mapping = node else {
            error(node.location, "providers", "expected a mapping of provider name to settings")
            return []
        }
        var providers: [ProviderSettings] = []
        for (name, location, section) in entries(node) {
            let path = "providers.\(name)"
            guard case .mapping = section else {
                error(section.location, path, "expected a mapping (api_key, api_format, models, ...)")
                continue
            }
            if name.contains("/") { error(location, path, "a provider name cannot contain '/'") }
            let pluginKeys = entries(section).filter { !ConfigLoader.providerKeys.contains($0.0) }.map { ($0.0, $0.1) }
            let type = string(section["type"], "\(path).type")
            var apiFormat = string(section["api_format"], "\(path).api_format")
            if apiFormat == nil {
                if type != nil {
                    apiFormat = "openai"
                } else {
                    error(section.location, "\(path).api_format",
                          "api_format is required (openai, anthropic, gemini, bedrock, cohere, azure, or a plugin's)")
                }
            }
            var models: [String] = []
            if let list = section["models"] {
                if case let .sequence(items, _) = list {
                    for (index, item) in items.enumerated() {
                        if let model = string(item, "\(path).models[\(index)]") { models.append(model) }
                    }
                } else if !list.isNull {
                    error(list.location, "\(path).models", "expected a list of model names")
                }
            }
            var json = toJSON(section)
            if case var .object(members) = json {
                members.removeAll { $0.0 == "name" }
                members.append(("name", .string(name)))
                json = .object(members)
            }
            providers.append(ProviderSettings(
                name: name, apiFormat: apiFormat ?? "openai", type: type, models: models,
                defaultTimeout: duration(section["default_timeout"], "\(path).default_timeout"),
                maxConcurrent: integer(section["max_concurrent"], "\(path).max_concurrent", range: 1...100_000),
                connectionPoolSize: integer(section["conn_pool_size"], "\(path).conn_pool_size", range: 1...10_000),
                section: json, location: location, pluginKeys: pluginKeys,
                autoDiscover: boolean(section["auto_discover"], "\(path).auto_discover"),
                discoveryInterval: positiveDuration(section["discovery_interval"], "\(path).discovery_interval")))
        }
        return providers
    }

    mutating func readLogging(_ node: YAMLNode?) -> LoggingSettings {
        var settings = LoggingSettings()
        guard let node else { return settings }
        for (key, location, _) in entries(node) where !["level", "format", "include_bodies"].contains(key) {
            warning(location, "logging.\(key)", "unknown key (ignored)")
        }
        if let levelNode = node["level"], let text = string(levelNode, "logging.level") {
            let normalized = text.lowercased() == "warning" ? "warn" : text.lowercased()
            if let level = LogLevelSetting(rawValue: normalized) {
                settings.level = level
            } else {
                error(levelNode.location, "logging.level", "unknown level '\(text)' (use debug, info, warn or error)")
            }
        }
        if let formatNode = node["format"], let text = string(formatNode, "logging.format") {
            switch text.lowercased() {
            case "json": settings.json = true
            case "text": settings.json = false
            default: error(formatNode.location, "logging.format", "unknown format '\(text)' (use json or text)")
            }
        }
        if let include = boolean(node["include_bodies"], "logging.include_bodies") { settings.includeBodies = include }
        return settings
    }

    /// `admin:` (token, store). The token may also come from $PRISM_ADMIN_TOKEN.
    mutating func readSpendLedger(_ node: YAMLNode?, file: String) -> SpendLedgerSettings {
        var settings = SpendLedgerSettings()
        if let node, !node.isNull {
            settings.configured = true
            for (key, location, _) in entries(node) where !["enabled", "path", "retention", "flush_interval"].contains(key) {
                warning(location, "spend_ledger.\(key)", "unknown key (ignored)")
            }
            if let enabled = boolean(node["enabled"], "spend_ledger.enabled") { settings.enabled = enabled }
            if let path = string(node["path"], "spend_ledger.path"), !path.isEmpty { settings.path = path }
            if let value = positiveDuration(node["retention"], "spend_ledger.retention") { settings.retention = value }
            if let value = positiveDuration(node["flush_interval"], "spend_ledger.flush_interval") { settings.flushInterval = value }
        }
        settings.path = dataPath(settings.path, file: file)
        return settings
    }

    /// A relative data file's path: under $PRISM_DATA_DIR when set (the image's writable volume),
    /// else beside the config file.
    func dataPath(_ path: String, file: String) -> String {
        if path.hasPrefix("/") { return path }
        if let dataDirectory = environment("PRISM_DATA_DIR"), !dataDirectory.isEmpty {
            return (dataDirectory.hasSuffix("/") ? dataDirectory : dataDirectory + "/") + path
        }
        if let slash = file.lastIndex(of: "/"), !file.hasPrefix("<") { return String(file[..<slash]) + "/" + path }
        return path
    }

    mutating func readAdmin(_ node: YAMLNode?, file: String) -> AdminSettings {
        var settings = AdminSettings()
        if let node, !node.isNull {
            for (key, location, _) in entries(node) where !["token", "store"].contains(key) {
                warning(location, "admin.\(key)", "unknown key (ignored)")
            }
            if let tokenNode = node["token"], let token = string(tokenNode, "admin.token"), !token.isEmpty {
                if token.utf8.count < 16 {
                    error(tokenNode.location, "admin.token", "an admin token needs at least 16 characters")
                }
                settings.token = token
            }
            if let store = string(node["store"], "admin.store") { settings.storePath = store }
        }
        if settings.token == nil, let fromEnvironment = environment("PRISM_ADMIN_TOKEN"), !fromEnvironment.isEmpty {
            settings.token = fromEnvironment
        }
        settings.storePath = dataPath(settings.storePath, file: file)
        return settings
    }


    // MARK: Environment expansion

    /// Replaces `${VAR}` and `${VAR:-default}` in every scalar. A missing variable is an error.
    mutating func expand(_ node: YAMLNode, path: String) -> YAMLNode {
        switch node {
        case let .scalar(text, plain, location):
            guard text.contains("${") else { return node }
            return .scalar(expandText(text, location: location, path: path), plain: plain, location)
        case let .sequence(items, location):
            return .sequence(items.enumerated().map { expand($1, path: "\(path)[\($0)]") }, location)
        case let .mapping(entries, location):
            return .mapping(entries.map { entry in
                (key: entry.key, keyLocation: entry.keyLocation,
                 value: expand(entry.value, path: path.isEmpty ? entry.key : "\(path).\(entry.key)"))
            }, location)
        }
    }

    mutating func expandText(_ text: String, location: SourceLocation, path: String) -> String {
        var output = ""
        var rest = Substring(text)
        while let start = rest.firstRange(of: "${") {
            output += rest[..<start.lowerBound]
            let afterOpen = rest[start.upperBound...]
            guard let close = afterOpen.firstIndex(of: "}") else {
                error(location, path, "unterminated ${ in value")
                return text
            }
            let expression = afterOpen[..<close]
            var name = String(expression)
            var fallback: String?
            if let separator = expression.firstRange(of: ":-") {
                name = String(expression[..<separator.lowerBound])
                fallback = String(expression[separator.upperBound...])
            }
            if let value = environment(name), !(fallback != nil && value.isEmpty) {
                output += value
            } else if let fallback {
                output += fallback
            } else {
                error(location, path, "environment variable \(name) is not set (write ${\(name):-default} to give a default)")
            }
            rest = afterOpen[afterOpen.index(after: close)...]
        }
        output += rest
        return output
    }

    // MARK: Scalars

    func entries(_ node: YAMLNode?) -> [(String, SourceLocation, YAMLNode)] {
        guard case let .mapping(entries, _)? = node else { return [] }
        return entries.map { ($0.key, $0.keyLocation, $0.value) }
    }

    mutating func string(_ node: YAMLNode?, _ path: String) -> String? {
        guard let node, !node.isNull else { return nil }
        guard case let .scalar(text, _, _) = node else {
            error(node.location, path, "expected a single value")
            return nil
        }
        return text
    }

    mutating func integer(_ node: YAMLNode?, _ path: String, range: ClosedRange<Int>) -> Int? {
        guard let text = string(node, path), let node else { return nil }
        guard let value = Int(text), range.contains(value) else {
            error(node.location, path, "expected a whole number in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
            return nil
        }
        return value
    }

    mutating func duration(_ node: YAMLNode?, _ path: String) -> Duration? {
        guard let text = string(node, path), let node else { return nil }
        guard let value = ConfigLoader.parseDuration(text) else {
            error(node.location, path, "invalid duration '\(text)' (use a number with ms, s, m or h, e.g. 500ms, 30s, 5m)")
            return nil
        }
        return value
    }

    /// A timeout where 0 would cut every request (it is not "off"): refused with the reason.
    mutating func positiveDuration(_ node: YAMLNode?, _ path: String) -> Duration? {
        guard let value = duration(node, path), let node else { return nil }
        guard value > .zero else {
            error(node.location, path, "must be more than 0 (0 would time out every request)")
            return nil
        }
        return value
    }

    /// `500ms`, `30s`, `5m`, `1h`, `1.5s`; a bare number means seconds.
    public static func parseDuration(_ text: String) -> Duration? {
        DurationText.milliseconds(text).map { .milliseconds($0) }
    }

    mutating func error(_ location: SourceLocation, _ path: String, _ message: String) {
        diagnostics.append(ConfigDiagnostic(severity: .error, location: location, keyPath: path, message: message))
    }

    mutating func warning(_ location: SourceLocation, _ path: String, _ message: String) {
        diagnostics.append(ConfigDiagnostic(severity: .warning, location: location, keyPath: path, message: message))
    }
}

/// YAML → JSON for plugin configuration: plain scalars that read as numbers, booleans or null
/// become those; quoted scalars stay strings.
func toJSON(_ node: YAMLNode) -> JSONValue {
    switch node {
    case let .scalar(text, plain, _):
        guard plain else { return .string(text) }
        switch text {
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        case "", "null", "~": return .null
        default:
            if Int64(text) != nil { return .number(text) }
            if let value = Double(text), value.isFinite, text.first != "." { return .number(text) }
            return .string(text)
        }
    case let .sequence(items, _): return .array(items.map(toJSON))
    case let .mapping(entries, _): return .object(entries.map { ($0.key, toJSON($0.value)) })
    }
}

extension String {
    package var trimmingSpaces: String {
        var text = Substring(self)
        while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        return String(text)
    }
}
