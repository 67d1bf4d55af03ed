import CCurl
import Dispatch
import Logging
import Synchronization

/// Sends finished traces to the OTLP/HTTP collector, off the request path: a request appends its
/// spans to a bounded queue under a short lock; a serial queue of its own takes them every second
/// (or as soon as 512 spans wait), encodes them and POSTs them with a libcurl easy handle of its
/// own (2 s timeout; the keep-alive connection reused), never touching the event loops that
/// carry the upstream requests. A full queue drops the new spans (an atomic add); a failed
/// export drops its batch and the rest of that round, and while the collector keeps failing only
/// the once-a-second tick tries again, with one batch. Nothing is retried; drops and failures are
/// counted (`prism_trace_spans_dropped_total{reason}`, `prism_trace_export_failures_total`) and
/// logged at most once a minute. So a dead or slow collector costs a request one lock and an
/// append, never time or an error, and the exporter at most one batch a second.
///
/// One per process (in GatewayServices), shared by every configuration generation; nothing runs
/// until the first traced request.
package final class TraceExporter: Sendable {
    static let maximumQueuedSpans = 2048
    static let batchSpans = 512
    static let timeoutMilliseconds = 2000

    private struct Pending {
        var traces: [FinishedTrace] = []
        var spans = 0
        var flushRequested = false
        var started = false
    }

    private let pending = Mutex(Pending())
    /// Spans dropped on the request path because the queue was full (added to the metric each tick).
    private let queueFullDrops = Atomic<Int>(0)
    /// The last export failed: no early exports until one succeeds.
    private let collectorFailing = Atomic<Bool>(false)
    private let counters = Mutex<GatewayMetrics.TraceCounters?>(nil)
    private let queue = DispatchQueue(label: "prism.trace-exporter")
    private let timer = Mutex<TimerBox?>(nil)
    private let poster = Poster()
    private let logger = Logger(label: "prism")
    /// Failure logging (on the queue): the first failure, then a summary at most once a minute.
    private let failureLog = Mutex<(failing: Bool, lastLogged: UInt64, unlogged: Int)>((false, 0, 0))

    private final class TimerBox: @unchecked Sendable {
        let timer: DispatchSourceTimer
        init(_ timer: DispatchSourceTimer) { self.timer = timer }
    }

    package init() {}

    /// The request path: queues a finished request's spans, or drops them when the queue is full.
    func submit(_ trace: FinishedTrace) {
        let count = trace.spans.count
        let (accepted, wake, first) = pending.withLock { state -> (Bool, Bool, Bool) in
            let first = !state.started
            state.started = true
            guard state.spans + count <= TraceExporter.maximumQueuedSpans else { return (false, false, first) }
            state.traces.append(trace)
            state.spans += count
            guard state.spans >= TraceExporter.batchSpans, !state.flushRequested else { return (true, false, first) }
            state.flushRequested = true
            return (true, true, first)
        }
        if first { start() }
        if !accepted { queueFullDrops.add(count, ordering: .relaxed) }
        if wake, !collectorFailing.load(ordering: .relaxed) { queue.async { [self] in exportOnQueue() } }
    }

    /// Starts the timer (with the first traced request) and makes the counters visible at 0.
    private func start() {
        counters.withLock { $0 = GatewayMetrics.shared.makeTraceCounters() }
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + .seconds(1), repeating: .seconds(1), leeway: .milliseconds(100))
        timer.setEventHandler { [weak self] in self?.exportOnQueue() }
        self.timer.withLock { $0 = TimerBox(timer) }
        timer.resume()
    }

    /// Exports what is queued now and waits for it (at shutdown: bounded by the export timeout).
    func flush() {
        guard pending.withLock({ $0.started }) else { return }
        queue.sync { exportOnQueue() }
    }

    private func exportOnQueue() {
        guard let counters = counters.withLock({ $0 }) else { return }
        let full = queueFullDrops.exchange(0, ordering: .relaxed)
        if full > 0 { counters.droppedQueueFull.increment(by: Int64(full)) }
        let traces = pending.withLock { state -> [FinishedTrace] in
            defer {
                state.traces.removeAll(keepingCapacity: true)
                state.spans = 0
                state.flushRequested = false
            }
            return state.traces
        }
        guard !traces.isEmpty else { return }
        // Usually one destination; after a reload that moved it, older requests keep theirs.
        var groups: [(TraceDestination, [FinishedTrace])] = []
        for trace in traces {
            if let index = groups.firstIndex(where: { $0.0 === trace.destination }) {
                groups[index].1.append(trace)
            } else {
                groups.append((trace.destination, [trace]))
            }
        }
        for (destination, list) in groups {
            var start = 0
            var failed = false
            while start < list.count {
                // Whole requests per batch, about batchSpans spans each.
                var end = start
                var spans = 0
                while end < list.count, spans == 0 || spans + list[end].spans.count <= TraceExporter.batchSpans {
                    spans += list[end].spans.count
                    end += 1
                }
                let batch = list[start..<end]
                start = end
                if failed {
                    // The collector just failed: the rest of this round is dropped, not waited for.
                    counters.droppedExportFailed.increment(by: Int64(spans))
                    continue
                }
                let body = OTLPEncoding.encode(batch, destination: destination)
                let outcome = poster.post(url: destination.url, headers: destination.headers, body: body,
                                          timeoutMilliseconds: TraceExporter.timeoutMilliseconds)
                if let problem = outcome.problem {
                    failed = true
                    collectorFailing.store(true, ordering: .relaxed)
                    counters.failures.increment()
                    counters.droppedExportFailed.increment(by: Int64(spans))
                    noteFailure(destination, problem)
                } else {
                    collectorFailing.store(false, ordering: .relaxed)
                    counters.exported.increment(by: Int64(spans))
                    noteSuccess(destination)
                }
            }
        }
    }

    private func noteFailure(_ destination: TraceDestination, _ problem: String) {
        let now = monotonicNanoseconds()
        let report: Int? = failureLog.withLock { log in
            log.unlogged += 1
            guard !log.failing || now - log.lastLogged >= 60_000_000_000 else { return nil }
            defer {
                log.failing = true
                log.lastLogged = now
                log.unlogged = 0
            }
            return log.unlogged
        }
        guard let report else { return }
        logger.warning("trace export to \(destination.displayURL) failed: \(problem) (\(report) failed export(s) since the last report; spans are dropped, requests are not affected)")
    }

    private func noteSuccess(_ destination: TraceDestination) {
        let recovered = failureLog.withLock { log -> Bool in
            defer { log = (false, 0, 0) }
            return log.failing
        }
        if recovered { logger.info("trace export to \(destination.displayURL) works again") }
    }
}

/// One libcurl easy handle, used only on the exporter's queue (its connection is kept alive
/// between exports).
private final class Poster: @unchecked Sendable {
    private var easy: UnsafeMutableRawPointer?
    private var answer: [UInt8] = []

    /// nil `problem`: the collector took the batch (2xx).
    func post(url: String, headers: [(String, String)], body: [UInt8], timeoutMilliseconds: Int) -> (status: Int, problem: String?) {
        if easy == nil { easy = curl_easy_init() }
        guard let easy else { return (0, "curl_easy_init failed") }
        curl_easy_reset(easy)
        answer.removeAll(keepingCapacity: true)
        _ = prism_curl_set_string(easy, CURLOPT_URL, url)
        _ = prism_curl_set_long(easy, CURLOPT_NOSIGNAL, 1)
        _ = prism_curl_set_long(easy, CURLOPT_TIMEOUT_MS, timeoutMilliseconds)
        _ = prism_curl_set_long(easy, CURLOPT_CONNECTTIMEOUT_MS, timeoutMilliseconds)
        _ = prism_curl_set_long(easy, CURLOPT_POST, 1)
        var list: UnsafeMutablePointer<curl_slist>?
        list = curl_slist_append(list, "content-type: application/json")
        for (name, value) in headers { list = curl_slist_append(list, "\(name): \(value)") }
        list = curl_slist_append(list, "Expect:")
        defer { curl_slist_free_all(list) }
        _ = prism_curl_set_slist(easy, CURLOPT_HTTPHEADER, list)
        _ = prism_curl_set_pointer(easy, CURLOPT_WRITEDATA, Unmanaged.passUnretained(self).toOpaque())
        _ = prism_curl_set_write_function(easy) { data, size, count, context in
            let poster = Unmanaged<Poster>.fromOpaque(context!).takeUnretainedValue()
            let length = size * count
            // Only the start of the answer is kept, for the log line of a refusal.
            if poster.answer.count < 300, let data {
                poster.answer.append(contentsOf: UnsafeRawBufferPointer(start: data, count: min(length, 300 - poster.answer.count)))
            }
            return length
        }
        let code = body.withUnsafeBytes { raw -> CURLcode in
            _ = prism_curl_set_offset(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(raw.count))
            _ = prism_curl_set_pointer(easy, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress))
            return curl_easy_perform(easy)
        }
        guard code == CURLE_OK else { return (0, String(cString: curl_easy_strerror(code))) }
        var status = 0
        _ = prism_curl_get_long(easy, CURLINFO_RESPONSE_CODE, &status)
        guard (200..<300).contains(status) else {
            let text = String(decoding: answer, as: UTF8.self).filter { $0 != "\n" && $0 != "\r" }
            return (status, "the collector answered HTTP \(status)" + (text.isEmpty ? "" : ": " + text))
        }
        return (status, nil)
    }
}
