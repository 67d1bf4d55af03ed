/// Percent-encoding for the parts of upstream URLs that come from configuration or requests
/// (model and deployment names, project ids, query values).
public enum PercentEncoding {
    private static let hex: [UInt8] = Array("0123456789ABCDEF".utf8)

    /// Encodes every byte except RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`) and the
    /// ASCII characters in `alsoAllowed` (e.g. "@" for Vertex model versions).
    public static func encode(_ text: String, alsoAllowed: String = "") -> String {
        var output: [UInt8] = []
        output.reserveCapacity(text.utf8.count)
        let extra = Array(alsoAllowed.utf8)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                 UInt8(ascii: "~"):
                output.append(byte)
            default:
                if extra.contains(byte) {
                    output.append(byte)
                } else {
                    output.append(UInt8(ascii: "%"))
                    output.append(hex[Int(byte >> 4)])
                    output.append(hex[Int(byte & 0xF)])
                }
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Decodes `%XX` sequences (a model id in a URL path: `GET /v1/models/us.anthropic.claude%3A0`);
    /// anything else, a malformed `%` included, stays as it is.
    public static func decode(_ text: String) -> String {
        var bytes: [UInt8] = []
        var rest = Array(text.utf8)[...]
        while let byte = rest.popFirst() {
            if byte == UInt8(ascii: "%"), rest.count >= 2, let high = Hex.value(rest[rest.startIndex]),
               let low = Hex.value(rest[rest.startIndex + 1])
            {
                bytes.append(high << 4 | low)
                rest = rest.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
