import CCurl

#if canImport(Glibc)
import Glibc
#endif

/// Why an upstream transfer ended without an HTTP answer.
enum TransportFailure: Error, Sendable {
    case timeout
    case connection(String)
    case other(String)

    var message: String {
        switch self {
        case .timeout: return "the upstream did not answer in time"
        case let .connection(detail): return "could not connect to the upstream: \(detail)"
        case let .other(detail): return "upstream transfer failed: \(detail)"
        }
    }
}

/// What the transport reports about one transfer, from its own thread. Implementations hop to
/// wherever they need to be; they must not block.
protocol TransferDelegate: AnyObject, Sendable {
    /// The status line and headers arrived (called before any body bytes).
    func transferReceivedHead(status: Int, headers: [(String, String)])
    /// Body bytes. Return false to pause the transfer until `CurlTransport.resume` (backpressure).
    func transferReceived(_ bytes: UnsafeRawBufferPointer) -> Bool
    /// The transfer ended: nil on success (any HTTP status), or why it failed.
    func transferCompleted(_ failure: TransportFailure?)
}

/// Limits how many transfers one provider has in flight (`max_concurrent`); the rest wait in
/// order. Only touched on the transport thread.
final class AdmissionGate: @unchecked Sendable {
    let limit: Int
    var active = 0
    var waiting: [Transfer] = []
    init(limit: Int) { self.limit = limit }
}

/// One outbound HTTP request and its libcurl state.
final class Transfer: @unchecked Sendable {
    // Immutable request description.
    let method: String
    let url: String
    let headers: [(String, String)]
    let body: [UInt8]
    let timeoutMilliseconds: Int
    let streaming: Bool
    let gate: AdmissionGate?
    let delegate: TransferDelegate

    // Transport-thread state.
    fileprivate var easy: UnsafeMutableRawPointer?
    fileprivate var headerList: UnsafeMutablePointer<curl_slist>?
    fileprivate var bodyCopy: UnsafeMutableRawPointer?
    fileprivate var responseHeaders: [(String, String)] = []
    fileprivate var status = 0
    fileprivate var headDelivered = false
    fileprivate var finished = false
    fileprivate var queuedAt: UInt64 = 0

    init(method: String, url: String, headers: [(String, String)], body: [UInt8], timeoutMilliseconds: Int,
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
/// the network. Other threads hand it commands through a locked queue plus `curl_multi_wakeup`.
final class CurlTransport: @unchecked Sendable {
    private enum Command {
        case start(Transfer)
        case cancel(Transfer)
        case resume(Transfer)
    }

    private let multi: UnsafeMutableRawPointer
    private var commands: [Command] = []
    private let commandLock = NSLockLike()
    private var running: [Transfer] = []
    private var gates: [ObjectIdentifier: AdmissionGate] = [:]
    private var thread = pthread_t()

    /// `maximumIdleConnections`: keep-alive connections kept open across all providers (the sum
    /// of their `conn_pool_size`).
    init(maximumIdleConnections: Int) {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        multi = curl_multi_init()
        _ = prism_curl_multi_set_long(multi, CURLMOPT_MAXCONNECTS, max(maximumIdleConnections, 8))
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&thread, nil, { context in
            let transport = Unmanaged<CurlTransport>.fromOpaque(context!).takeRetainedValue()
            transport.run()
            return nil
        }, box)
    }

    func start(_ transfer: Transfer) { submit(.start(transfer)) }
    func cancel(_ transfer: Transfer) { submit(.cancel(transfer)) }
    func resume(_ transfer: Transfer) { submit(.resume(transfer)) }

    private func submit(_ command: Command) {
        commandLock.withLock { commands.append(command) }
        curl_multi_wakeup(multi)
    }

    // MARK: The transport thread

    private func run() {
        var stillRunning: Int32 = 0
        while true {
            let pending = commandLock.withLock { () -> [Command] in
                let taken = commands
                commands.removeAll(keepingCapacity: true)
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
            curl_multi_perform(multi, &stillRunning)
            var remaining: Int32 = 0
            while let message = curl_multi_info_read(multi, &remaining) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                let code = message.pointee.data.result
                finish(easy: easy, code: code)
            }
            expireWaiting()
            // Sleep until a socket is ready, a command arrives (wakeup), or a timer is due.
            let waitMilliseconds: Int32 = gates.values.contains { !$0.waiting.isEmpty } ? 100 : 1000
            curl_multi_poll(multi, nil, 0, waitMilliseconds, nil)
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
        guard let easy = curl_easy_init() else {
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
        // Trim the line ending as bytes: in Swift "\r\n" is one Character, not two.
        var length = line.count
        while length > 0, line[length - 1] == 0x0A || line[length - 1] == 0x0D { length -= 1 }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: line[0..<length]), as: UTF8.self)
        if text.hasPrefix("HTTP/") {
            // A new status line (after 1xx or a redirect) starts a fresh header set.
            transfer.responseHeaders.removeAll()
            let parts = text.split(separator: " ", maxSplits: 2)
            transfer.status = parts.count > 1 ? Int(String(parts[1])) ?? 0 : 0
            return
        }
        guard let colon = text.firstIndex(of: ":") else { return }
        let name = text[..<colon].lowercased()
        let value = String(text[text.index(after: colon)...]).trimmingSpaces
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
            curl_easy_cleanup(easy)
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
