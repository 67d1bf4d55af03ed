import PrismWire

/// The running configuration: Prism's `config.yaml` keys with their documented defaults.
public struct GatewayConfiguration: Sendable {
    public var server = ServerSettings()
    public var providers: [ProviderSettings] = []
    public var middleware: [MiddlewareSettings] = []
    /// `ingress:` client dialects by component name: their config, or off.
    public var ingress: [IngressSettings] = []
    public var routing = RoutingSettings()
    public var logging = LoggingSettings()
    /// `redis:` when enabled: shared state for rate limits and the cache across replicas.
    public var redis: RedisSettings?
    public var admin = AdminSettings()
    public var costTracking = CostTrackingSettings()
    public var spendLedger = SpendLedgerSettings()
    public var budgets = BudgetSettings()
    /// `telemetry` (and the `OTEL_*` environment): OpenTelemetry traces.
    public var telemetry = TelemetrySettings()
    /// Whether the configuration authenticates clients (`auth.enabled`), known from the shortcut
    /// sections; with `operational_routes: auto` it puts the operational routes behind the admin token.
    public var authenticatesClients = false
    /// The whole configuration as JSON (environment expanded), for GET /-/config (masked there).
    public var document: JSONValue = .object([])
    /// `plugins.dir`; nil means `plugins/` beside the executable.
    public var pluginsDirectory: String?
    /// Where this configuration came from (a path, or "embedded default").
    public var source: String = ""

    public init() {}
}

public struct ServerSettings: Sendable {
    /// Whether /-/metrics and /-/health/* need the admin token under this configuration.
    public func operationalRoutesNeedAdmin(authenticatesClients: Bool) -> Bool {
        switch operationalRoutes {
        case .auto: return authenticatesClients
        case .open: return false
        case .admin: return true
        }
    }

    public var port = 8080
    public var host = "0.0.0.0"
    /// The longest pause between two reads of a request body.
    public var readTimeout: Duration = .seconds(5)
    /// From a request's first byte until its head is parsed (slow header blocks are cut).
    public var headerTimeout: Duration = .seconds(10)
    /// A request body must arrive whole within this, however steadily it trickles.
    public var bodyTimeout: Duration = .seconds(120)
    public var writeTimeout: Duration = .seconds(300)
    public var idleTimeout: Duration = .seconds(120)
    public var shutdownTimeout: Duration = .seconds(30)
    /// After SIGTERM: how long /readyz answers 503 while the listener still accepts and serves, so
    /// a load balancer takes the replica out before connections are refused. 0 by default (a plain
    /// binary stops at once); the deployment examples set it.
    public var drainDelay: Duration = .zero
    /// `server.operational_routes`: who may read /-/metrics and /-/health/*. The probes
    /// (/healthz, /livez, /readyz) are always open.
    public var operationalRoutes: OperationalRoutes = .auto
    /// 32 MiB: agent sessions send 0.5-3.5 MB at p50-p99 and some 10-17 MB; the body is held
    /// whole (after Content-Encoding decoding, which is bounded by the same limit).
    public var maxRequestBodySize = 33_554_432
    /// The largest buffered (non-streaming or error) upstream answer; a larger one is a 502.
    public var maxResponseBodySize = 33_554_432
    /// The longest silence between two pieces of an upstream stream before it counts as stalled.
    public var streamIdleTimeout: Duration = .seconds(60)
    /// A quiet stream gets a keep-alive (an SSE comment, or the client dialect's ping) this often; 0: never.
    public var streamKeepAlive: Duration = .seconds(15)
    public var defaultRequestTimeout: Duration = .seconds(60)
    /// How long an event loop polls for its next event before it sleeps (0: never polls). Takes
    /// the sleeping thread's wake-up off each hop of a request at low load, for up to this much
    /// CPU after a burst of events; a loop whose events come further apart stops polling.
    public var busyPoll: Duration = .microseconds(200)
    /// `auto`: each event loop runs on its own CPU (when the process may use exactly as many CPUs
    /// as there are loops); `off`: the kernel places them.
    public var cpuAffinity: CPUAffinity = .auto
}

public enum CPUAffinity: String, Sendable {
    case auto
    case off
}

public enum OperationalRoutes: String, Sendable {
    /// The admin token while client authentication is on, else open.
    case auto
    /// Open to anyone who reaches the port (a scraper on a private network).
    case open = "public"
    /// Always the admin token.
    case admin
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
    /// The section's keys the gateway does not read itself, where they are (for the plugin).
    public var pluginKeys: [(String, SourceLocation)] = []

    /// `auto_discover`: read the provider's `/v1/models` (at startup, every `discovery_interval`,
    /// and on a miss); nil: the self-hosted types do.
    public var autoDiscover: Bool?
    public var discoveryInterval: Duration?

    /// Config shortcut (the one place the host names OpenAI-compatible types): the self-hosted
    /// servers, whose models are whatever they have pulled or loaded, are discovered by default.
    static let selfHostedTypes: Set<String> = ["ollama", "vllm", "lmstudio", "lm_studio", "localai", "tgi"]

    /// Providers whose `/v1/models` the host reads to learn their models.
    public var discoversModels: Bool { autoDiscover ?? type.map(ProviderSettings.selfHostedTypes.contains) ?? false }
}

/// One `ingress.<name>` entry (every loaded ingress is on unless an entry turns it off).
public struct IngressSettings: Sendable {
    public var name: String
    public var enabled = true
    public var configuration: JSONValue = .object([])
    public var location: SourceLocation?

    public init(name: String, enabled: Bool = true, configuration: JSONValue = .object([]), location: SourceLocation? = nil) {
        self.name = name
        self.enabled = enabled
        self.configuration = configuration
        self.location = location
    }
}

public struct MiddlewareSettings: Sendable {
    public var name: String
    public var configuration: JSONValue
    public var location: SourceLocation?
}

public struct RoutingSettings: Sendable {
    /// `routing:` keys the gateway does not read itself, where they are (for the strategy plugin).
    public var pluginKeys: [(String, SourceLocation)] = []
    public var defaultStrategy = "round-robin"
    /// `routing.weights`: provider name → weight (default 1).
    public var weights: [String: UInt32] = [:]
    /// `routing.targets.<model>`: explicit deployments for a model (pools across providers).
    public var targets: [String: [RouteTarget]] = [:]
    /// `routing.model_fallbacks.<model>`: models to continue with when a model's candidates fail.
    public var modelFallbacks: [String: [String]] = [:]
    /// `model_map` (top level): alias → model, resolved before anything else.
    public var modelMap: [String: String] = [:]
    public var failover = FailoverSettings()
    public var circuitBreaker = CircuitBreakerSettings()
    public var healthCheck = HealthCheckSettings()
    public var retry = RetrySettings()
    /// The whole `routing` section, given to the strategy plugin (prices, race width, ...).
    public var section: JSONValue = .object([])
}

public struct RouteTarget: Sendable {
    public var provider: String
    public var weight: UInt32?
    /// Lower is preferred; the strategy orders candidates within one priority.
    public var priority: Int
    public var modelOverride: String?
}

public struct FailoverSettings: Sendable {
    public var enabled = true
    public var maxAttempts = 3
    public var onStatusCodes: Set<Int> = [429, 500, 502, 503, 504]
    public var onTimeout = true

    package init() {}
}

/// `routing.health_check`: active probes of the providers (their models list).
public struct HealthCheckSettings: Sendable {
    /// Probe a provider whose circuit is open once its cooldown has passed.
    public var enabled = true
    /// Also probe every provider this often (nil: only recovering ones).
    public var interval: Duration?
    public var timeout: Duration = .seconds(5)
}

public struct CircuitBreakerSettings: Sendable {
    public var enabled = true
    public var failureThreshold = 5
    public var successThreshold = 2
    public var cooldown: Duration = .seconds(30)

    package init() {}
}

public struct RetrySettings: Sendable {
    public var enabled = false
    public var maxRetries = 2
    public var initialDelay: Duration = .milliseconds(500)
    public var maxDelay: Duration = .seconds(10)
    public var multiplier = 2.0

    package init() {}
}

public enum LogLevelSetting: String, Sendable {
    case debug, info, warn, error
}

public struct LoggingSettings: Sendable {
    public var level: LogLevelSetting = .info
    /// `logging.format`: one JSON object per line, or text lines.
    public var json = false
    /// `logging.include_bodies`: at debug level, request and response bodies join the request line.
    public var includeBodies = false
}

/// `admin:`: the admin API (off without a token) and its store.
public struct AdminSettings: Sendable {
    /// `admin.token`, else `$PRISM_ADMIN_TOKEN`; nil = the admin API is off.
    public var token: String?
    /// `admin.store`: the SQLite file for providers and keys added at runtime.
    public var storePath = "prism-admin.sqlite"
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

    public init(diagnostics: [ConfigDiagnostic]) { self.diagnostics = diagnostics }
}

/// `cost_tracking`: prices applied to usage (`x-prism-cost`, the request log, the cost metric).
public struct CostTrackingSettings: Sendable {
    public var enabled = true
    /// The price table; nil: `prices.json` beside the binary.
    public var pricesFile: String?
    /// `custom_pricing.<model>`: wins over the table.
    public var customPricing: [String: ModelPrice] = [:]
}

/// `spend_ledger`: every request's spend in an embedded SQLite file (`GET /-/spend`).
public struct SpendLedgerSettings: Sendable {
    public var enabled = true
    /// `spend_ledger:` is in the config: a ledger that cannot be opened stops startup (when it is
    /// only on by default, the gateway serves without one and says so).
    public var configured = false
    /// Relative paths: under $PRISM_DATA_DIR, else beside the config file.
    public var path = "prism-spend.sqlite"
    public var retention: Duration = .seconds(90 * 86_400)
    /// Small writes often: at one connection a second's rows written at once (15-20 ms of
    /// SQLite on another core) lengthened the slowest requests more than twenty small writes do.
    public var flushInterval: Duration = .milliseconds(50)
}
