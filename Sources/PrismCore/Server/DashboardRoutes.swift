import NIOCore
import NIOHTTP1
import PrismWire

// The dashboard: `GET /ui` serves its page (ui/index.html beside the binary: a static shell with
// no data in it), and the page reads everything it shows from admin-token routes:
// `/-/stats`, `/-/requests/recent`, `/-/plugins`, with the existing `/-/health/providers` and
// `/-/spend`.
extension GatewayHTTPHandler {
    /// The admin-token data routes of the dashboard (already authorized); false: not one of them.
    func dispatchDashboardData(head: HTTPRequestHead, segments: [String]) -> Bool {
        let query = GatewayHTTPHandler.queryParameters(head.uri)
        switch (head.method, segments[1], segments.count) {
        case (.GET, "stats", 2):
            let minutes = query["minutes"].flatMap { Int($0) } ?? 60
            guard (1...RequestStats.minuteCapacity).contains(minutes) else {
                writeError(status: .badRequest, type: "invalid_request_error", code: "invalid_minutes",
                           message: "minutes is between 1 and \(RequestStats.minuteCapacity); got '\(query["minutes"] ?? "")'")
                return true
            }
            writeJSON(status: .ok, body: gateway.services.stats.statsJSON(minutes: minutes, nowMilliseconds: wallClockMilliseconds()))
        case (.GET, "requests", 3) where segments[2] == "recent":
            let limit = query["limit"].flatMap { Int($0) } ?? 100
            guard (1...RequestStats.recentCapacity).contains(limit) else {
                writeError(status: .badRequest, type: "invalid_request_error", code: "invalid_limit",
                           message: "limit is between 1 and \(RequestStats.recentCapacity); got '\(query["limit"] ?? "")'")
                return true
            }
            writeJSON(status: .ok, body: gateway.services.stats.recentJSON(limit: limit))
        case (.GET, "plugins", 2):
            writeJSON(status: .ok, body: pluginsReport())
        default:
            return false
        }
        return true
    }

    /// `GET /-/plugins`: every loaded plugin file, its id, version, ABI and components, and the
    /// files that were refused, with why.
    private func pluginsReport() -> [UInt8] {
        let registry = gateway.registry
        var writer = JSONWriter(capacity: 2048)
        writer.beginObject()
        writer.key("plugins")
        writer.beginArray()
        for plugin in registry.plugins.sorted(by: { $0.file < $1.file }) {
            writer.beginObject()
            writer.string("file", plugin.file.split(separator: "/").last.map(String.init) ?? plugin.file)
            writer.string("id", plugin.id)
            writer.string("version", plugin.version)
            writer.string("abi", "\(plugin.abiMajor).\(plugin.abiMinor)")
            writer.key("components")
            writer.beginArray()
            for component in plugin.components {
                writer.beginObject()
                writer.string("kind", component.kind)
                writer.string("name", component.name)
                writer.endObject()
            }
            writer.endArray()
            writer.endObject()
        }
        writer.endArray()
        writer.key("refused")
        writer.beginArray()
        for refusal in registry.refusals {
            writer.beginObject()
            writer.string("file", refusal.file.split(separator: "/").last.map(String.init) ?? refusal.file)
            writer.string("reason", refusal.reason)
            writer.endObject()
        }
        writer.endArray()
        writer.endObject()
        return writer.bytes
    }

    /// `GET /ui`: the page, while the admin API is on (its data needs the admin token; the page
    /// asks for it and keeps it in the tab's sessionStorage). Read from disk each time: it is
    /// asked for rarely, and an upgrade of the file needs no restart.
    func serveDashboard(_ head: HTTPRequestHead) {
        guard gateway.configuration.admin.token != nil, runtime.adminStore != nil else {
            return writeError(status: .notFound, type: "invalid_request_error", code: "admin_api_off",
                              message: "The dashboard needs the admin API: set admin.token in config.yaml or PRISM_ADMIN_TOKEN, then restart.")
        }
        guard case let .success(page) = ConfigFile.read(Gateway.besideBinary("ui/index.html")) else {
            return writeError(status: .notFound, type: "invalid_request_error", code: "dashboard_missing",
                              message: "The dashboard's page is not installed: ui/index.html beside the binary (make build puts it in dist/ui).")
        }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/html; charset=utf-8")
        headers.add(name: "cache-control", value: "no-store")
        headers.add(name: "x-content-type-options", value: "nosniff")
        headers.add(name: "referrer-policy", value: "no-referrer")
        // Everything is inline in the one file; it talks only to this gateway, and no other site
        // may frame it.
        headers.add(name: "content-security-policy",
                     value: "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
        writeResponse(status: .ok, headers: headers, body: Array(page.utf8))
    }

    static func queryParameters(_ uri: String) -> [String: String] {
        var parameters: [String: String] = [:]
        guard let query = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).dropFirst().first
        else { return parameters }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { PercentEncoding.decode(String($0)) }
            if parts.count == 2 { parameters[parts[0]] = parts[1] }
        }
        return parameters
    }
}
