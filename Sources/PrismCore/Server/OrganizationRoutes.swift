import NIOCore
import NIOHTTP1
import PrismWire

// The admin routes of organizations (Control/Organizations.swift): each organization's config,
// sealed in the admin store, served by a generation of its own; its keys.
extension GatewayHTTPHandler {
    /// `/-/orgs…` (already authorized); false when the method and path are not one of them.
    func dispatchOrganizations(head: HTTPRequestHead, segments: [String], body: [UInt8]) -> Bool {
        let id = segments.count >= 3 ? PercentEncoding.decode(segments[2]) : ""
        if segments.count >= 3, !Organizations.isValidID(id) {
            writeError(status: .badRequest, type: "invalid_request_error", code: "invalid_org_id",
                       message: "An organization id is 1 to 64 letters, digits, '-', '_' or '.'.")
            return true
        }
        switch (head.method, segments.count, segments.count == 4 ? segments[3] : "") {
        case (.GET, 2, _): listOrganizations()
        case (.PUT, 4, "config"): putOrganization(id, body: body)
        case (.GET, 4, "config"), (.GET, 3, _): getOrganization(id)
        case (.DELETE, 4, "config"), (.DELETE, 3, _): deleteOrganization(id)
        case (.POST, 4, "keys"): createKey(body: body, organization: id)
        default: return false
        }
        return true
    }

    private func listOrganizations() {
        guard let store = runtime.adminStore else { return }
        let serving = runtime.organizations
        answerLater {
            do {
                let keys = try store.keys()
                let items: [JSONValue] = try store.organizations().map { organization in
                    let id = organization.name
                    return .object([
                        ("org_id", .string(id)), ("serving", .bool(serving[id] != nil)),
                        ("providers", .array((organization.section["providers"]?.objectValue ?? []).map { .string($0.0) })),
                        ("keys", .number(String(keys.filter { $0.extras.organization == id && $0.revokedAt == nil }.count))),
                        ("updated_at", .number(String(organization.updatedAt))),
                    ])
                }
                return .ok(.object([("orgs", .array(items))]))
            } catch {
                return .error(.internalServerError, "store_error", "\(error)")
            }
        }
    }

    /// `PUT /-/orgs/{id}/config`: the whole config (the sections an organization owns); checked by
    /// building the organization's generation before anything is stored. Only this organization's
    /// generation is replaced: the others, and requests in flight, are not touched.
    private func putOrganization(_ id: String, body: [UInt8]) {
        guard let store = runtime.adminStore else { return }
        guard let section = try? JSONValue.parse(body) else {
            return write(.error(.badRequest, "invalid_json", "The body must be a JSON object: the organization's config."))
        }
        if let problem = Organizations.shapeProblem(section) {
            return write(.error(.badRequest, "invalid_org_config", problem))
        }
        let runtime = self.runtime
        changeLater("PUT /-/orgs/\(id)/config", scope: .organization(id)) {
            guard store.canStoreProviders else {
                return .error(.serviceUnavailable, "master_key_missing", AdminStore.StoreError.noMasterKey.description)
            }
            if let problem = runtime.validateOrganization(id, section: section) {
                return .error(.badRequest, "invalid_org_config", "The organization's config is not valid: \(SecretRedactor.shared.redact(problem))")
            }
            let existed: Bool
            do {
                existed = try store.organizations().contains { $0.name == id }
                try store.putOrganization(id: id, configuration: section)
            } catch {
                return .error(.internalServerError, "store_error", "\(error)")
            }
            return ControlAnswer(status: existed ? .ok : .created, body: JSONValue.object([
                ("org_id", .string(id)), ("config", SecretRedactor.masked(section)),
            ]).jsonBytes)
        }
    }

    /// `GET /-/orgs/{id}/config`: the config with every secret masked, and the organization's keys
    /// (previews only).
    private func getOrganization(_ id: String) {
        guard let store = runtime.adminStore else { return }
        answerLater {
            do {
                guard let organization = try store.organizations().first(where: { $0.name == id }) else {
                    return .error(.notFound, "org_not_found", "No organization '\(id)'.")
                }
                let keys = try store.keys().filter { $0.extras.organization == id }
                return .ok(.object([
                    ("org_id", .string(id)), ("config", SecretRedactor.masked(organization.section)),
                    ("updated_at", .number(String(organization.updatedAt))),
                    ("keys", .array(keys.map { .object(GatewayHTTPHandler.describe($0)) })),
                ]))
            } catch {
                return .error(.internalServerError, "store_error", "\(error)")
            }
        }
    }

    /// `DELETE /-/orgs/{id}[/config]`: the organization and its keys (revoked) are gone at once;
    /// its requests in flight finish on the generation they started with.
    private func deleteOrganization(_ id: String) {
        guard let store = runtime.adminStore else { return }
        changeLater("DELETE /-/orgs/\(id)", scope: .organization(id)) {
            do {
                let live = try store.keys().filter { $0.extras.organization == id && $0.revokedAt == nil }.count
                guard try store.deleteOrganization(id: id) else {
                    return .error(.notFound, "org_not_found", "No organization '\(id)'.")
                }
                return .ok(.object([("deleted", .string(id)), ("keys_revoked", .number(String(live)))]))
            } catch {
                return .error(.internalServerError, "store_error", "\(error)")
            }
        }
    }
}
