import NIOHTTP1
import PrismWire

// What a request's model name may be, and the answers about models: `GET /v1/models` and
// `GET /v1/models/{id}`, and the message for a model nothing serves.
extension ProxyRequest {
    static let modelsPrefix = "/v1/models/"

    /// Why a model name cannot be used, checked before any middleware or upstream sees it: control
    /// characters (CR, LF, NUL would reach headers, logs and URLs), or a part that changes an
    /// upstream URL's path or query when the provider puts the model there (`..`, `?`, `#`, `\`).
    package static func modelNameProblem(_ model: String) -> String? {
        if model.utf8.count > 256 { return "The model name is longer than 256 bytes." }
        // One pass over the bytes in place (on every request; iterating the String's UTF-8 view
        // cost about 85 instructions a byte): a control character; '?', '#', '\\'; or a segment
        // between slashes that is "." or "..".
        var name = model
        let (control, refused) = name.withUTF8 { bytes -> (Bool, Bool) in
            var segmentDots = 0, segmentLength = 0, refused = false
            for byte in bytes {
                switch byte {
                case 0..<0x20, 0x7F: return (true, false)
                case UInt8(ascii: "?"), UInt8(ascii: "#"), UInt8(ascii: "\\"): refused = true
                case UInt8(ascii: "/"):
                    if segmentLength > 0 && segmentLength == segmentDots && segmentDots <= 2 { refused = true }
                    segmentDots = 0
                    segmentLength = 0
                default:
                    segmentLength += 1
                    if byte == UInt8(ascii: ".") { segmentDots += 1 }
                }
            }
            if segmentLength > 0 && segmentLength == segmentDots && segmentDots <= 2 { refused = true }
            return (false, refused)
        }
        if control { return "The model name contains a control character." }
        if refused {
            return "The model name contains '?', '#', '\\' or a '.' / '..' path segment, which no model name has."
        }
        return nil
    }

    /// `GET /v1/models` (what the calling key may use: auth publishes a restricted key's models as
    /// the `key.models` attribute) and `GET /v1/models/{id}` (listed, or resolvable by family or as
    /// `provider/model`).
    func answerModels() {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        addCommonHeaders(&headers)
        if api == "models.retrieve" {
            guard let body = gateway.catalog.modelObject(gateway.planner.resolve(clientModel)) else {
                return fail(.notFound, "invalid_request_error", "model_not_found", modelNotFoundMessage(clientModel),
                            param: "model")
            }
            return finishBuffered(.ok, headers: headers, body: body, logsBody: false)
        }
        let allowed = attributes["key.models"].map { Set($0.split(separator: "\n").map(String.init)) }
        finishBuffered(.ok, headers: headers, body: gateway.catalog.modelsBody(allowed: allowed), logsBody: false)
    }

    /// What a client is told when nothing serves its model: the ways to configure it.
    func modelNotFoundMessage(_ model: String) -> String {
        let families = gateway.catalog.familySummary
        return "No provider serves the model '\(model)'. Add it to a provider's `models` list in config.yaml, "
            + "alias it in `model_map`, address a provider directly as `provider/model` (e.g. openai/\(model)), "
            + "or configure a provider whose model family includes it"
            + (families.isEmpty ? " (anthropic serves claude-*, gemini gemini-*, openai gpt-*/o*, ...)." : " (configured: \(families)).")
    }

}
