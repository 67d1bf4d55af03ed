import PluginKit
import PrismPluginABI
import PrismWire

/// Google Gemini (AI Studio, `generativelanguage` v1beta, `x-goog-api-key`) and Vertex AI
/// (`/v1/projects/{project}/locations/{location}/publishers/google/models/…`, Bearer token). One
/// translation serves both: they share the request, response, stream and error shapes and differ
/// in URL, auth and the embeddings method.
///
/// Configuration (both): `api_key`, `base_url` (replaces scheme and host; a path ending in a
/// version segment such as `/v1beta` is used as is), `api_version`, `headers`.
/// Vertex only: `project` (required), `location` (default `us-central1`; `global` uses the
/// global host).
struct GeminiEndpoint: Sendable {
    enum Flavor: Sendable { case gemini, vertex }

    let flavor: Flavor
    /// Everything before `/models/{model}:{method}`.
    let modelsBase: String
    let authHeader: (name: String, value: String)?
    let extraHeaders: [(String, String)]
    let host: PluginHost

    init(flavor: Flavor, host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {
        self.flavor = flavor
        self.host = host
        let key = configuration["api_key"]?.stringValue ?? ""
        let configuredBase = configuration["base_url"]?.stringValue ?? ""
        switch flavor {
        case .gemini:
            let version = configuration["api_version"]?.stringValue ?? "v1beta"
            modelsBase = GeminiEndpoint.versioned(configuredBase.isEmpty ? "https://generativelanguage.googleapis.com"
                                                                       : configuredBase, version: version)
            authHeader = key.isEmpty ? nil : ("x-goog-api-key", key)
        case .vertex:
            guard let project = configuration["project"]?.stringValue, !project.isEmpty else {
                throw PluginError.configuration("provider '\(instanceName)': `project` is required for type vertexai")
            }
            let location = configuration["location"]?.stringValue ?? "us-central1"
            let defaultHost = location == "global" ? "https://aiplatform.googleapis.com"
                : "https://\(location)-aiplatform.googleapis.com"
            let version = configuration["api_version"]?.stringValue ?? "v1"
            let root = GeminiEndpoint.versioned(configuredBase.isEmpty ? defaultHost : configuredBase, version: version)
            modelsBase = root + "/projects/\(PercentEncoding.encode(project))/locations/"
                + "\(PercentEncoding.encode(location))/publishers/google"
            authHeader = key.isEmpty ? nil : ("authorization", "Bearer \(key)")
        }
        extraHeaders = (configuration["headers"]?.objectValue ?? []).compactMap { name, value in
            value.stringValue.map { (name.lowercased(), $0) }
        }
        host.log(.info, "provider '\(instanceName)' (\(flavor == .gemini ? "gemini" : "vertexai")) -> \(modelsBase)")
    }

    /// `base` with `/{version}` appended unless its last path segment already is a version.
    static func versioned(_ base: String, version: String) -> String {
        var base = base
        while base.hasSuffix("/") { base.removeLast() }
        let parts = base.split(separator: "/", omittingEmptySubsequences: false)
        // "scheme:" "" "host" ["path"...]: only a real path segment can be a version.
        if parts.count > 3, let last = parts.last, last.hasPrefix("v1") || last.hasPrefix("v2") { return base }
        return base + "/" + version
    }

    /// `…/models/{model}:{method}`; a `models/` prefix on the configured name is tolerated.
    func url(model: String, method: String) -> String {
        var name = Substring(model)
        if name.hasPrefix("models/") { name = name.dropFirst(7) }
        return modelsBase + "/models/" + PercentEncoding.encode(String(name), alsoAllowed: "@") + ":" + method
    }

    func setHeaders(_ upstream: HTTPBuilder) {
        if let authHeader { upstream.setHeader(authHeader.name, authHeader.value) }
        upstream.setHeader("content-type", "application/json")
        for (name, value) in extraHeaders { upstream.setHeader(name, value) }
    }
}

final class GeminiProvider: ProviderAdapter {
    static let configurationKeys: [String]? = ["api_version"]
    let modelPatterns = ["gemini-*", "gemma-*", "learnlm-*"]

    let endpoint: GeminiEndpoint

    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {
        endpoint = try GeminiEndpoint(flavor: .gemini, host: host, instanceName: instanceName,
                                      configuration: configuration)
    }

    func makeExchange() -> any ProviderExchange { GeminiExchange(endpoint: endpoint) }
}

final class VertexAIProvider: ProviderAdapter {
    static let configurationKeys: [String]? = ["project", "location", "api_version"]
    let modelPatterns = ["gemini-*"]

    let endpoint: GeminiEndpoint

    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {
        endpoint = try GeminiEndpoint(flavor: .vertex, host: host, instanceName: instanceName,
                                      configuration: configuration)
    }

    func makeExchange() -> any ProviderExchange { GeminiExchange(endpoint: endpoint) }
}

final class GeminiExchange: ProviderExchange {
    let endpoint: GeminiEndpoint
    var isEmbeddings = false
    var model = ""
    var requestID = ""
    var candidateCount = 1
    var embeddingRequest: EmbeddingRequest?
    var stream: GeminiStreamTranslator?

    init(endpoint: GeminiEndpoint) { self.endpoint = endpoint }

    func buildRequest(_ request: PluginRequest, upstream: HTTPBuilder) throws(PluginError) -> UpstreamPlan {
        model = request.model
        requestID = request.requestID
        switch request.api {
        case "chat.completions":
            let chat = try ChatRequest.parse(request.body)
            let streaming = request.isStreaming
            if streaming, (chat.candidateCount ?? 1) > 1 {
                throw PluginError.invalidRequest("`n` greater than 1 cannot be streamed from Gemini through Prism.",
                                                 code: "unsupported_parameter")
            }
            candidateCount = max(1, chat.candidateCount ?? 1)
            let body = try GeminiRequestWriter.write(chat, sizeHint: request.body.count)
            upstream.setMethod("POST")
            if streaming {
                upstream.setURL(endpoint.url(model: model, method: "streamGenerateContent?alt=sse"))
                stream = GeminiStreamTranslator(model: model, requestID: requestID, created: created,
                                                includeUsage: chat.includeUsage)
            } else {
                upstream.setURL(endpoint.url(model: model, method: "generateContent"))
            }
            endpoint.setHeaders(upstream)
            if streaming { upstream.setHeader("accept", "text/event-stream") }
            upstream.writeBody(body)
            return streaming ? .serverSentEvents : .notStreaming
        case "embeddings":
            isEmbeddings = true
            let embedding = try EmbeddingRequest.parse(request.body)
            embeddingRequest = embedding
            upstream.setMethod("POST")
            switch endpoint.flavor {
            case .gemini: upstream.setURL(endpoint.url(model: model, method: "batchEmbedContents"))
            case .vertex: upstream.setURL(endpoint.url(model: model, method: "predict"))
            }
            endpoint.setHeaders(upstream)
            upstream.writeBody(GeminiEmbeddings.requestBody(embedding, model: model, flavor: endpoint.flavor))
            return .notStreaming
        default:
            throw PluginError.unsupported("the \(endpoint.flavor == .gemini ? "gemini" : "vertexai") provider does not serve \(request.api)")
        }
    }

    var created: Int64 { Int64(endpoint.host.wallClockMilliseconds / 1000) }

    func translateResponse(_ response: PluginResponse, client: HTTPBuilder) throws(PluginError) -> Usage {
        let body: JSONValue
        do {
            body = try JSONValue.parse(response.body)
        } catch {
            throw PluginError.upstream(status: 502, message: "Gemini sent an invalid JSON answer: \(error.reason)")
        }
        if isEmbeddings, let embedding = embeddingRequest {
            return try GeminiEmbeddings.translate(body, request: embedding, model: model, flavor: endpoint.flavor,
                                                  client: client)
        }
        // A 200 that is neither candidates nor a blocked prompt (an error object, another API's
        // answer) is no answer: the gateway fails over instead of serving an empty completion.
        guard body["candidates"]?.arrayValue != nil || body["promptFeedback"]?.objectValue != nil else {
            throw PluginError.upstream(status: 502, message: "Gemini answered 200 with something that is not a generateContent answer"
                + (body["error"]?["message"]?.stringValue.map { ": \($0)" } ?? ""))
        }
        let answer = GeminiResponse.completion(body, fallbackModel: model, requestID: requestID, created: created)
        client.setStatus(200)
        client.setHeader("content-type", "application/json")
        client.writeBody(answer.json)
        return answer.usage
    }

    func translateEvent(_ event: PluginEvent, client: StreamSink) throws(PluginError) {
        guard stream != nil else { throw PluginError.internalError("stream event for a request that does not stream") }
        try stream!.translate(event.data, client: client)
    }

    func finishStream(client: StreamSink) throws(PluginError) {
        guard stream != nil else { return }
        try stream!.finish(client: client)
    }

    func translateError(_ response: PluginResponse) -> PluginError {
        GeminiErrors.upstreamError(status: response.status, body: response.body)
    }
}

@c(prism_plugin_entry_v1)
public func prismPluginEntry(_ host: UnsafePointer<prism_host_api>?,
                             _ out: UnsafeMutablePointer<UnsafePointer<prism_plugin_descriptor>?>?) -> prism_status
{
    PluginExport.entry(host, out, id: "dev.prism.provider.gemini", version: "1.0.0",
                       components: [.provider("gemini", GeminiProvider.self),
                                    .provider("vertexai", VertexAIProvider.self)])
}
