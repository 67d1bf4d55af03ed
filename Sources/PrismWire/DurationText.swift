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

    /// Up to about 285 years: anything longer (1e300s, inf, nan) is not a usable duration.
    private static func representable(_ milliseconds: Double) -> Int64? {
        guard milliseconds.isFinite, milliseconds >= 0, milliseconds < 9e12 else { return nil }
        return Int64(milliseconds.rounded())
    }
}
