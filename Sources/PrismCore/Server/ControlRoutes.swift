import NIOCore
import NIOHTTP1
import PrismSupport
import PrismWire

// The operator's routes under /-/: metrics (open, for scrapers), and behind the admin token the
// reload, the running configuration (secrets masked) and the admin API for providers and client
// keys. Work that touches the store or rebuilds the gateway runs on the runtime's control queue;
// its answer hops back to this connection's event loop.
extension GatewayHTTPHandler {
    /// True when the path was an operator route (answered or being answered).
    func dispatchControl(head: HTTPRequestHead, path: String, body: PinnedBytes?) -> Bool {
        guard path.hasPrefix("/-/") else { return false }
        if path == "/-/metrics" {
            guard head.method == .GET else { return methodNotAllowed(head, path) }
            guard authorizeOperational(head, path) else { return true }
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "text/plain; version=0.0.4; charset=utf-8")
            writeResponse(status: .ok, headers: headers, body: GatewayMetrics.shared.render(
                circuits: gateway.circuitStates, inFlight: gateway.activity.inFlight.load(ordering: .relaxed)))
            return true
        }
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard segments.count >= 2, ["reload", "config", "providers", "keys", "spend", "stats", "requests", "plugins", "budgets", "orgs"].contains(segments[1])
        else { return false }
        guard authorizeAdmin(head) else { return true }
        if dispatchDashboardData(head: head, segments: segments) { return true }
        let bytes = body?.array ?? []
        if segments[1] == "orgs" { return dispatchOrganizations(head: head, segments: segments, body: bytes) || methodNotAllowed(head, path) }
        switch (head.method, segments[1], segments.count) {
        case (.POST, "reload", 2): reloadRoute()
        case (.GET, "config", 2):
            let document = SecretRedactor.masked(gateway.configuration.document)
            writeJSON(status: .ok, body: document.jsonBytes)
        case (.GET, "providers", 2): listProviders()
        case (.GET, "providers", 3): listProviders(only: segments[2])
        case (.PUT, "providers", 3): putProvider(segments[2], body: bytes)
        case (.DELETE, "providers", 3): deleteProvider(segments[2])
        case (.POST, "keys", 2): createKey(body: bytes)
        case (.GET, "keys", 2): listKeys()
        case (.GET, "keys", 3): getKey(segments[2])
        case (.DELETE, "keys", 3): revokeKey(segments[2])
        case (.GET, "budgets", 2): listBudgets()
        case (.GET, "spend", 2): spend(uri: head.uri)
        default: return methodNotAllowed(head, path)
        }
        return true
    }

    private func methodNotAllowed(_ head: HTTPRequestHead, _ path: String) -> Bool {
        writeError(status: .methodNotAllowed, type: "invalid_request_error", code: "method_not_allowed",
                   message: "Method \(head.method.rawValue) is not allowed on \(path).")
        return true
    }

    /// /-/metrics and /-/health/*: open, or behind the admin token (server.operational_routes;
    /// by default while clients authenticate, so a secured gateway tells strangers nothing).
    func authorizeOperational(_ head: HTTPRequestHead, _ path: String) -> Bool {
        let configuration = gateway.configuration
        guard configuration.server.operationalRoutesNeedAdmin(authenticatesClients: configuration.authenticatesClients)
        else { return true }
        guard configuration.admin.token != nil, runtime.adminStore != nil else {
            writeError(status: .forbidden, type: "permission_error", code: "operational_route_protected",
                       message: "\(path) needs the admin token while auth is on, and the admin API is off: set "
                           + "admin.token (or PRISM_ADMIN_TOKEN), or server.operational_routes: public for an open scrape.")
            return false
        }
        return authorizeAdmin(head)
    }

    /// `Authorization: Bearer <admin token>`: 404 while the admin API is off, 401 without a
    /// token, 403 with a wrong one (client keys are never admin tokens).
    func authorizeAdmin(_ head: HTTPRequestHead) -> Bool {
        guard let token = gateway.configuration.admin.token, runtime.adminStore != nil else {
            writeError(status: .notFound, type: "invalid_request_error", code: "admin_api_off",
                       message: "The admin API is off: set admin.token in config.yaml or PRISM_ADMIN_TOKEN, then restart.")
            return false
        }
        guard let presented = GatewayHTTPHandler.bearerToken(head), !presented.isEmpty else {
            writeError(status: .unauthorized, type: "authentication_error", code: "missing_admin_token",
                       message: "The admin API needs `Authorization: Bearer <admin token>`.")
            return false
        }
        guard ConstantTime.equal(Array(presented.utf8), Array(token.utf8)) else {
            writeError(status: .forbidden, type: "permission_error", code: "invalid_admin_token",
                       message: "That is not the admin token.")
            return false
        }
        return true
    }

    /// Writes an answer on this connection's event loop, from any thread (the control queue).
    func replier() -> (@Sendable (ControlAnswer) -> Void)? {
        guard let context else { return nil }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        return { answer in eventLoop.execute { bound.value.write(answer) } }
    }

    /// Runs `work` on the control queue and answers with what it returns.
    func answerLater(_ work: @escaping @Sendable () -> ControlAnswer) {
        guard let reply = replier() else { return }
        runtime.onControlQueue { reply(work()) }
    }

    /// Runs `work` (a store change) on the control queue, then rebuilds the gateway and answers.
    func changeLater(_ what: String, scope: GatewayRuntime.Scope = .file, _ work: @escaping @Sendable () -> ControlAnswer) {
        changeLater(what) { (work(), scope) }
    }

    /// The same, for a change whose work says what it touched (the file's keys, an organization's).
    func changeLater(_ what: String, _ work: @escaping @Sendable () -> (ControlAnswer, GatewayRuntime.Scope)) {
        guard let reply = replier() else { return }
        let runtime = self.runtime
        runtime.onControlQueue {
            let (answer, scope) = work()
            guard answer.status.code < 300 else { return reply(answer) }
            runtime.adminChanged(what, scope: scope) { outcome in
                if case let .rejected(reason) = outcome {
                    return reply(.error(.internalServerError, "reload_failed",
                                        "Stored, but the gateway could not apply it: \(reason)"))
                }
                reply(answer)
            }
        }
    }

    /// Runs `work` (a client key created or revoked in the store) on the control queue; the key
    /// table takes the change at once (no generation is rebuilt), then the answer is written.
    func keyChangeLater(_ work: @escaping @Sendable () -> ControlAnswer) {
        guard let reply = replier() else { return }
        let runtime = self.runtime
        runtime.onControlQueue {
            let answer = work()
            if answer.status.code < 300 { runtime.clientKeysChanged() }
            reply(answer)
        }
    }

    func write(_ answer: ControlAnswer) {
        writeJSON(status: answer.status, body: answer.body)
    }

    // MARK: Routes

    private func reloadRoute() {
        guard let reply = replier() else { return }
        runtime.reload(trigger: "POST /-/reload") { outcome in
            switch outcome {
            case let .applied(generation, warnings):
                reply(.ok(.object([("status", .string("reloaded")), ("generation", .number(String(generation))),
                                   ("warnings", .array(warnings.map { .string($0) }))])))
            case let .rejected(reason):
                reply(.error(.badRequest, "invalid_config", "The configuration was not reloaded: \(reason)"))
            }
        }
    }

    private func listProviders(only name: String? = nil) {
        let configuration = gateway.configuration
        let store = runtime.adminStore
        answerLater {
            let stored = Set(((try? store?.providers()) ?? []).map(\.name))
            let sections = configuration.document["providers"]?.objectValue ?? []
            var items: [JSONValue] = []
            for (providerName, section) in sections where name == nil || providerName == name {
                var members: [(String, JSONValue)] = [("name", .string(providerName)),
                                                      ("source", .string(stored.contains(providerName) ? "admin" : "config"))]
                members += (SecretRedactor.masked(section).objectValue ?? []).filter { $0.0 != "name" }
                items.append(.object(members))
            }
            if let name {
                guard let item = items.first else {
                    return .error(.notFound, "provider_not_found", "No provider is named '\(name)'.")
                }
                return .ok(item)
            }
            return .ok(.object([("providers", .array(items))]))
        }
    }

    private func putProvider(_ name: String, body: [UInt8]) {
        guard let store = runtime.adminStore else { return }
        guard case let .object(members)? = try? JSONValue.parse(body) else {
            return write(.error(.badRequest, "invalid_json",
                                "The body must be a JSON object with the provider's config.yaml keys (api_format, api_key, models, ...)."))
        }
        guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") }) else {
            return write(.error(.badRequest, "invalid_provider_name", "A provider name is printable ASCII without '/'."))
        }
        let section = JSONValue.object(members.filter { $0.0 != "name" })
        changeLater("PUT /-/providers/\(name)") {
            do {
                _ = try AdminOverlay.providerSettings(name: name, section: section)
            } catch {
                return .error(.badRequest, "invalid_provider", "The provider is not valid: \(error)")
            }
            guard store.canStoreProviders else {
                return .error(.serviceUnavailable, "master_key_missing", AdminStore.StoreError.noMasterKey.description)
            }
            do {
                try store.putProvider(name: name, section: section)
            } catch {
                return .error(.internalServerError, "store_error", "\(error)")
            }
            var masked = SecretRedactor.masked(section).objectValue ?? []
            masked.insert(("name", .string(name)), at: 0)
            masked.insert(("source", .string("admin")), at: 1)
            return .ok(.object(masked))
        }
    }

    private func deleteProvider(_ name: String) {
        guard let store = runtime.adminStore else { return }
        let inFile = runtime.gateway.configuration.providers.contains { $0.name == name }
        changeLater("DELETE /-/providers/\(name)") {
            do {
                if try store.deleteProvider(name: name) {
                    return .ok(.object([("deleted", .string(name))]))
                }
            } catch {
                return .error(.internalServerError, "store_error", "\(error)")
            }
            if inFile {
                return .error(.conflict, "provider_in_config_file",
                              "Provider '\(name)' is defined in config.yaml; remove it there (the file is reloaded when it changes).")
            }
            return .error(.notFound, "provider_not_found", "No provider is named '\(name)'.")
        }
    }





}

/// An operator route's answer, made off the event loop.
struct ControlAnswer: Sendable {
    let status: HTTPResponseStatus
    let body: [UInt8]

    static func ok(_ value: JSONValue) -> ControlAnswer { ControlAnswer(status: .ok, body: value.jsonBytes) }

    static func error(_ status: HTTPResponseStatus, _ code: String, _ message: String) -> ControlAnswer {
        let type = status.code >= 500 ? "server_error" : "invalid_request_error"
        return ControlAnswer(status: status, body: OpenAIErrorBody.make(message: SecretRedactor.shared.redact(message),
                                                                        type: type, code: code))
    }
}
