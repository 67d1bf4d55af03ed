import PrismWire
import Synchronization

/// What the host knows about one provider: its circuit breaker, and the recent latency and error
/// rate routing strategies read. Updated from any event loop; every operation is one short lock.
package final class ProviderHealth: Sendable {
    package enum CircuitState: String, Sendable {
        case closed, open
        case halfOpen = "half_open"

        /// The value of the `prism_circuit_breaker_state` gauge.
        var gaugeValue: Int {
            switch self {
            case .closed: 0
            case .open: 1
            case .halfOpen: 2
            }
        }
    }

    package struct State {
        package var circuit = CircuitState.closed
        var consecutiveFailures = 0
        /// Successes in a row while half open.
        var probeSuccesses = 0
        var openedAt: UInt64 = 0
        /// A half-open circuit lets one probe through at a time.
        var probeInFlight = false
        /// Exponentially weighted averages (α = 0.2): recent behaviour dominates.
        package var latencyMilliseconds = 0.0
        package var errorRate = 0.0
        var requests: UInt64 = 0
        var failures: UInt64 = 0
        /// The last active health probe: when (wall clock ms), whether it answered (nil: the
        /// provider cannot be probed), how fast, what went wrong.
        var lastProbeAt: UInt64 = 0
        var lastProbeOK: Bool?
        var lastProbeMilliseconds = 0.0
        var lastProbeProblem: String?
        var probes: UInt64 = 0
    }

    let name: String
    private let settings: CircuitBreakerSettings
    private let state = Mutex(State())
    static let smoothing = 0.2

    package init(name: String, settings: CircuitBreakerSettings) {
        self.name = name
        self.settings = settings
    }

    /// Whether an attempt may go to this provider now. An open circuit past its cooldown turns
    /// half open and admits exactly one probe.
    package func admit(now: UInt64 = monotonicNanoseconds()) -> Bool {
        guard settings.enabled else { return true }
        return state.withLock { state in
            switch state.circuit {
            case .closed:
                return true
            case .open:
                let cooldown = UInt64(settings.cooldown.milliseconds) * 1_000_000
                guard now >= state.openedAt + cooldown else { return false }
                state.circuit = .halfOpen
                state.probeSuccesses = 0
                state.probeInFlight = true
                return true
            case .halfOpen:
                if state.probeInFlight { return false }
                state.probeInFlight = true
                return true
            }
        }
    }

    /// Whether routing should consider this provider usable (without admitting anything).
    var isAvailable: Bool {
        guard settings.enabled else { return true }
        let now = monotonicNanoseconds()
        return state.withLock { state in
            switch state.circuit {
            case .closed: return true
            case .halfOpen: return !state.probeInFlight
            case .open: return now >= state.openedAt + UInt64(settings.cooldown.milliseconds) * 1_000_000
            }
        }
    }

    /// Records one attempt's outcome. `failed` means the provider misbehaved (5xx, 429, timeout,
    /// connection error), not that the client's request was bad.
    package func record(failed: Bool, latencyMilliseconds: Double, now: UInt64 = monotonicNanoseconds()) {
        state.withLock { state in
            state.requests += 1
            let alpha = ProviderHealth.smoothing
            state.errorRate = state.errorRate * (1 - alpha) + (failed ? alpha : 0)
            if !failed {
                state.latencyMilliseconds = state.latencyMilliseconds == 0
                    ? latencyMilliseconds : state.latencyMilliseconds * (1 - alpha) + latencyMilliseconds * alpha
            }
            guard settings.enabled else { return }
            if failed {
                state.failures += 1
                state.consecutiveFailures += 1
                switch state.circuit {
                case .halfOpen:
                    // The probe failed: open again for a full cooldown.
                    state.circuit = .open
                    state.openedAt = now
                    state.probeInFlight = false
                case .closed where state.consecutiveFailures >= settings.failureThreshold:
                    state.circuit = .open
                    state.openedAt = now
                default: break
                }
            } else {
                state.consecutiveFailures = 0
                if state.circuit == .halfOpen {
                    state.probeInFlight = false
                    state.probeSuccesses += 1
                    if state.probeSuccesses >= settings.successThreshold { state.circuit = .closed }
                }
            }
        }
    }

    /// What the last active health probe found (shown in `/-/health/providers`).
    func recordProbe(ok: Bool?, milliseconds: Double, problem: String?) {
        state.withLock { state in
            state.lastProbeAt = wallClockMilliseconds()
            state.lastProbeOK = ok
            state.lastProbeMilliseconds = milliseconds
            state.lastProbeProblem = problem
            if ok != nil { state.probes += 1 }
        }
    }

    /// The attempt was abandoned (client gone, lost a race): frees a half-open probe slot.
    package func releaseProbe() {
        state.withLock { state in
            if state.circuit == .halfOpen { state.probeInFlight = false }
        }
    }

    package var snapshot: State { state.withLock { $0 } }
}

/// The health of every provider, and the `GET /-/health/providers` answer.
final class HealthRegistry: Sendable {
    let byProvider: [String: ProviderHealth]

    init(providers: [ProviderInstance], settings: CircuitBreakerSettings) {
        var table: [String: ProviderHealth] = [:]
        for provider in providers {
            table[provider.settings.name] = ProviderHealth(name: provider.settings.name, settings: settings)
        }
        byProvider = table
    }

    func report(providers: [ProviderInstance]) -> [UInt8] {
        var writer = JSONWriter(capacity: 256 * max(providers.count, 1))
        writer.beginObject()
        writer.key("providers")
        writer.beginArray()
        for provider in providers {
            guard let health = byProvider[provider.settings.name] else { continue }
            let state = health.snapshot
            writer.beginObject()
            writer.string("name", provider.settings.name)
            writer.string("state", state.circuit.rawValue)
            writer.bool("healthy", state.circuit == .closed)
            writer.key("latency_ms")
            writer.number((state.latencyMilliseconds * 100).rounded() / 100)
            writer.key("error_rate")
            writer.number((state.errorRate * 1000).rounded() / 1000)
            writer.integer("in_flight", Int64(provider.inFlightCount))
            writer.integer("requests", Int64(state.requests))
            writer.integer("failures", Int64(state.failures))
            writer.integer("consecutive_failures", Int64(state.consecutiveFailures))
            if state.lastProbeAt != 0 {
                writer.key("last_probe")
                writer.beginObject()
                writer.integer("at_ms", Int64(state.lastProbeAt))
                if let ok = state.lastProbeOK { writer.bool("ok", ok) } else { writer.key("ok"); writer.null() }
                writer.key("latency_ms")
                writer.number((state.lastProbeMilliseconds * 100).rounded() / 100)
                if let problem = state.lastProbeProblem { writer.string("error", problem) }
                writer.integer("probes", Int64(state.probes))
                writer.endObject()
            }
            writer.endObject()
        }
        writer.endArray()
        writer.endObject()
        return writer.bytes
    }
}
