/// The plan of one request's attempts, as pure logic: how many start at once (a race), which
/// candidate goes next (failover within a model, then its fallback models; a candidate whose
/// circuit is open is skipped), whether a failed answer is worth another try, when a retry of the
/// same deployment may start (exponential backoff with jitter, or the upstream's Retry-After),
/// the request's one deadline and how long each attempt may take within it.
/// No I/O, no timers, no clock of its own: the caller (Server/ProxyRequest) passes the time and the
/// jitter in, starts the attempts, and arms the timers this decides. Unit-tested in process
/// (Tests/PrismCoreTests/AttemptSchedulerTests.swift).
package struct AttemptScheduler<Candidate, Provider: Hashable> {
    package struct Policy {
        var failover: FailoverSettings
        var retry: RetrySettings
        /// server.default_request_timeout, milliseconds.
        var requestTimeoutMilliseconds: UInt64

        package init(failover: FailoverSettings, retry: RetrySettings, requestTimeout: Duration) {
            self.failover = failover
            self.retry = retry
            requestTimeoutMilliseconds = UInt64(max(0, requestTimeout.milliseconds))
        }
    }

    /// Why an attempt failed, as far as the decision needs it.
    package enum Failure: Equatable {
        /// The provider answered this status (a 4xx/5xx, or a 2xx its plugin rejected); with the
        /// upstream's Retry-After, if any.
        case status(Int, retryAfter: String?)
        case timeout
        /// No answer: refused, reset, DNS, TLS, or another transport error.
        case connection
        /// A buffered answer past server.max_response_body_size.
        case tooLarge
    }

    let policy: Policy
    /// Which provider a candidate belongs to (retries are counted per provider).
    private let providerOf: (Candidate) -> Provider
    /// Candidates not yet tried for the current model, best first.
    private(set) var queue: [Candidate] = []
    /// Models to continue with when the current model's candidates are exhausted.
    private var fallbackModels: [String] = []
    package private(set) var attemptCount = 0
    private var attemptsForModel = 0
    private var retriesByProvider: [Provider: Int] = [:]
    /// Every retry and failover share this deadline (the caller's clock, nanoseconds).
    package var deadline: UInt64 = .max
    /// A fallback model was switched to.
    package private(set) var usedFallbackModel = false

    package init(policy: Policy, providerOf: @escaping (Candidate) -> Provider) {
        self.policy = policy
        self.providerOf = providerOf
    }

    /// A model's ranked candidates: tried from now on, in order.
    package mutating func begin(candidates: [Candidate], fallbacks: [String]? = nil) {
        queue = candidates
        attemptsForModel = 0
        if let fallbacks { fallbackModels = fallbacks }
    }

    /// The request's routing starts at `startedAt` (the caller's clock, nanoseconds) with its
    /// ranked candidates; returns how many attempts to launch at once (the strategy's race width,
    /// asked per request; at least one). One deadline bounds every retry and failover: the
    /// server's request timeout, or a longer timeout of the first choice
    /// (`firstChoiceTimeout`, its provider's default_timeout).
    package mutating func begin(candidates: [Candidate], fallbacks: [String], startedAt: UInt64,
                                firstChoiceTimeout: Duration?, raceWidth: Int = 1) -> Int
    {
        begin(candidates: candidates, fallbacks: fallbacks)
        let overall = max(policy.requestTimeoutMilliseconds, firstChoiceTimeout.map { UInt64(max(0, $0.milliseconds)) } ?? 0)
        deadline = startedAt &+ overall &* 1_000_000
        return max(1, raceWidth)
    }

    /// How long one attempt starting `now` may take (milliseconds, at least 1): its provider's own
    /// timeout (else the server's), cut to what is left before the deadline, so that a hung
    /// provider leaves time to fail over.
    package func attemptTimeout(providerTimeout: Duration?, now: UInt64) -> UInt64 {
        let own = providerTimeout.map { UInt64(max(0, $0.milliseconds)) } ?? policy.requestTimeoutMilliseconds
        let remaining = deadline > now ? (deadline - now) / 1_000_000 : 1
        return max(1, min(own, remaining))
    }

    /// The next candidate to start, or nil when nothing is left. `admit` is the circuit breaker
    /// (false: skip this candidate); `candidates(model)` ranks a fallback model's candidates (empty:
    /// it has none, and the next fallback is tried). The caller reports a start with `started()`.
    package mutating func next(admit: (Candidate) -> Bool, candidates: (String) -> [Candidate]) -> Candidate? {
        while true {
            if queue.isEmpty || (attemptsForModel >= policy.failover.maxAttempts && attemptCount > 0) {
                // This model is exhausted: continue with its fallback models, if failover allows.
                guard policy.failover.enabled || attemptCount == 0, switchToFallback(candidates) else { return nil }
                continue
            }
            let candidate = queue.removeFirst()
            if admit(candidate) { return candidate }
        }
    }

    private mutating func switchToFallback(_ candidates: (String) -> [Candidate]) -> Bool {
        while !fallbackModels.isEmpty {
            let found = candidates(fallbackModels.removeFirst())
            if !found.isEmpty {
                begin(candidates: found)
                usedFallbackModel = true
                return true
            }
        }
        return false
    }

    /// An attempt started (counts toward routing.failover.max_attempts of its model).
    package mutating func started() {
        attemptCount += 1
        attemptsForModel += 1
    }

    /// What follows a failed attempt.
    package enum Decision: Equatable {
        /// Try the same deployment again after this many milliseconds (then `retryNow`).
        case retry(afterMilliseconds: UInt64)
        /// Start the next candidate (`next`).
        case failOver
        /// Nothing more: the client gets this failure.
        case answer
        /// Another attempt of a race is still running: its answer decides (a failover or this
        /// failure waits for it).
        case awaitRace
    }

    /// Retry, fail over or answer, after `failure` of `candidate`; `othersRunning`: attempts of
    /// a race are still in flight, or a retry of one is waiting to start.
    package mutating func decide(after failure: Failure, of candidate: Candidate, now: UInt64, jitter: Double,
                                 othersRunning: Bool = false) -> Decision
    {
        guard isWorthAnotherTry(failure) else { return othersRunning ? .awaitRace : .answer }
        if let delay = retryDelay(after: failure, of: candidate, now: now, jitter: jitter) {
            return .retry(afterMilliseconds: delay)
        }
        if othersRunning { return .awaitRace }
        return policy.failover.enabled ? .failOver : .answer
    }

    /// Whether a failure may be retried or failed over: the configured status codes, timeouts
    /// (when `on_timeout`), connection errors and oversized answers.
    package func isWorthAnotherTry(_ failure: Failure) -> Bool {
        switch failure {
        case .timeout: return policy.failover.onTimeout
        case .connection, .tooLarge: return true
        case let .status(code, _): return policy.failover.onStatusCodes.contains(code)
        }
    }

    /// The delay (milliseconds) before `candidate` is tried again after `failure`, or nil: retries
    /// are off or spent for its provider, the same deployment would only answer too large again, or
    /// the retry could not start before the deadline. `jitter` in 0.5...1.0 spreads retries from
    /// many clients; a Retry-After replaces the backoff (both capped by routing.retry.max_delay).
    package mutating func retryDelay(after failure: Failure, of candidate: Candidate, now: UInt64, jitter: Double) -> UInt64? {
        let settings = policy.retry
        if failure == .tooLarge { return nil }
        let provider = providerOf(candidate)
        let done = retriesByProvider[provider, default: 0]
        guard settings.enabled, done < settings.maxRetries else { return nil }
        let maximum = Double(settings.maxDelay.milliseconds)
        var delay = Double(settings.initialDelay.milliseconds)
        for _ in 0..<done { delay *= settings.multiplier }
        delay = min(delay, maximum) * min(max(jitter, 0.5), 1.0)
        if case let .status(_, retryAfter?) = failure, let seconds = Double(retryAfter.trimmingSpaces), seconds >= 0 {
            delay = min(seconds * 1000, maximum)
        }
        let milliseconds = UInt64(delay)
        guard now + milliseconds * 1_000_000 < deadline else { return nil }
        retriesByProvider[provider] = done + 1
        return milliseconds
    }

    /// The retry's delay passed: `candidate` goes first again (a retry is not a failover attempt).
    package mutating func retryNow(_ candidate: Candidate) {
        queue.insert(candidate, at: 0)
        attemptsForModel -= 1
    }
}

/// A request's scheduler: candidates are route candidates, retries are counted per provider instance.
typealias RouteScheduler = AttemptScheduler<RouteCandidate, ObjectIdentifier>
