import CFFI
import CoreMetrics
import PrismPluginABI
import Synchronization

/// "prism.metrics.v1": metrics plugins record, exported with the host's. The Prometheus backend
/// aborts the process when one name is used as two kinds or with two label sets, so every name's
/// kind and label names are fixed by its first use and later calls must match: a plugin's mistake
/// is refused with PRISM_ERROR_INVALID_REQUEST (and one log line), never a crash.
final class PluginMetrics: Sendable {
    static let shared = PluginMetrics()

    enum Kind: Sendable { case counter, gauge, histogram }

    private struct Family {
        let kind: Kind
        let labelNames: [String]
    }

    private enum Handle {
        case counter(CoreMetrics.Counter)
        case gauge(CoreMetrics.Gauge)
        case histogram(CoreMetrics.Recorder)
    }

    private struct Tables {
        var families: [String: Family] = [:]
        var handles: [String: Handle] = [:]
    }

    private let tables = Mutex(Tables())
    /// Distinct label sets kept across all plugin metrics (a guard against unbounded label values).
    private static let maximumSeries = 10_000

    /// Records one observation; false when the call does not fit the name's first use.
    func record(_ kind: Kind, name: String, labels: [(String, String)], value: Double) -> Bool {
        guard PluginMetrics.isValidName(name, allowColon: true), !GatewayMetrics.hostNames.contains(name),
              labels.allSatisfy({ MetricLabelName.isValid($0.0) }),
              Set(labels.map(\.0)).count == labels.count
        else { return false }
        _ = GatewayMetrics.shared // the backend is bootstrapped before any handle is made
        let labelNames = labels.map(\.0)
        var seriesKey = name
        for (label, value) in labels {
            seriesKey += "\u{1F}" + label + "\u{1E}" + value
        }
        let handle: Handle? = tables.withLock { tables in
            if let family = tables.families[name] {
                guard family.kind == kind, family.labelNames == labelNames else { return nil }
            } else {
                tables.families[name] = Family(kind: kind, labelNames: labelNames)
            }
            if let found = tables.handles[seriesKey] { return found }
            guard tables.handles.count < PluginMetrics.maximumSeries else { return nil }
            let made: Handle
            switch kind {
            case .counter: made = .counter(CoreMetrics.Counter(label: name, dimensions: labels))
            case .gauge: made = .gauge(CoreMetrics.Gauge(label: name, dimensions: labels))
            case .histogram: made = .histogram(CoreMetrics.Recorder(label: name, dimensions: labels, aggregate: true))
            }
            tables.handles[seriesKey] = made
            return made
        }
        switch handle {
        case let .counter(counter)?: counter.increment(by: Int64(clamping: UInt64(max(0, value))))
        case let .gauge(gauge)?: gauge.record(value)
        case let .histogram(recorder)?: recorder.record(value)
        case nil: return false
        }
        return true
    }

    /// Prometheus names: [a-zA-Z_:][a-zA-Z0-9_:]* (labels without ':', and not `__`-prefixed).
    static func isValidName(_ name: String, allowColon: Bool) -> Bool {
        guard let first = name.utf8.first, !name.isEmpty, name.utf8.count <= 200 else { return false }
        func letter(_ byte: UInt8) -> Bool {
            (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || byte == 0x5F || (allowColon && byte == 0x3A)
        }
        return letter(first) && name.utf8.allSatisfy { letter($0) || ($0 >= 0x30 && $0 <= 0x39) }
    }
}

enum MetricLabelName {
    static func isValid(_ name: String) -> Bool {
        PluginMetrics.isValidName(name, allowColon: false) && !name.hasPrefix("__")
    }
}
