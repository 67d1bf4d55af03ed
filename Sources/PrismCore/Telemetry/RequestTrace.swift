import PrismPluginABI
import PrismWire

#if canImport(Glibc)
import Glibc
#endif

/// An attribute value (OTLP's AnyValue, the kinds Prism records).
package enum SpanValue: Sendable {
    case string(String)
    case integer(Int64)
    case double(Double)
    case bool(Bool)
    case strings([String])
}

package struct SpanAttribute: Sendable {
    let key: String
    let value: SpanValue
    package init(_ key: String, _ value: SpanValue) {
        self.key = key
        self.value = value
    }
}

/// OTLP's span kinds (the numbers are the protobuf enum's).
package enum SpanKind: Int, Sendable {
    case `internal` = 1
    case server = 2
    case client = 3
}

/// One span, times on the monotonic clock (turned into wall-clock time at export).
package struct SpanRecord: Sendable {
    var id: UInt64
    var parent: UInt64
    var name: String
    var kind: SpanKind
    var start: UInt64
    /// 0 while open.
    var end: UInt64 = 0
    var attributes: [SpanAttribute]
    /// Status ERROR (with `statusMessage`); otherwise UNSET.
    package var failed = false
    package var statusMessage = ""

    package init(id: UInt64, parent: UInt64, name: String, kind: SpanKind, start: UInt64, end: UInt64 = 0,
                 attributes: [SpanAttribute])
    {
        self.id = id
        self.parent = parent
        self.name = name
        self.kind = kind
        self.start = start
        self.end = end
        self.attributes = attributes
    }
}

/// The request and answer text of a traced request, when `capture_content` is on: raw bytes cut
/// on the request path, turned into attributes (and redacted) on the exporter's thread.
package struct CapturedContent: Sendable {
    /// The request's `messages` (chat) or `input` (embeddings) as JSON.
    var prompt: [UInt8] = []
    /// The answer body, or a stream's events as the client got them.
    package var answer: [UInt8] = []
    package var answerIsStream = false
    static let rawLimit = 65_536

    package init() {}
}

/// An upstream attempt as its span sees it (the server's `UpstreamAttempt`).
protocol TracedAttempt: AnyObject {
    var provider: ProviderInstance { get }
    var upstreamModel: String { get }
    /// 1 for the request's first attempt.
    var number: Int { get }
    /// A half-open circuit's probe.
    var isProbe: Bool { get }
    /// Its span in the request's trace (-1: not traced).
    var traceSpan: Int { get set }
}

/// A finished request's spans (the root first), handed to the exporter.
package struct FinishedTrace: Sendable {
    let traceHigh: UInt64
    let traceLow: UInt64
    /// Wall-clock nanoseconds minus monotonic nanoseconds, sampled when the request started.
    let wallOffset: UInt64
    var spans: [SpanRecord]
    let destination: TraceDestination
    var content: CapturedContent?

    package init(traceHigh: UInt64, traceLow: UInt64, wallOffset: UInt64, spans: [SpanRecord], destination: TraceDestination,
                 content: CapturedContent?)
    {
        self.traceHigh = traceHigh
        self.traceLow = traceLow
        self.wallOffset = wallOffset
        self.spans = spans
        self.destination = destination
        self.content = content
    }
}

/// The spans of one sampled request while it runs, on the request's event loop. Only a sampled
/// request has one: with telemetry off, or a request not sampled, nothing here is allocated.
package final class RequestTrace {
    let tracer: Tracer
    let traceHigh: UInt64
    package let traceLow: UInt64
    let rootID = TraceIDs.next()
    /// The client's span (its `traceparent`), 0 for a trace that starts here.
    package let remoteParent: UInt64
    let startedAt: UInt64
    private let wallOffset: UInt64
    /// The children: middleware, routing decisions, upstream attempts.
    private(set) var spans: [SpanRecord] = []
    /// The client's `tracestate`, forwarded upstream with our `traceparent`.
    let traceState: String?
    /// Set when the client got an error the gateway wrote (its code becomes `error.type`).
    var errorCode: String?
    var errorMessage: String?
    private var pausedSpan = -1
    /// The deployments (provider, upstream model) attempted so far.
    private var deploymentsTried: [(ObjectIdentifier, String)] = []
    // What the answer said (streams: seen as events pass).
    var finishReasons: [String] = []
    var responseID: String?
    var responseModel: String?
    /// The request body's top-level members, as the request path scanned them.
    var requestMembers: [JSONMember] = []
    var content: CapturedContent?

    init(tracer: Tracer, traceHigh: UInt64, traceLow: UInt64, remoteParent: UInt64, startedAt: UInt64,
         traceState: String?)
    {
        self.tracer = tracer
        self.traceHigh = traceHigh
        self.traceLow = traceLow
        self.remoteParent = remoteParent
        self.startedAt = startedAt
        self.traceState = traceState
        wallOffset = wallClockNanoseconds() &- monotonicNanoseconds()
        if tracer.settings.captureContent { content = CapturedContent() }
    }

    private func open(_ name: String, _ kind: SpanKind, _ attributes: [SpanAttribute], start: UInt64? = nil) -> Int {
        spans.append(SpanRecord(id: TraceIDs.next(), parent: rootID, name: name, kind: kind,
                                start: start ?? monotonicNanoseconds(), attributes: attributes))
        return spans.count - 1
    }

    private func close(_ index: Int, at time: UInt64? = nil) {
        guard spans.indices.contains(index), spans[index].end == 0 else { return }
        spans[index].end = time ?? monotonicNanoseconds()
    }

    private func fail(_ index: Int, _ message: String) {
        spans[index].failed = true
        spans[index].statusMessage = message
    }

    // MARK: Middleware

    /// One middleware's on_request begins; its span's index.
    package func beginMiddleware(_ name: String) -> Int {
        open("middleware " + name, .internal, [SpanAttribute("prism.middleware", .string(name))])
    }

    /// The middleware decided (after a pause too).
    package func endMiddleware(_ index: Int, action: prism_action) {
        guard spans.indices.contains(index) else { return }
        let decision: String
        switch action {
        case PRISM_CONTINUE: decision = "continue"
        case PRISM_RESPOND: decision = "respond"
        default:
            decision = "error"
            fail(index, "the middleware failed (status \(action))")
        }
        spans[index].attributes.append(SpanAttribute("prism.middleware.action", .string(decision)))
        close(index)
    }

    /// on_request returned PAUSE: the span stays open until the plugin resumes.
    package func middlewarePaused(_ index: Int) {
        guard spans.indices.contains(index) else { return }
        pausedSpan = index
        spans[index].attributes.append(SpanAttribute("prism.middleware.paused", .bool(true)))
    }

    package func middlewareResumed(action: prism_action) {
        endMiddleware(pausedSpan, action: action)
        pausedSpan = -1
    }

    // MARK: Routing

    /// One routing decision: the model's candidates as the strategy ranked them.
    func recordRoute(requested: String, model: String, candidates: [RouteCandidate], strategy: String, started: UInt64) {
        var attributes = [SpanAttribute("gen_ai.request.model", .string(requested)),
                          SpanAttribute("prism.route.model", .string(model)),
                          SpanAttribute("prism.route.strategy", .string(strategy)),
                          SpanAttribute("prism.route.candidates", .strings(candidates.map { $0.provider.settings.name }))]
        if let first = candidates.first {
            attributes.append(SpanAttribute("prism.route.first_choice", .string(first.provider.settings.name)))
        }
        let index = open("route " + model, .internal, attributes, start: started)
        if candidates.isEmpty { fail(index, "no provider serves '\(model)'") }
        close(index)
    }

    // MARK: Upstream attempts

    /// An attempt starts: a CLIENT span whose id goes upstream in `traceparent`. A retry is an
    /// attempt on a deployment (provider and model) already tried; a failover one on another
    /// deployment after a failure (another provider, or a fallback model); a race one started
    /// beside a running attempt.
    func beginAttempt(_ attempt: some TracedAttempt, operation: String?, racing: Bool) {
        let provider = attempt.provider
        let key = ObjectIdentifier(provider)
        let model = attempt.upstreamModel
        let retry = deploymentsTried.contains { $0.0 == key && $0.1 == model }
        let failover = !retry && !racing && attempt.number > 1
        deploymentsTried.append((key, model))
        var attributes = [SpanAttribute("gen_ai.system", .string(Tracer.system(of: provider))),
                          SpanAttribute("gen_ai.request.model", .string(attempt.upstreamModel)),
                          SpanAttribute("prism.provider", .string(provider.settings.name)),
                          SpanAttribute("prism.attempt", .integer(Int64(attempt.number))),
                          SpanAttribute("prism.retry", .bool(retry)),
                          SpanAttribute("prism.failover", .bool(failover))]
        if let operation { attributes.insert(SpanAttribute("gen_ai.operation.name", .string(operation)), at: 0) }
        if racing { attributes.append(SpanAttribute("prism.race", .bool(true))) }
        if attempt.isProbe { attributes.append(SpanAttribute("prism.circuit_probe", .bool(true))) }
        let name = operation.map { $0 + " " + attempt.upstreamModel } ?? attempt.upstreamModel
        attempt.traceSpan = open(name, .client, attributes)
    }

    /// The `traceparent` sent upstream by an attempt: this trace, the attempt's span.
    func traceparent(for attempt: some TracedAttempt) -> String? {
        guard spans.indices.contains(attempt.traceSpan) else { return nil }
        return TraceParent.format(traceHigh: traceHigh, traceLow: traceLow, spanID: spans[attempt.traceSpan].id, sampled: true)
    }

    /// The upstream answered (any status) or the transfer failed.
    func endAttempt(_ attempt: some TracedAttempt, status: Int, failure: TransportFailure?) {
        let index = attempt.traceSpan
        guard spans.indices.contains(index), spans[index].end == 0 else { return }
        if status > 0 { spans[index].attributes.append(SpanAttribute("http.response.status_code", .integer(Int64(status)))) }
        if let failure {
            let type: String
            switch failure {
            case .timeout: type = "timeout"
            case .connection: type = "connection"
            case .tooLarge: type = "too_large"
            case .other: type = "transfer"
            }
            spans[index].attributes.append(SpanAttribute("error.type", .string(type)))
            fail(index, failure.message)
        } else if status >= 400 {
            spans[index].attributes.append(SpanAttribute("error.type", .string(String(status))))
            fail(index, "HTTP \(status)")
        }
        close(index)
    }

    /// A 2xx its plugin found to be no answer (an HTML page, an error object).
    func attemptRejected(_ attempt: some TracedAttempt, _ message: String) {
        guard spans.indices.contains(attempt.traceSpan) else { return }
        spans[attempt.traceSpan].attributes.append(SpanAttribute("error.type", .string("bad_answer")))
        fail(attempt.traceSpan, message)
    }

    /// Cancelled: a race lost, the client gone, or the request ended.
    func attemptCancelled(_ attempt: some TracedAttempt) {
        let index = attempt.traceSpan
        guard spans.indices.contains(index), spans[index].end == 0 else { return }
        spans[index].attributes.append(SpanAttribute("prism.cancelled", .bool(true)))
        close(index)
    }

    // MARK: The answer

    /// The answer as the client gets it (a whole body, or a stream's events as they pass): its
    /// id, model and finish reasons are read from it (and its text kept, when content is captured).
    func sawAnswer(_ bytes: [UInt8], streamed: Bool) {
        bytes.withUnsafeBytes { raw in
            if responseID == nil, let id = RequestTrace.stringValue(after: #""id":"#, in: raw, first: true).first {
                responseID = id
            }
            if responseModel == nil, let model = RequestTrace.stringValue(after: #""model":"#, in: raw, first: true).first {
                responseModel = model
            }
            for reason in RequestTrace.stringValue(after: #""finish_reason":"#, in: raw) where !finishReasons.contains(reason) {
                finishReasons.append(reason)
            }
        }
        if content != nil, content!.answer.count < CapturedContent.rawLimit {
            content!.answerIsStream = streamed
            content!.answer.append(contentsOf: bytes.prefix(CapturedContent.rawLimit - content!.answer.count))
        }
    }

    /// The gateway answered the client with an error of its own.
    func failed(code: String, message: String) {
        errorCode = code
        errorMessage = message
    }

    /// A stream ended with an error event (after its first byte).
    func streamFailed(_ event: [UInt8]) {
        event.withUnsafeBytes { raw in errorCode = RequestTrace.stringValue(after: #""code":"#, in: raw, first: true).first }
        errorMessage = OpenAIErrorBody.message(in: event)
    }

    /// The string values of the members named by `pattern` (`"name":`, compact or followed by
    /// spaces), found from the colons (memchr) without parsing the JSON; `null` values are skipped.
    /// A quote inside a string value is escaped, so text that merely mentions a member name never
    /// matches.
    package static func stringValue(after pattern: StaticString, in raw: UnsafeRawBufferPointer, first: Bool = false) -> [String] {
        let keyLength = pattern.utf8CodeUnitCount - 1 // `"name"`, without the colon
        guard let base = raw.baseAddress, raw.count > keyLength + 1 else { return [] }
        var found: [String] = []
        var index = keyLength
        while index < raw.count, let hit = memchr(base + index, 0x3A, raw.count - index) {
            let colon = base.distance(to: UnsafeRawPointer(hit))
            index = colon + 1
            guard memcmp(base + (colon - keyLength), pattern.utf8Start, keyLength) == 0 else { continue }
            var cursor = colon + 1
            while cursor < raw.count, raw[cursor] == 0x20 { cursor += 1 }
            guard cursor < raw.count, raw[cursor] == UInt8(ascii: "\"") else { continue }
            let valueStart = cursor + 1
            var valueEnd = valueStart
            while valueEnd < raw.count, valueEnd - valueStart < 128, raw[valueEnd] != UInt8(ascii: "\""),
                  raw[valueEnd] != UInt8(ascii: "\\")
            {
                valueEnd += 1
            }
            guard valueEnd < raw.count, raw[valueEnd] == UInt8(ascii: "\""), valueEnd > valueStart else { continue }
            found.append(String(decoding: UnsafeRawBufferPointer(rebasing: raw[valueStart..<valueEnd]), as: UTF8.self))
            if first { return found }
            index = valueEnd + 1
        }
        return found
    }

    /// The request ended: the root span, with every span still open closed now, goes to the exporter.
    func finish(name: String, attributes: [SpanAttribute], failed: Bool, statusMessage: String) {
        let now = monotonicNanoseconds()
        for index in spans.indices where spans[index].end == 0 {
            spans[index].attributes.append(SpanAttribute("prism.cancelled", .bool(true)))
            spans[index].end = now
        }
        var root = SpanRecord(id: rootID, parent: remoteParent, name: name, kind: .server, start: startedAt, end: now,
                              attributes: attributes)
        root.failed = failed
        root.statusMessage = statusMessage
        tracer.exporter.submit(FinishedTrace(traceHigh: traceHigh, traceLow: traceLow, wallOffset: wallOffset,
                                             spans: [root] + spans, destination: tracer.destination, content: content))
    }
}

func wallClockNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_REALTIME, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

extension RequestTrace: MiddlewareObserver {}
