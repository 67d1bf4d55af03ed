import PrismPluginABI
import PrismWire
import Synchronization

/// "prism.client_keys.v1": the admin API's live client keys, by the SHA-256 of the key, for a
/// middleware that authenticates clients. The control queue replaces the table whenever a key is
/// created, revoked or an organization changes (Control/GatewayRuntime); requests only read it.
/// A creation or a revocation is therefore one table swap, not a new generation of plugin
/// instances. Keys carry the budget the admin API gave them (Governance reads it per organization).
public final class ClientKeyTable: KeyBudgetSource {
    public struct Key: Sendable {
        /// The SHA-256 of the key (32 bytes).
        public let digest: [UInt8]
        /// "" for the file's configuration, else the organization whose generation serves the key.
        public let organization: String
        public let name: String
        /// What lookup writes: the service's JSON record (see prism_plugin.h).
        public let record: [UInt8]
        public let budget: BudgetLimit?

        public init(digest: [UInt8], organization: String, name: String, record: [UInt8], budget: BudgetLimit?) {
            self.digest = digest
            self.organization = organization
            self.name = name
            self.record = record
            self.budget = budget
        }
    }

    private struct Snapshot {
        var byDigest: [[UInt8]: Key] = [:]
        /// organization → key name → its own budget.
        var budgets: [String: [String: BudgetLimit]] = [:]
    }

    private let snapshot = Mutex(Snapshot())
    private let changes = Atomic<UInt64>(0)

    public init() {}

    /// Serves exactly `keys` from now on.
    public func replace(with keys: [Key]) {
        var next = Snapshot()
        for key in keys where key.digest.count == 32 {
            next.byDigest[key.digest] = key
            if let budget = key.budget { next.budgets[key.organization, default: [:]][key.name] = budget }
        }
        snapshot.withLock { $0 = next }
        changes.add(1, ordering: .releasing)
    }

    /// The record of the live key with this digest, when it belongs to `organization`.
    package func record(digest: UnsafeRawBufferPointer, organization: String) -> [UInt8]? {
        guard digest.count == 32 else { return nil }
        let key = Array(digest)
        return snapshot.withLock { table in
            guard let found = table.byDigest[key], found.organization == organization else { return nil }
            return found.record
        }
    }

    /// Changes each time the table is replaced (for caches of `budgets(of:)`).
    public var version: UInt64 { changes.load(ordering: .acquiring) }

    /// The budgets admin-created keys of `organization` carry, by key name.
    public func budgets(of organization: String) -> [String: BudgetLimit] {
        snapshot.withLock { $0.budgets[organization] ?? [:] }
    }

    /// The record lookup writes for a key (a JSON object; members only ever added).
    public static func record(name: String, owner: String, models: [String], requestsPerMinute: Int64,
                              tokensPerMinute: Int64, expiresAt: Int64?) -> [UInt8]
    {
        var writer = JSONWriter(capacity: 128 + name.utf8.count + owner.utf8.count + models.count * 24)
        writer.beginObject()
        writer.string("name", name)
        writer.string("owner", owner)
        writer.key("models")
        writer.beginArray()
        for model in models { writer.string(model) }
        writer.endArray()
        writer.integer("rate_limit_rpm", requestsPerMinute)
        writer.integer("rate_limit_tpm", tokensPerMinute)
        writer.key("expires_at")
        if let expiresAt { writer.integer(expiresAt) } else { writer.null() }
        writer.endObject()
        return writer.bytes
    }
}

/// The service table one instance gets: its organization's keys only.
final class ClientKeysIdentity: PluginIdentity, @unchecked Sendable {
    let table: ClientKeyTable
    let organization: String

    init(_ identity: PluginIdentity, table: ClientKeyTable, organization: String) {
        self.table = table
        self.organization = organization
        super.init(label: identity.label, keyNamespace: identity.keyNamespace, logger: identity.logger,
                   store: identity.store, sharedState: identity.sharedState)
    }
}

let clientKeysLookupTrampoline: HostFunctionTables.Trampoline = { _, result, arguments, userData in
    let owner = Unmanaged<ClientKeysIdentity>.fromOpaque(userData!).takeUnretainedValue()
    let digest = argument(arguments, 0, prism_bytes.self).hostBuffer
    returnFound(owner.table.record(digest: digest, organization: owner.organization),
                to: argument(arguments, 1, UnsafePointer<prism_bytes_sink>?.self), result)
}
