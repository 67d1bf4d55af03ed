import XCTest

import PrismCore

/// The attempt scheduler in process: failover order, fallbacks, circuit admission, retries and
/// their delays against an injected clock and jitter.
final class AttemptSchedulerTests: XCTestCase {
    /// A candidate: a deployment of `provider`.
    struct Deployment: Equatable {
        let provider: String
        let model: String
    }

    private typealias Scheduler = AttemptScheduler<Deployment, String>

    private func scheduler(failover: (FailoverSettings) -> FailoverSettings = { $0 },
                           retry: (RetrySettings) -> RetrySettings = { $0 },
                           requestTimeout: Duration = .seconds(60)) -> Scheduler
    {
        Scheduler(policy: .init(failover: failover(FailoverSettings()), retry: retry(RetrySettings()),
                                requestTimeout: requestTimeout),
                  providerOf: { $0.provider })
    }

    private func d(_ provider: String, _ model: String = "m") -> Deployment { Deployment(provider: provider, model: model) }

    /// Takes candidates until none is left, starting each (what ProxyRequest does on failures).
    private func drain(_ scheduler: inout Scheduler, admit: (Deployment) -> Bool = { _ in true },
                       fallbacks: [String: [Deployment]] = [:]) -> [Deployment]
    {
        var order: [Deployment] = []
        while let next = scheduler.next(admit: admit, candidates: { fallbacks[$0] ?? [] }) {
            scheduler.started()
            order.append(next)
        }
        return order
    }

    func testFailoverTriesUpToMaxAttemptsThenTheFallbackModels() {
        var plan = scheduler(failover: { var f = $0; f.maxAttempts = 2; return f })
        plan.begin(candidates: [d("a"), d("b"), d("c")], fallbacks: ["empty", "small"])
        let order = drain(&plan, fallbacks: ["small": [d("x", "small"), d("y", "small"), d("z", "small")]])
        // Two of the first model (max_attempts), the empty fallback skipped, two of the next.
        XCTAssertEqual(order, [d("a"), d("b"), d("x", "small"), d("y", "small")])
        XCTAssertTrue(plan.usedFallbackModel)
        XCTAssertEqual(plan.attemptCount, 4)
    }

    func testWithFailoverOffAFailureIsTheAnswerButAModelWithoutCandidatesFallsBack() {
        var off = scheduler(failover: { var f = $0; f.enabled = false; return f })
        off.begin(candidates: [d("a"), d("b")], fallbacks: ["other"])
        let first = off.next(admit: { _ in true }, candidates: { _ in [] })
        off.started()
        XCTAssertEqual(first, d("a"))
        XCTAssertEqual(off.decide(after: .status(503, retryAfter: nil), of: d("a"), now: 0, jitter: 1), .answer)
        XCTAssertFalse(off.usedFallbackModel)
        // Nothing serves the model itself: its fallback is the first attempt, failover or not.
        var none = scheduler(failover: { var f = $0; f.enabled = false; return f })
        none.begin(candidates: [], fallbacks: ["other"])
        XCTAssertEqual(drain(&none, fallbacks: ["other": [d("x", "other")]]), [d("x", "other")])
        XCTAssertTrue(none.usedFallbackModel)
    }

    func testAnOpenCircuitIsSkippedWithoutCountingAsAnAttempt() {
        var plan = scheduler(failover: { var f = $0; f.maxAttempts = 2; return f })
        plan.begin(candidates: [d("open"), d("a"), d("open"), d("b")], fallbacks: [])
        XCTAssertEqual(drain(&plan, admit: { $0.provider != "open" }), [d("a"), d("b")])
        // Every circuit open: nothing to start.
        var closed = scheduler()
        closed.begin(candidates: [d("open")], fallbacks: [])
        XCTAssertNil(closed.next(admit: { _ in false }, candidates: { _ in [] }))
        XCTAssertEqual(closed.attemptCount, 0)
    }

    func testWhatIsWorthAnotherTry() {
        let plan = scheduler(failover: { var f = $0; f.onTimeout = false; f.onStatusCodes = [429, 503]; return f })
        XCTAssertTrue(plan.isWorthAnotherTry(.status(503, retryAfter: nil)))
        XCTAssertTrue(plan.isWorthAnotherTry(.status(429, retryAfter: "2")))
        XCTAssertFalse(plan.isWorthAnotherTry(.status(500, retryAfter: nil)))
        XCTAssertFalse(plan.isWorthAnotherTry(.status(400, retryAfter: nil)))
        XCTAssertFalse(plan.isWorthAnotherTry(.timeout))
        XCTAssertTrue(plan.isWorthAnotherTry(.connection))
        XCTAssertTrue(plan.isWorthAnotherTry(.tooLarge))
        XCTAssertTrue(scheduler().isWorthAnotherTry(.timeout))
    }

    func testRetriesBackOffExponentiallyWithJitterUpToTheirNumber() {
        var plan = scheduler(retry: { var r = $0
            r.enabled = true; r.maxRetries = 3; r.initialDelay = .milliseconds(100); r.multiplier = 2; r.maxDelay = .milliseconds(300)
            return r })
        plan.begin(candidates: [d("a")], fallbacks: [])
        let failure = AttemptScheduler<Deployment, String>.Failure.status(503, retryAfter: nil)
        XCTAssertEqual(plan.retryDelay(after: failure, of: d("a"), now: 0, jitter: 1.0), 100)
        XCTAssertEqual(plan.retryDelay(after: failure, of: d("a"), now: 0, jitter: 1.0), 200)
        // Capped by max_delay, then jittered (half of it at the least).
        XCTAssertEqual(plan.retryDelay(after: failure, of: d("a"), now: 0, jitter: 0.5), 150)
        // Three retries of that provider spent; another provider has its own.
        XCTAssertNil(plan.retryDelay(after: failure, of: d("a"), now: 0, jitter: 1.0))
        XCTAssertEqual(plan.retryDelay(after: failure, of: d("b"), now: 0, jitter: 1.0), 100)
        // Jitter outside 0.5...1.0 is clamped.
        XCTAssertEqual(plan.retryDelay(after: failure, of: d("c"), now: 0, jitter: 0.1), 50)
    }

    func testRetryAfterReplacesTheBackoffAndTheDeadlineBoundsEveryRetry() {
        var plan = scheduler(retry: { var r = $0
            r.enabled = true; r.maxRetries = 5; r.initialDelay = .milliseconds(100); r.maxDelay = .seconds(10)
            return r })
        plan.begin(candidates: [d("a")], fallbacks: [])
        plan.deadline = 5_000_000_000 // 5 s on the injected clock
        XCTAssertEqual(plan.retryDelay(after: .status(429, retryAfter: " 2 "), of: d("a"), now: 0, jitter: 0.7), 2000)
        // Capped by max_delay.
        XCTAssertEqual(plan.retryDelay(after: .status(429, retryAfter: "60"), of: d("b"), now: 0, jitter: 1), nil,
                       "10 s (the cap) is past the deadline")
        // A retry that could not start before the deadline is no retry, and spends nothing.
        XCTAssertNil(plan.retryDelay(after: .status(503, retryAfter: nil), of: d("c"), now: 4_950_000_000, jitter: 1))
        XCTAssertEqual(plan.retryDelay(after: .status(503, retryAfter: nil), of: d("c"), now: 4_000_000_000, jitter: 1), 100)
        // An unreadable Retry-After is ignored.
        XCTAssertEqual(plan.retryDelay(after: .status(503, retryAfter: "soon"), of: d("d"), now: 0, jitter: 1), 100)
    }

    func testTheDecisionAfterAFailure() {
        var plan = scheduler(retry: { var r = $0; r.enabled = true; r.maxRetries = 1; r.initialDelay = .milliseconds(10); return r })
        plan.begin(candidates: [d("a"), d("b")], fallbacks: [])
        XCTAssertEqual(plan.decide(after: .status(400, retryAfter: nil), of: d("a"), now: 0, jitter: 1), .answer)
        XCTAssertEqual(plan.decide(after: .status(502, retryAfter: nil), of: d("a"), now: 0, jitter: 1), .retry(afterMilliseconds: 10))
        // The retry is spent: fail over.
        XCTAssertEqual(plan.decide(after: .status(502, retryAfter: nil), of: d("a"), now: 0, jitter: 1), .failOver)
        XCTAssertEqual(plan.decide(after: .tooLarge, of: d("b"), now: 0, jitter: 1), .failOver)
    }

    func testOversizedAnswersAndRetriesOffAreNeverRetried() {
        var on = scheduler(retry: { var r = $0; r.enabled = true; return r })
        XCTAssertNil(on.retryDelay(after: .tooLarge, of: d("a"), now: 0, jitter: 1))
        var off = scheduler()
        XCTAssertNil(off.retryDelay(after: .connection, of: d("a"), now: 0, jitter: 1))
    }

    func testARetryGoesFirstAndIsNotAFailoverAttempt() {
        var plan = scheduler(failover: { var f = $0; f.maxAttempts = 2; return f },
                             retry: { var r = $0; r.enabled = true; return r })
        plan.begin(candidates: [d("a"), d("b"), d("c")], fallbacks: [])
        let first = plan.next(admit: { _ in true }, candidates: { _ in [] })!
        plan.started()
        XCTAssertNotNil(plan.retryDelay(after: .connection, of: first, now: 0, jitter: 1))
        plan.retryNow(first)
        // a again (the retry), then b: still two failover attempts for the model.
        XCTAssertEqual(drain(&plan), [d("a"), d("b")])
        XCTAssertEqual(plan.attemptCount, 3)
    }

    func testOneDeadlineForTheRequestAndEachAttemptWithinIt() {
        var plan = scheduler(requestTimeout: .seconds(30))
        let start: UInt64 = 7_000_000_000
        // The server's 30 s, unless the first choice's own timeout is longer.
        _ = plan.begin(candidates: [d("a"), d("b")], fallbacks: [], startedAt: start, firstChoiceTimeout: .seconds(10))
        XCTAssertEqual(plan.deadline, start + 30_000_000_000)
        _ = plan.begin(candidates: [d("a")], fallbacks: [], startedAt: start, firstChoiceTimeout: .seconds(90))
        XCTAssertEqual(plan.deadline, start + 90_000_000_000)
        // An attempt gets its provider's timeout, else the server's, cut to what is left of the deadline.
        XCTAssertEqual(plan.attemptTimeout(providerTimeout: .seconds(10), now: start), 10_000)
        XCTAssertEqual(plan.attemptTimeout(providerTimeout: nil, now: start), 30_000)
        XCTAssertEqual(plan.attemptTimeout(providerTimeout: .seconds(10), now: start + 85_000_000_000), 5_000)
        // Past the deadline: the least a transfer can be given, so it fails at once as a timeout.
        XCTAssertEqual(plan.attemptTimeout(providerTimeout: .seconds(10), now: start + 95_000_000_000), 1)
    }

    func testARaceStartsItsWidthAndAFailureWaitsForTheOthers() {
        var plan = scheduler(retry: { var r = $0; r.enabled = true; r.maxRetries = 1; r.initialDelay = .milliseconds(10); return r })
        let width = plan.begin(candidates: [d("a"), d("b"), d("c")], fallbacks: [], startedAt: 0,
                               firstChoiceTimeout: nil, raceWidth: 2)
        XCTAssertEqual(width, 2)
        var none = scheduler()
        XCTAssertEqual(none.begin(candidates: [d("a")], fallbacks: [], startedAt: 0, firstChoiceTimeout: nil,
                                  raceWidth: 0), 1, "no race is one attempt, never none")
        var started: [Deployment] = []
        for _ in 0..<width {
            started.append(plan.next(admit: { _ in true }, candidates: { _ in [] })!)
            plan.started()
        }
        XCTAssertEqual(started, [d("a"), d("b")])
        // a fails while b runs: a retry of a may still start (it is a's own), ...
        XCTAssertEqual(plan.decide(after: .connection, of: d("a"), now: 0, jitter: 1, othersRunning: true),
                       .retry(afterMilliseconds: 10))
        // ... but neither a failover nor the failure as the answer: b's answer decides.
        XCTAssertEqual(plan.decide(after: .connection, of: d("a"), now: 0, jitter: 1, othersRunning: true), .awaitRace)
        XCTAssertEqual(plan.decide(after: .status(400, retryAfter: nil), of: d("a"), now: 0, jitter: 1, othersRunning: true),
                       .awaitRace)
        // b fails too while a's retry waits for its delay: that retry may still win, so b's
        // failure is not the answer yet (the request counts a waiting retry as running).
        XCTAssertEqual(plan.decide(after: .status(400, retryAfter: nil), of: d("b"), now: 0, jitter: 1, othersRunning: true),
                       .awaitRace)
        // The last of the race failed: fail over to c.
        XCTAssertEqual(plan.decide(after: .connection, of: d("b"), now: 0, jitter: 1, othersRunning: false),
                       .retry(afterMilliseconds: 10))
        XCTAssertEqual(plan.decide(after: .connection, of: d("b"), now: 0, jitter: 1, othersRunning: false), .failOver)
        XCTAssertEqual(plan.next(admit: { _ in true }, candidates: { _ in [] }), d("c"))
    }
}
