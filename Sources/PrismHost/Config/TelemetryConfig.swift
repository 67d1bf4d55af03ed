import PrismWire

/// `telemetry:`: OpenTelemetry traces exported over OTLP/HTTP (JSON), and the standard
/// `OTEL_*` environment variables. Where both set a value, the config file wins.
public struct TelemetrySettings: Sendable {
    public var enabled = false
    /// The full OTLP/HTTP traces URL (`…/v1/traces`).
    public var endpoint = TelemetrySettings.defaultEndpoint
    /// Sent with every export (an API key of a hosted backend): secrets, never logged, masked in
    /// GET /-/config.
    public var headers: [(String, String)] = []
    /// The share of requests without a sampled parent that are traced (0…1).
    public var sampleRate = 1.0
    public var serviceName = "prism-gateway"
    /// Request and answer text as span attributes (`gen_ai.prompt`, `gen_ai.completion`).
    public var captureContent = false
    /// `OTEL_RESOURCE_ATTRIBUTES`, besides `service.name`.
    public var resourceAttributes: [(String, String)] = []

    public static let defaultEndpoint = "http://localhost:4318/v1/traces"
    public init() {}
}

extension ConfigLoader {
    static let telemetryKeys: Set<String> = ["enabled", "otlp_endpoint", "headers", "sample_rate", "service_name",
                                             "capture_content"]

    /// `telemetry: {enabled, otlp_endpoint, headers, sample_rate, service_name, capture_content}` over
    /// the `OTEL_*` variables. Telemetry is on with `enabled: true`, or, when the file does not say,
    /// when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and
    /// neither `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none`).
    mutating func readTelemetry(_ node: YAMLNode?, root: YAMLNode) -> TelemetrySettings {
        var settings = TelemetrySettings()
        let here = root.location
        func variable(_ name: String) -> String? {
            guard let value = environment(name)?.trimmingSpaces, !value.isEmpty else { return nil }
            return value
        }
        // The environment first; the file's keys below replace what it set.
        let tracesEndpoint = variable("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        let baseEndpoint = variable("OTEL_EXPORTER_OTLP_ENDPOINT")
        if let url = tracesEndpoint ?? baseEndpoint.map({ $0.hasSuffix("/") ? $0 + "v1/traces" : $0 + "/v1/traces" }) {
            if let problem = TelemetrySettings.urlProblem(url) {
                let name = tracesEndpoint != nil ? "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" : "OTEL_EXPORTER_OTLP_ENDPOINT"
                warning(here, "telemetry", "\(name): \(problem) (ignored)")
            } else {
                settings.endpoint = url
                settings.enabled = variable("OTEL_SDK_DISABLED")?.lowercased() != "true"
                    && variable("OTEL_TRACES_EXPORTER")?.lowercased() != "none"
            }
        }
        for name in ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"] {
            guard let list = variable(name) else { continue }
            for (key, value) in TelemetrySettings.keyValueList(list) {
                if let problem = TelemetrySettings.headerProblem(key, value) {
                    warning(here, "telemetry", "\(name): \(problem) (ignored)") // the value is never shown
                } else {
                    TelemetrySettings.set(&settings.headers, key.lowercased(), value)
                }
            }
        }
        if let protocolName = variable("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ?? variable("OTEL_EXPORTER_OTLP_PROTOCOL"),
           protocolName.lowercased() == "grpc"
        {
            warning(here, "telemetry", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc: Prism exports OTLP over HTTP (JSON); "
                + "point the endpoint at the collector's HTTP port (4318)")
        }
        settings.sampleRate = environmentSampleRate(at: here) ?? 1.0
        if let list = variable("OTEL_RESOURCE_ATTRIBUTES") {
            for (key, value) in TelemetrySettings.keyValueList(list) where !key.isEmpty {
                if key == "service.name" { settings.serviceName = value } else { settings.resourceAttributes.append((key, value)) }
            }
        }
        if let name = variable("OTEL_SERVICE_NAME") { settings.serviceName = name }
        if let capture = variable("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT") {
            if let value = JSONValue.switchValue(capture.lowercased()) {
                settings.captureContent = value
            } else {
                warning(here, "telemetry", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: expected true or false (ignored)")
            }
        }

        guard let node, !node.isNull else { return settings }
        guard case .mapping = node else {
            error(node.location, "telemetry", "expected a mapping (enabled, otlp_endpoint, headers, sample_rate, service_name, capture_content)")
            return settings
        }
        for (key, location, _) in entries(node) where !ConfigLoader.telemetryKeys.contains(key) {
            warning(location, "telemetry.\(key)", "unknown key (ignored)")
        }
        if let enabled = boolean(node["enabled"], "telemetry.enabled") { settings.enabled = enabled }
        if let endpointNode = node["otlp_endpoint"], let text = string(endpointNode, "telemetry.otlp_endpoint") {
            let url = TelemetrySettings.tracesURL(text)
            if let problem = TelemetrySettings.urlProblem(url) {
                error(endpointNode.location, "telemetry.otlp_endpoint", problem)
            } else {
                settings.endpoint = url
            }
        }
        if let headersNode = node["headers"] {
            if case .mapping = headersNode {
                for (name, location, valueNode) in entries(headersNode) {
                    guard let value = string(valueNode, "telemetry.headers.\(name)") else { continue }
                    if let problem = TelemetrySettings.headerProblem(name, value) {
                        error(location, "telemetry.headers.\(name)", problem)
                    } else {
                        TelemetrySettings.set(&settings.headers, name.lowercased(), value)
                    }
                }
            } else if !headersNode.isNull {
                error(headersNode.location, "telemetry.headers", "expected a mapping of header name to value")
            }
        }
        if let rateNode = node["sample_rate"], let text = string(rateNode, "telemetry.sample_rate") {
            if let rate = Double(text), rate >= 0, rate <= 1 {
                settings.sampleRate = rate
            } else {
                error(rateNode.location, "telemetry.sample_rate", "expected a number from 0 to 1 (the share of requests traced), got '\(text)'")
            }
        }
        if let nameNode = node["service_name"], let name = string(nameNode, "telemetry.service_name") {
            if name.isEmpty {
                error(nameNode.location, "telemetry.service_name", "must not be empty")
            } else {
                settings.serviceName = name
            }
        }
        if let capture = boolean(node["capture_content"], "telemetry.capture_content") { settings.captureContent = capture }
        return settings
    }

    /// `OTEL_TRACES_SAMPLER` (`always_on`, `always_off`, `traceidratio`, and their `parentbased_`
    /// forms: Prism's sampler always follows a sampled parent) and `OTEL_TRACES_SAMPLER_ARG`.
    private mutating func environmentSampleRate(at location: SourceLocation) -> Double? {
        let sampler = environment("OTEL_TRACES_SAMPLER")?.trimmingSpaces.lowercased() ?? ""
        switch sampler {
        case "always_on", "parentbased_always_on": return 1
        case "always_off", "parentbased_always_off": return 0
        case "", "traceidratio", "parentbased_traceidratio":
            guard let text = environment("OTEL_TRACES_SAMPLER_ARG")?.trimmingSpaces, !text.isEmpty else { return nil }
            guard let rate = Double(text), rate >= 0, rate <= 1 else {
                warning(location, "telemetry", "OTEL_TRACES_SAMPLER_ARG: expected a number from 0 to 1, got '\(text)' (ignored)")
                return nil
            }
            return rate
        default:
            warning(location, "telemetry", "OTEL_TRACES_SAMPLER '\(sampler)' is not supported (use traceidratio or "
                + "parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG); sampling everything")
            return nil
        }
    }
}

extension TelemetrySettings {
    /// `telemetry.otlp_endpoint` is the collector's address (`http://collector:4318`), to which
    /// `/v1/traces` is added; a URL that already has a path is used as it is.
    package static func tracesURL(_ text: String) -> String {
        guard let scheme = text.firstRange(of: "://") else { return text }
        let rest = text[scheme.upperBound...]
        guard let slash = rest.firstIndex(of: "/") else { return text + "/v1/traces" }
        return rest[slash...] == "/" ? text + "v1/traces" : text
    }

    package static func urlProblem(_ url: String) -> String? {
        let lowered = url.lowercased()
        guard lowered.hasPrefix("http://") || lowered.hasPrefix("https://") else {
            return "expected an http:// or https:// URL (OTLP over HTTP, e.g. http://collector:4318)"
        }
        let authority = url.drop { $0 != "/" }.dropFirst(2).prefix { $0 != "/" && $0 != "?" }
        if authority.isEmpty || authority.hasPrefix(":") { return "the URL has no host" }
        if url.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) { return "the URL holds a space or a control character" }
        return nil
    }

    /// A header that would break the request (the value is not repeated in the message: it is a secret).
    static func headerProblem(_ name: String, _ value: String) -> String? {
        let token = name.utf8.allSatisfy { byte in
            (0x21...0x7E).contains(byte) && !"\"(),/:;<=>?@[\\]{}".utf8.contains(byte)
        }
        if name.isEmpty || !token { return "'\(name)' is not a valid header name" }
        if value.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D || $0 == 0 }) {
            return "the value of header '\(name)' holds a line break"
        }
        return nil
    }

    /// `k1=v1,k2=v2`, each part trimmed and percent-decoded (the W3C Baggage form the
    /// `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_RESOURCE_ATTRIBUTES` variables use).
    static func keyValueList(_ text: String) -> [(String, String)] {
        text.split(separator: ",").compactMap { part -> (String, String)? in
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pieces.count == 2 else { return nil }
            return (PercentEncoding.decode(String(pieces[0]).trimmingSpaces), PercentEncoding.decode(String(pieces[1]).trimmingSpaces))
        }
    }

    static func set(_ headers: inout [(String, String)], _ name: String, _ value: String) {
        headers.removeAll { $0.0 == name }
        headers.append((name, value))
    }
}
