import Dispatch
import Logging
import Synchronization

/// Active health checks (`routing.health_check`): instead of waiting for client traffic, the
/// gateway probes a provider whose circuit is open as soon as its cooldown has passed, and, with
/// an `interval`, every provider that often. The probe is the provider's models list (cheap, no
/// tokens), through its plugin and the transport; a provider whose plugin has no models list
/// recovers from client traffic as before. A probe is admitted and recorded exactly like a client
/// request (the half-open slot, success and failure thresholds), so the breaker has one logic.
final class HealthChecker: Sendable {
    private let providers: [ProviderInstance]
    private let health: HealthRegistry
    private let settings: HealthCheckSettings
    private let transport: any UpstreamTransport
    private let logger: Logger
    private let timer = BackgroundTimer(label: "prism.health-check")
    private struct State {
        var nextInterval: [String: UInt64] = [:]
        var unsupported: Set<String> = []
        var stopped = false
    }

    private let state = Mutex(State())

    init(providers: [ProviderInstance], health: HealthRegistry, settings: HealthCheckSettings, transport: any UpstreamTransport,
         logger: Logger)
    {
        self.providers = providers
        self.health = health
        self.settings = settings
        self.transport = transport
        self.logger = logger
    }

    func start() {
        guard settings.enabled, !providers.isEmpty else { return }
        timer.start(every: .milliseconds(500)) { [weak self] in self?.tick() }
    }

    func stop() {
        state.withLock { $0.stopped = true }
        timer.stop()
    }

    private func tick() {
        let now = monotonicNanoseconds()
        let interval = settings.interval.map { UInt64($0.milliseconds) * 1_000_000 } ?? 0
        for provider in providers {
            let name = provider.settings.name
            guard let providerHealth = health.byProvider[name] else { continue }
            let (stopped, unsupported, due) = state.withLock { state in
                (state.stopped, state.unsupported.contains(name), interval > 0 && now >= state.nextInterval[name, default: 0])
            }
            if stopped { return }
            if unsupported { continue }
            // An open circuit past its cooldown, or the interval: take the slot a request would.
            let recovering = providerHealth.snapshot.circuit != .closed && providerHealth.isAvailable
            guard recovering || due else { continue }
            if interval > 0 { state.withLock { $0.nextInterval[name] = now + interval } }
            guard providerHealth.admit() else { continue }
            probe(provider, providerHealth)
        }
    }

    private func probe(_ provider: ProviderInstance, _ providerHealth: ProviderHealth) {
        let timeout = Int(settings.timeout.milliseconds)
        switch ModelsListProbe.run(provider, transport: transport, timeoutMilliseconds: timeout) {
        case let .success(answer):
            providerHealth.record(failed: false, latencyMilliseconds: answer.milliseconds)
            providerHealth.recordProbe(ok: true, milliseconds: answer.milliseconds, problem: nil)
            GatewayMetrics.shared.recordHealthProbe(provider: provider.settings.name, ok: true)
        case let .failure(problem) where problem.unsupported:
            providerHealth.releaseProbe()
            state.withLock { _ = $0.unsupported.insert(provider.settings.name) }
            providerHealth.recordProbe(ok: nil, milliseconds: 0, problem: "no models list to probe: recovers from client traffic")
        case let .failure(problem):
            providerHealth.record(failed: true, latencyMilliseconds: 0)
            providerHealth.recordProbe(ok: false, milliseconds: 0, problem: problem.message)
            GatewayMetrics.shared.recordHealthProbe(provider: provider.settings.name, ok: false)
            logger.info("provider '\(provider.settings.name)': health probe failed: \(problem.message)")
        }
    }
}
