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
                let lowered = name.lowercased()
                let isSecret = lowered == "key" || lowered.hasSuffix("_key") || lowered.contains("secret")
                    || lowered.contains("token") || lowered.contains("password")
                collect(member, into: &values, sensitive: isSecret)
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
