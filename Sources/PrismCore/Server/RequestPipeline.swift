import NIOCore
import NIOHTTP1
import PrismPluginABI

// The request's side of its middleware chain (Pipeline/MiddlewareChain.swift decides): a resume
// brought back to the event loop, a paused middleware's deadline, a middleware's own answer
// written in the client's dialect, and the answer and completion shown to the middleware.
extension ProxyRequest {
    /// Runs the middleware from `index` on; routes when all of them continued.
    func runMiddleware(from index: Int) {
        guard let view else { return }
        let decision = chain.run(from: index, view: view, observer: trace, stopped: { self.finished },
                                 resumer: { step, next in
                                     let bound = NIOLoopBound(self, eventLoop: self.eventLoop)
                                     let eventLoop = self.eventLoop
                                     return { action in
                                         eventLoop.execute { bound.value.middlewareResumed(step, action: action, next: next) }
                                     }
                                 })
        act(on: decision)
    }

    private func act(on decision: MiddlewareChain.Decision) {
        switch decision {
        case .proceed:
            if chain.hasWatchers { collector.recordsEvents = true }
            route()
        case let .paused(step): armPauseDeadline(for: step)
        case let .respond(step): respondLocally(step) // a middleware's answer is shown to no watcher
        case let .failed(step, action):
            fail(.internalServerError, "internal_error", "middleware_error",
                 "Middleware '\(step.middleware.name)' failed (status \(action)).")
        case .stopped: break
        }
    }

    /// A paused middleware resumed (on the event loop).
    private func middlewareResumed(_ step: MiddlewareStep, action: prism_action, next: Int) {
        pauseDeadline?.cancel()
        pauseDeadline = nil
        guard !finished else {
            // The request ended while the middleware was waiting (client gone, deadline).
            guard let view else { return }
            return chain.completeLate(step, view: view, status: completedStatus,
                                      latencyNanoseconds: monotonicNanoseconds() - startedAt)
        }
        if let decision = chain.resumed(step, action: action, observer: trace) { return act(on: decision) }
        runMiddleware(from: next)
    }

    /// A middleware answered the request itself (a cache hit, a refusal).
    private func respondLocally(_ step: MiddlewareStep) {
        let local = step.localResponse
        let status = HTTPResponseStatus(statusCode: Int(local.status == 0 ? 200 : local.status))
        var headers = HTTPHeaders(local.headers.map { ($0.name, $0.value) })
        if headers.first(name: "content-type") == nil { headers.add(name: "content-type", value: "application/json") }
        // No provider was paid for an answer a middleware gave (a cache hit).
        if gateway.prices != nil, (200..<300).contains(Int(status.code)), api != "models.list" { cost = 0 }
        guard answerInDialect(status: status, headers: headers, body: local.body) else { return }
        addCommonHeaders(&headers)
        finishBuffered(status, headers: headers, body: local.body, logsBody: true)
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
        guard chain.hasWatchers, let view else { return }
        withResponse(status: status, headers: headers(), body: body) { chain.showAnswer(view, $0) }
    }

    func notifyRecordedEvents() {
        guard let collector = collectorStorage, !collector.recorded.isEmpty else { return }
        defer { collector.recorded.removeAll(keepingCapacity: true) }
        guard let view else { return }
        chain.showEvents(view, collector.recorded)
    }

    /// on_complete for every settled step, in order.
    func notifyComplete(_ completion: UnsafePointer<prism_completion>) {
        guard let view else { return }
        chain.complete(view, completion)
    }
}
