import Logging
import PrismPluginABI

/// What one finished request was, gathered once when it ends: the request log line, the
/// dashboard's statistics, the metrics and the spend ledger all record these same facts. Unknown
/// texts are "-".
package struct RequestOutcome {
    var requestID: String
    package var key: String
    /// The key's owner (its team).
    var owner: String
    /// The end user (`x-prism-user-id`, else the body's `user`).
    var user: String
    /// The model the client asked for.
    var model: String
    /// The provider that answered.
    package var provider: String
    /// The model that answered (a streaming provider's own report, else routing's choice).
    var modelUsed: String
    var status: Int
    var latencyNanoseconds: UInt64
    /// 0: no byte of an answer reached the client before the end.
    var firstByteNanoseconds: UInt64
    var usage: prism_usage
    /// USD (nil: no price known, or cost tracking off).
    var cost: Double?
    /// The `x-prism-cache` verdict a middleware set.
    var cache: String
    /// A fallback model or a provider other than the first choice answered.
    var fallback: Bool
    var stream: Bool
    /// The error code the client got.
    var errorCode: String?

    package init(requestID: String, key: String, owner: String, user: String, model: String, provider: String,
                 modelUsed: String, status: Int, latencyNanoseconds: UInt64, firstByteNanoseconds: UInt64,
                 usage: prism_usage, cost: Double?, cache: String, fallback: Bool, stream: Bool, errorCode: String?)
    {
        self.requestID = requestID
        self.key = key
        self.owner = owner
        self.user = user
        self.model = model
        self.provider = provider
        self.modelUsed = modelUsed
        self.status = status
        self.latencyNanoseconds = latencyNanoseconds
        self.firstByteNanoseconds = firstByteNanoseconds
        self.usage = usage
        self.cost = cost
        self.cache = cache
        self.fallback = fallback
        self.stream = stream
        self.errorCode = errorCode
    }
}

/// The one log line per request: text (`request id=... key=...`) or, with logging.format json,
/// one object with the same facts as typed members. At debug level with logging.include_bodies,
/// the bodies join it (secrets redacted, each cut at 64 KiB).
package enum RequestLog {
    /// `bodies`: given only when logging.include_bodies is on; read only when written.
    package static func write(_ outcome: RequestOutcome, to logger: Logger, bodies: (request: [UInt8], response: [UInt8]?)?) {
        guard logger.logLevel <= .info else { return } // nothing is built for a line not written
        let latencyText = formatMilliseconds(Double(outcome.latencyNanoseconds) / 1_000_000)
        let bodies = logger.logLevel <= .debug ? bodies : nil
        let responseBody = bodies.map { $0.response.map(loggable) ?? (outcome.stream ? "[stream]" : "") }
        if LineLogHandler.writesJSON {
            var fields: Logger.Metadata = [
                "request_id": .string(outcome.requestID), "key": .string(outcome.key), "owner": .string(outcome.owner),
                "model": .string(outcome.model), "provider": .string(outcome.provider),
                "model_used": .string(outcome.modelUsed), "status": .stringConvertible(outcome.status),
                "latency_ms": .stringConvertible(Double(latencyText) ?? 0),
                "tokens_in": .stringConvertible(Int(clamping: outcome.usage.input_tokens)),
                "tokens_out": .stringConvertible(Int(clamping: outcome.usage.output_tokens)),
                "cache": .string(outcome.cache), "fallback": .stringConvertible(outcome.fallback),
                "stream": .stringConvertible(outcome.stream),
            ]
            if let cost = outcome.cost { fields["cost_usd"] = .stringConvertible(Double(PriceTable.format(cost)) ?? 0) }
            if outcome.firstByteNanoseconds != 0 {
                fields["first_byte_ms"] = .stringConvertible(
                    Double(formatMilliseconds(Double(outcome.firstByteNanoseconds) / 1_000_000)) ?? 0)
            }
            if let bodies, let responseBody {
                fields["request_body"] = .string(loggable(bodies.request))
                fields["response_body"] = .string(responseBody)
                return logger.debug("request", metadata: fields)
            }
            return logger.info("request", metadata: fields)
        }
        var line = "request id=\(outcome.requestID) key=\(outcome.key) owner=\(outcome.owner) model=\(outcome.model) provider=\(outcome.provider) status=\(outcome.status) latency_ms=\(latencyText) tokens_in=\(outcome.usage.input_tokens) tokens_out=\(outcome.usage.output_tokens) cache=\(outcome.cache) fallback=\(outcome.fallback)"
        if let cost = outcome.cost { line += " cost=\(PriceTable.format(cost))" }
        if let bodies, let responseBody {
            line += " request_body=\(loggable(bodies.request)) response_body=\(responseBody)"
            return logger.debug("\(line)")
        }
        logger.info("\(line)")
    }

    /// A body as the log shows it: text, secrets redacted, cut at 64 KiB.
    static func loggable(_ bytes: [UInt8]) -> String {
        let limit = 65_536
        let text = String(decoding: bytes.prefix(limit), as: UTF8.self)
        return SecretRedactor.shared.redact(bytes.count > limit ? text + "…[cut]" : text)
    }
}

/// Milliseconds with two decimals ("12.05"), as headers and the log show latencies.
package func formatMilliseconds(_ value: Double) -> String {
    let scaled = Int((value * 100).rounded())
    let fraction = scaled % 100
    return "\(scaled / 100).\(fraction < 10 ? "0" : "")\(fraction)"
}

extension RequestStats.Record {
    package init(_ outcome: RequestOutcome, atMilliseconds: UInt64) {
        self.init(atMilliseconds: atMilliseconds, requestID: outcome.requestID, key: outcome.key, owner: outcome.owner,
                  user: outcome.user, model: outcome.model, provider: outcome.provider, modelUsed: outcome.modelUsed,
                  status: outcome.status, latencyNanoseconds: outcome.latencyNanoseconds,
                  firstTokenNanoseconds: outcome.firstByteNanoseconds,
                  tokensIn: Int64(clamping: outcome.usage.input_tokens),
                  tokensOut: Int64(clamping: outcome.usage.output_tokens), cost: outcome.cost, cache: outcome.cache,
                  stream: outcome.stream, errorCode: outcome.status >= 400 ? outcome.errorCode : nil)
    }
}
