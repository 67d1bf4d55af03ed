import PluginKit
import PrismPluginABI
import PrismWire

/// OpenAI's legacy completions API (`POST /v1/completions`) over the chat-completions pipeline:
/// the prompt becomes one user message, the answer's text the completion.
public final class CompletionsIngress: IngressDialect {
    public static let configurationKeys: [String]? = []

    public init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {}

    package init() {}

    public var routes: [IngressRoute] {
        [IngressRoute(method: "POST", path: "/v1/completions", api: "openai.completions")]
    }

    public func makeExchange() -> any IngressExchange { CompletionsExchange() }
}
