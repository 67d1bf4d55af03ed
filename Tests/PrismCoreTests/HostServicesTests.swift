import Logging
import PrismPluginABI
import XCTest
import PrismCore

/// The host function tables are libffi closures: these tests call them exactly as a plugin
/// would, through the C function pointers, and check that each table acts for its own identity.
final class HostServicesTests: XCTestCase {
    func keyValue(_ api: UnsafePointer<prism_host_api>) -> prism_key_value_service_v1 {
        let service = api.pointee.get_service!(PRISM_KEY_VALUE_SERVICE_V1)!
        return service.assumingMemoryBound(to: prism_key_value_service_v1.self).pointee
    }

    func testEachTableIsBoundToItsOwnNamespace() {
        let registry = PluginRegistry(logger: Logger(label: "test"))
        let first = registry.hostTable(pluginID: "plugin.one", component: "c", instance: "a")
        let sameIdentity = registry.hostTable(pluginID: "plugin.one", component: "c", instance: "b")
        let other = registry.hostTable(pluginID: "plugin.two", component: "c", instance: "a")
        XCTAssertNotEqual(unsafeBitCast(first.pointee.log, to: Int.self), unsafeBitCast(other.pointee.log, to: Int.self),
                          "every table gets its own closure")
        var value: Int64 = 0
        "counter".withPrismString { key in
            XCTAssertEqual(keyValue(first).increment!(key, 5, 0, &value), PRISM_OK)
            XCTAssertEqual(value, 5)
            XCTAssertEqual(keyValue(sameIdentity).increment!(key, 1, 0, &value), PRISM_OK)
            XCTAssertEqual(value, 6, "instances of one plugin share its namespace")
            XCTAssertEqual(keyValue(other).increment!(key, 1, 0, &value), PRISM_OK)
            XCTAssertEqual(value, 1, "another plugin never sees the first one's keys")
        }
    }

    func testValuesExpire() throws {
        let registry = PluginRegistry(logger: Logger(label: "test"))
        let table = registry.hostTable(pluginID: "p", component: "c", instance: "c")
        let service = keyValue(table)
        final class Collector { var bytes: [UInt8] = [] }
        let collector = Collector()
        var sink = prism_bytes_sink(struct_size: UInt32(MemoryLayout<prism_bytes_sink>.size),
                                    context: Unmanaged.passUnretained(collector).toOpaque(),
                                    write: { context, value in
                                        Unmanaged<Collector>.fromOpaque(context!).takeUnretainedValue().bytes
                                            .append(contentsOf: UnsafeRawBufferPointer(start: value.data, count: value.length))
                                    })
        let value: [UInt8] = Array("hello".utf8)
        "short".withPrismString { key in
            value.withUnsafeBufferPointer { buffer in
                XCTAssertEqual(service.set!(key, prism_bytes(data: buffer.baseAddress, length: buffer.count), 50), PRISM_OK)
            }
            XCTAssertEqual(service.get!(key, &sink), PRISM_OK)
        }
        XCTAssertEqual(collector.bytes, value)
        usleep(80_000)
        "short".withPrismString { key in XCTAssertEqual(service.get!(key, &sink), PRISM_KEY_NOT_FOUND) }
    }

    func testLogEnabledFollowsTheLoggerLevel() {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let registry = PluginRegistry(logger: logger)
        let table = registry.hostTable(pluginID: "p", component: "c", instance: "c")
        XCTAssertEqual(table.pointee.log_enabled!(PRISM_LOG_DEBUG), 0)
        XCTAssertEqual(table.pointee.log_enabled!(PRISM_LOG_ERROR), 1)
        XCTAssertGreaterThan(table.pointee.monotonic_nanoseconds!(), 0)
        XCTAssertGreaterThan(table.pointee.wall_clock_milliseconds!(), 1_700_000_000_000)
    }
}
