import PrismPluginABI

/// A plugin's own metrics through the host ("prism.metrics.v1"). A name keeps the kind and label
/// names of its first use; the host refuses (and logs once) a call that differs.
public struct Metrics: @unchecked Sendable {
    // The table lives until the process exits, and its functions are thread-safe.
    let table: UnsafePointer<prism_metrics_service_v1>

    init(_ table: UnsafePointer<prism_metrics_service_v1>) { self.table = table }

    @discardableResult
    public func increment(_ name: String, by amount: UInt64 = 1, labels: [(String, String)] = []) -> Bool {
        guard let add = table.pointee.counter_add else { return false }
        return withLabels(name, labels) { add($0, $1, $2, amount) } == PRISM_OK
    }

    @discardableResult
    public func set(_ name: String, _ value: Double, labels: [(String, String)] = []) -> Bool {
        guard let set = table.pointee.gauge_set else { return false }
        return withLabels(name, labels) { set($0, $1, $2, value) } == PRISM_OK
    }

    @discardableResult
    public func observe(_ name: String, _ value: Double, labels: [(String, String)] = []) -> Bool {
        guard let observe = table.pointee.histogram_observe else { return false }
        return withLabels(name, labels) { observe($0, $1, $2, value) } == PRISM_OK
    }

    private func withLabels(_ name: String, _ labels: [(String, String)],
                            _ body: (prism_string, UnsafePointer<prism_header>?, Int) -> prism_status) -> prism_status
    {
        // Label texts copied into one buffer that outlives the call.
        var storage: [UInt8] = []
        for (label, value) in labels {
            storage.append(contentsOf: label.utf8)
            storage.append(contentsOf: value.utf8)
        }
        return storage.withUnsafeBufferPointer { bytes in
            var headers: [prism_header] = []
            var offset = 0
            func view(_ count: Int) -> prism_string {
                defer { offset += count }
                return prism_string(data: bytes.baseAddress.map { UnsafeRawPointer($0 + offset).assumingMemoryBound(to: CChar.self) },
                                    length: count)
            }
            for (label, value) in labels {
                let labelView = view(label.utf8.count)
                headers.append(prism_header(name: labelView, value: view(value.utf8.count)))
            }
            return withPrismString(name) { nameView in
                headers.withUnsafeBufferPointer { body(nameView, $0.baseAddress, $0.count) }
            }
        }
    }
}
