import AWSKit
import PluginKit
import PrismPluginABI
import PrismWire

#if canImport(Glibc)
import Glibc
#endif

/// One regional Bedrock runtime endpoint.
package struct BedrockEndpoint: Sendable, Equatable {
    package var region: String
    /// scheme://authority[/prefix], no trailing slash.
    package var base: String
    /// The `host` header value (and the host the signature covers).
    package var host: String
    /// The path before `/model/…` (empty, or `/prefix`).
    package var pathPrefix: String

    package init(region: String, base: String, host: String, pathPrefix: String) {
        self.region = region
        self.base = base
        self.host = host
        self.pathPrefix = pathPrefix
    }
}

/// Settings of one `providers.<name>` section with `api_format: bedrock`. docs/provider-mapping/bedrock.md
/// documents each key.
package struct BedrockConfiguration: Sendable {
    static let service = "bedrock"
    package static let defaultBaseURL = "https://bedrock-runtime.{region}.amazonaws.com"

    package var credentials: AWSCredentials
    /// One secret per instance: the derived signing keys are kept for the day.
    let signingKeys = AWSSigV4.SigningKeyCache()
    /// Attempt n goes to endpoints[n % count]: the cross-region failover order.
    package var endpoints: [BedrockEndpoint]
    /// `inferenceConfig.maxTokens` when the client sets no limit; nil leaves it to the model.
    package var defaultMaxTokens: Int?

    /// `environment` is consulted for keys the section lacks (or leaves empty): AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_DEFAULT_REGION.
    package init(_ configuration: JSONValue, name: String, environment: (String) -> String?) throws(PluginError) {
        func setting(_ key: String) -> String? {
            guard let value = configuration[key]?.stringValue, !value.isEmpty else { return nil }
            return value
        }
        func variable(_ key: String) -> String? {
            guard let value = environment(key), !value.isEmpty else { return nil }
            return value
        }
        // Credentials come as a set: a session token from the environment never joins keys from the config.
        if let keyID = setting("aws_access_key_id") {
            guard let secret = setting("aws_secret_access_key") else {
                throw PluginError.configuration("provider '\(name)': aws_access_key_id is set but aws_secret_access_key is not")
            }
            credentials = AWSCredentials(accessKeyID: keyID, secretAccessKey: secret,
                                         sessionToken: setting("aws_session_token"))
        } else if let keyID = variable("AWS_ACCESS_KEY_ID"), let secret = variable("AWS_SECRET_ACCESS_KEY") {
            credentials = AWSCredentials(accessKeyID: keyID, secretAccessKey: secret,
                                         sessionToken: variable("AWS_SESSION_TOKEN"))
        } else {
            throw PluginError.configuration("provider '\(name)': no AWS credentials: set aws_access_key_id and aws_secret_access_key, or the AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY environment variables")
        }

        var regions = (configuration["regions"]?.arrayValue ?? []).compactMap(\.stringValue).filter { !$0.isEmpty }
        if regions.isEmpty {
            guard let region = setting("aws_region") ?? variable("AWS_REGION") ?? variable("AWS_DEFAULT_REGION") else {
                throw PluginError.configuration("provider '\(name)': no AWS region: set aws_region (or regions), or the AWS_REGION environment variable")
            }
            regions = [region]
        }
        for region in regions where !BedrockConfiguration.isRegionName(region) {
            throw PluginError.configuration("provider '\(name)': '\(region)' is not an AWS region name (lower-case letters, digits and '-')")
        }
        let template = setting("base_url") ?? BedrockConfiguration.defaultBaseURL
        endpoints = try regions.map { region throws(PluginError) in
            try BedrockConfiguration.endpoint(template, region: region, name: name)
        }
        if let limit = configuration["default_max_tokens"]?.integerValue {
            guard limit > 0 else { throw PluginError.configuration("provider '\(name)': default_max_tokens must be positive") }
            defaultMaxTokens = Int(clamping: limit)
        }
    }

    static func isRegionName(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || byte == UInt8(ascii: "-")
        }
    }

    /// The endpoint for `region` from a base URL that may hold a `{region}` placeholder.
    package static func endpoint(_ template: String, region: String, name: String) throws(PluginError) -> BedrockEndpoint {
        var base = template.replacing("{region}", with: region)
        while base.hasSuffix("/") { base.removeLast() }
        let scheme: String
        if base.hasPrefix("https://") {
            scheme = "https"
        } else if base.hasPrefix("http://") {
            scheme = "http"
        } else {
            throw PluginError.configuration("provider '\(name)': base_url must start with https:// or http://")
        }
        let rest = base.dropFirst(scheme.count + 3)
        let authority = rest.prefix { $0 != "/" }
        guard !authority.isEmpty, !authority.contains("@"), !rest.contains("?"), !rest.contains("#") else {
            throw PluginError.configuration("provider '\(name)': base_url must be scheme://host[:port][/path], without user info, query or fragment")
        }
        // Like the AWS SDKs, the signed host leaves out the scheme's default port.
        var host = String(authority)
        if scheme == "https" && host.hasSuffix(":443") { host.removeLast(4) }
        if scheme == "http" && host.hasSuffix(":80") { host.removeLast(3) }
        return BedrockEndpoint(region: region, base: base, host: host, pathPrefix: String(rest.dropFirst(authority.count)))
    }
}

package final class BedrockProvider: ProviderAdapter {
    package static let configurationKeys: [String]? = ["aws_region", "regions", "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "default_max_tokens"]
    /// Bedrock's model ids (`anthropic.claude-…`, `amazon.nova-…`), cross-region inference
    /// profiles (`us.anthropic.…`) and ARNs (ABI 1.4 model_patterns).
    package let modelPatterns = ["anthropic.*", "amazon.*", "meta.*", "mistral.*", "cohere.*", "ai21.*", "deepseek.*",
                         "writer.*", "qwen.*", "openai.*", "us.*", "eu.*", "apac.*", "us-gov.*", "global.*",
                         "arn:aws:bedrock:*"]

    let configuration: BedrockConfiguration
    let host: PluginHost

    package init(host: PluginHost, instanceName: String, configuration: JSONValue) throws(PluginError) {
        self.host = host
        self.configuration = try BedrockConfiguration(configuration, name: instanceName) { name in
            getenv(name).map { String(cString: $0) }
        }
        let regions = self.configuration.endpoints.map(\.region).joined(separator: ", ")
        host.log(.info, "provider '\(instanceName)' (bedrock) regions [\(regions)] -> \(self.configuration.endpoints[0].base)")
    }

    package func makeExchange() -> any ProviderExchange { BedrockExchange(provider: self) }
}

final class BedrockExchange: ProviderExchange {
    enum Operation { case converse, converseStream, embeddings(BedrockEmbeddings) }

    let provider: BedrockProvider
    var operation = Operation.converse
    var model = ""
    var requestID = ""
    /// The answer comes through the `json_response` tool (response_format).
    var answerTool = false
    var stream: BedrockStream?

    init(provider: BedrockProvider) { self.provider = provider }

    var created: Int64 { Int64(provider.host.wallClockMilliseconds / 1000) }

    func buildRequest(_ request: PluginRequest, upstream: HTTPBuilder) throws(PluginError) -> UpstreamPlan {
        model = request.model
        requestID = request.requestID
        let body: [UInt8]
        let action: String
        switch request.api {
        case "chat.completions":
            let chat = try ChatRequest.parse(request.body)
            let converse = try BedrockRequest.converse(chat, model: model, betas: request.headerList("anthropic-beta"),
                                                       defaultMaxTokens: provider.configuration.defaultMaxTokens)
            body = converse.body
            answerTool = converse.answerTool
            if request.isStreaming {
                operation = .converseStream
                action = "converse-stream"
                stream = BedrockStream(id: completionID, model: model, created: created, includeUsage: chat.includeUsage,
                                       answerTool: answerTool)
            } else {
                operation = .converse
                action = "converse"
            }
        case "embeddings":
            let embeddings = try BedrockEmbeddings(try EmbeddingRequest.parse(request.body), model: model)
            operation = .embeddings(embeddings)
            body = embeddings.body
            action = "invoke"
        default:
            throw PluginError.unsupported("The bedrock provider does not serve \(request.api).")
        }
        let configuration = provider.configuration
        // The host retries and fails over; each attempt goes to the next region in the list.
        let endpoint = configuration.endpoints[Int(request.attempt) % configuration.endpoints.count]
        if request.attempt > 0 {
            provider.host.log(.debug, "request \(requestID): attempt \(request.attempt) -> region \(endpoint.region)")
        }
        // The model id is one path segment: `:` and `/` in ids and ARNs are percent-encoded.
        let route = "/model/" + PercentEncoding.encode(model) + "/" + action
        let streaming = stream != nil
        BedrockSigning.write(method: "POST", url: endpoint.base + route, path: endpoint.pathPrefix + route, body: body,
                             accept: streaming ? "application/vnd.amazon.eventstream" : "application/json",
                             endpoint: endpoint, credentials: configuration.credentials, keys: configuration.signingKeys,
                             amzDate: AWSSigV4.amzDate(epochMilliseconds: provider.host.wallClockMilliseconds),
                             to: upstream)
        return streaming ? UpstreamPlan(framing: PRISM_FRAMING_RAW) : .notStreaming
    }

    /// Bedrock has no completion id: the gateway's request id stands in.
    var completionID: String { "chatcmpl-" + (requestID.isEmpty ? "bedrock" : requestID) }

    func translateResponse(_ response: PluginResponse, client: HTTPBuilder) throws(PluginError) -> Usage {
        switch operation {
        case let .embeddings(embeddings):
            return try embeddings.translate(response.body, client: client)
        case .converse, .converseStream:
            let completion = try BedrockResponse.completion(response.body, id: completionID, model: model, created: created,
                                                            answerTool: answerTool)
            completion.write(to: client)
            return completion.usage
        }
    }

    func translateEvent(_ event: PluginEvent, client: StreamSink) throws(PluginError) {
        throw PluginError.internalError("the bedrock provider reads its stream as raw event-stream frames")
    }

    func translateChunk(_ chunk: UnsafeRawBufferPointer, client: StreamSink) throws(PluginError) {
        guard stream != nil else { throw PluginError.internalError("stream bytes arrived for a request that does not stream") }
        try stream!.feed(chunk, client: client)
    }

    func finishStream(client: StreamSink) throws(PluginError) {
        guard stream != nil else { return }
        try stream!.finish(client: client)
    }

    func translateError(_ response: PluginResponse) -> PluginError {
        BedrockResponse.error(status: response.status, errorType: response.header("x-amzn-errortype"), body: response.body)
    }
}

/// Writes a SigV4-signed request: signing is the last thing build_request does, over exactly the
/// method, path, headers and body the host sends.
package enum BedrockSigning {
    static func write(method: String, url: String, path: String, body: [UInt8], accept: String,
                      endpoint: BedrockEndpoint, credentials: AWSCredentials, keys: AWSSigV4.SigningKeyCache?,
                      amzDate: String, to upstream: HTTPBuilder)
    {
        let headers = signedHeaders(path: path, body: body, endpoint: endpoint, credentials: credentials,
                                    amzDate: amzDate, method: method, keys: keys)
        upstream.setMethod(method)
        upstream.setURL(url)
        for (name, value) in headers { upstream.setHeader(name, value) }
        upstream.setHeader("accept", accept)
        upstream.writeBody(body)
    }

    /// The headers that carry and make up the signature, `authorization` last.
    package static func signedHeaders(path: String, body: [UInt8], endpoint: BedrockEndpoint, credentials: AWSCredentials,
                              amzDate: String, method: String = "POST", keys: AWSSigV4.SigningKeyCache? = nil)
        -> [(String, String)]
    {
        var headers: [(String, String)] = [
            ("content-type", "application/json"),
            ("host", endpoint.host),
            ("x-amz-content-sha256", Hex.encode(SHA256.hash(body))),
            ("x-amz-date", amzDate),
        ]
        if let token = credentials.sessionToken { headers.append(("x-amz-security-token", token)) }
        let key = keys?.key(secretAccessKey: credentials.secretAccessKey, date: String(amzDate.prefix(8)),
                            region: endpoint.region, service: BedrockConfiguration.service)
        let signature = AWSSigV4.sign(AWSSigV4.Request(method: method, path: path, headers: headers,
                                                       payloadHash: headers[2].1),
                                      credentials: credentials, region: endpoint.region,
                                      service: BedrockConfiguration.service, amzDate: amzDate, signingKey: key)
        headers.append(("authorization", signature.authorization))
        return headers
    }
}

@c(prism_plugin_entry_v1)
public func prismPluginEntry(_ host: UnsafePointer<prism_host_api>?,
                             _ out: UnsafeMutablePointer<UnsafePointer<prism_plugin_descriptor>?>?) -> prism_status
{
    PluginExport.entry(host, out, id: "dev.prism.provider.bedrock", version: "1.0.0",
                       components: [.provider("bedrock", BedrockProvider.self)])
}
