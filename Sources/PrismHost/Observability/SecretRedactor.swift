import PrismWire
import Synchronization

/// Replaces configured secrets (provider keys, client keys) wherever they would leave the
/// process: log lines and error messages. An upstream that echoes the key it was sent ("Incorrect
/// API key provided: sk-...") must not hand it to the client or the log.
public final class SecretRedactor: Sendable {
    public static let shared = SecretRedactor()
    private let secrets = Mutex<[String]>([])

    /// Values shorter than this are not treated as secrets (they would mangle ordinary text).
    static let minimumLength = 6

    public func register(_ values: [String]) {
        let usable = values.filter { $0.utf8.count >= SecretRedactor.minimumLength }
        secrets.withLock { list in
            for value in usable where !list.contains(value) { list.append(value) }
            // Longest first, so a secret containing another is replaced whole.
            list.sort { $0.utf8.count > $1.utf8.count }
        }
    }

    /// Whether a config key names a secret: `key`, `*_key`, `*secret*`, `*token*`, `*password*`,
    /// `key_sha256` aside (a hash), and an `authorization` header.
    public static func isSecretName(_ name: String) -> Bool {
        let lowered = name.lowercased()
        if lowered == "key_sha256" || lowered == "max_tokens" { return false }
        return lowered == "key" || lowered.hasSuffix("_key") || lowered.hasSuffix("-key") || lowered.contains("secret")
            || lowered.contains("token") || lowered.contains("password") || lowered.contains("authorization")
            || lowered == "credentials" || lowered == "cookie"
    }

    /// A token-like value: 12 characters or more, no spaces, no `/` (not a media type or a date).
    static func looksLikeCredential(_ text: String) -> Bool {
        text.utf8.count >= 12 && !text.utf8.contains(where: { $0 == 0x20 || $0 == UInt8(ascii: "/") })
    }

    /// `sk-…abcd`: enough to recognise a secret, not to use it.
    public static func mask(_ secret: String) -> String {
        let characters = Array(secret)
        guard characters.count >= 12 else { return "****" }
        return String(characters.prefix(3)) + "…" + String(characters.suffix(4))
    }

    /// Members whose every value is a secret by position, whatever its name: the headers a
    /// provider sends upstream (`X-Team: …` can carry a credential as well as `Authorization`).
    static func holdsSecretsByPosition(_ name: String) -> Bool {
        name == "headers"
    }

    /// The `user:password` of a URL (`http://user:pass@host/…`), if it has one.
    package static func userinfo(_ text: String) -> Substring? {
        guard let scheme = text.firstRange(of: "://") else { return nil }
        let rest = text[scheme.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard let at = authority.lastIndex(of: "@") else { return nil }
        let info = authority[..<at]
        return info.isEmpty ? nil : info
    }

    /// `value` with every secret-named member's strings masked (GET /-/config, listings), every
    /// provider header value, and the user and password of any URL.
    public static func masked(_ value: JSONValue, sensitive: Bool = false) -> JSONValue {
        switch value {
        case let .string(text):
            if sensitive { return .string(mask(text)) }
            if let info = userinfo(text) {
                return .string(String(text[..<info.startIndex]) + "****" + String(text[info.endIndex...]))
            }
            return value
        case let .object(members):
            return .object(members.map { name, member in
                (name, masked(member, sensitive: sensitive || isSecretName(name) || holdsSecretsByPosition(name)))
            })
        case let .array(items): return .array(items.map { masked($0, sensitive: sensitive) })
        case .number where sensitive: return .string("****")
        default: return value
        }
    }

    /// Registers every secret a configuration holds.
    public func register(_ configuration: GatewayConfiguration) {
        var values: [String] = []
        for provider in configuration.providers { collect(provider.section, into: &values) }
        for middleware in configuration.middleware { collect(middleware.configuration, into: &values) }
        if let password = configuration.redis?.password, !password.isEmpty { values.append(password) }
        values += configuration.telemetry.headers.map(\.1) // the trace collector's credentials
        register(values)
    }

    private func collect(_ value: JSONValue, into values: inout [String], sensitive: Bool = false) {
        switch value {
        case let .string(text) where sensitive: values.append(text)
        case let .string(text):
            if let info = SecretRedactor.userinfo(text) {
                values.append(String(info))
                if let colon = info.firstIndex(of: ":") { values.append(String(info[info.index(after: colon)...])) }
            }
        case let .object(members):
            for (name, member) in members {
                if SecretRedactor.holdsSecretsByPosition(name), case let .object(headers) = member {
                    // Header values are masked by position in listings; in free text only those
                    // that look like credentials are redacted (not `application/json`).
                    for (header, value) in headers {
                        guard let text = value.stringValue else { continue }
                        if SecretRedactor.isSecretName(header) || SecretRedactor.looksLikeCredential(text) {
                            values.append(text)
                        }
                    }
                    continue
                }
                collect(member, into: &values, sensitive: sensitive || SecretRedactor.isSecretName(name))
            }
        case let .array(items):
            for item in items { collect(item, into: &values, sensitive: sensitive) }
        default: break
        }
    }

    public func redact(_ text: String) -> String {
        let list = secrets.withLock { $0 }
        guard !list.isEmpty else { return text }
        var result = text
        for secret in list where result.contains(secret) {
            result = result.replacingAll(secret, with: "[redacted]")
        }
        return result
    }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        var output = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            output += rest[..<range.lowerBound]
            output += replacement
            rest = rest[range.upperBound...]
        }
        output += rest
        return output
    }
}
