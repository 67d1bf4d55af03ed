import PluginKit
import PrismWire
import Synchronization

/// AWS credentials for Signature Version 4.
public struct AWSCredentials: Sendable, Equatable {
    public var accessKeyID: String
    public var secretAccessKey: String
    /// Temporary credentials (STS) carry a session token, sent as `x-amz-security-token`.
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }
}

/// AWS Signature Version 4 (header form) for services other than S3, as AWS specifies it in
/// "Create a signed AWS API request" (docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html):
/// canonical request → string to sign → signing key (HMAC chain over date, region, service,
/// "aws4_request") → signature. Tests/BedrockTests checks it against AWS's published SigV4 test
/// suite and against botocore's signer.
public enum AWSSigV4 {
    public static let algorithm = "AWS4-HMAC-SHA256"

    /// What a signature covers. `path` is the request path exactly as sent on the wire (already
    /// percent-encoded once); `query` holds decoded names and values.
    public struct Request: Sendable {
        public var method: String
        public var path: String
        public var query: [(String, String)]
        public var headers: [(String, String)]
        /// Lower-case hex SHA-256 of the body.
        public var payloadHash: String

        public init(method: String, path: String, query: [(String, String)] = [], headers: [(String, String)],
                    payloadHash: String)
        {
            self.method = method
            self.path = path
            self.query = query
            self.headers = headers
            self.payloadHash = payloadHash
        }
    }

    public struct Signature: Sendable {
        public var canonicalRequest: String
        public var stringToSign: String
        public var signedHeaders: String
        public var signature: String
        /// The `Authorization` header value.
        public var authorization: String
    }

    /// Signs `request`. `amzDate` is the request's `x-amz-date` (`YYYYMMDD'T'HHMMSS'Z'`), which
    /// must also be among the signed headers, as must `host`.
    /// `signingKey`: the key for this date, region and service when the caller keeps one (see
    /// `SigningKeyCache`); derived here otherwise.
    public static func sign(_ request: Request, credentials: AWSCredentials, region: String, service: String,
                            amzDate: String, signingKey: [UInt8]? = nil) -> Signature
    {
        let (canonicalHeaders, signedHeaders) = canonicalHeaders(request.headers)
        var canonicalRequest = request.method
        for part in [canonicalURI(request.path), canonicalQuery(request.query), canonicalHeaders, signedHeaders,
                     request.payloadHash]
        {
            canonicalRequest += "\n"
            canonicalRequest += part
        }
        let date = String(amzDate.prefix(8))
        let scope = date + "/" + region + "/" + service + "/aws4_request"
        let stringToSign = algorithm + "\n" + amzDate + "\n" + scope + "\n" + Hex.encode(SHA256.hash(canonicalRequest))
        let key = signingKey ?? AWSSigV4.signingKey(secretAccessKey: credentials.secretAccessKey, date: date,
                                                   region: region, service: service)
        let signature = Hex.encode(HMACSHA256.authenticationCode(key: key, message: stringToSign))
        let authorization = "\(algorithm) Credential=\(credentials.accessKeyID)/\(scope), "
            + "SignedHeaders=\(signedHeaders), Signature=\(signature)"
        return Signature(canonicalRequest: canonicalRequest, stringToSign: stringToSign, signedHeaders: signedHeaders,
                         signature: signature, authorization: authorization)
    }

    /// Signing keys change once a day: each (region, service) key is derived once per date.
    /// Thread-safe; holds only the current date's keys.
    public final class SigningKeyCache: Sendable {
        private let entries = Mutex<(date: String, keys: [String: [UInt8]])>(("", [:]))

        public init() {}

        public func key(secretAccessKey: String, date: String, region: String, service: String) -> [UInt8] {
            let name = region + "/" + service
            if let key = entries.withLock({ $0.date == date ? $0.keys[name] : nil }) { return key }
            let key = AWSSigV4.signingKey(secretAccessKey: secretAccessKey, date: date, region: region, service: service)
            entries.withLock { entries in
                if entries.date != date { entries = (date, [:]) }
                entries.keys[name] = key
            }
            return key
        }
    }

    /// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
    public static func signingKey(secretAccessKey: String, date: String, region: String, service: String) -> [UInt8] {
        var key = HMACSHA256.authenticationCode(key: Array(("AWS4" + secretAccessKey).utf8), message: date)
        key = HMACSHA256.authenticationCode(key: key, message: region)
        key = HMACSHA256.authenticationCode(key: key, message: service)
        return HMACSHA256.authenticationCode(key: key, message: "aws4_request")
    }

    /// The path URI-encoded once more, `/` kept. Every service but S3 signs the path this way, so a
    /// Bedrock model id that is `…v1%3A0` on the wire is `…v1%253A0` in the canonical request.
    public static func canonicalURI(_ path: String) -> String {
        path.isEmpty ? "/" : uriEncode(path, keepSlash: true)
    }

    /// Names and values URI-encoded, sorted by name, then value.
    public static func canonicalQuery(_ query: [(String, String)]) -> String {
        query.map { (uriEncode($0.0, keepSlash: false), uriEncode($0.1, keepSlash: false)) }
            .sorted { $0.0 == $1.0 ? $0.1 < $1.1 : $0.0 < $1.0 }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// `name:value\n` per header (names lower-cased, values trimmed with inner runs of spaces
    /// collapsed, repeated names joined with commas), sorted by name; and the `;`-joined names.
    public static func canonicalHeaders(_ headers: [(String, String)]) -> (canonical: String, signed: String) {
        var merged: [(name: String, value: String)] = []
        merged.reserveCapacity(headers.count)
        for (name, value) in headers {
            let name = lowercased(name), value = normalizedValue(value)
            if let index = merged.firstIndex(where: { $0.name == name }) {
                merged[index].value += "," + value
            } else {
                merged.append((name, value))
            }
        }
        merged.sort { $0.name < $1.name }
        var canonical = "", signed = ""
        canonical.reserveCapacity(merged.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 2 })
        for (index, entry) in merged.enumerated() {
            canonical += entry.name
            canonical += ":"
            canonical += entry.value
            canonical += "\n"
            if index > 0 { signed += ";" }
            signed += entry.name
        }
        return (canonical, signed)
    }

    /// `YYYYMMDD'T'HHMMSS'Z'` (UTC) for milliseconds since the Unix epoch.
    public static func amzDate(epochMilliseconds: UInt64) -> String {
        let seconds = Int64(epochMilliseconds / 1000)
        let days = seconds / 86_400, secondOfDay = seconds % 86_400
        // Days since 1970-01-01 → civil date (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
        let shifted = days + 719_468
        let era = shifted / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(year)\(two(month))\(two(day))T\(two(secondOfDay / 3600))\(two(secondOfDay / 60 % 60))\(two(secondOfDay % 60))Z"
    }

    /// ASCII lower-case (header names are ASCII); the string itself when it has no upper case.
    private static func lowercased(_ name: String) -> String {
        guard name.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else { return name }
        return String(decoding: name.utf8.map { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 + 32 : $0 },
                      as: UTF8.self)
    }

    /// Trimmed, with inner runs of spaces and tabs collapsed to one space; the value itself when
    /// there is nothing to change.
    private static func normalizedValue(_ value: String) -> String {
        func isSpace(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        var clean = true
        var previousSpace = true // a leading space is not clean either
        for byte in value.utf8 {
            let space = isSpace(byte)
            if space && (previousSpace || byte == UInt8(ascii: "\t")) {
                clean = false
                break
            }
            previousSpace = space
        }
        if clean && !(value.utf8.last.map(isSpace) ?? false) { return value }
        var output: [UInt8] = []
        var pendingSpace = false
        for byte in value.utf8 {
            if isSpace(byte) {
                pendingSpace = !output.isEmpty
            } else {
                if pendingSpace { output.append(UInt8(ascii: " ")) }
                pendingSpace = false
                output.append(byte)
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    private static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    /// RFC 3986 unreserved characters stay, every other byte becomes `%XX` (upper-case hex).
    private static func uriEncode(_ text: String, keepSlash: Bool) -> String {
        var output: [UInt8] = []
        output.reserveCapacity(text.utf8.count + 16)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                 UInt8(ascii: "~"):
                output.append(byte)
            case UInt8(ascii: "/") where keepSlash:
                output.append(byte)
            default:
                output.append(UInt8(ascii: "%"))
                output.append(hexDigits[Int(byte >> 4)])
                output.append(hexDigits[Int(byte & 0xF)])
            }
        }
        return String(decoding: output, as: UTF8.self)
    }
}
