import Logging
import PrismWire
import XCTest

import PrismCore

/// The admin API's client keys as prism.client_keys.v1 serves them, and their budgets.
final class ClientKeyTableTests: XCTestCase {
    private func key(_ byte: UInt8, _ name: String, organization: String = "", budget: BudgetLimit? = nil) -> ClientKeyTable.Key {
        ClientKeyTable.Key(digest: [UInt8](repeating: byte, count: 32), organization: organization, name: name,
                           record: ClientKeyTable.record(name: name, owner: "o", models: ["m"], requestsPerMinute: 5,
                                                         tokensPerMinute: 0, expiresAt: nil),
                           budget: budget)
    }

    private func lookup(_ table: ClientKeyTable, _ byte: UInt8, organization: String = "", length: Int = 32) -> JSONValue? {
        let digest = [UInt8](repeating: byte, count: length)
        return digest.withUnsafeBytes { table.record(digest: $0, organization: organization) }.flatMap { try? JSONValue.parse($0) }
    }

    func testLookupIsByDigestAndOrganization() {
        let table = ClientKeyTable()
        table.replace(with: [key(1, "file-key"), key(2, "org-key", organization: "acme")])
        XCTAssertEqual(lookup(table, 1)?["name"]?.stringValue, "file-key")
        XCTAssertEqual(lookup(table, 1)?["rate_limit_rpm"]?.integerValue, 5)
        XCTAssertEqual(lookup(table, 1)?["expires_at"], .null)
        XCTAssertEqual(lookup(table, 1)?["models"]?.arrayValue?.first?.stringValue, "m")
        // Another organization's key is not found, from either side.
        XCTAssertNil(lookup(table, 2))
        XCTAssertEqual(lookup(table, 2, organization: "acme")?["name"]?.stringValue, "org-key")
        XCTAssertNil(lookup(table, 1, organization: "acme"))
        // Unknown digests and digests of the wrong length.
        XCTAssertNil(lookup(table, 3))
        XCTAssertNil(lookup(table, 1, length: 31))
        // A revocation is a replacement without the key.
        let before = table.version
        table.replace(with: [key(2, "org-key", organization: "acme")])
        XCTAssertNotEqual(table.version, before)
        XCTAssertNil(lookup(table, 1))
    }

    func testAKeysOwnBudgetJoinsTheConfiguredOnesWithoutARebuild() {
        var configured = BudgetSettings()
        configured.keys = ["shared": BudgetLimit(limitUSD: 5, period: .monthly, hard: true),
                           "agent": BudgetLimit(limitUSD: 1, period: .monthly, hard: true)]
        let table = ClientKeyTable()
        let service = BudgetService(settings: configured, state: SharedStateService(settings: nil, logger: Logger(label: "test")),
                                    logger: Logger(label: "test"), keyBudgets: table, organization: "")
        XCTAssertEqual(service.settings.keys.count, 2)
        let own = BudgetLimit(limitUSD: 2, period: .daily, hard: false)
        table.replace(with: [key(1, "agent", budget: own), key(2, "new", budget: own),
                             key(3, "elsewhere", organization: "acme", budget: own)])
        // The key's own budget wins over the file's of the same name; another organization's stays out.
        XCTAssertEqual(service.settings.keys["agent"], own)
        XCTAssertEqual(service.settings.keys["new"], own)
        XCTAssertEqual(service.settings.keys["shared"], configured.keys["shared"])
        XCTAssertNil(service.settings.keys["elsewhere"])
        table.replace(with: [])
        XCTAssertEqual(service.settings.keys["agent"], configured.keys["agent"])
        XCTAssertNil(service.settings.keys["new"])
    }
}
