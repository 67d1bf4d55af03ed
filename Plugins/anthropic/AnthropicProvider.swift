import PluginKit
import PrismPluginABI
import PrismWire

/// Anthropic's Messages API (`POST /v1/messages`), translated to and from OpenAI chat completions.
///
/// Configuration: `api_key` (sent as `x-api-key`), `base_url` (default https://api.anthropic.com,
/// with or without `/v1`), `headers` (extra headers, e.g. `anthropic-beta`).
final class AnthropicProvider: ProviderAdapter {
    static let configurationKeys: [String]? = []
    /// Every Claude model, including ones released after this build (ABI 1.4 model_patterns).
    let modelPatterns = ["claude-*"]

    static let apiVersion = "2023-06-01"

    let messagesURL: String
    let apiKey: String
    let extraHeaders: [(String, String)]
    let host: PluginHost

    init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {
        self.host = host
        var base = configuration["base_url"]?.stringValue ?? ""
        if base.isEmpty { base = "https://api.anthropic.com" }
        while base.hasSuffix("/") { base.removeLast() }
        if base.hasSuffix("/v1") { base.removeLast(3) }
        messagesURL = base + "/v1/messages"
        apiKey = configuration["api_key"]?.stringValue ?? ""
        extraHeaders = (configuration["headers"]?.objectValue ?? []).compactMap { name, value in
            value.stringValue.map { (name.lowercased(), $0) }
        }
        host.log(.info, "provider '\(instanceName)' (anthropic) -> \(messagesURL)")
    }

    func makeExchange() -> any ProviderExchange { AnthropicExchange(provider: self) }
}

final class AnthropicExchange: ProviderExchange {
    let provider: AnthropicProvider
    var model = ""
    var answerTool = false
    var stream: AnthropicStream?

    init(provider: AnthropicProvider) { self.provider = provider }

    var created: Int64 { Int64(provider.host.wallClockMilliseconds / 1000) }

    func buildRequest(_ request: PluginRequest, upstream: HTTPBuilder) throws(PluginError) -> UpstreamPlan {
        let native = request.api == "anthropic.messages"
        guard request.api == "chat.completions" || native else {
            throw PluginError.unsupported(request.api == "embeddings"
                ? "The anthropic provider has no embeddings API; configure an embeddings model on another provider."
                : "The anthropic provider does not serve \(request.api).")
        }
        model = request.model
        let streaming = request.isStreaming
        let body: [UInt8]
        if native {
            // The client speaks Anthropic's own Messages API: its body goes as it is, but for the
            // model (thinking signatures, cache_control and beta fields survive), and the answer
            // goes back to it untouched.
            body = try OpenAIRequestRewrite(body: request.body, upstreamModel: model, streaming: false)
                .rewritten(request.body)
        } else {
            let chat = try ChatRequest.parse(request.body)
            let translated = try AnthropicRequest(chat, model: model, stream: streaming, sizeHint: request.body.count)
            answerTool = translated.usesAnswerTool
            if streaming {
                stream = AnthropicStream(includeUsage: chat.includeUsage, answerTool: answerTool, fallbackModel: model,
                                         created: created)
            }
            body = translated.bytes
        }
        upstream.setMethod("POST")
        upstream.setURL(provider.messagesURL)
        upstream.setHeader("content-type", "application/json")
        if !provider.apiKey.isEmpty { upstream.setHeader("x-api-key", provider.apiKey) }
        upstream.setHeader("anthropic-version", AnthropicProvider.apiVersion)
        var configuredBetas: [String] = []
        for (name, value) in provider.extraHeaders {
            if name == "anthropic-beta" { configuredBetas += HeaderList.values(value) } else { upstream.setHeader(name, value) }
        }
        // The client's Anthropic headers: its beta features join the configured ones; its
        // anthropic-version replaces the default.
        var betas: [String] = []
        for beta in configuredBetas + request.headerList("anthropic-beta") where !betas.contains(beta) { betas.append(beta) }
        if !betas.isEmpty { upstream.setHeader("anthropic-beta", betas.joined(separator: ",")) }
        if let version = request.header("anthropic-version"), !version.isEmpty {
            upstream.setHeader("anthropic-version", version)
        }
        upstream.writeBody(body)
        return streaming ? .serverSentEvents : .notStreaming
    }

    func translateResponse(_ response: PluginResponse, client: HTTPBuilder) throws(PluginError) -> Usage {
        let completion = try AnthropicResponse.completion(response.body, fallbackModel: model, created: created,
                                                          answerTool: answerTool)
        completion.write(to: client)
        return completion.usage
    }

    func translateEvent(_ event: PluginEvent, client: StreamSink) throws(PluginError) {
        guard stream != nil else { throw PluginError.internalError("a stream event arrived for a non-streaming request") }
        try stream!.translate(event, client: client)
    }

    func finishStream(client: StreamSink) throws(PluginError) {
        // Anthropic ends every complete stream with message_stop; without it the answer was cut.
        guard stream?.stopped == true else {
            throw PluginError.upstream(status: 502, message: "the upstream stream ended before message_stop")
        }
    }

    func translateError(_ response: PluginResponse) -> PluginError {
        AnthropicResponse.error(status: response.status, body: response.body)
    }
}

@c(prism_plugin_entry_v1)
public func prismPluginEntry(_ host: UnsafePointer<prism_host_api>?,
                             _ out: UnsafeMutablePointer<UnsafePointer<prism_plugin_descriptor>?>?) -> prism_status
{
    PluginExport.entry(host, out, id: "dev.prism.provider.anthropic", version: "1.0.0",
                       components: [.provider("anthropic", AnthropicProvider.self)])
}
