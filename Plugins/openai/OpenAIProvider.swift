import PluginKit
import PrismPluginABI
import PrismWire

/// OpenAI and every OpenAI-compatible server (hosted or self-hosted). The client's body is
/// forwarded without re-encoding; only `model` and `stream_options` are rewritten when needed.
final class OpenAIProvider: ProviderAdapter {
    static let configurationKeys: [String]? = ["native_responses", "native_completions"]

    /// Base URLs for the OpenAI-compatible `type`s, used when `base_url` is omitted.
    static let defaultBaseURLs: [String: String] = [
        "openai": "https://api.openai.com/v1",
        "groq": "https://api.groq.com/openai/v1",
        "mistral": "https://api.mistral.ai/v1",
        "together": "https://api.together.xyz/v1",
        "fireworks": "https://api.fireworks.ai/inference/v1",
        "deepinfra": "https://api.deepinfra.com/v1/openai",
        "perplexity": "https://api.perplexity.ai",
        "cerebras": "https://api.cerebras.ai/v1",
        "xai": "https://api.x.ai/v1",
        "openrouter": "https://openrouter.ai/api/v1",
        "huggingface": "https://router.huggingface.co/v1",
        "anyscale": "https://api.endpoints.anyscale.com/v1",
        "replicate": "https://openai-proxy.replicate.com/v1",
        "ollama": "http://localhost:11434/v1",
        "vllm": "http://localhost:8000/v1",
        "lmstudio": "http://localhost:1234/v1",
        "lm_studio": "http://localhost:1234/v1",
        "tgi": "http://localhost:8080/v1",
        "localai": "http://localhost:8080/v1",
    ]

    /// The model families a type serves where its names are its own (ABI 1.4 model_patterns):
    /// a model no `models` list names resolves to the configured providers whose family matches.
    /// Types whose catalogue is other vendors' open models (groq, together, openrouter, ...) have
    /// none, and self-hosted ones serve what discovery finds.
    static let families: [String: [String]] = [
        "openai": ["gpt-*", "o1", "o1-*", "o3", "o3-*", "o4-*", "chatgpt-*", "text-embedding-*", "codex-*",
                   "computer-use-*", "omni-moderation-*"],
        "mistral": ["mistral-*", "open-mistral-*", "open-mixtral-*", "codestral-*", "pixtral-*", "ministral-*",
                    "magistral-*", "devstral-*", "voxtral-*"],
        "xai": ["grok-*"],
        "perplexity": ["sonar", "sonar-*", "r1-1776"],
        "fireworks": ["accounts/fireworks/models/*"],
    ]

    let baseURL: String
    let type: String
    /// Which client dialects this server speaks itself (the gateway then passes their bodies through).
    let nativeResponses: Bool
    let nativeCompletions: Bool
    let authorization: String?
    let extraHeaders: [(String, String)]
    let modelPatterns: [String]

    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {
        let type = configuration["type"]?.stringValue ?? "openai"
        self.type = type
        // OpenAI's own API serves Responses; self-hosted servers serve legacy completions for every
        // model (OpenAI's only for its instruct models: see passesThrough). Either can be set.
        nativeResponses = configuration["native_responses"]?.boolValue ?? (type == "openai")
        nativeCompletions = configuration["native_completions"]?.boolValue
            ?? ["vllm", "ollama", "lmstudio", "lm_studio", "tgi", "localai"].contains(type)
        modelPatterns = OpenAIProvider.families[type] ?? []
        if let configured = configuration["base_url"]?.stringValue, !configured.isEmpty {
            baseURL = OpenAIProvider.normalize(configured)
        } else if let known = OpenAIProvider.defaultBaseURLs[type] {
            baseURL = known
        } else {
            throw PluginError.configuration(
                "provider '\(instanceName)': `base_url` is required for type '\(type)' (no default is known)")
        }
        let key = configuration["api_key"]?.stringValue ?? ""
        authorization = key.isEmpty ? nil : "Bearer \(key)"
        extraHeaders = (configuration["headers"]?.objectValue ?? []).compactMap { name, value in
            value.stringValue.map { (name.lowercased(), $0) }
        }
        host.log(.info, "provider '\(instanceName)' (\(type)) -> \(baseURL)")
    }

    /// OpenAI's reasoning models, which take `max_completion_tokens` and refuse `max_tokens`
    /// (what Anthropic Messages and older OpenAI clients send).
    static func isReasoning(_ model: String) -> Bool {
        // Bytes compared in place: an array of families and a `family + "-"` string built per
        // request cost about 1,500 instructions.
        // A combining mark right after the `-` would make `family-` another character (the
        // former Character-wise `hasPrefix` said no): such a name is asked the slow way.
        var text = model
        return text.withUTF8 { name in
            reasoningFamilies.contains { family in
                guard name.count >= family.count, name.starts(with: family) else { return false }
                if name.count == family.count { return true }
                guard name[family.count] == UInt8(ascii: "-") else { return false }
                guard name.count > family.count + 1, name[family.count + 1] >= 0x80 else { return true }
                return model.hasPrefix(String(decoding: family, as: UTF8.self) + "-")
            }
        }
    }
    private static let reasoningFamilies = ["o1", "o3", "o4", "gpt-5"].map { Array($0.utf8) }

    /// `base_url` may be given with or without `/v1`: a URL with no path gets `/v1`.
    static func normalize(_ url: String) -> String {
        var url = url
        while url.hasSuffix("/") { url.removeLast() }
        let parts = url.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)
        // "scheme:" "" "host[:port]" ["path"]: a URL whose path is empty gets /v1.
        return parts.count > 3 ? url : url + "/v1"
    }

    func makeExchange() -> any ProviderExchange { OpenAIExchange(provider: self) }
}

final class OpenAIExchange: ProviderExchange {
    let provider: OpenAIProvider
    var clientWantsUsage = false
    /// Unchecked exclusivity: passed `inout` for each stream event (a runtime access check an
    /// event otherwise); during that access the plugin only writes to the host's sink, which
    /// never calls back into this exchange.
    @exclusivity(unchecked) var relay = OpenAIStreamState()

    init(provider: OpenAIProvider) { self.provider = provider }

    func buildRequest(_ request: PluginRequest, upstream: HTTPBuilder) throws(PluginError) -> UpstreamPlan {
        let path: String
        switch request.api {
        case "chat.completions": path = "/chat/completions"
        case "embeddings": path = "/embeddings"
        case "models.list":
            upstream.setMethod("GET")
            upstream.setURL(provider.baseURL + "/models")
            setCommonHeaders(upstream)
            return .notStreaming
        case "openai.responses", "openai.completions":
            // The client's own OpenAI dialect: its body goes upstream as it is, but for the model.
            guard passesThrough(request.api, model: request.model) else {
                throw PluginError.unsupported("provider \(provider.type) does not serve \(request.api) natively")
            }
            // A streamed completion reports usage only in a usage chunk the client must ask for:
            // asked here (the client may see that one extra chunk), so costs and budgets count it.
            // Responses always reports usage in response.completed.
            let rewrite = try OpenAIRequestRewrite(body: request.body, upstreamModel: request.model,
                                                   streaming: request.isStreaming && request.api == "openai.completions")
            upstream.setMethod("POST")
            upstream.setURL(provider.baseURL + (request.api == "openai.responses" ? "/responses" : "/completions"))
            setCommonHeaders(upstream)
            upstream.setHeader("content-type", "application/json")
            if request.isStreaming { upstream.setHeader("accept", "text/event-stream") }
            rewrite.write(request.body, to: upstream)
            return request.isStreaming ? .serverSentEvents : .notStreaming
        default: throw PluginError.unsupported("the openai provider does not serve \(request.api)")
        }
        let streaming = request.isStreaming && path == "/chat/completions"
        let model = request.model
        let rewrite = try OpenAIRequestRewrite(body: request.body, upstreamModel: model, streaming: streaming,
                                               completionTokens: provider.type == "openai" && OpenAIProvider.isReasoning(model))
        clientWantsUsage = rewrite.clientWantsUsage
        upstream.setMethod("POST")
        upstream.setURL(provider.baseURL + path)
        setCommonHeaders(upstream)
        upstream.setHeader("content-type", "application/json")
        if streaming { upstream.setHeader("accept", "text/event-stream") }
        rewrite.write(request.body, to: upstream)
        return streaming ? .serverSentEvents : .notStreaming
    }

    private func passesThrough(_ api: String, model: String) -> Bool {
        if api == "openai.responses" { return provider.nativeResponses }
        if provider.nativeCompletions { return true }
        // OpenAI serves legacy completions only for its instruct and base models.
        return provider.type == "openai" && (model.contains("-instruct") || model.hasPrefix("davinci-") || model.hasPrefix("babbage-"))
    }

    private func setCommonHeaders(_ upstream: HTTPBuilder) {
        if let authorization = provider.authorization { upstream.setHeader("authorization", authorization) }
        for (name, value) in provider.extraHeaders { upstream.setHeader(name, value) }
    }

    func translateResponse(_ response: PluginResponse, client: HTTPBuilder) throws(PluginError) -> Usage {
        try OpenAIRelay.relayResponse(response, client: client)
    }

    func translateEvent(_ event: PluginEvent, client: StreamSink) throws(PluginError) {
        try OpenAIRelay.relayEvent(event, client: client, clientWantsUsage: clientWantsUsage,
                                     state: &relay)
    }

    func finishStream(client: StreamSink) throws(PluginError) {
        try relay.finish()
    }
}

@c(prism_plugin_entry_v1)
public func prismPluginEntry(_ host: UnsafePointer<prism_host_api>?,
                             _ out: UnsafeMutablePointer<UnsafePointer<prism_plugin_descriptor>?>?) -> prism_status
{
    PluginExport.entry(host, out, id: "dev.prism.provider.openai", version: "1.0.0",
                       components: [.provider("openai", OpenAIProvider.self)])
}
