import NIOCore
import NIOHTTP1
import PrismWire

// The admin routes of governance: client keys (virtual keys with expiry, budget, limits, allowed
// models and metadata), what budgets have spent, and the spend ledger's totals.
extension GatewayHTTPHandler {
    /// `POST /-/keys`: `{name, owner, models, rate_limit_rpm, rate_limit_tpm, expires_at, budget:
    /// {limit, period, hard}, metadata}`.
    func createKey(body: [UInt8], organization fromPath: String? = nil) {
        guard let store = runtime.adminStore else { return }
        guard let request = try? JSONValue.parse(body), let name = request["name"]?.stringValue, !name.isEmpty else {
            return write(.error(.badRequest, "invalid_key_request",
                                "The body must be a JSON object with at least `name` (and optionally owner, models, rate_limit_rpm, rate_limit_tpm, expires_at, budget, metadata)."))
        }
        let owner = request["owner"]?.stringValue ?? ""
        let models = request["models"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let requestsPerMinute = max(0, request["rate_limit_rpm"]?.integerValue ?? 0)
        let tokensPerMinute = max(0, request["rate_limit_tpm"]?.integerValue ?? 0)
        var checked: AdminStore.KeyExtras
        switch GatewayHTTPHandler.keyExtras(request, now: Int64(wallClockMilliseconds() / 1000)) {
        case let .success(value): checked = value
        case let .failure(problem): return write(.error(.badRequest, "invalid_key_request", problem.message))
        }
        // POST /-/orgs/{id}/keys, or `org` in the body: the key is served by that organization.
        checked.organization = fromPath ?? request["org"]?.stringValue
        let extras = checked
        if let organization = extras.organization, runtime.organizations[organization] == nil {
            return write(.error(.notFound, "org_not_found",
                                "No organization '\(organization)' is being served (PUT /-/orgs/\(organization)/config first)."))
        }
        let authEnabled = FirstParty.authenticates(gateway.configuration.middleware)
        let budgetsOff = !gateway.configuration.budgets.enabled
        keyChangeLater {
            do {
                let (record, raw) = try store.createKey(name: name, owner: owner, models: models,
                                                        requestsPerMinute: requestsPerMinute, tokensPerMinute: tokensPerMinute,
                                                        extras: extras)
                // Shown this once; from now on redacted wherever it would appear (debug body logs).
                SecretRedactor.shared.register([raw])
                var members = GatewayHTTPHandler.describe(record)
                members.insert(("key", .string(raw)), at: 2)
                if !authEnabled {
                    members.append(("warning", .string("auth.enabled is false: keys are not checked until it is true")))
                } else if budgetsOff && extras.budget != nil {
                    members.append(("warning", .string("budgets.enabled is false: the key's budget is not enforced")))
                }
                return ControlAnswer(status: .created, body: JSONValue.object(members).jsonBytes)
            } catch let error as AdminStore.StoreError {
                return .error(.conflict, "duplicate_key_name", error.description)
            } catch {
                return .error(.internalServerError, "store_error", "\(error)")
            }
        }
    }

    struct KeyRequestProblem: Error {
        let message: String
    }

    /// The virtual-key fields of a create request, validated.
    static func keyExtras(_ request: JSONValue, now: Int64) -> Result<AdminStore.KeyExtras, KeyRequestProblem> {
        var extras = AdminStore.KeyExtras()
        if let value = request["expires_at"], value != .null {
            guard let seconds = value.integerValue ?? value.stringValue.flatMap(CivilDate.epochSeconds(iso:)) else {
                return .failure(KeyRequestProblem(message: "expires_at is seconds since the Unix epoch or an ISO 8601 UTC time (2027-01-31 or 2027-01-31T12:00:00Z)"))
            }
            guard seconds > now else { return .failure(KeyRequestProblem(message: "expires_at is in the past")) }
            extras.expiresAt = seconds
        }
        if let budget = request["budget"], budget != .null {
            guard let limit = budget["limit"]?.doubleValue, limit >= 0, limit < 1e9 else {
                return .failure(KeyRequestProblem(message: "budget needs `limit` in USD (and optionally period: daily|weekly|monthly|total, hard: true|false)"))
            }
            let periodText = budget["period"]?.stringValue ?? "monthly"
            guard let period = BudgetPeriod(rawValue: periodText) else {
                return .failure(KeyRequestProblem(message: "budget.period is daily, weekly, monthly or total; got '\(periodText)'"))
            }
            extras.budget = BudgetLimit(limitUSD: limit, period: period, hard: budget["hard"]?.boolValue ?? true)
        }
        if let metadata = request["metadata"], metadata != .null {
            guard case .object = metadata, metadata.jsonBytes.count <= 16384 else {
                return .failure(KeyRequestProblem(message: "metadata is a JSON object of at most 16 KiB"))
            }
            extras.metadata = metadata
        }
        return .success(extras)
    }

    /// `GET /-/keys/{id}`: one stored key with what it has spent: its budget's spend this period
    /// (from the shared counters, exact across replicas) and its total in this replica's ledger.
    func getKey(_ id: String) {
        guard let store = runtime.adminStore, let replied = replier() else { return }
        let gateway = self.gateway
        runtime.onControlQueue {
            let record: AdminStore.StoredKey
            do {
                guard let found = try store.keys().first(where: { $0.id == id }) else {
                    return replied(.error(.notFound, "key_not_found", "No stored key has the id '\(id)'."))
                }
                record = found
            } catch {
                return replied(.error(.internalServerError, "store_error", "\(error)"))
            }
            var members = GatewayHTTPHandler.describe(record)
            var spend: [(String, JSONValue)] = []
            if let ledger = gateway.services.ledger,
               let total = try? ledger.totals(groupBy: "key", from: nil, to: nil).first(where: { $0.group == record.name })
            {
                spend.append(("requests", .number(String(total.requests))))
                spend.append(("cost_usd", .number(BudgetService.usd(total.costNanoUSD))))
            } else {
                spend.append(("requests", .number("0")))
                spend.append(("cost_usd", .number("0")))
            }
            guard let budgets = gateway.budgets else {
                members.append(("spend", .object(spend)))
                return replied(ControlAnswer(status: .ok, body: JSONValue.object(members).jsonBytes))
            }
            let (described, ledgerSpend) = (members, spend)
            budgets.spend(scope: .key, name: record.name) { claim, spent in
                var members = described, spend = ledgerSpend
                if let claim {
                    var writer = JSONWriter(capacity: 256)
                    writer.beginObject()
                    BudgetService.describe(claim, spent: spent, into: &writer)
                    writer.endObject()
                    if let budget = try? JSONValue.parse(writer.bytes) { spend.append(("budget", budget)) }
                }
                members.append(("spend", .object(spend)))
                replied(ControlAnswer(status: .ok, body: JSONValue.object(members).jsonBytes))
            }
        }
    }

    /// `GET /-/budgets`: every configured budget (and every stored key's) with its spend this period.
    func listBudgets() {
        guard let replied = replier() else { return }
        guard let budgets = gateway.budgets, !budgets.settings.isEmpty else {
            return replied(.ok(.object([("enabled", .bool(false)), ("budgets", .array([]))])))
        }
        budgets.report { bytes in replied(ControlAnswer(status: .ok, body: bytes)) }
    }

    func listKeys() {
        guard let store = runtime.adminStore else { return }
        let fileKeys = FirstParty.fileClientKeys(gateway.configuration.document)
        answerLater {
            var items: [JSONValue] = []
            for key in fileKeys {
                items.append(.object([("name", key.name), ("source", .string("config")),
                                      ("preview", .string(SecretRedactor.mask(key.key))), ("owner", key.owner)]))
            }
            do {
                for record in try store.keys() { items.append(.object(GatewayHTTPHandler.describe(record))) }
            } catch {
                return .error(.internalServerError, "store_error", "\(error)")
            }
            return .ok(.object([("keys", .array(items))]))
        }
    }

    /// `GET /-/spend?group_by=key|owner|user|model|provider|org&from=&to=` (times: ms since the epoch,
    /// or ISO dates `2026-12-01`): totals from this replica's spend ledger.
    func spend(uri: String) {
        let parameters = GatewayHTTPHandler.queryParameters(uri)
        let groupBy = parameters["group_by"] ?? "model"
        guard SpendLedger.groupColumns[groupBy] != nil else {
            return write(.error(.badRequest, "invalid_group_by", "group_by is one of key, owner, user, model, provider, org; got '\(groupBy)'"))
        }
        var bounds: [UInt64?] = []
        for name in ["from", "to"] {
            guard let text = parameters[name] else { bounds.append(nil); continue }
            guard let value = SpendLedger.time(text) else {
                return write(.error(.badRequest, "invalid_time", "\(name) is milliseconds since the epoch or a date YYYY-MM-DD; got '\(text)'"))
            }
            bounds.append(value)
        }
        guard let ledger = gateway.services.ledger else {
            return write(.error(.notFound, "ledger_off", "The spend ledger is off (spend_ledger.enabled), or could not be opened (see the log)."))
        }
        let (from, to) = (bounds[0], bounds[1])
        answerLater {
            do {
                let totals = try ledger.totals(groupBy: groupBy, from: from, to: to)
                var groups: [JSONValue] = []
                var cost: Int64 = 0, requests: Int64 = 0
                for total in totals {
                    cost += total.costNanoUSD
                    requests += total.requests
                    groups.append(.object([(groupBy, .string(total.group)), ("requests", .number(String(total.requests))),
                                           ("tokens_in", .number(String(total.tokensIn))), ("tokens_out", .number(String(total.tokensOut))),
                                           ("cost_usd", .number(PriceTable.format(Double(total.costNanoUSD) / 1_000_000_000)))]))
                }
                return .ok(.object([("group_by", .string(groupBy)), ("from", from.map { .number(String($0)) } ?? .null),
                                    ("to", to.map { .number(String($0)) } ?? .null), ("groups", .array(groups)),
                                    ("total", .object([("requests", .number(String(requests))),
                                                       ("cost_usd", .number(PriceTable.format(Double(cost) / 1_000_000_000)))]))]))
            } catch {
                return .error(.internalServerError, "ledger_error", "\(error)")
            }
        }
    }

    func revokeKey(_ id: String) {
        guard let store = runtime.adminStore else { return }
        keyChangeLater {
            do {
                guard try store.revokeKey(id: id) else {
                    return .error(.notFound, "key_not_found", "No live key has the id '\(id)'.")
                }
                return .ok(.object([("revoked", .string(id))]))
            } catch {
                return .error(.internalServerError, "store_error", "\(error)")
            }
        }
    }

    static func describe(_ record: AdminStore.StoredKey) -> [(String, JSONValue)] {
        var members: [(String, JSONValue)] = [
            ("id", .string(record.id)), ("name", .string(record.name)), ("source", .string("admin")),
            ("preview", .string(record.preview)), ("owner", .string(record.owner)),
            ("models", .array(record.models.map { .string($0) })),
            ("rate_limit_rpm", .number(String(record.requestsPerMinute))),
            ("rate_limit_tpm", .number(String(record.tokensPerMinute))),
            ("created_at", .number(String(record.createdAt))),
            ("org", record.extras.organization.map { .string($0) } ?? .null),
            ("expires_at", record.extras.expiresAt.map { .number(String($0)) } ?? .null),
            ("budget", record.extras.json["budget"] ?? .null),
            ("metadata", record.extras.metadata),
        ]
        members.append(("revoked_at", record.revokedAt.map { .number(String($0)) } ?? .null))
        return members
    }
}
