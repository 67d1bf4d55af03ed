import Logging
import PrismPluginABI
import XCTest
import PrismCore

/// prism.metrics.v1 through the C table a plugin gets: valid calls are recorded and rendered;
/// calls that would make the Prometheus backend abort (a kind or label set that differs from the
/// name's first use) or that take the host's names are refused.
final class PluginMetricsTests: XCTestCase {
    func service() -> prism_metrics_service_v1 {
        let registry = PluginRegistry(logger: Logger(label: "test"))
        let api = registry.hostTable(pluginID: "plugin.metrics", component: "c", instance: "a")
        return api.pointee.get_service!(PRISM_METRICS_SERVICE_V1)!
            .assumingMemoryBound(to: prism_metrics_service_v1.self).pointee
    }

    func call(_ name: String, _ labels: [(String, String)] = [],
              _ body: (prism_string, UnsafePointer<prism_header>?, Int) -> prism_status) -> prism_status
    {
        let strings = labels.flatMap { [$0.0, $0.1] }
        let storage = strings.map { Array($0.utf8) }
        return withExtendedLifetime(storage) {
            var headers: [prism_header] = []
            for index in stride(from: 0, to: storage.count, by: 2) {
                headers.append(storage[index].withUnsafeBufferPointer { nameBytes in
                    storage[index + 1].withUnsafeBufferPointer { valueBytes in
                        prism_header(name: prism_string(data: UnsafeRawPointer(nameBytes.baseAddress!).assumingMemoryBound(to: CChar.self), length: nameBytes.count),
                                     value: prism_string(data: UnsafeRawPointer(valueBytes.baseAddress!).assumingMemoryBound(to: CChar.self), length: valueBytes.count))
                    }
                })
            }
            return name.withPrismString { nameView in headers.withUnsafeBufferPointer { body(nameView, $0.baseAddress, $0.count) } }
        }
    }

    func testRecordsAndRefuses() {
        let metrics = service()
        XCTAssertEqual(call("unit_widgets_total", [("color", "red")]) { metrics.counter_add!($0, $1, $2, 3) }, PRISM_OK)
        XCTAssertEqual(call("unit_widgets_total", [("color", "blue")]) { metrics.counter_add!($0, $1, $2, 1) }, PRISM_OK)
        XCTAssertEqual(call("unit_queue_depth") { metrics.gauge_set!($0, $1, $2, 7.5) }, PRISM_OK)
        XCTAssertEqual(call("unit_latency_seconds") { metrics.histogram_observe!($0, $1, $2, 0.02) }, PRISM_OK)
        // Refused: another kind, other label names, the host's own name, invalid names.
        XCTAssertEqual(call("unit_widgets_total", [("color", "red")]) { metrics.gauge_set!($0, $1, $2, 1) }, PRISM_ERROR_INVALID_REQUEST)
        XCTAssertEqual(call("unit_widgets_total", [("shape", "round")]) { metrics.counter_add!($0, $1, $2, 1) }, PRISM_ERROR_INVALID_REQUEST)
        XCTAssertEqual(call("unit_widgets_total") { metrics.counter_add!($0, $1, $2, 1) }, PRISM_ERROR_INVALID_REQUEST)
        XCTAssertEqual(call("prism_requests_total") { metrics.counter_add!($0, $1, $2, 1) }, PRISM_ERROR_INVALID_REQUEST)
        XCTAssertEqual(call("9starts_with_digit") { metrics.counter_add!($0, $1, $2, 1) }, PRISM_ERROR_INVALID_REQUEST)
        XCTAssertEqual(call("unit_bad_label", [("bad-label", "x")]) { metrics.counter_add!($0, $1, $2, 1) }, PRISM_ERROR_INVALID_REQUEST)
        XCTAssertEqual(call("unit_dup_label", [("a", "1"), ("a", "2")]) { metrics.counter_add!($0, $1, $2, 1) }, PRISM_ERROR_INVALID_REQUEST)
        let text = String(decoding: GatewayMetrics.shared.registry.emitToBuffer(), as: UTF8.self)
        XCTAssertTrue(text.contains("unit_widgets_total{color=\"red\"} 3"), text)
        XCTAssertTrue(text.contains("unit_widgets_total{color=\"blue\"} 1"), text)
        XCTAssertTrue(text.contains("unit_queue_depth 7.5"), text)
        XCTAssertTrue(text.contains("unit_latency_seconds_count 1"), text)
    }
}
