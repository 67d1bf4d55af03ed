import PluginKit
import PrismPluginABI
import PrismWire

/// OpenAI's Responses API (`POST /v1/responses`) served over the gateway's chat-completions
/// pipeline, with stored responses (`previous_response_id`, `GET`/`DELETE /v1/responses/{id}`)
/// kept in the host's shared state.
public final class ResponsesIngress: IngressDialect {
    public static let configurationKeys: [String]? = ["store_ttl_seconds", "store"]

    let environment: ResponsesEnvironment

    public init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {
        let section = "ingress.\(instanceName)"
        let store = try configuration.configurationSwitch("store", section: section, default: true)
        var ttl: UInt64 = 3600
        if let value = configuration["store_ttl_seconds"], !value.isNull {
            guard let seconds = value.integerValue ?? value.stringValue.flatMap({ Int64($0) }), seconds > 0 else {
                throw PluginError.configuration("\(section).store_ttl_seconds: expected a positive number of seconds, got \(value.jsonText)")
            }
            ttl = UInt64(seconds)
        }
        let clockHost = host
        environment = ResponsesEnvironment(
            store: host.sharedState.map { SharedStateResponseStore($0) },
            settings: ResponsesSettings(store: store, ttlSeconds: ttl),
            now: { Int64(clockHost.wallClockMilliseconds / 1000) },
            newID: ResponsesEnvironment.randomID)
    }

    /// For tests: a store and clock of their own.
    package init(environment: ResponsesEnvironment) {
        self.environment = environment
    }

    public var routes: [IngressRoute] {
        [
            IngressRoute(method: "POST", path: "/v1/responses", api: ResponsesAPI.create),
            IngressRoute(method: "GET", path: "/v1/responses/", api: ResponsesAPI.retrieve, isPrefix: true),
            // No DELETE: decode runs before the middleware, so a deletion there would happen before a
            // key or a limit could refuse it (a local answer is sent only after them).
            IngressRoute(method: "GET", path: "/v1/responses", api: ResponsesAPI.websocket),
        ]
    }

    public func makeExchange() -> any IngressExchange { ResponsesExchange(environment) }
}

enum ResponsesAPI {
    static let create = "openai.responses"
    static let retrieve = "openai.responses.retrieve"
    static let delete = "openai.responses.delete"
    static let websocket = "openai.responses.websocket"
}
