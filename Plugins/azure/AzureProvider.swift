import PluginKit
import PrismPluginABI
import PrismWire

/// Azure OpenAI, classic deployment routes:
/// `POST {base_url}/openai/deployments/{deployment}/chat/completions?api-version=…` (and
/// `/embeddings`). The body is OpenAI's, forwarded without re-encoding; only `model` (the routed
/// model name, which Azure ignores: the deployment in the URL decides) and `stream_options` are
/// rewritten.
///
/// Configuration: `base_url` (required, e.g. https://my-resource.openai.azure.com), `api_key`,
/// `auth_type` (`api-key`, the default, sends `api-key: <key>`; `bearer` sends
/// `Authorization: Bearer <key>` for a Microsoft Entra ID token), `api_version` (default
/// 2024-10-21), `deployments` (model name → deployment name; unmapped models use their own
/// name), `headers`.
final class AzureProvider: ProviderAdapter {
    static let configurationKeys: [String]? = ["api_version", "auth_type", "deployments"]
    /// The OpenAI models Azure deploys (a deployment of the same name, or `deployments` maps it).
    let modelPatterns = ["gpt-*", "o1", "o1-*", "o3", "o3-*", "o4-*", "text-embedding-*"]

    static let defaultAPIVersion = "2024-10-21"

    let deploymentsBase: String
    let apiVersionQuery: String
    let authHeader: (name: String, value: String)?
    let deployments: [String: String]
    let extraHeaders: [(String, String)]

    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {
        guard var base = configuration["base_url"]?.stringValue, !base.isEmpty else {
            throw PluginError.configuration(
                "provider '\(instanceName)': `base_url` is required for azure (https://<resource>.openai.azure.com)")
        }
        while base.hasSuffix("/") { base.removeLast() }
        if !base.hasSuffix("/openai") { base += "/openai" }
        deploymentsBase = base + "/deployments/"
        let version = configuration["api_version"]?.stringValue ?? AzureProvider.defaultAPIVersion
        apiVersionQuery = "?api-version=" + PercentEncoding.encode(version.isEmpty ? AzureProvider.defaultAPIVersion : version)
        let key = configuration["api_key"]?.stringValue ?? ""
        switch configuration["auth_type"]?.stringValue?.lowercased() ?? "api-key" {
        case "api-key", "api_key", "key":
            authHeader = key.isEmpty ? nil : ("api-key", key)
        case "bearer", "entra", "entra_id", "azure_ad":
            authHeader = key.isEmpty ? nil : ("authorization", "Bearer \(key)")
        case let other:
            throw PluginError.configuration("provider '\(instanceName)': unknown auth_type '\(other)' (use api-key or bearer)")
        }
        var mapping: [String: String] = [:]
        for (model, deployment) in configuration["deployments"]?.objectValue ?? [] {
            guard let name = deployment.stringValue, !name.isEmpty else {
                throw PluginError.configuration("provider '\(instanceName)': deployments.\(model) must be a deployment name")
            }
            mapping[model] = name
        }
        deployments = mapping
        extraHeaders = (configuration["headers"]?.objectValue ?? []).compactMap { name, value in
            value.stringValue.map { (name.lowercased(), $0) }
        }
        host.log(.info, "provider '\(instanceName)' (azure) -> \(deploymentsBase)")
    }

    func url(model: String, operation: String) -> String {
        deploymentsBase + PercentEncoding.encode(deployments[model] ?? model) + "/" + operation + apiVersionQuery
    }

    func makeExchange() -> any ProviderExchange { AzureExchange(provider: self) }
}

final class AzureExchange: ProviderExchange {
    let provider: AzureProvider
    var clientWantsUsage = false
    var relay = OpenAIStreamState()

    init(provider: AzureProvider) { self.provider = provider }

    func buildRequest(_ request: PluginRequest, upstream: HTTPBuilder) throws(PluginError) -> UpstreamPlan {
        let operation: String
        switch request.api {
        case "chat.completions": operation = "chat/completions"
        case "embeddings": operation = "embeddings"
        default: throw PluginError.unsupported("the azure provider does not serve \(request.api)")
        }
        let streaming = request.isStreaming && request.api == "chat.completions"
        let rewrite = try OpenAIRequestRewrite(body: request.body, upstreamModel: request.model, streaming: streaming)
        clientWantsUsage = rewrite.clientWantsUsage
        upstream.setMethod("POST")
        upstream.setURL(provider.url(model: request.model, operation: operation))
        if let auth = provider.authHeader { upstream.setHeader(auth.name, auth.value) }
        upstream.setHeader("content-type", "application/json")
        for (name, value) in provider.extraHeaders { upstream.setHeader(name, value) }
        if streaming { upstream.setHeader("accept", "text/event-stream") }
        rewrite.write(request.body, to: upstream)
        return streaming ? .serverSentEvents : .notStreaming
    }

    func translateResponse(_ response: PluginResponse, client: HTTPBuilder) throws(PluginError) -> Usage {
        try OpenAIRelay.relayResponse(response, client: client)
    }

    /// Azure's stream is OpenAI's plus content-filter annotations. Its first chunk often has
    /// `choices: []`, an empty `id` and `model` and only `prompt_filter_results`: OpenAI clients
    /// that read `choices[0]` fail on it, so such chunks (no choices, no usage) are dropped.
    func translateEvent(_ event: PluginEvent, client: StreamSink) throws(PluginError) {
        let data = event.data
        if let members = try? JSONScanner.members(data),
           JSONScanner.member(named: "usage", in: members, of: data).map({ data[$0.valueRange.lowerBound] != UInt8(ascii: "{") }) ?? true,
           let choices = JSONScanner.member(named: "choices", in: members, of: data),
           let elements = try? JSONScanner.elements(data, in: choices.valueRange), elements.isEmpty
        {
            return
        }
        try OpenAIRelay.relayEvent(event, client: client, clientWantsUsage: clientWantsUsage,
                                   state: &relay)
    }

    func finishStream(client: StreamSink) throws(PluginError) {
        try relay.finish()
    }

    /// Azure's envelope is OpenAI's with `code` as the discriminator; a prompt refused by the
    /// content filter (400, code `content_filter`) keeps that code so clients can tell.
    func translateError(_ response: PluginResponse) -> PluginError {
        var error = OpenAIShapes.upstreamError(status: response.status, body: Array(response.body))
        if let body = try? JSONValue.parse(response.body), let code = body["error"]?["code"]?.stringValue,
           code == "content_filter"
        {
            error.code = code
        }
        return error
    }
}

@c(prism_plugin_entry_v1)
public func prismPluginEntry(_ host: UnsafePointer<prism_host_api>?,
                             _ out: UnsafeMutablePointer<UnsafePointer<prism_plugin_descriptor>?>?) -> prism_status
{
    PluginExport.entry(host, out, id: "dev.prism.provider.azure", version: "1.0.0",
                       components: [.provider("azure", AzureProvider.self)])
}
