import NIOHTTP1
import PrismWire
import XCTest
import PrismCore

final class TelemetryTests: XCTestCase {
    // MARK: traceparent

    func testTraceparentParsesTheSpecificationsExample() throws {
        let parent = try XCTUnwrap(TraceParent.parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
        XCTAssertEqual(parent.traceHigh, 0x4BF9_2F35_77B3_4DA6)
        XCTAssertEqual(parent.traceLow, 0xA3CE_929D_0E0E_4736)
        XCTAssertEqual(parent.spanID, 0x00F0_67AA_0BA9_02B7)
        XCTAssertTrue(parent.sampled)
        XCTAssertFalse(try XCTUnwrap(TraceParent.parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")).sampled)
        XCTAssertNotNil(TraceParent.parse("  00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 "))
        // A later version may add fields after a dash.
        XCTAssertNotNil(TraceParent.parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-comes"))
    }

    func testInvalidTraceparentsAreIgnored() {
        for value in [
            "", "00", "garbage",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // upper case
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero span id
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", // version 00 has no more fields
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", // no dash before more
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0z",
        ] {
            XCTAssertNil(TraceParent.parse(value), value)
        }
    }

    func testTraceparentRoundTripsAndIdsAreDistinct() throws {
        let text = TraceParent.format(traceHigh: 1, traceLow: 0xABC, spanID: 0xFFFF_FFFF_FFFF_FFFF, sampled: true)
        XCTAssertEqual(text, "00-00000000000000010000000000000abc-ffffffffffffffff-01")
        XCTAssertEqual(TraceParent.parse(text), TraceParent(traceHigh: 1, traceLow: 0xABC, spanID: .max, sampled: true))
        XCTAssertEqual(TraceIDs.hex(0x00F0_67AA_0BA9_02B7), "00f067aa0ba902b7")
        let ids = (0..<10_000).map { _ in TraceIDs.next() }
        XCTAssertEqual(Set(ids).count, ids.count)
        XCTAssertFalse(ids.contains(0))
    }

    // MARK: Configuration

    func load(_ text: String, environment: [String: String] = [:]) throws -> (TelemetrySettings, [ConfigDiagnostic]) {
        var loader = ConfigLoader(environment: { environment[$0] })
        let (configuration, warnings) = try loader.load(text: "providers: {}\n" + text, file: "test.yaml")
        return (configuration.telemetry, warnings)
    }

    func testTelemetryIsOffByDefaultAndTheFileSectionIsRead() throws {
        XCTAssertFalse(try load("").0.enabled)
        let (settings, warnings) = try load("""
            telemetry:
              enabled: true
              otlp_endpoint: "http://collector:4318"
              headers: {Authorization: "Bearer abc", x-team: ml}
              sample_rate: 0.25
              service_name: gateway-eu
              capture_content: true
            """)
        XCTAssertTrue(warnings.isEmpty, "\(warnings)")
        XCTAssertTrue(settings.enabled)
        XCTAssertEqual(settings.endpoint, "http://collector:4318/v1/traces")
        XCTAssertEqual(settings.headers.map(\.0), ["authorization", "x-team"])
        XCTAssertEqual(settings.headers.first?.1, "Bearer abc")
        XCTAssertEqual(settings.sampleRate, 0.25)
        XCTAssertEqual(settings.serviceName, "gateway-eu")
        XCTAssertTrue(settings.captureContent)
    }

    func testEndpointPaths() {
        XCTAssertEqual(TelemetrySettings.tracesURL("http://c:4318"), "http://c:4318/v1/traces")
        XCTAssertEqual(TelemetrySettings.tracesURL("http://c:4318/"), "http://c:4318/v1/traces")
        XCTAssertEqual(TelemetrySettings.tracesURL("https://otlp.example.com/v1/traces"), "https://otlp.example.com/v1/traces")
        XCTAssertEqual(TelemetrySettings.tracesURL("https://example.com/otlp/traces"), "https://example.com/otlp/traces")
        XCTAssertNil(TelemetrySettings.urlProblem("http://c:4318/v1/traces"))
        XCTAssertNotNil(TelemetrySettings.urlProblem("c:4318"))
        XCTAssertNotNil(TelemetrySettings.urlProblem("http://:4318/v1/traces"))
        XCTAssertNotNil(TelemetrySettings.urlProblem("grpc://c:4317"))
    }

    func testTheEnvironmentConfiguresAndTheFileWins() throws {
        let environment = [
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env-collector:4318",
            "OTEL_EXPORTER_OTLP_HEADERS": "api-key=s%3Dcret,x-team=ml",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-team=traces",
            "OTEL_SERVICE_NAME": "from-env",
            "OTEL_TRACES_SAMPLER_ARG": "0.5",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,service.name=resource-name",
        ]
        let (fromEnvironment, _) = try load("", environment: environment)
        XCTAssertTrue(fromEnvironment.enabled)
        XCTAssertEqual(fromEnvironment.endpoint, "http://env-collector:4318/v1/traces")
        XCTAssertEqual(fromEnvironment.headers.sorted { $0.0 < $1.0 }.map { "\($0.0)=\($0.1)" }, ["api-key=s=cret", "x-team=traces"])
        XCTAssertEqual(fromEnvironment.serviceName, "from-env")
        XCTAssertEqual(fromEnvironment.sampleRate, 0.5)
        XCTAssertEqual(fromEnvironment.resourceAttributes.map(\.0), ["deployment.environment"])

        let (fileWins, _) = try load("""
            telemetry: {otlp_endpoint: "http://file:4318/custom", sample_rate: 1, service_name: from-file, headers: {x-team: file}}
            """, environment: environment.merging(["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces-env/v1/traces"]) { $1 })
        XCTAssertTrue(fileWins.enabled, "the environment's endpoint turns it on unless the file says enabled: false")
        XCTAssertEqual(fileWins.endpoint, "http://file:4318/custom")
        XCTAssertEqual(fileWins.sampleRate, 1)
        XCTAssertEqual(fileWins.serviceName, "from-file")
        XCTAssertEqual(fileWins.headers.first { $0.0 == "x-team" }?.1, "file")

        XCTAssertFalse(try load("telemetry: {enabled: false}\n", environment: environment).0.enabled)
        XCTAssertFalse(try load("", environment: environment.merging(["OTEL_SDK_DISABLED": "true"]) { $1 }).0.enabled)
        XCTAssertFalse(try load("", environment: environment.merging(["OTEL_TRACES_EXPORTER": "none"]) { $1 }).0.enabled)
        XCTAssertEqual(try load("", environment: ["OTEL_TRACES_SAMPLER": "always_off"]).0.sampleRate, 0)
        let (ignored, warnings) = try load("", environment: ["OTEL_TRACES_SAMPLER_ARG": "lots"])
        XCTAssertEqual(ignored.sampleRate, 1)
        XCTAssertTrue(warnings.contains { $0.message.contains("OTEL_TRACES_SAMPLER_ARG") })
    }

    func testBadTelemetryValuesAreErrorsWithTheirPath() {
        for (text, path) in [("telemetry: {sample_rate: 2}", "telemetry.sample_rate"),
                             ("telemetry: {sample_rate: half}", "telemetry.sample_rate"),
                             ("telemetry: {otlp_endpoint: \"collector:4318\"}", "telemetry.otlp_endpoint"),
                             ("telemetry: {enabled: 1}", "telemetry.enabled"),
                             ("telemetry: {service_name: \"\"}", "telemetry.service_name"),
                             ("telemetry: {headers: [a]}", "telemetry.headers"),
                             ("telemetry: {headers: {\"x-a\": \"1\\r\\nInjected: yes\"}}", "telemetry.headers.x-a")]
        {
            XCTAssertThrowsError(try load(text + "\n"), text) { error in
                let diagnostics = (error as? ConfigError)?.diagnostics ?? []
                XCTAssertTrue(diagnostics.contains { $0.keyPath == path && $0.severity == .error }, "\(text): \(diagnostics)")
            }
        }
    }

    // MARK: Sampling

    func testSamplingFollowsTheRateAndTheParent() {
        let exporter = TraceExporter()
        func tracer(_ rate: Double) -> Tracer {
            var settings = TelemetrySettings()
            settings.enabled = true
            settings.sampleRate = rate
            return Tracer(settings: settings, exporter: exporter)
        }
        let none = HTTPHeaders()
        XCTAssertTrue((0..<100).allSatisfy { _ in tracer(1).begin(headers: none, startedAt: 0) != nil })
        XCTAssertTrue((0..<100).allSatisfy { _ in tracer(0).begin(headers: none, startedAt: 0) == nil })
        let half = tracer(0.5)
        let sampled = (0..<4000).filter { _ in half.begin(headers: none, startedAt: 0) != nil }.count
        XCTAssertTrue((1600...2400).contains(sampled), "\(sampled) of 4000 at 0.5")
        let parent = HTTPHeaders([("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")])
        let trace = tracer(0).begin(headers: parent, startedAt: 0)
        XCTAssertEqual(trace?.remoteParent, 0x00F0_67AA_0BA9_02B7)
        XCTAssertEqual(trace?.traceLow, 0xA3CE_929D_0E0E_4736)
        let unsampled = HTTPHeaders([("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")])
        XCTAssertNil(tracer(1).begin(headers: unsampled, startedAt: 0))
    }

    // MARK: Encoding

    func testTheExportIsOTLPJSON() throws {
        var settings = TelemetrySettings()
        settings.serviceName = "svc"
        let destination = TraceDestination(settings: settings)
        let root = SpanRecord(id: 0xA, parent: 0, name: "chat m", kind: .server, start: 100, end: 200,
                              attributes: [SpanAttribute("gen_ai.usage.input_tokens", .integer(13)),
                                           SpanAttribute("prism.stream", .bool(false)),
                                           SpanAttribute("gen_ai.request.temperature", .double(0.5)),
                                           SpanAttribute("gen_ai.response.finish_reasons", .strings(["stop"]))])
        var child = SpanRecord(id: 0xB, parent: 0xA, name: "route m", kind: .internal, start: 120, end: 130, attributes: [])
        child.failed = true
        child.statusMessage = "no provider"
        let trace = FinishedTrace(traceHigh: 1, traceLow: 2, wallOffset: 1_000, spans: [root, child], destination: destination,
                                  content: nil)
        let json = try JSONValue.parse(OTLPEncoding.encode([trace], destination: destination))
        let resource = try XCTUnwrap(json["resourceSpans"]?.arrayValue?.first)
        XCTAssertEqual(resource["resource"]?["attributes"]?.arrayValue?.first?["value"]?["stringValue"]?.stringValue, "svc")
        let spans = try XCTUnwrap(resource["scopeSpans"]?.arrayValue?.first?["spans"]?.arrayValue)
        XCTAssertEqual(spans.count, 2)
        XCTAssertEqual(spans[0]["traceId"]?.stringValue, "00000000000000010000000000000002")
        XCTAssertEqual(spans[0]["spanId"]?.stringValue, "000000000000000a")
        XCTAssertNil(spans[0]["parentSpanId"])
        XCTAssertEqual(spans[0]["kind"]?.integerValue, 2)
        XCTAssertEqual(spans[0]["startTimeUnixNano"]?.stringValue, "1100")
        XCTAssertEqual(spans[0]["endTimeUnixNano"]?.stringValue, "1200")
        let values = spans[0]["attributes"]?.arrayValue?.map { $0["value"]! } ?? []
        XCTAssertEqual(values[0]["intValue"]?.stringValue, "13")
        XCTAssertEqual(values[1]["boolValue"], .bool(false))
        XCTAssertEqual(values[2]["doubleValue"]?.doubleValue, 0.5)
        XCTAssertEqual(values[3]["arrayValue"]?["values"]?.arrayValue?.first?["stringValue"]?.stringValue, "stop")
        XCTAssertNil(spans[0]["status"])
        XCTAssertEqual(spans[1]["parentSpanId"]?.stringValue, "000000000000000a")
        XCTAssertEqual(spans[1]["status"]?["code"]?.integerValue, 2)
        XCTAssertEqual(spans[1]["status"]?["message"]?.stringValue, "no provider")
    }

    func testCapturedContentBecomesText() {
        var content = CapturedContent()
        content.answer = Array(#"{"choices":[{"message":{"role":"assistant","content":"Hi there"}}]}"#.utf8)
        XCTAssertEqual(OTLPEncoding.completionText(content), "Hi there")
        content.answerIsStream = true
        content.answer = Array("data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\" you\"}}]}\n\ndata: [DONE]\n\n".utf8)
        XCTAssertEqual(OTLPEncoding.completionText(content), "Hi you")
        let long = String(repeating: "é", count: 10_000) // 20,000 bytes
        let cut = OTLPEncoding.cut(long)
        XCTAssertTrue(cut.hasSuffix("…[cut]"))
        XCTAssertLessThanOrEqual(cut.utf8.count, OTLPEncoding.contentLimit + 10)
        XCTAssertFalse(cut.contains("\u{FFFD}"))
    }

    func testAnswerFactsAreReadFromCompactOrSpacedJSON() {
        let compact = Array(#"{"id":"c-1","model":"m","choices":[{"finish_reason":"stop"},{"finish_reason":null},{"finish_reason": "length"}]}"#.utf8)
        compact.withUnsafeBytes { raw in
            XCTAssertEqual(RequestTrace.stringValue(after: #""finish_reason":"#, in: raw), ["stop", "length"])
            XCTAssertEqual(RequestTrace.stringValue(after: #""id":"#, in: raw, first: true), ["c-1"])
        }
        let escaped = Array(#"{"content":"say \"finish_reason\":\"x\""}"#.utf8)
        escaped.withUnsafeBytes { raw in
            XCTAssertEqual(RequestTrace.stringValue(after: #""finish_reason":"#, in: raw), [])
        }
    }
}
