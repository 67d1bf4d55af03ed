/// Durations as config.yaml and request headers write them: `500ms`, `30s`, `5m`, `1h`, `1.5s`;
/// a bare number means seconds. Shared by the host's config loader and plugins.
public enum DurationText {
    /// Milliseconds, or nil when `text` is not a non-negative duration.
    public static func milliseconds(_ text: String) -> Int64? {
        seconds(text, finerUnits: false).flatMap { whole($0 * 1000, below: 9e12) }
    }

    /// Microseconds, or nil: the units above plus `us` (or `µs`), for settings finer than a
    /// millisecond (`server.busy_poll`; `0.2ms` is 200 µs, not 0 ms).
    public static func microseconds(_ text: String) -> Int64? {
        seconds(text, finerUnits: true).flatMap { whole($0 * 1_000_000, below: 9e15) }
    }

    /// The number of seconds `text` writes (any sign), or nil when it is not a number with a unit.
    private static func seconds(_ text: String, finerUnits: Bool) -> Double? {
        var trimmed = Substring(text)
        while let first = trimmed.first, first == " " || first == "\t" { trimmed = trimmed.dropFirst() }
        while let last = trimmed.last, last == " " || last == "\t" { trimmed = trimmed.dropLast() }
        // "us" before "s": the longer suffix first.
        let units: [(String, Double)] = (finerUnits ? [("us", 1e-6), ("µs", 1e-6)] : [])
            + [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, seconds) in units where trimmed.hasSuffix(suffix) {
            return Double(trimmed.dropLast(suffix.count)).map { $0 * seconds }
        }
        return Double(trimmed)
    }

    /// Up to about 285 years: anything longer (1e300s, inf, nan) is not a usable duration.
    private static func whole(_ value: Double, below limit: Double) -> Int64? {
        guard value.isFinite, value >= 0, value < limit else { return nil }
        return Int64(value.rounded())
    }
}
