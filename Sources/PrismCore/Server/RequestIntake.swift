import NIOCore
import NIOHTTP1
import PrismPluginABI
import PrismSupport
import PrismWire

// The start of a proxied request: the body checked (a JSON object with a model, and messages for
// chat), the request's view for the plugins built, then the middleware (Pipeline/).
extension ProxyRequest {
    func run() {
        gateway.activity.inFlight.add(1, ordering: .relaxed)
        countedInFlight = true
        if api == "models.list" || api == "models.retrieve" {
            // GET /v1/models[/{id}]: no body; the middleware decide who may see it (a key restricted
            // to some models may retrieve only those), the host answers.
            var model = ""
            if api == "models.retrieve" {
                model = PercentEncoding.decode(String(path.dropFirst(ProxyRequest.modelsPrefix.count)))
                if let problem = ProxyRequest.modelNameProblem(model) {
                    return fail(.badRequest, "invalid_request_error", "invalid_model", problem, param: "model")
                }
                clientModel = model
            }
            let headers = head.headers.map { ($0.name, $0.value) }
            view = RequestView(api: api, method: head.method.rawValue, path: path, headers: headers, body: [],
                               model: model, requestID: requestID)
            return runMiddleware(from: 0)
        }
        if let name = ingressUnavailable {
            return fail(.internalServerError, "internal_error", "ingress_error", "Ingress '\(name)' could not start an exchange.")
        }
        if let ingress { return decodeIngress(ingress) }
        runCanonical()
    }

    /// The chat path proper (for an ingress, after its decode).
    func runCanonical() {
        // 1. The body must be a JSON object with a model (and messages, for chat).
        let members: [JSONMember]
        do {
            members = try body.withUnsafeBytes { raw in try JSONScanner.members(raw) }
        } catch let error as JSONSyntaxError {
            return fail(.badRequest, "invalid_request_error", "invalid_json",
                        "The request body is not valid JSON: \(error.reason) at byte \(error.offset).")
        } catch {
            return fail(.badRequest, "invalid_request_error", "invalid_json", "The request body is not valid JSON.")
        }
        var model: String?
        var hasMessages = false
        body.withUnsafeBytes { raw in
            if let member = JSONScanner.member(named: "model", in: members, of: raw) {
                model = JSONScanner.string(raw, in: member.valueRange)
            }
            if let member = JSONScanner.member(named: "messages", in: members, of: raw) {
                hasMessages = raw[member.valueRange.lowerBound] == UInt8(ascii: "[")
            }
            if let member = JSONScanner.member(named: "user", in: members, of: raw) {
                endUser = (JSONScanner.string(raw, in: member.valueRange) ?? "").clipped(toCharacters: 256)
            }
            if let member = JSONScanner.member(named: "stream", in: members, of: raw) {
                streaming = api == "chat.completions" && JSONScanner.isTrue(raw, in: member.valueRange)
            }
        }
        trace?.requestMembers = members
        guard let model, !model.isEmpty else {
            return fail(.badRequest, "invalid_request_error", "missing_model",
                        "The request has no `model`: say which model should answer.", param: "model")
        }
        if let problem = ProxyRequest.modelNameProblem(model) {
            return fail(.badRequest, "invalid_request_error", "invalid_model", problem, param: "model")
        }
        clientModel = model
        if api == "chat.completions" && !hasMessages {
            return fail(.badRequest, "invalid_request_error", "missing_messages",
                        "The request has no `messages` array.", param: "messages")
        }
        let headers = head.headers.map { ($0.name, $0.value) }
        let view = RequestView(api: api, method: head.method.rawValue, path: path, headers: headers, body: body,
                               model: model, requestID: requestID)
        if streaming { view.pointer.pointee.flags |= PRISM_REQUEST_STREAM }
        self.view = view

        // 2. Middleware, in configuration order; then route().
        runMiddleware(from: 0)
    }

}
