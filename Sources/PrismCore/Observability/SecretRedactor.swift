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

    /// `sk-…abcd`: enough to recognise a secret, not to use it.
    public static func mask(_ secret: String) -> String {
        let characters = Array(secret)
        guard characters.count >= 12 else { return "****" }
        return String(characters.prefix(3)) + "…" + String(characters.suffix(4))
    }

    /// `value` with every secret-named member's strings masked (GET /-/config, listings).
    public static func masked(_ value: JSONValue, sensitive: Bool = false) -> JSONValue {
        switch value {
        case let .string(text): return sensitive ? .string(mask(text)) : value
        case let .object(members):
            return .object(members.map { ($0.0, masked($0.1, sensitive: sensitive || isSecretName($0.0))) })
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
        register(values)
    }

    private func collect(_ value: JSONValue, into values: inout [String], sensitive: Bool = false) {
        switch value {
        case let .string(text) where sensitive: values.append(text)
        case let .object(members):
            for (name, member) in members {
                collect(member, into: &values, sensitive: SecretRedactor.isSecretName(name))
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
