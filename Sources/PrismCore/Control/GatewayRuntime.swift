import Dispatch
import Logging
import PrismLoop
import PrismWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The running gateway across configuration reloads. Requests take the current `Gateway` when
/// they start and keep it to the end (streams included); a reload (POST /-/reload, SIGHUP, the
/// config file changing, an admin API change) validates and builds a new generation on the
/// control queue and swaps it in, or keeps the old one and reports why.
public final class GatewayRuntime: Sendable {
    public let services: GatewayServices
    let logger: Logger
    /// nil: the embedded default configuration (nothing to re-read).
    let configPath: String?
    private let pluginsDirectoryOverride: String?
    private let defaultPluginsDirectory: String
    let adminStore: AdminStore?
    /// Reloads and admin changes run here, one at a time, off the event loops (building a
    /// generation calls plugins' instance_new and may discover models over the network).
    private let control = DispatchQueue(label: "prism.control")

    private struct Generation {
        var gateway: Gateway
        /// The last valid config.yaml, before the admin overlay.
        var file: GatewayConfiguration
        var number: Int
        /// Each organization's generation (Organizations), by id.
        var organizations: [String: Gateway] = [:]
        /// The SHA-256 (hex) of each organization key → its organization's generation.
        var organizationKeys: [String: Gateway] = [:]
    }

    /// What an admin change rebuilds: the file's generation (keys and providers of the default
    /// organization), one organization's, or everything (a reload of config.yaml).
    enum Scope: Sendable, Equatable {
        case file, all
        case organization(String)
    }

    private let generation: Mutex<Generation>
    /// (dev, inode, size, mtime) of the config file at the last load, for the file watcher.
    private let fileSignature = Mutex<[Int64]>([])

    public enum ReloadOutcome: Sendable {
        case applied(generation: Int, warnings: [String])
        case rejected(String)
    }

    public var gateway: Gateway { generation.withLock { $0.gateway } }

    /// The generation that serves a request presenting `bearer`: its organization's when it is an
    /// organization's key, else the file's (one SHA-256 per request, only while organizations exist).
    /// The token is only read while organizations exist.
    func gateway(bearer token: @autoclosure () -> Substring?) -> Gateway {
        let (gateway, organizationKeys) = generation.withLock { ($0.gateway, $0.organizationKeys) }
        guard !organizationKeys.isEmpty, let bearer = token(), !bearer.isEmpty else { return gateway }
        return organizationKeys[AdminStore.sha256Hex(String(bearer))] ?? gateway
    }

    /// The organizations being served: id → its generation.
    var organizations: [String: Gateway] { generation.withLock { $0.organizations } }

    public convenience init(file: GatewayConfiguration, configPath: String?, pluginsDirectoryOverride: String?,
                            defaultPluginsDirectory: String, logger: Logger) throws
    {
        try self.init(file: file, configPath: configPath, pluginsDirectoryOverride: pluginsDirectoryOverride,
                      defaultPluginsDirectory: defaultPluginsDirectory, logger: logger, transport: nil)
    }

    /// `transport`: libcurl unless given (in-process tests give a scripted one).
    package init(file: GatewayConfiguration, configPath: String?, pluginsDirectoryOverride: String?,
         defaultPluginsDirectory: String, logger: Logger, transport: (any UpstreamTransport)?) throws
    {
        self.logger = logger
        self.configPath = configPath
        self.pluginsDirectoryOverride = pluginsDirectoryOverride
        self.defaultPluginsDirectory = defaultPluginsDirectory
        // The admin API's client keys (prism.client_keys.v1) exist while the admin API is on.
        let registry = PluginRegistry(logger: logger, redis: file.redis,
                                      clientKeys: file.admin.token != nil ? ClientKeyTable() : nil)
        var ledger: SpendLedger?
        if file.spendLedger.enabled {
            do {
                ledger = try SpendLedger(path: file.spendLedger.path, retention: file.spendLedger.retention,
                                         flushInterval: file.spendLedger.flushInterval, logger: logger)
            } catch {
                let problem = "spend ledger \(file.spendLedger.path): \(error)" + AdminStore.writabilityHint(path: file.spendLedger.path)
                guard !file.spendLedger.configured else {
                    throw Gateway.StartupError(description: problem + " (or spend_ledger.enabled: false)")
                }
                logger.warning("\(problem); serving without a spend ledger (configure spend_ledger.path, or spend_ledger.enabled: false)")
            }
        }
        services = GatewayServices(registry: registry, maximumIdleConnections: file.idleConnectionBudget, ledger: ledger,
                                   transport: transport)
        let (pinned, placementProblem) = GatewayRuntime.applyProcessSettings(file)
        let loopCount = IOLoopGroup.shared.loops.count
        let placement = pinned.isEmpty ? "placed by the kernel" : "each on its own CPU (\(pinned.map(String.init).joined(separator: ", ")))"
        logger.info("\(loopCount) event loop(s), \(placement)")
        if let placementProblem { logger.warning("\(placementProblem)") }
        if file.admin.token != nil {
            let masterKey = getenv("PRISM_MASTER_KEY").map { String(cString: $0) }
            do {
                adminStore = try AdminStore(path: file.admin.storePath, masterKey: masterKey)
            } catch {
                throw Gateway.StartupError(description: "admin store \(file.admin.storePath): \(error)"
                                           + AdminStore.writabilityHint(path: file.admin.storePath))
            }
            if masterKey?.isEmpty ?? true {
                logger.warning("PRISM_MASTER_KEY is not set: the admin API can manage client keys but not providers")
            }
        } else {
            adminStore = nil
        }
        if let adminStore, let table = registry.clientKeys {
            table.replace(with: AdminOverlay.clientKeys((try? adminStore.keys()) ?? []))
        }
        registry.loadDirectory(pluginsDirectoryOverride ?? file.pluginsDirectory ?? defaultPluginsDirectory)
        let (effective, problems) = try GatewayRuntime.overlay(file, store: adminStore)
        for problem in problems { logger.warning("\(problem)") }
        let gateway = try Gateway(configuration: effective, services: services, logger: logger)
        for warning in gateway.configurationWarnings { logger.warning("\(warning)") }
        var first = Generation(gateway: gateway, file: file, number: 1)
        for problem in GatewayRuntime.rebuildOrganizations(&first, store: adminStore, scope: .all, services: services,
                                                           logger: logger) {
            logger.warning("\(problem)")
        }
        generation = Mutex(first)
        fileSignature.withLock { $0 = GatewayRuntime.signature(of: configPath) }
    }

    /// Sends the spans still queued (at shutdown, after the last request; bounded by the export timeout).
    /// After the drain, before the process exits: the traces still queued are sent and the spend
    /// ledger's buffered rows written (its flush is otherwise up to `flush_interval` away).
    public func flushBeforeExit() {
        services.traces.flush()
        services.ledger?.flush()
    }

    // MARK: Reloading

    /// Re-reads config.yaml and swaps in a new generation when it is valid; `done` runs on the
    /// control queue.
    public func reload(trigger: String, _ done: @escaping @Sendable (ReloadOutcome) -> Void = { _ in }) {
        control.async { [self] in done(reloadNow(trigger: trigger)) }
    }

    private func reloadNow(trigger: String) -> ReloadOutcome {
        guard let configPath else {
            return reject(trigger, "there is no config file to reload (the gateway runs the embedded default)")
        }
        fileSignature.withLock { $0 = GatewayRuntime.signature(of: configPath) }
        let text: String
        switch ConfigFile.read(configPath) {
        case let .success(contents): text = contents
        case let .failure(error): return reject(trigger, "\(error)")
        }
        var loader = ConfigLoader()
        let file: GatewayConfiguration
        let warnings: [ConfigDiagnostic]
        do {
            (file, warnings) = try loader.load(text: text, file: configPath)
        } catch {
            return reject(trigger, error.description)
        }
        for warning in warnings { logger.warning("\(warning)") }
        return rebuild(file: file, trigger: trigger, warnings: warnings.map(\.description))
    }

    /// Builds and swaps in a generation from `file` (or the last valid file) plus the admin store:
    /// the file's and every organization's (`scope` .all), or only one of them.
    private func rebuild(file: GatewayConfiguration?, trigger: String, warnings: [String] = [],
                         scope: Scope = .all) -> ReloadOutcome
    {
        let current = generation.withLock { $0 }
        let file = file ?? current.file
        var notes = warnings
        var gateway = current.gateway
        var replaced: SharedStateService?
        if case .organization = scope {
            // Only the organization changes: the file's generation and the others keep serving.
        } else {
            let running = current.gateway.configuration
            if file.server.port != running.server.port || file.server.host != running.server.host {
                notes.append("server.host and server.port take effect at the next restart")
            }
            if file.admin.storePath != running.admin.storePath || (file.admin.token == nil) != (running.admin.token == nil) {
                notes.append("turning the admin API on or off, or moving its store, takes effect at the next restart")
            }
            services.registry.loadDirectory(pluginsDirectoryOverride ?? file.pluginsDirectory ?? defaultPluginsDirectory)
            // Instances of the new generation bind to the shared state its `redis:` names.
            replaced = services.registry.useSharedState(file.redis)
            do {
                let (effective, problems) = try GatewayRuntime.overlay(file, store: adminStore)
                notes += problems
                gateway = try Gateway(configuration: effective, services: services, logger: logger)
                notes += gateway.configurationWarnings
            } catch {
                if let replaced { services.registry.restoreSharedState(replaced) }
                return reject(trigger, "\(error)")
            }
        }
        var next = Generation(gateway: gateway, file: file, number: 0, organizations: current.organizations,
                              organizationKeys: current.organizationKeys)
        notes += GatewayRuntime.rebuildOrganizations(&next, store: adminStore, scope: replaced != nil ? .all : scope,
                                                     services: services, logger: logger)
        let organizations = next.organizations
        // The old generation's requests may still use the replaced backend for a while.
        replaced?.retire(afterSeconds: 30)
        let number = generation.withLock { state -> Int in
            next.number = state.number + 1
            state = next
            return state.number
        }
        if let placementProblem = GatewayRuntime.applyProcessSettings(file).problem { notes.append(placementProblem) }
        GatewayMetrics.shared.recordReload(succeeded: true)
        for note in notes { logger.warning("reload: \(note)") }
        logger.info("configuration reloaded (\(trigger)): generation \(number), \(gateway.providers.count) provider(s), \(gateway.middleware.count) middleware, \(organizations.count) organization(s)")
        return .applied(generation: number, warnings: notes)
    }

    /// The file's settings that are the process's, not a generation's: taken at start and at
    /// every reload.
    /// Returns the CPUs the loops were pinned to (none: placed by the kernel), and why they could
    /// not be placed as configured, if they could not (they then run wherever the kernel puts them).
    private static func applyProcessSettings(_ file: GatewayConfiguration) -> (pinned: [Int32], problem: String?) {
        LineLogHandler.configure(level: file.logging.level.loggerLevel, json: file.logging.json)
        IOLoop.busyPoll.store(UInt64(max(file.server.busyPoll.microseconds, 0)) * 1000, ordering: .relaxed)
        do {
            return (try IOLoopGroup.shared.pinLoops(file.server.cpuAffinity == .auto), nil)
        } catch {
            return ([], "server.cpu_affinity: \(error); the event loops are placed by the kernel")
        }
    }

    /// Rebuilds `generation`'s organizations as `scope` says (from its file and the store's keys),
    /// and the index of their keys; returns the problems.
    private static func rebuildOrganizations(_ generation: inout Generation, store: AdminStore?, scope: Scope,
                                             services: GatewayServices, logger: Logger) -> [String]
    {
        guard let store else { return [] }
        let stored = serveStoredKeys(store, services: services, logger: logger)
        let (built, problems) = buildOrganizations(file: generation.file, store: store,
                                                   previous: generation.organizations, scope: scope,
                                                   services: services, logger: logger)
        generation.organizations = built
        generation.organizationKeys = keyIndex(built, keys: stored, previous: generation.organizationKeys)
        return problems
    }

    /// The organizations' generations: rebuilt as `scope` says, the others kept from `previous`.
    /// One that cannot be built is left out (its keys then get 401), with why.
    static func buildOrganizations(file: GatewayConfiguration, store: AdminStore,
                                   previous: [String: Gateway], scope: Scope, services: GatewayServices,
                                   logger: Logger) -> ([String: Gateway], [String])
    {
        let stored: [AdminStore.StoredProvider]
        do {
            stored = try store.organizations()
        } catch {
            return ([:], ["organizations left out: \(error)"])
        }
        var built: [String: Gateway] = [:]
        var problems: [String] = []
        for organization in stored {
            let id = organization.name
            let rebuild: Bool
            switch scope {
            case .all: rebuild = true
            case .file: rebuild = previous[id] == nil
            case let .organization(changed): rebuild = changed == id || previous[id] == nil
            }
            if !rebuild, let kept = previous[id] {
                built[id] = kept
                continue
            }
            do {
                built[id] = try buildOrganization(id, section: organization.section, file: file,
                                                  services: services, logger: logger)
            } catch {
                problems.append("organization '\(id)' was left out: \(error)")
            }
        }
        return (built, problems)
    }

    static func buildOrganization(_ id: String, section: JSONValue, file: GatewayConfiguration,
                                  services: GatewayServices, logger: Logger, discover: Bool = true) throws -> Gateway
    {
        let configuration = try Organizations.configuration(file: file, id: id, section: section)
        return try Gateway(configuration: configuration, services: services, logger: logger, discover: discover, organization: id)
    }

    /// The store's client keys, from now on served by the key table (prism.client_keys.v1); nil
    /// when the store cannot be read, and the keys being served stay (an outage otherwise).
    private static func serveStoredKeys(_ store: AdminStore, services: GatewayServices, logger: Logger)
        -> [AdminStore.StoredKey]?
    {
        do {
            let keys = try store.keys()
            services.registry.clientKeys?.replace(with: AdminOverlay.clientKeys(keys))
            return keys
        } catch {
            logger.error("admin store: the client keys could not be read, the ones being served stay: \(error)")
            return nil
        }
    }

    /// Each organization key's SHA-256 → its organization's generation; without the store's keys
    /// (nil), the previous index, pointed at `organizations`.
    static func keyIndex(_ organizations: [String: Gateway], keys: [AdminStore.StoredKey]?,
                         previous: [String: Gateway]) -> [String: Gateway]
    {
        guard let keys else { return previous.compactMapValues { organizations[$0.organization] } }
        var index: [String: Gateway] = [:]
        for key in keys where key.revokedAt == nil {
            if let id = key.extras.organization, let gateway = organizations[id] { index[key.keyHash] = gateway }
        }
        return index
    }

    /// Checks an organization's config by building its generation (nothing is served by it);
    /// nil when it is valid, else why not. On the control queue.
    func validateOrganization(_ id: String, section: JSONValue) -> String? {
        let file = generation.withLock { $0.file }
        do {
            _ = try GatewayRuntime.buildOrganization(id, section: section, file: file, services: services,
                                                     logger: logger, discover: false)
            return nil
        } catch {
            return "\(error)"
        }
    }

    private func reject(_ trigger: String, _ reason: String) -> ReloadOutcome {
        GatewayMetrics.shared.recordReload(succeeded: false)
        logger.error("configuration reload (\(trigger)) rejected, the running configuration stays: \(reason)")
        return .rejected(reason)
    }

    /// Applies an admin API change: the stored state changed, rebuild on the last valid file
    /// what it touched. Runs on the control queue already (from changeLater) or queues itself.
    func adminChanged(_ what: String, scope: Scope = .file, _ done: @escaping @Sendable (ReloadOutcome) -> Void) {
        control.async { [self] in done(rebuild(file: nil, trigger: "admin: \(what)", scope: scope)) }
    }

    /// A client key was created or revoked: the key table (prism.client_keys.v1) and the index of
    /// organizations' keys take the store's keys; no generation is rebuilt. On the control queue.
    func clientKeysChanged() {
        guard let adminStore, let keys = GatewayRuntime.serveStoredKeys(adminStore, services: services, logger: logger)
        else { return }
        generation.withLock {
            $0.organizationKeys = GatewayRuntime.keyIndex($0.organizations, keys: keys, previous: $0.organizationKeys)
        }
    }

    /// Runs `work` on the control queue (admin store access stays off the event loops).
    func onControlQueue(_ work: @escaping @Sendable () -> Void) { control.async(execute: work) }

    static func overlay(_ file: GatewayConfiguration, store: AdminStore?) throws -> (GatewayConfiguration, [String]) {
        guard let store else { return (file, []) }
        let providers: [AdminStore.StoredProvider]
        do {
            providers = try store.providers()
        } catch {
            return (AdminOverlay.apply(to: file, providers: [], keys: try store.keys()).0,
                    ["stored providers left out: \(error)"])
        }
        return AdminOverlay.apply(to: file, providers: providers, keys: try store.keys())
    }

    // MARK: Watching the file

    /// Polls the config file once a second (size, mtime, inode: editors that write a new file
    /// and rename it are seen too) and reloads when it changed.
    public func watchConfigFile(intervalMilliseconds: UInt32 = 1000) {
        guard let configPath else { return }
        startDetachedThread { [self] in
            while true {
                usleep(intervalMilliseconds * 1000)
                let now = GatewayRuntime.signature(of: configPath)
                let changed = fileSignature.withLock { $0 != now && !now.isEmpty }
                guard changed else { continue }
                usleep(100_000) // let the writer finish
                let settled = GatewayRuntime.signature(of: configPath)
                fileSignature.withLock { $0 = settled }
                reload(trigger: "config file changed")
            }
        }
    }

    static func signature(of path: String?) -> [Int64] {
        guard let path else { return [] }
        var status = stat()
        guard stat(path, &status) == 0 else { return [] }
        return [Int64(status.st_dev), Int64(status.st_ino), Int64(status.st_size), Int64(status.st_mtim.tv_sec),
                Int64(status.st_mtim.tv_nsec)]
    }
}
