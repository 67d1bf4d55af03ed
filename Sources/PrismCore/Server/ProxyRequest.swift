import NIOCore
import NIOHTTP1
import PrismSupport
import PrismPluginABI
import PrismWire
import Synchronization

/// One proxied request, from the parsed body to the last byte written, on the connection's event
/// loop: validate → middleware pipeline → route plan → attempts (retry, failover, fallback models,
/// races) through provider plugins and the transport → translate back. It coordinates; the
/// decisions are made elsewhere: which attempt next (Routing/AttemptScheduler.swift), a stream's
/// translation (Relay/StreamRelay.swift), what is recorded (Observability/RequestLog.swift). Its
/// glue is in this folder: RequestIntake (the body), RequestPipeline (middleware), StreamedAnswer
/// (the client's stream), ProxyResponses (buffered answers and the end), IngressFlow (client
/// dialects), BudgetGate, StreamGuards (stalls, oversize, shutdown), ProxyTracing.
package final class ProxyRequest {
    let gateway: Gateway
    weak var handler: GatewayHTTPHandler?
    let eventLoop: EventLoop
    let api: String
    let requestID: String
    /// The canonical request's body (for an ingress dialect: what its decode produced).
    var body: PinnedBytes
    /// The client's head; an ingress's decode may set headers on it (`authorization` from `x-api-key`).
    var head: HTTPRequestHead
    let path: String
    var clientModel = ""
    /// The end user the request is for: `x-prism-user-id`, else the body's `user` (for the ledger).
    var endUser = ""
    var streaming = false
    let startedAt = monotonicNanoseconds()
    var firstByteAt: UInt64 = 0

    var view: RequestView?
    let attributes: RequestAttributes
    /// This request's spans (nil: telemetry off, or not sampled).
    var trace: RequestTrace?

    /// The middleware chain and what it decided (Pipeline/MiddlewareChain.swift).
    let chain: MiddlewareChain
    /// Bounds how long a paused middleware may keep the request waiting.
    var pauseDeadline: Scheduled<Void>?
    /// The status the client got (for late on_complete calls).
    var completedStatus = 0
    /// The answer's body, kept only when logging.include_bodies is on.
    var responseBodyForLog: [UInt8]?

    // Routing state.
    /// Which candidate next, retries and their delays, the deadline (Routing/AttemptScheduler.swift).
    private var scheduler: RouteScheduler
    var attemptCount: Int { scheduler.attemptCount }
    /// Retries waiting for their delay (several when racing attempts each failed), by number.
    private var pendingRetries: [(number: Int, task: Scheduled<Void>)] = []
    private var retriesScheduled = 0
    /// Attempts in flight (several while racing).
    var active: [UpstreamAttempt] = []
    /// The attempt whose answer the client gets.
    var winner: UpstreamAttempt?
    /// The last failed attempt's answer, reported when nothing else succeeds.
    private var lastFailure: FailedAnswer?
    /// A fallback model was used, or the answer came from a provider other than the first choice(s).
    var fallbackUsed = false
    /// A miss has asked the self-hosted servers for their models once already.
    private var askedDiscovery = false
    /// The providers of the first launch (one, or several when racing).
    /// The providers of the first launch (a few at most: an array, not a hashed set, per request).
    private var firstChoices: [ObjectIdentifier] = []

    // Streaming state (the winner's).
    /// Translates the winner's stream (Relay/StreamRelay.swift); nil until a stream starts.
    var relay: StreamRelay?
    /// What a stream's chunks go into; made when first needed (a buffered answer never does).
    var collector: StreamCollector {
        if let made = collectorStorage { return made }
        let made = StreamCollector()
        collectorStorage = made
        return made
    }
    private(set) var collectorStorage: StreamCollector?
    var usage = prism_usage()
    /// USD: usage × the answering model's price (nil: no price, or cost tracking off); 0 for an
    /// answer a middleware gave (a cache hit).
    var cost: Double?
    var streamStarted = false
    /// The client stream's stall and keep-alive clocks (Relay/StreamClock.swift), and their one timer.
    var streamClock: StreamClock?
    var streamTimer: Scheduled<Void>?
    var finished = false
    /// on_complete has run (`settle`).
    var settled = false
    /// The facts are recorded (recordOutcome): once, before the answer's last bytes.
    var outcomeRecorded = false
    var countedInFlight = false
    /// The budgets this request counts against, once checked (Server/BudgetGate.swift).
    var budgetClaims: [BudgetClaim]?
    /// The error code the client got (a gateway error, or a stream's final error event).
    var errorCode: String?
    /// The client's dialect when an ingress plugin serves the route (Server/IngressFlow.swift).
    var ingress: IngressState?
    /// The route's ingress could not start an exchange: the request fails (never taken as chat).
    var ingressUnavailable: String?

    struct FailedAnswer {
        let attempt: UpstreamAttempt
        let status: Int
        let headers: HeaderBlock
        let body: [UInt8]
        let failure: TransportFailure?

        /// What the scheduler decides on.
        var schedulerFailure: RouteScheduler.Failure {
            switch failure {
            case .timeout?: return .timeout
            case .connection?, .other?: return .connection
            case .tooLarge?: return .tooLarge
            case nil: return .status(status, retryAfter: headers.value(of: "retry-after"))
            }
        }
    }

    init(gateway: Gateway, handler: GatewayHTTPHandler, head: HTTPRequestHead, path: String, api: String, body: PinnedBytes,
         ingress: (instance: IngressInstance, route: IngressRoute)? = nil)
    {
        self.gateway = gateway
        self.handler = handler
        eventLoop = handler.context!.eventLoop
        self.head = head
        self.path = path
        self.api = api
        self.body = body
        let attributes = RequestAttributes()
        self.attributes = attributes
        chain = MiddlewareChain(middleware: gateway.middleware, attributes: attributes)
        scheduler = AttemptScheduler(policy: gateway.attemptPolicy, providerOf: { ObjectIdentifier($0.provider) })
        let given = head.headers.first(name: "x-prism-request-id") ?? ""
        requestID = ProxyRequest.isUsableRequestID(given) ? given : ProxyRequest.newRequestID()
        trace = gateway.tracer?.begin(headers: head.headers, startedAt: startedAt)
        if let ingress {
            guard let exchange = ingress.instance.newExchange() else {
                ingressUnavailable = ingress.instance.name
                return
            }
            let state = IngressState(exchange: exchange, route: ingress.route)
            state.install(on: collector)
            self.ingress = state
        }
    }

    /// The route plan (aliases, candidates, fallbacks) and the first attempts.
    func route() {
        guard view != nil, !finished else { return }
        if api == "models.list" || api == "models.retrieve" { return answerModels() }
        if let local = ingress?.localAnswer { return answerLocally(local) }
        if let budgets = gateway.budgets, budgetClaims == nil { return checkBudgets(budgets) }
        let model = clientModel
        let planner = gateway.planner
        let resolved = planner.resolve(model)
        let lock = head.headers.first(name: "x-prism-provider-lock")
        let ranked = loadCandidates(for: resolved, lock: lock)
        let fallbacks = planner.fallbacks(for: resolved)
        guard !ranked.isEmpty || !fallbacks.isEmpty else {
            if !askedDiscovery, gateway.discovery.canRefresh {
                // Perhaps a self-hosted server has the model by now: ask, then route again.
                askedDiscovery = true
                let bound = NIOLoopBound(self, eventLoop: eventLoop)
                let eventLoop = self.eventLoop
                gateway.discovery.refreshOnMiss { _ in eventLoop.execute { bound.value.route() } }
                return
            }
            if let lock, gateway.catalog.providersByName[lock] == nil {
                return fail(.notFound, "invalid_request_error", "provider_not_found",
                            "x-prism-provider-lock names provider '\(lock)', which is not configured.")
            }
            if let lock, !gateway.planner.candidates(for: resolved, lockedTo: nil).isEmpty {
                return fail(.notFound, "invalid_request_error", "model_not_found",
                            "Provider '\(lock)' (x-prism-provider-lock) does not serve model '\(model)'.", param: "model")
            }
            return fail(.notFound, "invalid_request_error", "model_not_found", modelNotFoundMessage(model), param: "model")
        }
        let width = scheduler.begin(candidates: ranked, fallbacks: fallbacks, startedAt: startedAt,
                                    firstChoiceTimeout: ranked.first?.provider.settings.defaultTimeout,
                                    raceWidth: planner.raceWidth)
        launchAttempts(count: width)
        // Answers only arrive later, on this event loop: the first launch is known by then.
        firstChoices = active.map { ObjectIdentifier($0.provider) }
    }

    /// The ranked candidates of `model` (the router strategy's order).
    private func loadCandidates(for model: String, lock: String?) -> [RouteCandidate] {
        guard let view else { return [] }
        let routeStarted = trace == nil ? 0 : monotonicNanoseconds()
        view.setModel(clientModel)
        let candidates = gateway.planner.candidates(for: model, lockedTo: lock)
        let ranked = gateway.planner.rank(candidates, request: view)
        trace?.recordRoute(requested: clientModel, model: model, candidates: ranked, strategy: gateway.planner.strategyName,
                           started: routeStarted)
        return ranked
    }

    // MARK: Attempts

    /// Starts up to `count` attempts on the next admissible candidates. When none can start and
    /// none is running, answers with the last failure, or 503 when every circuit is open.
    private func launchAttempts(count: Int) {
        var launched = 0
        let health = gateway.health
        while launched < count && !finished {
            // A provider whose circuit is open is skipped; an exhausted model goes on with its fallbacks.
            guard let candidate = scheduler.next(admit: { health.byProvider[$0.provider.settings.name]?.admit() ?? false },
                                                 candidates: { [unowned self] model in
                                                     loadCandidates(for: gateway.planner.resolve(model), lock: nil)
                                                 })
            else { break }
            if scheduler.usedFallbackModel { fallbackUsed = true }
            let probe = health.byProvider[candidate.provider.settings.name]?.snapshot.circuit != .closed
            if start(candidate, probe: probe) { launched += 1 }
        }
        guard launched == 0, active.isEmpty, pendingRetries.isEmpty, winner == nil, !finished else { return }
        if let lastFailure {
            return reportFailure(lastFailure)
        }
        fail(.serviceUnavailable, "service_unavailable", "service_unavailable",
             "Every provider that serves '\(clientModel)' is unavailable right now (circuit breaker open); try again shortly.")
    }

    /// Builds and sends one attempt. False when the plugin could not build it (the next
    /// candidate is tried for "unsupported"; anything else answers the client).
    private func start(_ candidate: RouteCandidate, probe: Bool) -> Bool {
        guard let view, var exchange = candidate.provider.newExchange() else { return false }
        scheduler.started()
        view.setModel(candidate.upstreamModel)
        view.pointer.pointee.attempt = UInt32(attemptCount - 1)
        if attemptCount > 1 { view.pointer.pointee.flags |= PRISM_REQUEST_RETRY }
        let (status, framing, upstream, error, passThrough) = buildUpstreamRequest(view, for: candidate, exchange: &exchange)
        let attempt = UpstreamAttempt(candidate: candidate, exchange: exchange, number: attemptCount,
                                      framing: streaming ? framing : PRISM_FRAMING_NONE)
        attempt.isPassThrough = passThrough
        attempt.isProbe = probe
        trace?.beginAttempt(attempt, operation: traceOperation, racing: !active.isEmpty)
        switch status {
        case PRISM_OK:
            send(upstream, attempt: attempt)
            return true
        case PRISM_ANSWERED_LOCALLY:
            // The plugin answered itself: deliver its answer like one from the network, after
            // this call returns (never re-entering the routing loop).
            active.append(attempt)
            attempt.markInFlight()
            let answerStatus = Int(upstream.status == 0 ? 200 : upstream.status)
            let headers = HeaderBlock(upstream.headers.map { ($0.name, $0.value) })
            let answerBody = upstream.body
            let streamed = streaming && (200..<300).contains(answerStatus)
            let bound = NIOLoopBound((self, attempt), eventLoop: eventLoop)
            eventLoop.execute {
                let (request, attempt) = bound.value
                if streamed {
                    request.upstreamHead(attempt, status: answerStatus, headers: headers)
                    request.upstreamData(attempt, answerBody)
                }
                request.upstreamComplete(attempt, status: answerStatus, headers: headers,
                                         body: streamed ? [] : answerBody, failure: nil)
            }
            return true
        default:
            trace?.endAttempt(attempt, status: 0, failure: .other("its provider plugin could not build the request (status \(status))"))
            gateway.health.byProvider[candidate.provider.settings.name]?.releaseProbe()
            if status == PRISM_ERROR_UNSUPPORTED, !scheduler.queue.isEmpty { return false }
            // Only a provider speaking the client's dialect could serve it: what one of those
            // answered (a 503, a timeout) says more than the others' refusal.
            if ingress?.onlyNative != nil, let lastFailure, active.isEmpty {
                reportFailure(lastFailure)
                return false
            }
            failFromPlugin(status, error, provider: candidate.provider.settings.name)
            return false
        }
    }

    private func send(_ upstream: MessageBuilder, attempt: UpstreamAttempt) {
        let provider = attempt.provider
        let timeout = scheduler.attemptTimeout(providerTimeout: provider.settings.defaultTimeout, now: monotonicNanoseconds())
        let channel = handler?.context?.channel
        let receiver = UpstreamReceiver(request: self, attempt: attempt, eventLoop: eventLoop, streaming: streaming,
                                        maximumBufferedBytes: gateway.configuration.server.maxResponseBodySize,
                                        writable: { channel?.isWritable ?? true })
        let transfer = Transfer(method: upstream.method, url: upstream.url, headers: upstreamHeaders(upstream.headers, for: attempt),
                                body: upstream.body,
                                timeoutMilliseconds: Int(timeout), streaming: streaming,
                                gate: gateway.gates[provider.settings.name], delegate: receiver)
        attempt.transfer = transfer
        attempt.receiver = receiver
        attempt.markInFlight()
        active.append(attempt)
        gateway.transport.start(transfer)
    }

    func cancel(_ attempt: UpstreamAttempt) {
        trace?.attemptCancelled(attempt)
        if let transfer = attempt.transfer { gateway.transport.cancel(transfer) }
        if attempt.isProbe { gateway.health.byProvider[attempt.provider.settings.name]?.releaseProbe() }
        attempt.release()
        active.removeAll { $0 === attempt }
    }

    /// The race is decided: every other attempt is cancelled (their upstream connections close).
    func choose(_ attempt: UpstreamAttempt) {
        winner = attempt
        for other in active where other !== attempt { cancel(other) }
        cancelPendingRetries()
        if !firstChoices.contains(ObjectIdentifier(attempt.provider)) { fallbackUsed = true }
    }

    // MARK: Upstream events (on the event loop)

    func upstreamComplete(_ attempt: UpstreamAttempt, status: Int, headers: HeaderBlock, body: [UInt8],
                          failure: TransportFailure?)
    {
        guard !finished, active.contains(where: { $0 === attempt }) else { return }
        active.removeAll { $0 === attempt }
        trace?.endAttempt(attempt, status: status, failure: failure)
        let health = gateway.health.byProvider[attempt.provider.settings.name]
        if attempt === winner, streamStarted {
            health?.record(failed: failure != nil, latencyMilliseconds: Double(firstByteAt - attempt.startedAt) / 1_000_000)
            if failure != nil { recordProviderError(attempt, status: status, failure: failure) }
            feedback(attempt, status: failure == nil ? 200 : 502)
            attempt.release()
            return finishStream(attempt, failure: failure)
        }
        let succeeded = failure == nil && (200..<300).contains(status)
        // 429 and 5xx, timeouts and connection errors count against the provider's health;
        // other 4xx are about the request, not the provider.
        let providerFault = failure != nil || status >= 500 || status == 429
        if succeeded {
            // Health and router feedback wait for the plugin's verdict: a 2xx it rejects is a fault.
            let elapsed = attempt.elapsedMilliseconds
            attempt.release()
            guard winner == nil else { return }
            choose(attempt)
            // Once the plugin accepts the answer, and before it is written: a client that has
            // it sees the provider's health (a half-open circuit closed) already updated.
            answerBuffered(attempt, status: status, headers: headers, body: body,
                           badAnswer: { [unowned self] message in failOver(afterBadAnswer: attempt, message) },
                           accepted: { [unowned self] in
                               health?.record(failed: false, latencyMilliseconds: elapsed)
                               feedback(attempt, status: status)
                           })
            return
        }
        health?.record(failed: providerFault, latencyMilliseconds: attempt.elapsedMilliseconds)
        if providerFault { recordProviderError(attempt, status: status, failure: failure) }
        feedback(attempt, status: failure == nil ? status : 504)
        attempt.release()
        let answer = FailedAnswer(attempt: attempt, status: status, headers: headers, body: body, failure: failure)
        lastFailure = answer
        guard winner == nil else { return }
        switch scheduler.decide(after: answer.schedulerFailure, of: attempt.candidate, now: monotonicNanoseconds(),
                                jitter: Double.random(in: 0.5...1.0),
                                othersRunning: !active.isEmpty || !pendingRetries.isEmpty) {
        case let .retry(delay): scheduleRetry(of: attempt.candidate, afterMilliseconds: delay)
        case .failOver: launchAttempts(count: 1)
        case .answer: reportFailure(answer)
        case .awaitRace: break
        }
    }

    /// A 2xx that its plugin found is no answer (an HTML page, an error object): a provider fault,
    /// and with failover on the next deployment is tried. False: answer the error now.
    private func failOver(afterBadAnswer attempt: UpstreamAttempt, _ message: String) -> Bool {
        trace?.attemptRejected(attempt, message)
        gateway.health.byProvider[attempt.provider.settings.name]?.record(failed: true, latencyMilliseconds: attempt.elapsedMilliseconds)
        recordProviderError(attempt, status: 502, failure: nil)
        feedback(attempt, status: 502)
        guard scheduler.policy.failover.enabled else { return false }
        winner = nil
        lastFailure = FailedAnswer(attempt: attempt, status: 502, headers: HeaderBlock(), body: [], failure: .other(message))
        launchAttempts(count: 1)
        return true
    }

    /// prism_provider_errors_total: the upstream status, or how the transfer failed.
    private func recordProviderError(_ attempt: UpstreamAttempt, status: Int, failure: TransportFailure?) {
        let reason: String
        switch failure {
        case .timeout?: reason = "timeout"
        case .connection?, .other?: reason = "connection"
        case .tooLarge?: reason = "too_large"
        case nil: reason = String(status)
        }
        gateway.services.metrics.recordProviderError(provider: attempt.provider.settings.name, reason: reason)
    }

    /// Tries the same deployment again after the scheduler's delay.
    private func scheduleRetry(of candidate: RouteCandidate, afterMilliseconds delay: UInt64) {
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        retriesScheduled += 1
        let number = retriesScheduled
        let task = eventLoop.scheduleTask(in: .milliseconds(Int64(delay))) {
            let request = bound.value
            request.pendingRetries.removeAll { $0.number == number }
            guard !request.finished, request.winner == nil else { return }
            request.scheduler.retryNow(candidate)
            request.launchAttempts(count: 1)
        }
        pendingRetries.append((number, task))
    }

    private func cancelPendingRetries() {
        for retry in pendingRetries { retry.task.cancel() }
        pendingRetries.removeAll()
    }

    private func reportFailure(_ answer: FailedAnswer) {
        if let failure = answer.failure {
            let name = answer.attempt.provider.settings.name
            if case .timeout = failure {
                return fail(.gatewayTimeout, "timeout_error", "timeout",
                            "Provider '\(name)' did not answer within its timeout: \(failure.message).")
            }
            return fail(.badGateway, "provider_error", "provider_error", "Provider '\(name)' failed: \(failure.message).")
        }
        winner = answer.attempt
        answerBuffered(answer.attempt, status: answer.status, headers: answer.headers, body: answer.body)
    }

    private func feedback(_ attempt: UpstreamAttempt, status: Int) {
        guard let router = gateway.planner.router else { return }
        withCompletion(status: status, provider: attempt.provider.settings.name, model: attempt.candidate.upstreamModel,
                       latencyNanoseconds: monotonicNanoseconds() - attempt.startedAt) { router.feedback($0) }
    }

    // MARK: Client side

    func clientDisconnected() {
        guard !finished else { return }
        cancelPendingRetries()
        for attempt in active { cancel(attempt) }
        complete(status: 499)
    }

    /// Ends every attempt still running (a failure ends the request).
    func cancelAll() {
        cancelPendingRetries()
        for attempt in active { cancel(attempt) }
        winner?.release()
    }
}
