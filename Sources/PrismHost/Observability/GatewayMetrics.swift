import CoreMetrics
import Prometheus
import PrismPluginABI
import Synchronization

/// Prism's metrics: recorded through the swift-metrics API into one Prometheus registry
/// (swift-prometheus), rendered at `GET /-/metrics`. One per process (swift-metrics' backend is
/// global); it outlives configuration reloads, so counters keep counting across them.
///
/// Per-request recording looks its handles up in a small locked table keyed by the label values,
/// instead of asking the factory (and its registry lock) for them on every request.
public final class GatewayMetrics: Sendable {
    public static let shared = GatewayMetrics()

    package let registry = PrometheusCollectorRegistry()

    /// The names the host records; plugins may not use them.
    static let hostNames: Set<String> = [
        "prism_requests_total", "prism_request_duration_seconds", "prism_time_to_first_token_seconds",
        "prism_tokens_total", "prism_provider_errors_total", "prism_circuit_breaker_state",
        "prism_shared_state_fallbacks_total", "prism_config_reloads_total", "prism_requests_in_flight",
        "prism_health_probes_total", "prism_cost_usd_total", "prism_budget_refusals_total", "prism_budget_warnings_total",
        "prism_trace_spans_exported_total", "prism_trace_spans_dropped_total", "prism_trace_export_failures_total",
    ]

    private struct RequestLabels: Hashable {
        let model: String
        let provider: String
        let status: Int
    }

    private struct RequestHandles {
        let requests: CoreMetrics.Counter
        let duration: CoreMetrics.Timer
        let firstToken: CoreMetrics.Timer
    }

    private let requestHandles = Mutex<[RequestLabels: RequestHandles]>([:])
    private let tokenCounters: [CoreMetrics.Counter]
    private let providerErrors = Mutex<[String: CoreMetrics.Counter]>([:])
    private let circuitGauges = Mutex<[String: CoreMetrics.Gauge]>([:])
    private let inFlightGauge: CoreMetrics.Gauge
    /// Distinct (model, provider, status) label sets kept; beyond it new ones share "other".
    private static let maximumRequestSeries = 5000

    private init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        // Requests through an LLM gateway take from milliseconds to minutes.
        let buckets: [Duration] = [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                                   .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
                                   .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
                                   .seconds(120), .seconds(300)]
        factory.defaultDurationHistogramBuckets = buckets
        MetricsSystem.bootstrap(factory)
        // Handles are made after bootstrap: one made before would record into the no-op backend.
        inFlightGauge = CoreMetrics.Gauge(label: "prism_requests_in_flight")
        tokenCounters = ["input", "output", "cached_input", "reasoning"].map {
            CoreMetrics.Counter(label: "prism_tokens_total", dimensions: [("type", $0)])
        }
    }

    /// One finished client request.
    package func recordRequest(model: String, provider: String, status: Int, durationNanoseconds: UInt64,
                       firstTokenNanoseconds: UInt64, usage: prism_usage)
    {
        let handles = requestHandles.withLock { table -> RequestHandles in
            var labels = RequestLabels(model: model, provider: provider, status: status)
            if let found = table[labels] { return found }
            if table.count >= GatewayMetrics.maximumRequestSeries {
                labels = RequestLabels(model: "other", provider: provider, status: status)
                if let found = table[labels] { return found }
            }
            let statusText = String(labels.status)
            let dimensions = [("model", labels.model), ("provider", labels.provider), ("status", statusText)]
            let made = RequestHandles(
                requests: CoreMetrics.Counter(label: "prism_requests_total", dimensions: dimensions),
                duration: CoreMetrics.Timer(label: "prism_request_duration_seconds",
                                            dimensions: [("model", labels.model), ("provider", labels.provider)]),
                firstToken: CoreMetrics.Timer(label: "prism_time_to_first_token_seconds",
                                              dimensions: [("model", labels.model), ("provider", labels.provider)]))
            table[labels] = made
            return made
        }
        handles.requests.increment()
        handles.duration.recordNanoseconds(Int64(clamping: durationNanoseconds))
        if firstTokenNanoseconds > 0 { handles.firstToken.recordNanoseconds(Int64(clamping: firstTokenNanoseconds)) }
        if usage.input_tokens > 0 { tokenCounters[0].increment(by: Int64(clamping: usage.input_tokens)) }
        if usage.output_tokens > 0 { tokenCounters[1].increment(by: Int64(clamping: usage.output_tokens)) }
        if usage.cached_input_tokens > 0 { tokenCounters[2].increment(by: Int64(clamping: usage.cached_input_tokens)) }
        if usage.reasoning_tokens > 0 { tokenCounters[3].increment(by: Int64(clamping: usage.reasoning_tokens)) }
    }

    /// A failed upstream attempt (5xx, 429, timeout, connection error).
    package func recordProviderError(provider: String, reason: String) {
        let key = provider + "\u{1F}" + reason
        let counter = providerErrors.withLock { table in
            if let found = table[key] { return found }
            let made = CoreMetrics.Counter(label: "prism_provider_errors_total",
                                           dimensions: [("provider", provider), ("reason", reason)])
            table[key] = made
            return made
        }
        counter.increment()
    }

    /// What a request cost (usage × price), by provider, model (a configured or answered name)
    /// and client key (configured names only).
    package func recordCost(provider: String, model: String, key: String, usd: Double) {
        guard usd > 0 else { return }
        CoreMetrics.FloatingPointCounter(label: "prism_cost_usd_total",
                                         dimensions: [("provider", provider), ("model", model), ("key", key)])
            .increment(by: usd)
    }

    /// One active health probe (routing.health_check) and whether the provider answered it.
    package func recordHealthProbe(provider: String, ok: Bool) {
        CoreMetrics.Counter(label: "prism_health_probes_total", dimensions: [("provider", provider), ("result", ok ? "ok" : "failed")])
            .increment()
    }

    /// A request refused because a hard budget of `scope` was spent.
    func recordBudgetRefusal(scope: String) {
        CoreMetrics.Counter(label: "prism_budget_refusals_total", dimensions: [("scope", scope)]).increment()
    }

    /// A budget's spend crossed `budgets.warn_threshold` (`level` warn) or its limit (`level` limit).
    func recordBudgetWarning(scope: String, level: String) {
        CoreMetrics.Counter(label: "prism_budget_warnings_total", dimensions: [("scope", scope), ("level", level)]).increment()
    }

    package func recordReload(succeeded: Bool) {
        CoreMetrics.Counter(label: "prism_config_reloads_total", dimensions: [("result", succeeded ? "applied" : "rejected")])
            .increment()
    }

    /// The trace exporter's counters (Telemetry/TraceExporter), made once, when telemetry traces
    /// its first request, so that they show 0 from then on.
    package struct TraceCounters: Sendable {
        /// Spans the collector took.
        package let exported = CoreMetrics.Counter(label: "prism_trace_spans_exported_total")
        /// Spans lost because the export queue was full.
        package let droppedQueueFull = CoreMetrics.Counter(label: "prism_trace_spans_dropped_total", dimensions: [("reason", "queue_full")])
        /// Spans lost because the collector refused them or could not be reached.
        package let droppedExportFailed = CoreMetrics.Counter(label: "prism_trace_spans_dropped_total",
                                                      dimensions: [("reason", "export_failed")])
        /// Exports (batches) that failed.
        package let failures = CoreMetrics.Counter(label: "prism_trace_export_failures_total")
    }

    package func makeTraceCounters() -> TraceCounters {
        let counters = TraceCounters()
        for counter in [counters.exported, counters.droppedQueueFull, counters.droppedExportFailed, counters.failures] {
            counter.increment(by: 0)
        }
        return counters
    }

    /// The Prometheus text exposition, after refreshing the gauges whose values are read at
    /// scrape time: each provider's circuit and the requests in flight.
    /// `circuits`: each provider's `prism_circuit_breaker_state` (0 closed, 1 open, 2 half open).
    package func render(circuits: [(provider: String, state: Int)], inFlight: Int) -> [UInt8] {
        for (name, state) in circuits {
            let gauge = circuitGauges.withLock { table in
                if let found = table[name] { return found }
                let made = CoreMetrics.Gauge(label: "prism_circuit_breaker_state", dimensions: [("provider", name)])
                table[name] = made
                return made
            }
            gauge.record(state)
        }
        inFlightGauge.record(inFlight)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16_384)
        registry.emit(into: &buffer)
        return buffer
    }
}

/// For bench/metrics: records requests exactly as a finished request does.
public enum MetricsProbe {
    /// One request's recording: the counter, the duration and first-token histograms, tokens.
    public static func recordRequest(model: String, provider: String, status: Int) {
        var usage = prism_usage()
        usage.input_tokens = 120
        usage.output_tokens = 48
        GatewayMetrics.shared.recordRequest(model: model, provider: provider, status: status,
                                            durationNanoseconds: 3_500_000, firstTokenNanoseconds: 900_000, usage: usage)
    }

    /// The exposition's size (forces a render, for the scrape cost).
    public static func renderedBytes() -> Int { GatewayMetrics.shared.registry.emitToBuffer().count }
}
