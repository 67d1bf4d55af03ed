import NIOCore
import NIOHTTP1
import PrismPluginABI

// The middleware pipeline of one request: each middleware's on_request in configuration order
// (any may pause and resume later from another thread), the answer shown to the middleware that
// watch it, and on_complete for every middleware whose on_request ran.
extension ProxyRequest {
    /// Runs the middleware from `index` on; routes when all of them continued.
    func runMiddleware(from index: Int) {
        guard let view else { return }
        var position = index
        while position < gateway.middleware.count, !finished {
            let step = MiddlewareStep(middleware: gateway.middleware[position], attributes: attributes)
            steps.append(step)
            let span = trace?.beginMiddleware(step.middleware.name) ?? -1
            var action = step.middleware.onRequest(view, step: step)
            if action == PRISM_PAUSE {
                let bound = NIOLoopBound(self, eventLoop: eventLoop)
                let eventLoop = self.eventLoop
                let next = position + 1
                guard let resumed = step.paused(continuation: { action in
                    eventLoop.execute { bound.value.middlewareResumed(step, action: action, next: next) }
                }) else {
                    pausedStep = step
                    trace?.middlewarePaused(span)
                    armPauseDeadline(for: step)
                    return
                }
                action = resumed
            }
            trace?.endMiddleware(span, action: action)
            guard decide(step, action: action) else { return }
            position += 1
        }
        if !finished { route() }
    }

    /// A paused middleware resumed (on the event loop).
    private func middlewareResumed(_ step: MiddlewareStep, action: prism_action, next: Int) {
        pauseDeadline?.cancel()
        pauseDeadline = nil
        pausedStep = nil
        trace?.middlewareResumed(action: action)
        guard !finished else {
            // The request ended while the middleware was waiting (client gone, deadline): it was
            // left out of the completion round, so it gets its on_complete now.
            return notifyLateComplete(step)
        }
        if decide(step, action: action) { runMiddleware(from: next) }
    }

    /// Acts on one middleware's decision; true to go on with the next one.
    private func decide(_ step: MiddlewareStep, action: prism_action) -> Bool {
        if step.watchesResponse {
            watchers.append(step)
            collector.recordsEvents = true
        }
        if action == PRISM_CONTINUE { return true }
        if action == PRISM_RESPOND {
            let local = step.localResponse
            let status = HTTPResponseStatus(statusCode: Int(local.status == 0 ? 200 : local.status))
            var headers = HTTPHeaders(local.headers.map { ($0.name, $0.value) })
            if headers.first(name: "content-type") == nil { headers.add(name: "content-type", value: "application/json") }
            // No provider was paid for an answer a middleware gave (a cache hit).
            if gateway.prices != nil, (200..<300).contains(Int(status.code)), api != "models.list" { cost = 0 }
            guard answerInDialect(status: status, headers: headers, body: local.body) else { return false }
            addCommonHeaders(&headers)
            finishBuffered(status, headers: headers, body: local.body, logsBody: true)
            return false
        }
        fail(.internalServerError, "internal_error", "middleware_error",
             "Middleware '\(step.middleware.name)' failed (status \(action)).")
        return false
    }

    /// A paused middleware gets as long as the server's request timeout, then the client a 504.
    private func armPauseDeadline(for step: MiddlewareStep) {
        let timeout = gateway.configuration.server.defaultRequestTimeout.milliseconds
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        let name = step.middleware.name
        pauseDeadline = eventLoop.scheduleTask(in: .milliseconds(Int64(timeout))) {
            let request = bound.value
            guard !request.finished else { return }
            request.fail(.gatewayTimeout, "timeout_error", "middleware_timeout",
                         "Middleware '\(name)' did not decide within the request timeout.")
        }
    }


    // MARK: The answer, shown to watchers

    /// `headers` is only built when a middleware watches answers.
    func notifyResponse(status: Int, headers: @autoclosure () -> [(String, String)], body: [UInt8]) {
        guard !watchers.isEmpty, let view else { return }
        withResponse(status: status, headers: headers(), body: body) { response in
            for step in watchers { step.middleware.onResponse(view, step: step, response: response) }
        }
    }

    func notifyRecordedEvents() {
        guard let collector = collectorStorage, !collector.recorded.isEmpty else { return }
        defer { collector.recorded.removeAll(keepingCapacity: true) }
        guard let view else { return }
        for event in collector.recorded {
            for step in watchers { step.middleware.onStreamEvent(view, step: step, event: event) }
        }
    }

    /// on_complete for every settled step, in order.
    func notifyComplete(_ completion: UnsafePointer<prism_completion>) {
        guard let view else { return }
        // A step still paused gets its on_complete when it resumes (notifyLateComplete).
        for step in steps where step !== pausedStep {
            step.middleware.onComplete(view, step: step, completion: completion)
        }
    }

    private func notifyLateComplete(_ step: MiddlewareStep) {
        guard let view else { return }
        withCompletion(status: completedStatus, provider: nil, model: "",
                       latencyNanoseconds: monotonicNanoseconds() - startedAt) { completion in
            step.middleware.onComplete(view, step: step, completion: completion)
        }
    }
}
