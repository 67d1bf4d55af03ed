import PrismWire

/// The running configuration: Prism's `config.yaml` keys with their documented defaults.
public struct GatewayConfiguration: Sendable {
    public var server = ServerSettings()
    public var providers: [ProviderSettings] = []
    public var middleware: [MiddlewareSettings] = []
    public var routing = RoutingSettings()
    public var logging = LoggingSettings()
    /// `plugins.dir`; nil means `plugins/` beside the executable.
    public var pluginsDirectory: String?
    /// Where this configuration came from (a path, or "embedded default").
    public var source: String = ""

    public init() {}
}

public struct ServerSettings: Sendable {
    public var port = 8080
    public var host = "0.0.0.0"
    public var readTimeout: Duration = .seconds(5)
    public var writeTimeout: Duration = .seconds(300)
    public var idleTimeout: Duration = .seconds(120)
    public var shutdownTimeout: Duration = .seconds(30)
    public var maxRequestBodySize = 10_485_760
    public var defaultRequestTimeout: Duration = .seconds(60)
}

public struct ProviderSettings: Sendable {
    public var name: String
    public var apiFormat: String
    public var type: String?
    public var models: [String]
    public var defaultTimeout: Duration?
    public var maxConcurrent: Int?
    public var connectionPoolSize: Int?
    /// The whole section (environment expanded) as JSON, given to the provider plugin.
    public var section: JSONValue
    public var location: SourceLocation

    /// Types whose `/v1/models` the host reads at startup to learn their models.
    public var discoversModels: Bool { type == "ollama" || type == "vllm" }
}

public struct MiddlewareSettings: Sendable {
    public var name: String
    public var configuration: JSONValue
    public var location: SourceLocation?
}

public struct RoutingSettings: Sendable {
    public var defaultStrategy = "round-robin"
}

public enum LogLevelSetting: String, Sendable {
    case debug, info, warn, error
}

public struct LoggingSettings: Sendable {
    public var level: LogLevelSetting = .info
}

/// One problem found in a config file.
public struct ConfigDiagnostic: Sendable, CustomStringConvertible {
    public enum Severity: String, Sendable { case error, warning }
    public var severity: Severity
    public var location: SourceLocation
    public var keyPath: String
    public var message: String

    public var description: String {
        keyPath.isEmpty ? "\(location): \(severity.rawValue): \(message)"
            : "\(location): \(severity.rawValue): \(keyPath): \(message)"
    }
}

public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [ConfigDiagnostic]
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
