import CCurl
import CPrismSystem
import PrismSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Why an upstream transfer ended without an HTTP answer.
package enum TransportFailure: Error, Sendable {
    case timeout
    case connection(String)
    case other(String)
    /// A buffered answer past server.max_response_body_size (the transfer was stopped).
    case tooLarge(String)

    package var message: String {
        switch self {
        case let .tooLarge(detail): return detail
        case .timeout: return "the upstream did not answer in time"
        case let .connection(detail): return "could not connect to the upstream: \(detail)"
        case let .other(detail): return "upstream transfer failed: \(detail)"
        }
    }
}

/// What the transport reports about one transfer, from its own thread. Implementations hop to
/// wherever they need to be; they must not block.
package protocol TransferDelegate: AnyObject, Sendable {
    /// The status line and headers arrived (called before any body bytes).
    func transferReceivedHead(status: Int, headers: [(String, String)])
    /// Body bytes. Return false to pause the transfer until `CurlTransport.resume` (backpressure).
    func transferReceived(_ bytes: UnsafeRawBufferPointer) -> Bool
    /// The transfer ended: nil on success (any HTTP status), or why it failed.
    func transferCompleted(_ failure: TransportFailure?)
}

/// What sends a transfer upstream: libcurl in the gateway (`CurlTransport`), a scripted fake in
/// in-process tests. Called from event loops; the delegate hears back from wherever the transport
/// runs.
package protocol UpstreamTransport: AnyObject, Sendable {
    func start(_ transfer: Transfer)
    /// Stops a transfer; its delegate hears nothing more.
    func cancel(_ transfer: Transfer)
    /// Goes on with a transfer its delegate paused (backpressure).
    func resume(_ transfer: Transfer)
}

/// Limits how many transfers one provider has in flight (`max_concurrent`); the rest wait in
/// order. Only touched on the transport thread.
package final class AdmissionGate: @unchecked Sendable {
    package let limit: Int
    var active = 0
    var waiting: [Transfer] = []
    package init(limit: Int) { self.limit = limit }
}

/// One outbound HTTP request and its libcurl state.
package final class Transfer: @unchecked Sendable {
    // Immutable request description.
    package let method: String
    package let url: String
    package let headers: [(String, String)]
    package let body: [UInt8]
    package let timeoutMilliseconds: Int
    package let streaming: Bool
    let gate: AdmissionGate?
    package let delegate: TransferDelegate

    // Transport-thread state.
    fileprivate var easy: UnsafeMutableRawPointer?
    fileprivate var headerList: UnsafeMutablePointer<curl_slist>?
    fileprivate var bodyCopy: UnsafeMutableRawPointer?
    fileprivate var responseHeaders: [(String, String)] = []
    fileprivate var status = 0
    fileprivate var headDelivered = false
    fileprivate var finished = false
    fileprivate var queuedAt: UInt64 = 0

    package init(method: String, url: String, headers: [(String, String)], body: [UInt8], timeoutMilliseconds: Int,
                 streaming: Bool, gate: AdmissionGate?, delegate: TransferDelegate)
    {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeoutMilliseconds = timeoutMilliseconds
        self.streaming = streaming
        self.gate = gate
        self.delegate = delegate
    }
}

/// libcurl's multi interface driven by one dedicated thread, so no event loop ever blocks on
/// the network. The thread runs its own epoll loop and tells libcurl exactly which socket is
/// ready (`curl_multi_socket_action`), so the work per wakeup does not grow with the number of
/// transfers. Other threads hand it commands through a locked queue plus an eventfd.
package final class CurlTransport: UpstreamTransport, @unchecked Sendable {
    private enum Command {
        case start(Transfer)
        case cancel(Transfer)
        case resume(Transfer)
    }

    private let multi: UnsafeMutableRawPointer
    private let commands = Mutex<[Command]>([])
    private var running: [Transfer] = []
    private var gates: [ObjectIdentifier: AdmissionGate] = [:]
    /// Easy handles kept for reuse (creating one per request costs allocations).
    private var idleHandles: [UnsafeMutableRawPointer] = []
    private static let maximumIdleHandles = 256
    private var thread = pthread_t()
    private let epollDescriptor: Int32
    private let wakeDescriptor: Int32
    /// libcurl's requested timer, as a monotonic deadline in nanoseconds (nil: none).
    private var timerDeadline: UInt64?
    /// Sockets libcurl asked us to watch (so we know ADD from MOD).
    private var watched: Set<Int32> = []

    /// `maximumIdleConnections`: keep-alive connections kept open across all providers (the sum
    /// of their `conn_pool_size`).
    package init(maximumIdleConnections: Int) {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        multi = curl_multi_init()
        epollDescriptor = prism_epoll_create()
        wakeDescriptor = prism_eventfd_create()
        _ = prism_epoll_control(epollDescriptor, EPOLL_CTL_ADD, wakeDescriptor, 1)
        _ = prism_curl_multi_set_long(multi, CURLMOPT_MAXCONNECTS, max(maximumIdleConnections, 8))
        let context = Unmanaged.passUnretained(self).toOpaque()
        _ = prism_curl_multi_set_pointer(multi, CURLMOPT_SOCKETDATA, context)
        _ = prism_curl_multi_set_pointer(multi, CURLMOPT_TIMERDATA, context)
        _ = prism_curl_multi_set_socket_function(multi) { _, socket, what, context, _ in
            let transport = Unmanaged<CurlTransport>.fromOpaque(context!).takeUnretainedValue()
            transport.watch(socket, what: what)
            return 0
        }
        _ = prism_curl_multi_set_timer_function(multi) { _, timeout, context in
            let transport = Unmanaged<CurlTransport>.fromOpaque(context!).takeUnretainedValue()
            transport.timerDeadline = timeout < 0 ? nil : monotonicNanoseconds() + UInt64(timeout) * 1_000_000
            return 0
        }
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&thread, nil, { context in
            let transport = Unmanaged<CurlTransport>.fromOpaque(context!).takeRetainedValue()
            transport.run()
            return nil
        }, box)
    }

    package func start(_ transfer: Transfer) { submit(.start(transfer)) }
    package func cancel(_ transfer: Transfer) { submit(.cancel(transfer)) }
    package func resume(_ transfer: Transfer) { submit(.resume(transfer)) }

    private func submit(_ command: Command) {
        commands.withLock { $0.append(command) }
        prism_eventfd_signal(wakeDescriptor)
    }

    /// libcurl's socket callback: start, change or stop watching one socket.
    private func watch(_ socket: Int32, what: Int32) {
        if what == CURL_POLL_REMOVE {
            if watched.remove(socket) != nil { _ = prism_epoll_control(epollDescriptor, EPOLL_CTL_DEL, socket, 0) }
            return
        }
        let want = (what == CURL_POLL_IN || what == CURL_POLL_INOUT ? 1 : 0) | (what == CURL_POLL_OUT || what == CURL_POLL_INOUT ? 2 : 0)
        if watched.insert(socket).inserted {
            _ = prism_epoll_control(epollDescriptor, EPOLL_CTL_ADD, socket, Int32(want))
        } else {
            _ = prism_epoll_control(epollDescriptor, EPOLL_CTL_MOD, socket, Int32(want))
        }
    }

    // MARK: The transport thread

    private func run() {
        var stillRunning: Int32 = 0
        var readyDescriptors = [Int32](repeating: 0, count: 64)
        var readyFlags = [Int32](repeating: 0, count: 64)
        while true {
            let pending = commands.withLock { queue -> [Command] in
                let taken = queue
                queue.removeAll(keepingCapacity: true)
                return taken
            }
            for command in pending {
                switch command {
                case let .start(transfer): admit(transfer)
                case let .cancel(transfer): abandon(transfer)
                case let .resume(transfer):
                    if let easy = transfer.easy, !transfer.finished { curl_easy_pause(easy, CURLPAUSE_CONT) }
                }
            }
            // Sleep until a socket is ready, a command arrives (eventfd), or libcurl's timer is due.
            let now = monotonicNanoseconds()
            var wait: Int32 = gates.values.contains { !$0.waiting.isEmpty } ? 100 : 1000
            if let deadline = timerDeadline {
                wait = deadline <= now ? 0 : min(wait, Int32(clamping: (deadline - now + 999_999) / 1_000_000))
            }
            if !pending.isEmpty { wait = 0 }
            let count = prism_epoll_wait(epollDescriptor, &readyDescriptors, &readyFlags, 64, wait)
            for index in 0..<Int(max(count, 0)) {
                let descriptor = readyDescriptors[index]
                if descriptor == wakeDescriptor {
                    prism_eventfd_drain(wakeDescriptor)
                } else {
                    curl_multi_socket_action(multi, descriptor, readyFlags[index], &stillRunning)
                }
            }
            if let deadline = timerDeadline, deadline <= monotonicNanoseconds() {
                timerDeadline = nil
                curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &stillRunning)
            }
            var remaining: Int32 = 0
            while let message = curl_multi_info_read(multi, &remaining) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                finish(easy: easy, code: message.pointee.data.result)
            }
            expireWaiting()
        }
    }

    private func admit(_ transfer: Transfer) {
        transfer.queuedAt = monotonicNanoseconds()
        if let gate = transfer.gate {
            gates[ObjectIdentifier(gate)] = gate
            if gate.active >= gate.limit {
                gate.waiting.append(transfer)
                return
            }
            gate.active += 1
        }
        begin(transfer)
    }

    /// Transfers that waited for admission longer than their timeout fail as timeouts.
    private func expireWaiting() {
        let now = monotonicNanoseconds()
        for gate in gates.values where !gate.waiting.isEmpty {
            gate.waiting.removeAll { transfer in
                let expired = now - transfer.queuedAt > UInt64(transfer.timeoutMilliseconds) * 1_000_000
                if expired {
                    transfer.finished = true
                    transfer.delegate.transferCompleted(.timeout)
                }
                return expired
            }
        }
    }

    private func begin(_ transfer: Transfer) {
        guard let easy = idleHandles.popLast() ?? curl_easy_init() else {
            release(transfer)
            transfer.delegate.transferCompleted(.other("curl_easy_init failed"))
            return
        }
        transfer.easy = easy
        _ = prism_curl_set_string(easy, CURLOPT_URL, transfer.url)
        _ = prism_curl_set_long(easy, CURLOPT_NOSIGNAL, 1)
        _ = prism_curl_set_long(easy, CURLOPT_TCP_NODELAY, 1)
        _ = prism_curl_set_long(easy, CURLOPT_TCP_KEEPALIVE, 1)
        _ = prism_curl_set_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
        let timeout = max(transfer.timeoutMilliseconds, 1)
        _ = prism_curl_set_long(easy, CURLOPT_CONNECTTIMEOUT_MS, timeout)
        if transfer.streaming {
            // A stream may run long; it fails when it stalls (under 1 byte/s) for the timeout.
            _ = prism_curl_set_long(easy, CURLOPT_LOW_SPEED_LIMIT, 1)
            _ = prism_curl_set_long(easy, CURLOPT_LOW_SPEED_TIME, max(timeout / 1000, 1))
        } else {
            _ = prism_curl_set_long(easy, CURLOPT_TIMEOUT_MS, timeout)
        }
        switch transfer.method {
        case "GET": _ = prism_curl_set_long(easy, CURLOPT_HTTPGET, 1)
        case "POST":
            _ = prism_curl_set_long(easy, CURLOPT_POST, 1)
        default:
            _ = prism_curl_set_string(easy, CURLOPT_CUSTOMREQUEST, transfer.method)
        }
        if transfer.method != "GET" {
            // libcurl reads the body from this pointer during the transfer: give it a stable copy.
            let copy = UnsafeMutableRawPointer.allocate(byteCount: max(transfer.body.count, 1), alignment: 1)
            transfer.body.withUnsafeBytes { if let base = $0.baseAddress { copy.copyMemory(from: base, byteCount: $0.count) } }
            transfer.bodyCopy = copy
            _ = prism_curl_set_offset(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(transfer.body.count))
            _ = prism_curl_set_pointer(easy, CURLOPT_POSTFIELDS, copy)
        }
        var list: UnsafeMutablePointer<curl_slist>?
        for (name, value) in transfer.headers { list = curl_slist_append(list, "\(name): \(value)") }
        list = curl_slist_append(list, "Expect:") // no 100-continue round trip for larger bodies
        transfer.headerList = list
        _ = prism_curl_set_slist(easy, CURLOPT_HTTPHEADER, list)
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        _ = prism_curl_set_pointer(easy, CURLOPT_PRIVATE, context)
        _ = prism_curl_set_pointer(easy, CURLOPT_HEADERDATA, context)
        _ = prism_curl_set_pointer(easy, CURLOPT_WRITEDATA, context)
        _ = prism_curl_set_header_function(easy) { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            let length = size * count
            CurlTransport.parseHeaderLine(transfer, UnsafeRawBufferPointer(start: data, count: length))
            return length
        }
        _ = prism_curl_set_write_function(easy) { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            let length = size * count
            if transfer.finished { return 0 } // cancelled: abort the transfer
            CurlTransport.deliverHead(transfer)
            let keepGoing = transfer.delegate.transferReceived(UnsafeRawBufferPointer(start: data, count: length))
            return keepGoing ? length : prism_curl_write_pause()
        }
        running.append(transfer)
        curl_multi_add_handle(multi, easy)
    }

    private static func parseHeaderLine(_ transfer: Transfer, _ line: UnsafeRawBufferPointer) {
        // Bytes, not Swift String scanning: this runs for every header line of every answer.
        var end = line.count
        while end > 0, line[end - 1] == 0x0A || line[end - 1] == 0x0D { end -= 1 }
        guard end > 0 else { return }
        if end > 5, line[0] == UInt8(ascii: "H"), line[1] == UInt8(ascii: "T"), line[2] == UInt8(ascii: "T"),
           line[3] == UInt8(ascii: "P"), line[4] == UInt8(ascii: "/")
        {
            // A new status line (after 1xx or a redirect) starts a fresh header set.
            transfer.responseHeaders.removeAll(keepingCapacity: true)
            var index = 5
            while index < end, line[index] != 0x20 { index += 1 }
            while index < end, line[index] == 0x20 { index += 1 }
            var status = 0
            while index < end, line[index] >= 0x30, line[index] <= 0x39 {
                status = status * 10 + Int(line[index] - 0x30)
                index += 1
            }
            transfer.status = status
            return
        }
        var colon = 0
        while colon < end, line[colon] != UInt8(ascii: ":") { colon += 1 }
        guard colon < end else { return }
        var valueStart = colon + 1
        while valueStart < end, line[valueStart] == 0x20 || line[valueStart] == 0x09 { valueStart += 1 }
        var valueEnd = end
        while valueEnd > valueStart, line[valueEnd - 1] == 0x20 || line[valueEnd - 1] == 0x09 { valueEnd -= 1 }
        let name = asciiLowercased(UnsafeRawBufferPointer(rebasing: line[0..<colon]))
        let value = String(decoding: UnsafeRawBufferPointer(rebasing: line[valueStart..<valueEnd]), as: UTF8.self)
        transfer.responseHeaders.append((name, value))
    }

    private static func deliverHead(_ transfer: Transfer) {
        guard !transfer.headDelivered else { return }
        transfer.headDelivered = true
        transfer.delegate.transferReceivedHead(status: transfer.status, headers: transfer.responseHeaders)
    }

    private func finish(easy: UnsafeMutableRawPointer, code: CURLcode) {
        guard let index = running.firstIndex(where: { $0.easy == easy }) else { return }
        let transfer = running.remove(at: index)
        let wasCancelled = transfer.finished
        transfer.finished = true
        if !wasCancelled {
            var failure: TransportFailure?
            switch code {
            case CURLE_OK:
                CurlTransport.deliverHead(transfer)
            case CURLE_OPERATION_TIMEDOUT:
                failure = .timeout
            case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
                failure = .connection(String(cString: curl_easy_strerror(code)))
            default:
                failure = .other(String(cString: curl_easy_strerror(code)))
            }
            transfer.delegate.transferCompleted(failure)
        }
        cleanUp(transfer)
    }

    /// The client went away: drop the transfer at once, without calling the delegate again.
    private func abandon(_ transfer: Transfer) {
        if transfer.finished { return }
        transfer.finished = true
        if let gate = transfer.gate, let index = gate.waiting.firstIndex(where: { $0 === transfer }) {
            gate.waiting.remove(at: index)
            return
        }
        if let index = running.firstIndex(where: { $0 === transfer }) {
            running.remove(at: index)
            cleanUp(transfer)
        }
    }

    private func cleanUp(_ transfer: Transfer) {
        if let easy = transfer.easy {
            curl_multi_remove_handle(multi, easy)
            // Reuse the handle: reset clears its options, not the multi handle's connection cache.
            if idleHandles.count < CurlTransport.maximumIdleHandles {
                curl_easy_reset(easy)
                idleHandles.append(easy)
            } else {
                curl_easy_cleanup(easy)
            }
            transfer.easy = nil
        }
        if let list = transfer.headerList { curl_slist_free_all(list) }
        transfer.headerList = nil
        transfer.bodyCopy?.deallocate()
        transfer.bodyCopy = nil
        release(transfer)
    }

    /// Frees the transfer's admission slot and starts the next waiting transfer, if any.
    private func release(_ transfer: Transfer) {
        guard let gate = transfer.gate else { return }
        gate.active -= 1
        while gate.active < gate.limit, !gate.waiting.isEmpty {
            let next = gate.waiting.removeFirst()
            gate.active += 1
            begin(next)
        }
    }
}
