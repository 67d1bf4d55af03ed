import Dispatch
import PrismPluginABI
import Synchronization
import XCTest

import PrismCore

/// The middleware chain in process, with middleware tables of the test's own (C function pointers,
/// as a plugin's): the order of on_request, a middleware's own answer, a failure, the pause/resume
/// race (a resume before on_request returns, and one from another thread later), watchers, and
/// on_complete for every step that ran (a step still paused gets it late).
final class MiddlewareChainTests: XCTestCase {
    /// What one fake middleware does, and what happened to it.
    final class Script: @unchecked Sendable {
        let name: String
        let journal: Journal
        var action: prism_action = PRISM_CONTINUE
        /// With PRISM_PAUSE: resume (with this action) inside on_request, before it returns.
        var resumeInline: prism_action?
        var watches = false
        /// The context of a pause left for the test to resume.
        var pausedContext: UnsafePointer<prism_request_context>?

        init(_ name: String, _ journal: Journal) {
            self.name = name
            self.journal = journal
        }
    }

    /// The continuations' calls: (action, the index to go on from).
    final class Resumes: Sendable {
        private let calls = Mutex<[(prism_action, Int)]>([])
        func add(_ call: (prism_action, Int)) { calls.withLock { $0.append(call) } }
        var all: [(prism_action, Int)] { calls.withLock { $0 } }
    }

    final class Journal: @unchecked Sendable {
        private let entries = Mutex<[String]>([])
        func add(_ entry: String) { entries.withLock { $0.append(entry) } }
        var all: [String] { entries.withLock { $0 } }
    }

    nonisolated(unsafe) private static let table: UnsafePointer<prism_middleware_v1> = {
        let table = UnsafeMutablePointer<prism_middleware_v1>.allocate(capacity: 1)
        table.initialize(to: prism_middleware_v1())
        table.pointee.struct_size = UInt32(MemoryLayout<prism_middleware_v1>.size)
        table.pointee.on_request = { instance, _, context, _ in
            let script = Unmanaged<Script>.fromOpaque(instance!).takeUnretainedValue()
            script.journal.add("request \(script.name)")
            if script.watches { context!.pointee.watch_response?(context!.pointee.context) }
            if script.action == PRISM_PAUSE {
                if let inline = script.resumeInline {
                    context!.pointee.resume?(context!.pointee.context, inline)
                } else {
                    script.pausedContext = context
                }
            }
            return script.action
        }
        table.pointee.on_complete = { instance, _, _, completion in
            let script = Unmanaged<Script>.fromOpaque(instance!).takeUnretainedValue()
            script.journal.add("complete \(script.name) \(completion!.pointee.status)")
        }
        table.pointee.on_response = { instance, _, _, response in
            let script = Unmanaged<Script>.fromOpaque(instance!).takeUnretainedValue()
            script.journal.add("response \(script.name) \(response!.pointee.status)")
        }
        return UnsafePointer(table)
    }()

    private var scripts: [Script] = []
    private let journal = Journal()
    private let view = RequestView(api: "chat.completions", method: "POST", path: "/v1/chat/completions", headers: [],
                                   body: Array(#"{"model":"m","messages":[]}"#.utf8), model: "m", requestID: "r-1")


    private func chain(_ names: String...) -> MiddlewareChain {
        let instances = names.map { name -> MiddlewareInstance in
            let script = Script(name, journal)
            scripts.append(script)
            // `scripts` keeps each alive for the test; the table has no instance_destroy.
            return MiddlewareInstance(name: name, table: Self.table, instance: Unmanaged.passUnretained(script).toOpaque())
        }
        return MiddlewareChain(middleware: instances, attributes: RequestAttributes())
    }

    private func script(_ name: String) -> Script { scripts.first { $0.name == name }! }

    /// Runs from `index`; a pause's continuation records its action and where to go on.
    private func start(_ chain: MiddlewareChain, from index: Int = 0, resumes: Resumes = Resumes()) -> MiddlewareChain.Decision {
        chain.run(from: index, view: view, observer: nil, stopped: { false }, resumer: { _, next in
            { action in resumes.add((action, next)) }
        })
    }

    private func complete(_ chain: MiddlewareChain, status: UInt32) {
        var completion = prism_completion()
        completion.struct_size = UInt32(MemoryLayout<prism_completion>.size)
        completion.status = status
        chain.complete(view, &completion)
    }

    func testEveryMiddlewareContinuesInOrderThenEachCompletes() {
        let chain = chain("auth", "limit", "cache")
        guard case .proceed = start(chain) else { return XCTFail("the request goes on to routing") }
        complete(chain, status: 200)
        XCTAssertEqual(journal.all, ["request auth", "request limit", "request cache",
                                     "complete auth 200", "complete limit 200", "complete cache 200"])
        XCTAssertFalse(chain.hasWatchers)
    }

    func testAMiddlewaresOwnAnswerEndsTheChainAndOnlyWhatRanCompletes() {
        let chain = chain("auth", "cache", "limit")
        script("cache").action = PRISM_RESPOND
        guard case let .respond(step) = start(chain) else { return XCTFail("the cache answers") }
        XCTAssertEqual(step.middleware.name, "cache")
        complete(chain, status: 200)
        XCTAssertEqual(journal.all, ["request auth", "request cache", "complete auth 200", "complete cache 200"])
    }

    func testAnyOtherActionIsTheMiddlewaresFailure() {
        let chain = chain("auth", "broken")
        script("broken").action = PRISM_ERROR_INTERNAL
        guard case let .failed(step, action) = start(chain) else { return XCTFail("a failure") }
        XCTAssertEqual(step.middleware.name, "broken")
        XCTAssertEqual(action, PRISM_ERROR_INTERNAL)
    }

    func testAResumeBeforeOnRequestReturnsGoesOnAtOnce() {
        let chain = chain("auth", "limit")
        script("auth").action = PRISM_PAUSE
        script("auth").resumeInline = PRISM_CONTINUE
        let resumes = Resumes()
        guard case .proceed = start(chain, resumes: resumes) else { return XCTFail("no wait: the resume came first") }
        XCTAssertTrue(resumes.all.isEmpty, "the continuation is never called")
        XCTAssertEqual(journal.all, ["request auth", "request limit"])
    }

    func testAResumeFromAnotherThreadContinuesWhereThePauseWas() {
        let chain = chain("auth", "limit", "cache")
        script("limit").action = PRISM_PAUSE
        let resumes = Resumes()
        guard case let .paused(step) = start(chain, resumes: resumes) else { return XCTFail("the chain waits") }
        XCTAssertEqual(step.middleware.name, "limit")
        // The request ends meanwhile (its client left): the paused step is left out of the round...
        complete(chain, status: 499)
        XCTAssertEqual(journal.all, ["request auth", "request limit", "complete auth 499"])
        // ... the plugin resumes from its own thread ...
        let limit = script("limit")
        let resumed = expectation(description: "resumed")
        DispatchQueue.global().async {
            let context = limit.pausedContext!
            context.pointee.resume?(context.pointee.context, PRISM_CONTINUE)
            resumed.fulfill()
        }
        wait(for: [resumed], timeout: 5)
        let (action, next) = resumes.all[0]
        XCTAssertEqual(action, PRISM_CONTINUE)
        XCTAssertEqual(next, 2, "the chain goes on after the paused middleware")
        // ... and the step gets its on_complete late, with the status the client got.
        chain.completeLate(step, view: view, status: 499, latencyNanoseconds: 1)
        XCTAssertEqual(journal.all.last, "complete limit 499")
    }

    func testAResumedStepDecidesLikeAnyOther() {
        // A continue after the pause goes on from the next middleware.
        let going = chain("auth", "limit")
        script("auth").action = PRISM_PAUSE
        guard case let .paused(step) = start(going) else { return XCTFail("the chain waits") }
        XCTAssertNil(going.resumed(step, action: PRISM_CONTINUE, observer: nil))
        guard case .proceed = start(going, from: 1) else { return XCTFail("the rest continues") }
        XCTAssertEqual(journal.all, ["request auth", "request limit"])
        resumeForGood(step)
        // A respond after the pause is that middleware's own answer.
        let answering = chain("cache")
        script("cache").action = PRISM_PAUSE
        guard case let .paused(paused) = start(answering) else { return XCTFail("the chain waits") }
        guard case .respond? = answering.resumed(paused, action: PRISM_RESPOND, observer: nil) else { return XCTFail("respond") }
        resumeForGood(paused)
    }

    /// The plugin's own resume of a step the test settled by hand: its latch lets go of the step.
    private func resumeForGood(_ step: MiddlewareStep) {
        let context = script(step.middleware.name).pausedContext!
        context.pointee.resume?(context.pointee.context, PRISM_CONTINUE)
    }

    func testTracingSeesEachMiddlewareAndAPause() {
        final class Recorder: MiddlewareObserver {
            var events: [String] = []
            func beginMiddleware(_ name: String) -> Int { events.append("begin \(name)"); return events.count }
            func middlewarePaused(_ span: Int) { events.append("paused \(span)") }
            func endMiddleware(_ span: Int, action: prism_action) { events.append("end \(span) \(action)") }
            func middlewareResumed(action: prism_action) { events.append("resumed \(action)") }
        }
        let chain = chain("auth", "limit")
        script("limit").action = PRISM_PAUSE
        let recorder = Recorder()
        let decision = chain.run(from: 0, view: view, observer: recorder, stopped: { false }, resumer: { _, _ in { _ in } })
        guard case let .paused(step) = decision else { return XCTFail("limit pauses") }
        XCTAssertNil(chain.resumed(step, action: PRISM_CONTINUE, observer: recorder))
        XCTAssertEqual(recorder.events, ["begin auth", "end 1 \(PRISM_CONTINUE)", "begin limit", "paused 3",
                                         "resumed \(PRISM_CONTINUE)"])
        resumeForGood(step)
        // A request that ended meanwhile stops the chain before the next middleware.
        let stopping = self.chain("cache")
        guard case .stopped = stopping.run(from: 0, view: view, observer: nil, stopped: { true }, resumer: { _, _ in { _ in } })
        else { return XCTFail("stopped") }
        XCTAssertFalse(journal.all.contains("request cache"))
    }

    func testOnlyWatchersSeeTheAnswer() {
        let chain = chain("auth", "cache")
        script("cache").watches = true
        guard case .proceed = start(chain) else { return XCTFail("proceeds") }
        XCTAssertTrue(chain.hasWatchers)
        var response = prism_response()
        response.struct_size = UInt32(MemoryLayout<prism_response>.size)
        response.status = 200
        chain.showAnswer(view, &response)
        XCTAssertEqual(journal.all, ["request auth", "request cache", "response cache 200"])
    }
}
