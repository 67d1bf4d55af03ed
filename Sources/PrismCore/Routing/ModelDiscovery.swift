import Dispatch
import Logging
import PrismPluginABI
import PrismSupport
import PrismWire
import Synchronization

/// Learns the models of self-hosted servers (`type: ollama | vllm | lmstudio | localai | tgi`, or
/// any provider with `auto_discover: true`) from their `/v1/models`, through the provider plugin
/// (api "models.list") and the normal transport: at startup, every provider's
/// `discovery_interval` (60 s by default) and, at most every `missCooldown`, when a request names
/// a model nothing serves, so a server started after the gateway, or a model pulled later,
/// appears without a reload. Runs on its own queue, never on an event loop.
final class ModelDiscovery: Sendable {
    static let timeoutMilliseconds = 3000
    static let defaultInterval = Duration.seconds(60)
    static let missCooldown: UInt64 = 5_000_000_000

    private let providers: [ProviderInstance]
    private let catalog: ModelCatalog
    private let transport: any UpstreamTransport
    private let logger: Logger
    private let timer = BackgroundTimer(label: "prism.model-discovery")
    private var queue: DispatchQueue { timer.queue }
    private struct State {
        var refreshing = false
        var waiting: [@Sendable (Bool) -> Void] = []
        var lastMissRefresh: UInt64 = 0
        var nextDue: [String: UInt64] = [:]
        var stopped = false
    }

    private let state = Mutex(State())

    init(providers: [ProviderInstance], catalog: ModelCatalog, transport: any UpstreamTransport, logger: Logger) {
        self.providers = providers.filter(\.settings.discoversModels)
        self.catalog = catalog
        self.transport = transport
        self.logger = logger
    }

    /// True when a miss may be answered by asking the servers again.
    var canRefresh: Bool { !providers.isEmpty }

    /// Every discovering provider once, now (startup: the gateway waits for it).
    func discoverAll() {
        for provider in providers { discover(provider) }
    }

    /// Re-discovers each provider every `discovery_interval` until `stop`.
    func startPeriodic() {
        guard !providers.isEmpty else { return }
        state.withLock { state in
            let now = monotonicNanoseconds()
            for provider in providers {
                state.nextDue[provider.settings.name] = now + Self.interval(provider)
            }
        }
        timer.start(every: .seconds(1)) { [weak self] in self?.refreshDue() }
    }

    func stop() {
        state.withLock { $0.stopped = true }
        timer.stop()
    }

    /// A request named a model nothing serves: ask every server again (unless that was done in
    /// the last few seconds) and call `done(changed)` when it is over, on the discovery queue.
    func refreshOnMiss(_ done: @escaping @Sendable (Bool) -> Void) {
        let start = state.withLock { state -> Bool? in
            let now = monotonicNanoseconds()
            if state.refreshing {
                state.waiting.append(done)
                return false
            }
            guard now - state.lastMissRefresh >= Self.missCooldown || state.lastMissRefresh == 0 else { return nil }
            state.refreshing = true
            state.lastMissRefresh = now
            state.waiting.append(done)
            return true
        }
        switch start {
        case nil: done(false)
        case false?: break
        case true?:
            queue.async {
                var changed = false
                for provider in self.providers where self.discover(provider) { changed = true }
                let waiting = self.state.withLock { state -> [@Sendable (Bool) -> Void] in
                    state.refreshing = false
                    defer { state.waiting = [] }
                    return state.waiting
                }
                for callback in waiting { callback(changed) }
            }
        }
    }

    private static func interval(_ provider: ProviderInstance) -> UInt64 {
        UInt64((provider.settings.discoveryInterval ?? defaultInterval).milliseconds) * 1_000_000
    }

    private func refreshDue() {
        let now = monotonicNanoseconds()
        let due = state.withLock { state -> [ProviderInstance] in
            guard !state.stopped else { return [] }
            return providers.filter { (state.nextDue[$0.settings.name] ?? 0) <= now }
        }
        for provider in due {
            discover(provider)
            state.withLock { $0.nextDue[provider.settings.name] = monotonicNanoseconds() + Self.interval(provider) }
        }
    }

    /// Asks one provider for its models; true when its list changed.
    @discardableResult
    private func discover(_ provider: ProviderInstance) -> Bool {
        switch ModelsListProbe.run(provider, transport: transport, timeoutMilliseconds: Self.timeoutMilliseconds) {
        case let .failure(problem):
            logger.warning("provider '\(provider.settings.name)': model discovery failed (\(problem.message)); it serves the models known so far")
            return false
        case let .success(answer):
            guard catalog.setDiscovered(answer.models, for: provider) else { return false }
            logger.info("provider '\(provider.settings.name)': discovered \(answer.models.count) model(s)")
            return true
        }
    }
}

/// One `models.list` request to a provider, built by its plugin and sent by the transport, waited
/// for (never on an event loop): model discovery, and the active health check's cheap probe.
enum ModelsListProbe {
    struct Answer {
        let models: [String]
        let milliseconds: Double
    }

    struct Problem: Error {
        let message: String
        /// The plugin cannot build a models.list (the provider has no such endpoint).
        var unsupported = false
    }

    static func run(_ provider: ProviderInstance, transport: any UpstreamTransport, timeoutMilliseconds: Int) -> Result<Answer, Problem> {
        guard let exchange = provider.newExchange() else { return .failure(Problem(message: "exchange_new failed")) }
        let request = RequestView(api: "models.list", method: "GET", path: "/v1/models", headers: [], body: [],
                                  model: "", requestID: "models-probe")
        let upstream = MessageBuilder()
        upstream.method = "GET"
        let error = ErrorCapture()
        let (status, _) = exchange.buildRequest(request, into: upstream, error: error)
        guard status == PRISM_OK else {
            return .failure(Problem(message: error.isSet ? error.message : "the plugin cannot list models (status \(status))",
                                    unsupported: status == PRISM_ERROR_UNSUPPORTED))
        }
        let started = monotonicNanoseconds()
        let receiver = BlockingReceiver()
        transport.start(Transfer(method: upstream.method, url: upstream.url, headers: upstream.headers,
                                 body: upstream.body, timeoutMilliseconds: timeoutMilliseconds, streaming: false,
                                 gate: nil, delegate: receiver))
        receiver.done.wait()
        let elapsed = Double(monotonicNanoseconds() - started) / 1_000_000
        guard receiver.failure == nil, (200..<300).contains(receiver.status) else {
            return .failure(Problem(message: receiver.failure?.message ?? "HTTP \(receiver.status)"))
        }
        let client = MessageBuilder()
        let translated = receiver.body.withUnsafeBufferPointer { body in
            var response = prism_response(struct_size: UInt32(MemoryLayout<prism_response>.size), status: UInt32(receiver.status),
                                          headers: nil, header_count: 0,
                                          body: prism_bytes(data: body.baseAddress, length: body.count))
            return exchange.translateResponse(&response, into: client, error: error).status
        }
        guard translated == PRISM_OK, let list = try? JSONValue.parse(client.body) else {
            return .failure(Problem(message: error.isSet ? error.message : "the answer is not a model list"))
        }
        return .success(Answer(models: (list["data"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue },
                               milliseconds: elapsed))
    }
}

/// Collects a whole response for a caller that waits (discovery's queue, never an event loop).
final class BlockingReceiver: TransferDelegate, @unchecked Sendable {
    let done = DispatchSemaphore(value: 0)
    var status = 0
    var body: [UInt8] = []
    var failure: TransportFailure?

    func transferReceivedHead(status: Int, headers: HeaderBlock) { self.status = status }
    func transferReceived(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if body.count < 16 << 20 { body.append(contentsOf: bytes) }
        return true
    }
    func transferCompleted(_ failure: TransportFailure?) {
        self.failure = failure
        done.signal()
    }
}
