import NIOHTTP1

/// Where a generation's spans go: the OTLP/HTTP traces URL, its headers and the resource (the
/// service) they describe. Spans carry it to the exporter, so a reload that changes it never
/// sends an older request's spans to the new place or with the new credentials.
package final class TraceDestination: Sendable {
    let url: String
    let headers: [(String, String)]
    let resource: [SpanAttribute]
    /// The URL without a user and password, for log lines (headers are never logged).
    let displayURL: String

    package init(settings: TelemetrySettings) {
        url = settings.endpoint
        headers = settings.headers
        var resource = [SpanAttribute("service.name", .string(settings.serviceName)),
                        SpanAttribute("telemetry.sdk.name", .string("prism")),
                        SpanAttribute("telemetry.sdk.language", .string("swift"))]
        for (key, value) in settings.resourceAttributes where key != "service.name" {
            resource.append(SpanAttribute(key, .string(value)))
        }
        self.resource = resource
        if let info = SecretRedactor.userinfo(url) {
            displayURL = String(url[..<info.startIndex]) + "****" + String(url[info.endIndex...])
        } else {
            displayURL = url
        }
    }
}

/// One configuration generation's tracing: the sampling decision for each request and the
/// destination of its spans. nil on the gateway while telemetry is off.
package final class Tracer: Sendable {
    let settings: TelemetrySettings
    let destination: TraceDestination
    let exporter: TraceExporter
    /// A trace that starts here is sampled when the top 53 bits of its id's low half are below
    /// this (sample_rate × 2^53): all of them at 1, none at 0.
    private let threshold: UInt64

    package init(settings: TelemetrySettings, exporter: TraceExporter) {
        self.settings = settings
        self.exporter = exporter
        destination = TraceDestination(settings: settings)
        let rate = min(max(settings.sampleRate, 0), 1)
        threshold = rate >= 1 ? 1 << 53 : UInt64(rate * 9_007_199_254_740_992)
    }

    /// The trace of a request that is sampled, else nil. A valid `traceparent` from the client
    /// decides by its sampled flag (the trace and the client's span are kept); otherwise
    /// `sample_rate` does.
    package func begin(headers: HTTPHeaders, startedAt: UInt64) -> RequestTrace? {
        if let incoming = headers.first(name: "traceparent"), let parent = TraceParent.parse(incoming) {
            guard parent.sampled else { return nil }
            return RequestTrace(tracer: self, traceHigh: parent.traceHigh, traceLow: parent.traceLow,
                                remoteParent: parent.spanID, startedAt: startedAt,
                                traceState: Tracer.usableTraceState(headers.first(name: "tracestate")))
        }
        guard threshold > 0 else { return nil }
        let low = TraceIDs.next()
        guard low >> 11 < threshold else { return nil }
        return RequestTrace(tracer: self, traceHigh: TraceIDs.next(), traceLow: low, remoteParent: 0,
                            startedAt: startedAt, traceState: nil)
    }

    /// A `tracestate` is passed on as the client sent it, when it is of a sane size.
    static func usableTraceState(_ value: String?) -> String? {
        guard let value, !value.isEmpty, value.utf8.count <= 512 else { return nil }
        return value
    }

    /// `gen_ai.system` for a provider: the OpenTelemetry GenAI conventions' well-known value for
    /// its type or wire format where there is one, else the type or format itself.
    static func system(of provider: ProviderInstance) -> String {
        let kind = provider.settings.type ?? provider.settings.apiFormat
        switch kind {
        case "gemini": return "gcp.gemini"
        case "vertexai", "vertex": return "gcp.vertex_ai"
        case "bedrock": return "aws.bedrock"
        case "azure": return "az.ai.openai"
        case "mistral": return "mistral_ai"
        default: return kind
        }
    }
}
