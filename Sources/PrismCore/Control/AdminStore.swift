import Crypto
import struct Foundation.Data
import GRDB
import PrismWire

#if canImport(Glibc)
import Glibc
#endif

/// What the admin API changes at runtime, persisted across restarts in one SQLite file (GRDB):
/// providers (their whole config section sealed with AES-GCM under a key derived from
/// `PRISM_MASTER_KEY`, so no provider secret is ever on disk in the clear) and client keys (only
/// a SHA-256 of each key; the raw key is shown once, when created).
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

    private let database: DatabaseQueue
    private let sealingKey: SymmetricKey?
    let path: String

    /// Opens (or creates) the store. With a master key, checks that it is the one the store was
    /// written with.
    init(path: String, masterKey: String?) throws {
        self.path = path
        var configuration = Configuration()
        configuration.label = "prism-admin"
        database = try DatabaseQueue(path: path, configuration: configuration)
        chmod(path, 0o600)
        if let masterKey, !masterKey.isEmpty {
            sealingKey = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: Array(masterKey.utf8)),
                                                salt: Array("prism-admin-store-v1".utf8),
                                                info: Array("provider sections".utf8), outputByteCount: 32)
        } else {
            sealingKey = nil
        }
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE providers (name TEXT PRIMARY KEY, sealed BLOB NOT NULL, updated_at INTEGER NOT NULL);
                CREATE TABLE client_keys (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, key_sha256 TEXT NOT NULL UNIQUE,
                    preview TEXT NOT NULL, owner TEXT NOT NULL, models TEXT NOT NULL,
                    rate_limit_rpm INTEGER NOT NULL, rate_limit_tpm INTEGER NOT NULL,
                    created_at INTEGER NOT NULL, revoked_at INTEGER);
                CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
                """)
        }
        try migrator.migrate(database)
        try checkMasterKey()
    }

    /// The store remembers a sealed marker: a different master key cannot open it.
    private func checkMasterKey() throws {
        guard let sealingKey else { return }
        let marker = Array("prism-admin-store".utf8)
        let existing = try database.read { db in
            try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE name = 'master_key_check'")
        }
        if let existing {
            guard let box = try? AES.GCM.SealedBox(combined: existing),
                  let opened = try? AES.GCM.open(box, using: sealingKey), Array(opened) == marker
            else { throw StoreError.wrongMasterKey }
            return
        }
        let sealed = try AES.GCM.seal(marker, using: sealingKey).combined!
        try database.write { db in
            try db.execute(sql: "INSERT INTO meta (name, value) VALUES ('master_key_check', ?)", arguments: [sealed])
        }
    }

    var canStoreProviders: Bool { sealingKey != nil }

    // MARK: Providers

    func providers() throws -> [StoredProvider] {
        let rows = try database.read { db in
            try Row.fetchAll(db, sql: "SELECT name, sealed, updated_at FROM providers ORDER BY name")
        }
        guard !rows.isEmpty else { return [] }
        guard let sealingKey else { throw StoreError.noMasterKey }
        return try rows.map { row in
            let sealed: Data = row["sealed"]
            guard let box = try? AES.GCM.SealedBox(combined: sealed), let opened = try? AES.GCM.open(box, using: sealingKey),
                  let section = try? JSONValue.parse(Array(opened))
            else { throw StoreError.wrongMasterKey }
            return StoredProvider(name: row["name"], section: section, updatedAt: row["updated_at"])
        }
    }

    func putProvider(name: String, section: JSONValue) throws {
        guard let sealingKey else { throw StoreError.noMasterKey }
        let sealed = try AES.GCM.seal(section.jsonBytes, using: sealingKey).combined!
        try database.write { db in
            try db.execute(sql: """
                INSERT INTO providers (name, sealed, updated_at) VALUES (?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at
                """, arguments: [name, sealed, AdminStore.now()])
        }
    }

    func deleteProvider(name: String) throws -> Bool {
        try database.write { db in
            try db.execute(sql: "DELETE FROM providers WHERE name = ?", arguments: [name])
            return db.changesCount > 0
        }
    }

    // MARK: Client keys

    /// A new key: returns its record and the raw key (the only time it exists outside the client).
    func createKey(name: String, owner: String, models: [String], requestsPerMinute: Int64,
                   tokensPerMinute: Int64) throws -> (StoredKey, String)
    {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        let raw = "sk-prism-" + String((0..<40).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
        let id = "key_" + String((0..<16).map { _ in alphabet[Int(generator.next() % 36)] })
        let record = StoredKey(id: id, name: name, keyHash: AdminStore.sha256Hex(raw),
                               preview: SecretRedactor.mask(raw), owner: owner, models: models,
                               requestsPerMinute: requestsPerMinute, tokensPerMinute: tokensPerMinute,
                               createdAt: AdminStore.now(), revokedAt: nil)
        do {
            try database.write { db in
                try db.execute(sql: """
                    INSERT INTO client_keys (id, name, key_sha256, preview, owner, models, rate_limit_rpm,
                                             rate_limit_tpm, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [record.id, record.name, record.keyHash, record.preview, record.owner,
                                     String(decoding: JSONValue.array(models.map { .string($0) }).jsonBytes, as: UTF8.self),
                                     record.requestsPerMinute, record.tokensPerMinute, record.createdAt])
            }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw StoreError.duplicateName(name)
        }
        return (record, raw)
    }

    func keys() throws -> [StoredKey] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM client_keys ORDER BY created_at, name").map { row in
                let modelsText: String = row["models"]
                let models = (try? JSONValue.parse(modelsText))?.arrayValue?.compactMap(\.stringValue) ?? []
                return StoredKey(id: row["id"], name: row["name"], keyHash: row["key_sha256"], preview: row["preview"],
                                 owner: row["owner"], models: models, requestsPerMinute: row["rate_limit_rpm"],
                                 tokensPerMinute: row["rate_limit_tpm"], createdAt: row["created_at"],
                                 revokedAt: row["revoked_at"])
            }
        }
    }

    /// Revokes a key (kept for the record); false when there is no such live key.
    func revokeKey(id: String) throws -> Bool {
        try database.write { db in
            try db.execute(sql: "UPDATE client_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                           arguments: [AdminStore.now(), id])
            return db.changesCount > 0
        }
    }

    static func sha256Hex(_ text: String) -> String {
        SHA256.hash(data: Array(text.utf8)).map { byte in
            String(byte >> 4, radix: 16) + String(byte & 0x0F, radix: 16)
        }.joined()
    }

    private static func now() -> Int64 { Int64(wallClockMilliseconds() / 1000) }
}
