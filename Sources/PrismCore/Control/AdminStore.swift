import CCrypto
import CSQLite
import PrismStorage
import PrismWire

#if canImport(Glibc)
import Glibc
#endif

/// What the admin API changes at runtime, persisted across restarts in one SQLite file: providers
/// (their whole config section sealed with AES-256-GCM under a key derived with HKDF-SHA256 from
/// `PRISM_MASTER_KEY`, so no provider secret is ever on disk in the clear) and client keys (only a
/// SHA-256 of each key; the raw key is shown once, when created). SQLite through its C API and the
/// cryptography through OpenSSL's libcrypto (already loaded for libcurl): no Foundation in the
/// process. Used from the runtime's control queue only (one connection, serialized).
final class AdminStore: @unchecked Sendable {
    struct StoredProvider: Sendable {
        let name: String
        let section: JSONValue
        let updatedAt: Int64
    }

    struct StoredKey: Sendable {
        let id: String
        let name: String
        let keyHash: String
        let preview: String
        let owner: String
        let models: [String]
        let requestsPerMinute: Int64
        let tokensPerMinute: Int64
        let createdAt: Int64
        let revokedAt: Int64?
        /// Virtual-key settings beyond the columns above: `expires_at` (seconds since the epoch),
        /// `budget` ({limit, period, hard}) and `metadata` (any JSON object), kept as one JSON text.
        var extras: KeyExtras = KeyExtras()
    }

    struct KeyExtras: Sendable {
        /// The organization whose configuration serves the key's requests (nil: the file's).
        var organization: String?
        var expiresAt: Int64?
        var budget: BudgetLimit?
        var metadata: JSONValue = .object([])

        var json: JSONValue {
            var members: [(String, JSONValue)] = []
            if let organization { members.append(("org", .string(organization))) }
            if let expiresAt { members.append(("expires_at", .number(String(expiresAt)))) }
            if let budget {
                members.append(("budget", .object([
                    ("limit", .number(PriceTable.format(Double(budget.limitNanoUSD) / 1_000_000_000))),
                    ("period", .string(budget.period.rawValue)), ("hard", .bool(budget.hard)),
                ])))
            }
            members.append(("metadata", metadata))
            return .object(members)
        }

        init() {}

        init(json: JSONValue?) {
            guard let json else { return }
            organization = json["org"]?.stringValue
            expiresAt = json["expires_at"]?.integerValue
            if let budget = json["budget"], let limit = budget["limit"]?.doubleValue,
               let period = BudgetPeriod(rawValue: budget["period"]?.stringValue ?? "monthly")
            {
                self.budget = BudgetLimit(limitUSD: limit, period: period, hard: budget["hard"]?.boolValue ?? true)
            }
            metadata = json["metadata"] ?? .object([])
        }
    }

    enum StoreError: Error, CustomStringConvertible {
        case noMasterKey
        case wrongMasterKey
        case unreadable(String)
        case duplicateName(String)

        var description: String {
            switch self {
            case .noMasterKey:
                return "PRISM_MASTER_KEY is not set: provider settings are stored encrypted, so the admin API needs a master key to store providers"
            case .wrongMasterKey:
                return "PRISM_MASTER_KEY does not open this store (it was written with another master key)"
            case let .unreadable(reason): return "the admin store cannot be read: \(reason)"
            case let .duplicateName(name): return "a key named '\(name)' already exists"
            }
        }
    }

    private let database: SQLiteDatabase
    private let sealingKey: [UInt8]?
    let path: String

    /// Opens (or creates) the store. With a master key, checks that it is the one the store was
    /// written with.
    init(path: String, masterKey: String?) throws {
        self.path = path
        database = try SQLiteDatabase(path: path)
        chmod(path, 0o600)
        if let masterKey, !masterKey.isEmpty {
            var key = [UInt8](repeating: 0, count: 32)
            let secret = Array(masterKey.utf8), salt = Array("prism-admin-store-v1".utf8), info = Array("provider sections".utf8)
            guard prism_hkdf_sha256(secret, secret.count, salt, salt.count, info, info.count, &key, 32) == 1 else {
                throw StoreError.unreadable("key derivation failed")
            }
            sealingKey = key
        } else {
            sealingKey = nil
        }
        try database.execute("""
            CREATE TABLE IF NOT EXISTS providers (name TEXT PRIMARY KEY, sealed BLOB NOT NULL, updated_at INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS client_keys (
                id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, key_sha256 TEXT NOT NULL UNIQUE,
                preview TEXT NOT NULL, owner TEXT NOT NULL, models TEXT NOT NULL,
                rate_limit_rpm INTEGER NOT NULL, rate_limit_tpm INTEGER NOT NULL,
                created_at INTEGER NOT NULL, revoked_at INTEGER);
            CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS organizations (name TEXT PRIMARY KEY, sealed BLOB NOT NULL, updated_at INTEGER NOT NULL);
            """)
        // Stores written before virtual keys grew (expiry, budget, metadata) get the column.
        let columns = try database.query("PRAGMA table_info(client_keys)").map { $0[1].text }
        if !columns.contains("extras") {
            try database.execute("ALTER TABLE client_keys ADD COLUMN extras TEXT NOT NULL DEFAULT '{}'")
        }
        try checkMasterKey()
    }

    /// The store remembers a sealed marker: a different master key cannot open it.
    private func checkMasterKey() throws {
        guard let sealingKey else { return }
        let marker = Array("prism-admin-store".utf8)
        let rows = try database.query("SELECT value FROM meta WHERE name = 'master_key_check'")
        if let existing = rows.first?[0].bytes {
            guard AdminStore.open(existing, key: sealingKey) == marker else { throw StoreError.wrongMasterKey }
            return
        }
        try database.run("INSERT INTO meta (name, value) VALUES ('master_key_check', ?)",
                         [.blob(try AdminStore.seal(marker, key: sealingKey))])
    }

    var canStoreProviders: Bool { sealingKey != nil }

    // MARK: Providers

    func providers() throws -> [StoredProvider] {
        try sealedRows("providers").map { StoredProvider(name: $0.name, section: $0.value, updatedAt: $0.updatedAt) }
    }

    func putProvider(name: String, section: JSONValue) throws { try putSealed("providers", name: name, value: section) }

    func deleteProvider(name: String) throws -> Bool {
        try database.run("DELETE FROM providers WHERE name = ?", [.text(name)]) > 0
    }

    // MARK: Organizations

    /// Each organization's config (providers with their keys, routing, limits, budgets), sealed
    /// like a provider section.
    func organizations() throws -> [StoredProvider] {
        try sealedRows("organizations").map { StoredProvider(name: $0.name, section: $0.value, updatedAt: $0.updatedAt) }
    }

    func putOrganization(id: String, configuration: JSONValue) throws {
        try putSealed("organizations", name: id, value: configuration)
    }

    /// Removes the organization and revokes its keys; false when there was none.
    func deleteOrganization(id: String) throws -> Bool {
        guard try database.run("DELETE FROM organizations WHERE name = ?", [.text(id)]) > 0 else { return false }
        for key in try keys() where key.extras.organization == id && key.revokedAt == nil {
            _ = try revokeKey(id: key.id)
        }
        return true
    }

    private func sealedRows(_ table: String) throws -> [(name: String, value: JSONValue, updatedAt: Int64)] {
        let rows = try database.query("SELECT name, sealed, updated_at FROM \(table) ORDER BY name")
        guard !rows.isEmpty else { return [] }
        guard let sealingKey else { throw StoreError.noMasterKey }
        return try rows.map { row in
            guard let opened = AdminStore.open(row[1].bytes, key: sealingKey),
                  let value = try? JSONValue.parse(opened)
            else { throw StoreError.wrongMasterKey }
            return (row[0].text, value, row[2].integer)
        }
    }

    private func putSealed(_ table: String, name: String, value: JSONValue) throws {
        guard let sealingKey else { throw StoreError.noMasterKey }
        let sealed = try AdminStore.seal(value.jsonBytes, key: sealingKey)
        try database.run("""
            INSERT INTO \(table) (name, sealed, updated_at) VALUES (?, ?, ?)
            ON CONFLICT(name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at
            """, [.text(name), .blob(sealed), .integer(AdminStore.now())])
    }

    // MARK: Client keys

    /// A new key: returns its record and the raw key (the only time it exists outside the client).
    func createKey(name: String, owner: String, models: [String], requestsPerMinute: Int64,
                   tokensPerMinute: Int64, extras: KeyExtras = KeyExtras()) throws -> (StoredKey, String)
    {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)
        func random(_ count: Int, from letters: Int) throws -> String {
            var bytes = [UInt8](repeating: 0, count: count)
            guard prism_random_bytes(&bytes, Int32(count)) == 1 else { throw StoreError.unreadable("no randomness") }
            // 62 (or 36) letters: the modulo bias of 256 % letters is negligible for an identifier.
            return String(decoding: bytes.map { alphabet[Int($0) % letters] }, as: UTF8.self)
        }
        let raw = "sk-prism-" + (try random(40, from: 62))
        let id = "key_" + (try random(16, from: 36))
        let record = StoredKey(id: id, name: name, keyHash: AdminStore.sha256Hex(raw),
                               preview: SecretRedactor.mask(raw), owner: owner, models: models,
                               requestsPerMinute: requestsPerMinute, tokensPerMinute: tokensPerMinute,
                               createdAt: AdminStore.now(), revokedAt: nil, extras: extras)
        let modelsText = String(decoding: JSONValue.array(models.map { .string($0) }).jsonBytes, as: UTF8.self)
        do {
            try database.run("""
                INSERT INTO client_keys (id, name, key_sha256, preview, owner, models, rate_limit_rpm,
                                         rate_limit_tpm, created_at, extras) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [.text(record.id), .text(record.name), .text(record.keyHash), .text(record.preview),
                      .text(record.owner), .text(modelsText), .integer(record.requestsPerMinute),
                      .integer(record.tokensPerMinute), .integer(record.createdAt),
                      .text(String(decoding: extras.json.jsonBytes, as: UTF8.self))])
        } catch let error as SQLiteDatabase.Failure where error.code == SQLITE_CONSTRAINT {
            throw StoreError.duplicateName(name)
        }
        return (record, raw)
    }

    func keys() throws -> [StoredKey] {
        try database.query("""
            SELECT id, name, key_sha256, preview, owner, models, rate_limit_rpm, rate_limit_tpm, created_at, revoked_at,
                   extras
            FROM client_keys ORDER BY created_at, name
            """).map { row in
            let models = (try? JSONValue.parse(row[5].text))?.arrayValue?.compactMap(\.stringValue) ?? []
            return StoredKey(id: row[0].text, name: row[1].text, keyHash: row[2].text, preview: row[3].text,
                             owner: row[4].text, models: models, requestsPerMinute: row[6].integer,
                             tokensPerMinute: row[7].integer, createdAt: row[8].integer,
                             revokedAt: row[9].isNull ? nil : row[9].integer,
                             extras: KeyExtras(json: try? JSONValue.parse(row[10].text)))
        }
    }

    /// Revokes a key (kept for the record); false when there is no such live key.
    func revokeKey(id: String) throws -> Bool {
        try database.run("UPDATE client_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                         [.integer(AdminStore.now()), .text(id)]) > 0
    }

    // MARK: Cryptography (libcrypto)

    static func sha256Hex(_ text: String) -> String { digestHex(text, sha1: false) }

    /// nonce (12) || ciphertext || tag (16), under a fresh random nonce.
    static func seal(_ plaintext: [UInt8], key: [UInt8]) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: plaintext.count + 28)
        guard prism_aes_gcm_seal(key, plaintext, Int32(plaintext.count), &out) == 1 else {
            throw StoreError.unreadable("encryption failed")
        }
        return out
    }

    /// nil when the key is wrong or the data was altered.
    static func open(_ sealed: [UInt8], key: [UInt8]) -> [UInt8]? {
        guard sealed.count >= 28 else { return nil }
        var out = [UInt8](repeating: 0, count: sealed.count - 28)
        return prism_aes_gcm_open(key, sealed, Int32(sealed.count), &out) == 1 ? out : nil
    }

    private static func now() -> Int64 { Int64(wallClockMilliseconds() / 1000) }
}

extension AdminStore {
    /// Why a store could not be opened, when the reason is the directory's permissions (the usual
    /// one: an image run as a non-root user with the store on the read-only root filesystem).
    static func writabilityHint(path: String) -> String {
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        guard access(directory.isEmpty ? "/" : directory, W_OK) != 0 else { return "" }
        return " (the directory \(directory) is not writable by uid \(getuid()); give it to that user, or set "
            + "PRISM_DATA_DIR or admin.store to a writable place, such as the image's /var/lib/prism volume)"
    }
}
