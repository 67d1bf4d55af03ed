import Logging
import PrismLoop
import PrismWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What outlives configuration reloads: the loaded plugins (never unloaded), the event loops with
/// their libcurl handles and connection pools, the request counters the server drains with, and
/// the metrics.
public final class GatewayServices: Sendable {
    public let registry: PluginRegistry
    /// The loops that serve connections and run upstream transfers (nil with an injected
    /// transport: an in-process test drives its own channel).
    let loops: IOLoopGroup?
    let transport: any UpstreamTransport
    let activity = Activity()
    let metrics = GatewayMetrics.shared
    /// Recent requests and per-minute aggregates for the dashboard.
    package let stats = RequestStats()
    /// Every request's spend, across reloads and restarts (nil: spend_ledger off, or a tool).
    let ledger: SpendLedger?
    /// OpenTelemetry spans on their way to the collector (idle until telemetry traces a request).
    let traces = TraceExporter()

    public convenience init(registry: PluginRegistry, maximumIdleConnections: Int) {
        self.init(registry: registry, maximumIdleConnections: maximumIdleConnections, ledger: nil)
    }

    /// `transport`: libcurl unless given (an in-process test's fake).
    init(registry: PluginRegistry, maximumIdleConnections: Int, ledger: SpendLedger?,
         transport: (any UpstreamTransport)? = nil)
    {
        self.registry = registry
        if let transport {
            loops = nil
            self.transport = transport
        } else {
            let loops = IOLoopGroup.shared
            self.loops = loops
            self.transport = CurlTransport(group: loops, maximumIdleConnections: maximumIdleConnections)
        }
        self.ledger = ledger
    }
}

/// Requests in flight across every configuration generation, and how far shutdown has gone:
/// `draining` (SIGTERM seen: /readyz 503, still serving) then `stopping` (listener closed: new
/// requests on open connections are refused).
final class Activity: Sendable {
    let inFlight = Atomic<Int>(0)
    let draining = Atomic<Bool>(false)
    let stopping = Atomic<Bool>(false)
}

/// One configuration generation of the gateway: the configured instances of the loaded plugins,
/// the model catalog, health and routing. Read-only while serving. A reload builds a new one;
/// requests in flight keep the one they started with until they finish.
public final class Gateway: Sendable {
    public let configuration: GatewayConfiguration
    /// Keys nobody reads (a typo): not the gateway, nor the plugin that declared its own keys.
    public let configurationWarnings: [String]
    public let services: GatewayServices
    public var registry: PluginRegistry { services.registry }
    var activity: Activity { services.activity }
    let providers: [ProviderInstance]
    let middleware: [MiddlewareInstance]
    /// Client dialects and the routes they serve, in the order they are matched.
    let ingressRoutes: [(route: IngressRoute, instance: IngressInstance)]
    let catalog: ModelCatalog
    let health: HealthRegistry
    let planner: RoutePlanner
    /// What every request's attempt scheduler decides by (failover, retry, the request timeout).
    let attemptPolicy: RouteScheduler.Policy
    let transport: any UpstreamTransport
    let gates: [String: AdmissionGate]
    let logger: Logger
    let discovery: ModelDiscovery
    /// Prices for `x-prism-cost` (nil: cost_tracking.enabled is false).
    let prices: PriceTable?
    let healthChecker: HealthChecker
    /// Spend limits (nil: no budget set, or budgets.enabled is false).
    let budgets: BudgetService?
    /// "" (the file's configuration) or the organization this generation serves.
    let organization: String
    /// OpenTelemetry tracing (nil: telemetry is off).
    let tracer: Tracer?

    /// Each provider's circuit as the metrics gauge reads it.
    var circuitStates: [(provider: String, state: Int)] {
        providers.compactMap { provider in
            health.byProvider[provider.settings.name].map { (provider.settings.name, $0.snapshot.circuit.gaugeValue) }
        }
    }

    public struct StartupError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Convenience for one generation that loads its plugins itself (tools, benchmarks and
    /// `validate`, which passes `discover: false` so that nothing touches the network).
    public convenience init(configuration: GatewayConfiguration, pluginsDirectory: String, logger: Logger,
                            discover: Bool = true) throws(StartupError)
    {
        let registry = PluginRegistry(logger: logger, redis: configuration.redis)
        registry.loadDirectory(pluginsDirectory)
        let services = GatewayServices(registry: registry, maximumIdleConnections: configuration.idleConnectionBudget)
        try self.init(configuration: configuration, services: services, logger: logger, discover: discover)
    }

    /// Creates every configured instance from the plugins `services` has loaded. A provider,
    /// middleware or routing strategy that no plugin provides, or whose instance_new fails, stops
    /// startup (or fails the reload, which keeps the running generation): a configuration that
    /// cannot serve what it says is refused, never half applied.
    /// `organization`: "" for the configuration of the file; an organization's id for one of
    /// the admin API's organizations (its plugin instances and budgets keep state apart).
    public init(configuration: GatewayConfiguration, services: GatewayServices, logger: Logger,
                discover: Bool = true, organization: String = "") throws(StartupError)
    {
        self.configuration = configuration
        self.organization = organization
        self.logger = logger
        self.services = services
        SecretRedactor.shared.register(configuration)
        let registry = services.registry
        if let duplicate = registry.duplicates.first {
            throw StartupError(description: "plugin \(duplicate.file): \(duplicate.reason): two plugin files claim one "
                + "component name; remove one of them (the gateway will not guess which should receive its configuration)")
        }

        var warnings: [String] = []
        /// A component that declared its keys (ABI 1.4 config_keys) is told apart from a typo.
        func checkKeys(_ keys: [(String, SourceLocation)], declared: [String]?, path: String, owner: String) {
            warnings += Gateway.unknownKeys(keys, declared: declared, path: path, owner: owner)
        }
        if configuration.costTracking.enabled {
            let (table, problem) = PriceTable.load(path: configuration.costTracking.pricesFile ?? Gateway.defaultPricesFile,
                                                   custom: configuration.costTracking.customPricing)
            if let problem { warnings.append("cost_tracking: \(problem)") }
            prices = table
        } else {
            prices = nil
        }
        // With the admin API on, a key created later may carry a budget of its own.
        if configuration.budgets.enabled && (!configuration.budgets.isEmpty || registry.clientKeys != nil) {
            if prices == nil && !configuration.budgets.isEmpty {
                warnings.append("budgets: cost_tracking is off, so nothing has a cost and no budget is ever spent")
            }
            budgets = BudgetService(settings: configuration.budgets, state: registry.sharedState, logger: logger,
                                    counterPrefix: organization.isEmpty ? "" : "org/\(organization)/",
                                    keyBudgets: registry.clientKeys, organization: organization)
        } else {
            budgets = nil
        }
        var providers: [ProviderInstance] = []
        var gates: [String: AdmissionGate] = [:]
        for settings in configuration.providers {
            let componentName = settings.type.flatMap { registry.providers[$0] != nil ? $0 : nil } ?? settings.apiFormat
            guard let component = registry.providers[componentName] else {
                throw StartupError(description: "provider '\(settings.name)' (\(settings.location)): no loaded plugin "
                    + "provides api_format '\(settings.apiFormat)' (loaded: \(registry.providers.keys.sorted().joined(separator: ", ")))")
            }
            checkKeys(settings.pluginKeys, declared: component.configKeys, path: "providers.\(settings.name)",
                      owner: "provider plugin '\(componentName)'")
            let timeout = settings.defaultTimeout ?? configuration.server.defaultRequestTimeout
            do {
                let instance = try ProviderInstance(settings: settings, component: component, registry: registry,
                                                    timeoutMilliseconds: timeout.milliseconds, scope: organization)
                providers.append(instance)
                if let limit = settings.maxConcurrent { gates[settings.name] = AdmissionGate(limit: limit) }
            } catch {
                throw StartupError(description: "provider '\(settings.name)' (\(settings.location)): \(error.message)")
            }
        }
        self.providers = providers
        self.gates = gates

        var middleware: [MiddlewareInstance] = []
        for settings in configuration.middleware {
            guard let component = registry.middleware[settings.name] else {
                if FirstParty.mayBeAbsent(settings, listCount: configuration.middleware.count) { continue }
                throw StartupError(description: "middleware '\(settings.name)' is configured but no loaded plugin provides it")
            }
            if let location = settings.location, let members = settings.configuration.objectValue {
                checkKeys(members.map { ($0.0, location) }, declared: component.configKeys.map { $0 + ["enabled"] },
                          path: "middleware \(settings.name)", owner: "middleware plugin '\(settings.name)'")
            }
            do {
                middleware.append(try MiddlewareInstance(settings: settings, component: component, registry: registry,
                                                         scope: organization))
            } catch {
                throw StartupError(description: "middleware '\(settings.name)': \(error.message)")
            }
        }
        self.middleware = middleware
        ingressRoutes = try Gateway.ingressRoutes(configuration: configuration, registry: registry, scope: organization,
                                                  warnings: &warnings)

        let strategy = configuration.routing.defaultStrategy
        var router: RouterInstance?
        if let component = registry.routers[strategy] {
            checkKeys(configuration.routing.pluginKeys, declared: component.configKeys, path: "routing",
                      owner: "routing strategy '\(strategy)'")
            do {
                router = try RouterInstance(name: strategy, component: component, registry: registry,
                                            configuration: configuration.routing.section, scope: organization)
            } catch {
                throw StartupError(description: "routing strategy '\(strategy)': \(error.message)")
            }
        } else {
            throw StartupError(description: "routing.default_strategy '\(strategy)': no loaded plugin provides it "
                + "(loaded: \(registry.routers.keys.sorted().joined(separator: ", ")))")
        }

        configurationWarnings = warnings
        transport = services.transport
        let catalog = ModelCatalog(providers: providers)
        discovery = ModelDiscovery(providers: providers, catalog: catalog, transport: transport, logger: logger)
        if discover {
            discovery.discoverAll()
            discovery.startPeriodic()
        }
        self.catalog = catalog
        health = HealthRegistry(providers: providers, settings: configuration.routing.circuitBreaker)
        planner = RoutePlanner(settings: configuration.routing, catalog: catalog, health: health, router: router)
        attemptPolicy = .init(failover: configuration.routing.failover, retry: configuration.routing.retry,
                              requestTimeout: configuration.server.defaultRequestTimeout)
        healthChecker = HealthChecker(providers: providers, health: health, settings: configuration.routing.healthCheck,
                                      transport: transport, logger: logger)
        if discover { healthChecker.start() }
        tracer = configuration.telemetry.enabled ? Tracer(settings: configuration.telemetry, exporter: services.traces) : nil
        if let tracer, discover {
            logger.info("telemetry: OpenTelemetry traces to \(tracer.destination.displayURL) (OTLP/HTTP JSON, sample_rate \(tracer.settings.sampleRate), service \(tracer.settings.serviceName)\(tracer.settings.captureContent ? ", with content" : ""))")
        }
    }

    /// Every loaded ingress component not turned off, with its `ingress.<name>` config; a route the
    /// host serves itself, or one another dialect claimed first, is refused with a warning.
    private static func ingressRoutes(configuration: GatewayConfiguration, registry: PluginRegistry, scope: String,
                                      warnings: inout [String]) throws(StartupError) -> [(route: IngressRoute, instance: IngressInstance)]
    {
        var routes: [(route: IngressRoute, instance: IngressInstance)] = []
        for settings in configuration.ingress where registry.ingresses[settings.name] == nil {
            warnings.append("\(settings.location.map { "\($0): " } ?? "")warning: ingress.\(settings.name): no loaded plugin provides this dialect")
        }
        for (name, component) in registry.ingresses.sorted(by: { $0.key < $1.key }) {
            let settings = configuration.ingress.first { $0.name == name } ?? IngressSettings(name: name)
            guard settings.enabled else { continue }
            if let location = settings.location, let members = settings.configuration.objectValue {
                warnings += unknownKeys(members.map { ($0.0, location) }, declared: component.configKeys.map { $0 + ["enabled"] },
                                        path: "ingress.\(name)", owner: "ingress plugin '\(name)'")
            }
            let instance: IngressInstance
            do {
                instance = try IngressInstance(name: name, component: component, registry: registry,
                                               configuration: settings.configuration, scope: scope)
            } catch {
                throw StartupError(description: "ingress '\(name)': \(error.message)")
            }
            for route in instance.routes {
                let shadowsHost = Gateway.hostRoutes.contains { host in
                    route.path == host || route.path.hasPrefix("/-/") || (host.hasSuffix("/") && route.path.hasPrefix(host))
                        || (route.isPrefix && host.hasPrefix(route.path)) // "/" or "/-" would cover the host's own
                }
                if shadowsHost || !route.path.hasPrefix("/") {
                    warnings.append("ingress '\(name)': route \(route.method) \(route.path) is the gateway's own; not served")
                } else if let taken = routes.first(where: { $0.route.method == route.method && $0.route.path == route.path }) {
                    warnings.append("ingress '\(name)': route \(route.method) \(route.path) is already served by ingress '\(taken.instance.name)'")
                } else {
                    routes.append((route, instance))
                }
            }
        }
        // Exact paths before prefixes, then longer prefixes first.
        return routes.sorted { left, right in
            if left.route.isPrefix != right.route.isPrefix { return !left.route.isPrefix }
            return left.route.path.count > right.route.path.count
        }
    }

    /// A component that declared its keys (ABI 1.4 config_keys) is told apart from a typo.
    static func unknownKeys(_ keys: [(String, SourceLocation)], declared: [String]?, path: String, owner: String) -> [String] {
        guard let declared else { return [] }
        return keys.filter { !declared.contains($0.0) }.map { key, location in
            "\(location): warning: \(path).\(key): unknown key (neither the gateway nor \(owner) reads it)"
        }
    }

    /// Paths the host serves itself (a trailing "/" covers everything under it).
    static let hostRoutes = ["/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/models/", "/healthz", "/livez",
                             "/readyz", "/ui", "/ui/", "/-/"]

    /// The dialect serving `method path`, if any.
    func ingress(method: String, path: String) -> (instance: IngressInstance, route: IngressRoute)? {
        for entry in ingressRoutes where entry.route.matches(method: method, path: path) { return (entry.instance, entry.route) }
        return nil
    }

    /// `prices.json` beside the binary (dist/ and the image ship it).
    static let defaultPricesFile = besideBinary("prices.json")

    /// A file shipped beside the binary (dist/ and the image's /app).
    static func besideBinary(_ name: String) -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return name }
        let path = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/") + "/" + name
    }

    // A replaced generation stops asking servers for their models, and probing them, once its
    // last request is done.
    deinit {
        discovery.stop()
        healthChecker.stop()
    }
}

extension GatewayConfiguration {
    /// Keep-alive connections libcurl may cache: the providers' `conn_pool_size` summed.
    public var idleConnectionBudget: Int { max(64, providers.reduce(0) { $0 + ($1.connectionPoolSize ?? 32) }) }
}
