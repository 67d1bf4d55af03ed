import PrismPluginABI

/// What a request's tracing learns of its middleware (RequestTrace, a layer above, conforms).
package protocol MiddlewareObserver: AnyObject {
    /// One middleware's on_request begins; returns its span.
    func beginMiddleware(_ name: String) -> Int
    func middlewarePaused(_ span: Int)
    func endMiddleware(_ span: Int, action: prism_action)
    func middlewareResumed(action: prism_action)
}

/// One request's middleware chain: each middleware's on_request in configuration order (any may
/// pause, and resume later from another thread), the answer shown to those that watch it, and
/// on_complete for every middleware whose on_request ran. It decides; the request (Server/) acts:
/// routes, writes a middleware's own answer, fails, or waits for a resume on its event loop.
package final class MiddlewareChain {
    package enum Decision {
        /// Every middleware continued: the request goes on to routing.
        case proceed
        /// A middleware paused and has not resumed yet: what `run`'s `resumer` made will be called.
        case paused(MiddlewareStep)
        /// A middleware answered the request itself (its step's `localResponse`).
        case respond(MiddlewareStep)
        /// A middleware failed: it returned neither continue, respond nor pause.
        case failed(MiddlewareStep, prism_action)
        /// The request ended while the chain ran (`stopped()` said so).
        case stopped
    }

    private let middleware: [MiddlewareInstance]
    private let attributes: RequestAttributes
    /// The steps whose on_request ran, in order.
    package private(set) var steps: [MiddlewareStep] = []
    /// Steps that asked to see the answer (watch_response).
    private(set) var watchers: [MiddlewareStep] = []
    /// The step waiting for its plugin to resume, if any.
    private(set) var pausedStep: MiddlewareStep?

    package init(middleware: [MiddlewareInstance], attributes: RequestAttributes) {
        self.middleware = middleware
        self.attributes = attributes
    }

    /// Runs on_request from `index` on. When a middleware pauses, `resumer(step, next)` makes
    /// what its resume calls, on the resuming thread, with the action (`next`: the index to go on
    /// from; the caller hops to its loop and calls `resumed`). Made only then: a request whose
    /// middleware never pauses allocates no closure. If the resume has not come yet, `.paused`.
    package func run(from index: Int, view: RequestView, observer: MiddlewareObserver?, stopped: () -> Bool,
             resumer: (MiddlewareStep, Int) -> @Sendable (prism_action) -> Void) -> Decision
    {
        var position = index
        while position < middleware.count {
            if stopped() { return .stopped }
            let step = MiddlewareStep(middleware: middleware[position], attributes: attributes)
            steps.append(step)
            let span = observer?.beginMiddleware(step.middleware.name) ?? -1
            var action = step.middleware.onRequest(view, step: step)
            if action == PRISM_PAUSE {
                guard let resumed = step.paused(continuation: resumer(step, position + 1)) else {
                    pausedStep = step
                    observer?.middlewarePaused(span)
                    return .paused(step)
                }
                action = resumed
            }
            observer?.endMiddleware(span, action: action)
            if let decision = decide(step, action: action) { return decision }
            position += 1
        }
        return stopped() ? .stopped : .proceed
    }

    /// The paused step resumed with `action` (on the request's loop); nil: go on with `run`.
    package func resumed(_ step: MiddlewareStep, action: prism_action, observer: MiddlewareObserver?) -> Decision? {
        pausedStep = nil
        observer?.middlewareResumed(action: action)
        return decide(step, action: action)
    }

    /// One middleware's decision; nil to go on with the next one.
    private func decide(_ step: MiddlewareStep, action: prism_action) -> Decision? {
        if step.watchesResponse { watchers.append(step) }
        switch action {
        case PRISM_CONTINUE: return nil
        case PRISM_RESPOND: return .respond(step)
        default: return .failed(step, action)
        }
    }

    // MARK: The answer, shown to watchers

    package var hasWatchers: Bool { !watchers.isEmpty }

    /// on_response for each watcher.
    package func showAnswer(_ view: RequestView, _ response: UnsafePointer<prism_response>) {
        for step in watchers { step.middleware.onResponse(view, step: step, response: response) }
    }

    /// on_stream_event for each watcher, for each event.
    func showEvents(_ view: RequestView, _ events: [[UInt8]]) {
        for event in events {
            for step in watchers { step.middleware.onStreamEvent(view, step: step, event: event) }
        }
    }

    /// on_complete for every step whose on_request ran, in order. A step still paused gets its
    /// on_complete when it resumes (`completeLate`).
    package func complete(_ view: RequestView, _ completion: UnsafePointer<prism_completion>) {
        for step in steps where step !== pausedStep {
            step.middleware.onComplete(view, step: step, completion: completion)
        }
    }

    /// A step that resumed after the request ended: left out of the completion round, it gets
    /// its on_complete now.
    package func completeLate(_ step: MiddlewareStep, view: RequestView, status: Int, latencyNanoseconds: UInt64) {
        pausedStep = nil
        withCompletion(status: status, provider: nil, model: "", latencyNanoseconds: latencyNanoseconds) { completion in
            step.middleware.onComplete(view, step: step, completion: completion)
        }
    }
}
