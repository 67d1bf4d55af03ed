import CFFI
import PrismPluginABI

// The prism_metrics_service_v1 table each identity gets (libffi closures, as for the other
// services). A refused call is logged once per plugin and metric name.

extension HostFunctionTables {
    func makeMetricsTable(for identity: PluginIdentity) -> UnsafePointer<prism_metrics_service_v1> {
        let table = UnsafeMutablePointer<prism_metrics_service_v1>.allocate(capacity: 1)
        table.initialize(to: prism_metrics_service_v1(
            struct_size: UInt32(MemoryLayout<prism_metrics_service_v1>.size),
            counter_add: unsafeBitCast(bind(metricCountInterface, identity, counterTrampoline),
                                       to: type(of: table.pointee.counter_add)),
            gauge_set: unsafeBitCast(bind(metricValueInterface, identity, gaugeTrampoline),
                                     to: type(of: table.pointee.gauge_set)),
            histogram_observe: unsafeBitCast(bind(metricValueInterface, identity, histogramTrampoline),
                                             to: type(of: table.pointee.histogram_observe))))
        return UnsafePointer(table)
    }
}

private func record(_ kind: PluginMetrics.Kind, _ arguments: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                    _ value: Double, _ userData: UnsafeMutableRawPointer?, _ result: UnsafeMutableRawPointer?)
{
    let owner = identity(userData)
    let name = argument(arguments, 0, prism_string.self).hostString
    var labels: [(String, String)] = []
    if let array = argument(arguments, 1, UnsafePointer<prism_header>?.self) {
        let count = min(argument(arguments, 2, Int.self), 16)
        for index in 0..<count { labels.append((array[index].name.hostString, array[index].value.hostString)) }
    }
    let accepted = PluginMetrics.shared.record(kind, name: name, labels: labels, value: value)
    if !accepted && owner.firstRefusal(of: name) {
        owner.logger.warning("[\(owner.label)] metric '\(name)' refused: invalid name or labels, a name the host records, or a kind or label names that differ from its first use")
    }
    returnStatus(result, accepted ? PRISM_OK : PRISM_ERROR_INVALID_REQUEST)
}

private let counterTrampoline: HostFunctionTables.Trampoline = { _, result, arguments, userData in
    record(.counter, arguments, Double(argument(arguments, 3, UInt64.self)), userData, result)
}

private let gaugeTrampoline: HostFunctionTables.Trampoline = { _, result, arguments, userData in
    record(.gauge, arguments, argument(arguments, 3, Double.self), userData, result)
}

private let histogramTrampoline: HostFunctionTables.Trampoline = { _, result, arguments, userData in
    record(.histogram, arguments, argument(arguments, 3, Double.self), userData, result)
}
