import PluginKit
import PrismPluginABI
import PrismWire

/// Client authentication with `Authorization: Bearer <key>` against the keys in `auth.keys`, then
/// the admin API's keys through the host's "prism.client_keys.v1" (looked up by SHA-256, so that
/// creating or revoking one is the host's table update, not a new configuration).
///
/// Every presented key is compared with every configured key in constant time (no early exit on
/// the first differing byte, no early exit on the first match), so response timing does not reveal
/// how much of a key was right or which entry matched.
final class AuthMiddleware: Middleware {
    struct ClientKey: Sendable {
        let name: String
        let owner: String
        /// The key itself, or (`hashed`) the SHA-256 of it: keys made by the admin API are stored
        /// only as hashes.
        let secret: [UInt8]
        let hashed: Bool
        /// Empty means every model.
        let models: Set<String>
        /// Published as request attributes for the rate-limit middleware; 0 = none.
        let requestsPerMinute: Int64
        let tokensPerMinute: Int64
        /// Milliseconds since the epoch after which the key is refused; 0: never.
        let expiresAt: UInt64
    }

    private let enabled: Bool
    private let keys: [ClientKey]
    private let hasHashedKeys: Bool
    private let host: PluginHost
    /// The admin API's keys (nil: the admin API is off, or the host is older than 1.6).
    private let clientKeys: ClientKeys?

    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {
        self.host = host
        enabled = try configuration.configurationSwitch("enabled", section: "auth")
        var keys: [ClientKey] = []
        for (index, entry) in (configuration["keys"]?.arrayValue ?? []).enumerated() {
            keys.append(try AuthMiddleware.clientKey(entry, index: index))
        }
        clientKeys = host.clientKeys
        if enabled && keys.isEmpty && clientKeys == nil {
            throw PluginError.configuration("auth.enabled is true but auth.keys is empty: no client could get in")
        }
        self.keys = keys
        hasHashedKeys = keys.contains { $0.hashed }
        host.log(.info, "auth \(enabled ? "enabled" : "disabled") with \(keys.count) key(s)"
                 + (clientKeys == nil ? "" : " and the admin API's"))
    }

    /// One entry of `auth.keys`, or (`index` nil) a record of prism.client_keys.v1, whose digest
    /// is `digest`.
    static func clientKey(_ entry: JSONValue, index: Int?, digest: [UInt8] = []) throws(PluginError) -> ClientKey {
        let path = index.map { "auth.keys[\($0)]" } ?? "a client key of the admin API"
        let secret: [UInt8]
        let hashed: Bool
        if index == nil {
            secret = digest
            hashed = true
        } else if let plain = entry["key"]?.stringValue, !plain.isEmpty {
            secret = Array(plain.utf8)
            hashed = false
        } else if let hex = entry["key_sha256"]?.stringValue, let digest = Hex.decode(hex), digest.count == 32 {
            secret = digest
            hashed = true
        } else {
            throw PluginError.configuration("\(path): `key` (or `key_sha256`) is required")
        }
        let name = entry["name"]?.stringValue ?? "key-\(index ?? 0)"
        let models = Set((entry["models"]?.arrayValue ?? []).compactMap(\.stringValue))
        // `expires_at`: seconds since the epoch.
        var expiresAt: UInt64 = 0
        if let value = entry["expires_at"], value != .null {
            guard let seconds = value.integerValue, seconds > 0 else {
                throw PluginError.configuration("\(path).expires_at: expected seconds since the Unix epoch")
            }
            expiresAt = UInt64(seconds) * 1000
        }
        return ClientKey(name: name, owner: entry["owner"]?.stringValue ?? "", secret: secret, hashed: hashed,
                         models: models,
                         requestsPerMinute: max(0, entry["rate_limit_rpm"]?.integerValue ?? 0),
                         tokensPerMinute: max(0, entry["rate_limit_tpm"]?.integerValue ?? 0),
                         expiresAt: expiresAt)
    }

    func onRequest(_ request: PluginRequest, context: RequestContext, localResponse: HTTPBuilder) -> MiddlewareAction {
        guard enabled else { return .proceed }
        guard let presented = request.withHeaderValue("authorization", AuthMiddleware.bearerToken) else {
            return reject(localResponse, status: 401, type: "authentication_error", code: "invalid_api_key",
                          message: "Missing API key. Send it as `Authorization: Bearer <key>`.")
        }
        guard let key = match(presented) else {
            return reject(localResponse, status: 401, type: "authentication_error", code: "invalid_api_key",
                          message: "Invalid API key.")
        }
        if key.expiresAt > 0 && host.wallClockMilliseconds >= key.expiresAt {
            return reject(localResponse, status: 401, type: "authentication_error", code: "key_expired",
                          message: "The API key '\(key.name)' has expired.")
        }
        context.setAttribute("key.name", key.name)
        if !key.owner.isEmpty { context.setAttribute("key.owner", key.owner) }
        if key.requestsPerMinute > 0 { context.setAttribute("key.rate_limit_rpm", String(key.requestsPerMinute)) }
        if key.tokensPerMinute > 0 { context.setAttribute("key.rate_limit_tpm", String(key.tokensPerMinute)) }
        let model = request.model
        // The gateway lists only what the key may use (GET /v1/models): one model per line.
        if !key.models.isEmpty, request.api == "models.list" {
            context.setAttribute("key.models", key.models.sorted().joined(separator: "\n"))
        }
        if !key.models.isEmpty, !model.isEmpty, !key.models.contains(model) {
            return reject(localResponse, status: 403, type: "permission_error", code: "model_not_allowed",
                          message: "The API key '\(key.name)' is not allowed to use model '\(model)'.")
        }
        return .proceed
    }

    /// The token of `Bearer <token>` (scheme case-insensitive, spaces around trimmed), from the
    /// header's bytes: no String work on every request.
    static func bearerToken(_ header: UnsafeRawBufferPointer?) -> [UInt8]? {
        guard let header else { return nil }
        var start = header.startIndex
        var end = header.endIndex
        while start < end && header[start] == 0x20 { start += 1 }
        let scheme = Array("bearer ".utf8)
        guard end - start > scheme.count else { return nil }
        for offset in 0..<scheme.count {
            let byte = header[start + offset], expected = scheme[offset]
            // Letters match in either case; the space must be a space.
            if (expected == 0x20 ? byte : byte | 0x20) != expected { return nil }
        }
        start += scheme.count
        while start < end && header[start] == 0x20 { start += 1 }
        while end > start && header[end - 1] == 0x20 { end -= 1 }
        return start < end ? Array(header[start..<end]) : nil
    }

    private func match(_ presented: [UInt8]) -> ClientKey? {
        let digest = hasHashedKeys || clientKeys != nil ? SHA256.hash(presented) : []
        var found: ClientKey?
        for key in keys where ConstantTime.equal(key.hashed ? digest : presented, key.secret) && found == nil {
            found = key
        }
        // The admin API's keys: a hash look-up by the digest (which says nothing of the key).
        if found == nil, let clientKeys, let record = clientKeys.lookup(sha256: digest),
           let entry = try? JSONValue.parse(record)
        {
            found = try? AuthMiddleware.clientKey(entry, index: nil, digest: digest)
        }
        return found
    }

    private func reject(_ response: HTTPBuilder, status: UInt32, type: String, code: String,
                        message: String) -> MiddlewareAction
    {
        response.setStatus(status)
        response.setHeader("content-type", "application/json")
        response.writeBody(OpenAIErrorBody.make(message: message, type: type, code: code))
        return .respond
    }
}

@c(prism_plugin_entry_v1)
public func prismPluginEntry(_ host: UnsafePointer<prism_host_api>?,
                             _ out: UnsafeMutablePointer<UnsafePointer<prism_plugin_descriptor>?>?) -> prism_status
{
    PluginExport.entry(host, out, id: "dev.prism.middleware.auth", version: "1.0.0",
                       components: [.middleware("auth", AuthMiddleware.self)])
}
