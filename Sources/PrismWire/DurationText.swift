/// Durations as config.yaml and request headers write them: `500ms`, `30s`, `5m`, `1h`, `1.5s`;
/// a bare number means seconds. Shared by the host's config loader and plugins.
public enum DurationText {
    /// Milliseconds, or nil when `text` is not a non-negative duration.
    public static func milliseconds(_ text: String) -> Int64? {
        var trimmed = Substring(text)
        while let first = trimmed.first, first == " " || first == "\t" { trimmed = trimmed.dropFirst() }
        while let last = trimmed.last, last == " " || last == "\t" { trimmed = trimmed.dropLast() }
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, seconds) in units where trimmed.hasSuffix(suffix) {
            guard let value = Double(trimmed.dropLast(suffix.count)) else { return nil }
            return representable(value * seconds * 1000)
        }
        guard let value = Double(trimmed) else { return nil }
        return representable(value * 1000)
    }

    /// Microseconds, or nil: the units above plus `us` (or `µs`), for settings finer than a
    /// millisecond (`server.busy_poll`).
    public static func microseconds(_ text: String) -> Int64? {
        var trimmed = Substring(text)
        while let first = trimmed.first, first == " " || first == "\t" { trimmed = trimmed.dropFirst() }
        while let last = trimmed.last, last == " " || last == "\t" { trimmed = trimmed.dropLast() }
        for suffix in ["us", "µs"] where trimmed.hasSuffix(suffix) {
            guard let value = Double(trimmed.dropLast(suffix.count)), value.isFinite, value >= 0, value < 9e15 else { return nil }
            return Int64(value.rounded())
        }
        if trimmed.hasSuffix("ms"), let value = Double(trimmed.dropLast(2)), value.isFinite, value >= 0, value < 9e12 {
            return Int64((value * 1000).rounded()) // 0.2ms is 200 µs, not 0 ms
        }
        return milliseconds(text).flatMap { $0 < 9_000_000_000_000 ? $0 * 1000 : nil }
    }

    /// Up to about 285 years: anything longer (1e300s, inf, nan) is not a usable duration.
    private static func representable(_ milliseconds: Double) -> Int64? {
        guard milliseconds.isFinite, milliseconds >= 0, milliseconds < 9e12 else { return nil }
        return Int64(milliseconds.rounded())
    }
}
