import CCurl
import CPrismSystem
import PrismLoop
import PrismSupport

#if canImport(Glibc)
import Glibc
#endif

/// One loop's libcurl multi handle. libcurl names the sockets to watch (`CURLMOPT_SOCKETFUNCTION`)
/// and they join the loop's epoll set; its timer is the loop's deadline. Everything here runs on
/// the loop's thread. Commands that arrive while libcurl is running (from inside one of its
/// callbacks) wait until it returns: libcurl forbids adding or removing handles there.
final class CurlEngine: LoopDescriptorHandler, LoopParticipant, @unchecked Sendable {
    enum Command: Sendable {
        case start(Transfer)
        case cancel(Transfer)
        case resume(Transfer)
    }

    let loop: IOLoop
    private let multi: UnsafeMutableRawPointer
    private var running: [ObjectIdentifier: Transfer] = [:]
    /// Easy handles kept for reuse (creating one per request costs allocations).
    private var idleHandles: [UnsafeMutableRawPointer] = []
    private static let maximumIdleHandles = 256
    /// libcurl sends a body up to this size with the request head (its MAX_INITIAL_POST_SIZE).
    private static let inlineBodyLimit = 64 * 1024
    /// libcurl's requested timer, as a monotonic deadline in nanoseconds (nil: none).
    private var timerDeadline: UInt64?
    /// True while inside libcurl (socket action, timeout).
    private var driving = false
    private var deferred: [Command] = []
    /// The admission gates this loop's transfers went through (for expiring their waiters).
    private var gates: [ObjectIdentifier: AdmissionGate] = [:]
    private var nextExpiry: UInt64?
    /// Upstream URLs parsed once (a transfer hands libcurl the parsed handle with CURLOPT_CURLU
    /// beside the same text as CURLOPT_URL). Given the text alone, libcurl parses it and prints
    /// it back, a character at a time through its printf, on every transfer: about 16k
    /// instructions a request, 11.5k net of copying the parsed handle (bench/README.md). A
    /// gateway has a few upstream URLs; past `parsedURLLimit` distinct ones, the rest go as
    /// text. Kept for the engine's life (libcurl copies the handle for each transfer).
    private var parsedURLs: [String: OpaquePointer] = [:]
    private static let parsedURLLimit = 256
    /// Per socket number, how libcurl's socket is in the loop's epoll set: the `want` bits it is
    /// registered with (0: not at all), `parkedBit` when libcurl has stopped watching it, and
    /// `ownedBit` for a connection's socket, which libcurl opened (`CURLOPT_SOCKOPTFUNCTION`) and
    /// will close through `CURLOPT_CLOSESOCKETFUNCTION`.
    /// A connection going back to libcurl's pool is parked, not removed: libcurl removes an
    /// idle connection's socket after every transfer and adds it back for the next, two
    /// `epoll_ctl` calls a request. A parked socket stays registered for readability only, and
    /// goes when it reports (the server closed or wrote: libcurl's check before reuse sees it)
    /// or when libcurl closes it. Only owned sockets are parked: libcurl closes others itself
    /// (its resolver's socket pair), and a number left marked as watched after such a close would
    /// keep the next socket given that number out of the epoll set.
    private var socketStates: [UInt8] = []
    private static let parkedBit: UInt8 = 4
    private static let ownedBit: UInt8 = 8

    init(loop: IOLoop, maximumIdleConnections: Int) {
        self.loop = loop
        multi = curl_multi_init()
        _ = prism_curl_multi_set_long(multi, CURLMOPT_MAXCONNECTS, max(maximumIdleConnections, 8))
        let context = Unmanaged.passUnretained(self).toOpaque()
        _ = prism_curl_multi_set_pointer(multi, CURLMOPT_SOCKETDATA, context)
        _ = prism_curl_multi_set_pointer(multi, CURLMOPT_TIMERDATA, context)
        _ = prism_curl_multi_set_socket_function(multi) { _, socket, what, context, _ in
            let engine = Unmanaged<CurlEngine>.fromOpaque(context!).takeUnretainedValue()
            engine.watch(socket, what: what)
            return 0
        }
        _ = prism_curl_multi_set_timer_function(multi) { _, timeout, context in
            let engine = Unmanaged<CurlEngine>.fromOpaque(context!).takeUnretainedValue()
            engine.timerDeadline = timeout < 0 ? nil : monotonicNanoseconds() + UInt64(timeout) * 1_000_000
            return 0
        }
        loop.add(participant: self)
    }

    func perform(_ command: Command) {
        guard !driving else {
            deferred.append(command)
            return
        }
        switch command {
        case let .start(transfer): admit(transfer)
        case let .cancel(transfer): abandon(transfer)
        case let .resume(transfer):
            if let easy = transfer.easy, !transfer.finished {
                driving = true
                curl_easy_pause(easy, CURLPAUSE_CONT)
                driving = false
                collectFinished()
            }
        }
    }

    /// libcurl's socket callback: start, change or stop watching one socket.
    private func watch(_ socket: Int32, what: Int32) {
        let slot = Int(socket)
        reserveState(slot)
        let state = socketStates[slot]
        if what == CURL_POLL_REMOVE {
            // An owned, readable-only socket is parked; one registered for writability would
            // report at once.
            if state & Self.ownedBit != 0, state & 3 == 1 { socketStates[slot] = state | Self.parkedBit } else { unregister(socket) }
            return
        }
        let want: UInt8 = (what == CURL_POLL_IN || what == CURL_POLL_INOUT ? 1 : 0) | (what == CURL_POLL_OUT || what == CURL_POLL_INOUT ? 2 : 0)
        socketStates[slot] = want | (state & Self.ownedBit)
        if state & 3 != want { loop.watch(socket, want: Int32(want), handler: self) }
    }

    private func reserveState(_ slot: Int) {
        if slot >= socketStates.count { socketStates.append(contentsOf: repeatElement(0, count: slot + 64 - socketStates.count)) }
    }

    /// Takes `socket` out of the epoll set (it stays owned).
    private func unregister(_ socket: Int32) {
        let state = socketStates[Int(socket)]
        socketStates[Int(socket)] = state & Self.ownedBit
        if state & 3 != 0 { loop.unwatch(socket) }
    }

    /// libcurl opened a connection's socket (`CURLOPT_SOCKOPTFUNCTION`): it will be closed
    /// through `closeSocket`. Whatever its number was marked with belonged to a closed socket.
    fileprivate func socketOpened(_ socket: Int32) {
        reserveState(Int(socket))
        unregister(socket)
        socketStates[Int(socket)] = Self.ownedBit
    }

    /// libcurl closes a connection's socket (`CURLOPT_CLOSESOCKETFUNCTION`): out of the epoll
    /// set first.
    fileprivate func closeSocket(_ socket: Int32) -> Int32 {
        if Int(socket) < socketStates.count {
            unregister(socket)
            socketStates[Int(socket)] = 0
        }
        return close(socket)
    }

    // MARK: On the loop

    func descriptorReady(_ descriptor: Int32, flags: Int32) {
        // A parked socket reporting: libcurl is not watching it; it is no longer watched at all.
        // The upstream closed it (libcurl's check before reuse sees that), or wrote on it: an
        // unsolicited answer must not become the next request's, so the connection ends now.
        if socketStates[Int(descriptor)] & Self.parkedBit != 0 {
            if prism_socket_has_unsolicited_http(descriptor) == 1 { _ = prism_socket_disconnect(descriptor) }
            return unregister(descriptor)
        }
        var stillRunning: Int32 = 0
        driving = true
        curl_multi_socket_action(multi, descriptor, flags, &stillRunning)
        driving = false
        collectFinished()
    }

    var nextDeadline: UInt64? {
        if !deferred.isEmpty { return 0 }
        guard let expiry = nextExpiry else { return timerDeadline }
        return min(timerDeadline ?? expiry, expiry)
    }

    func run() {
        if let deadline = timerDeadline, deadline <= monotonicNanoseconds() {
            timerDeadline = nil
            var stillRunning: Int32 = 0
            driving = true
            curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &stillRunning)
            driving = false
            collectFinished()
        }
        if let expiry = nextExpiry, expiry <= monotonicNanoseconds() { expireWaiting() }
    }

    /// Ends the transfers libcurl finished, then runs the commands held back meanwhile.
    private func collectFinished() {
        var remaining: Int32 = 0
        while let message = curl_multi_info_read(multi, &remaining) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            finish(easy: easy, code: message.pointee.data.result)
        }
        while !deferred.isEmpty {
            let commands = deferred
            deferred.removeAll()
            for command in commands { perform(command) }
        }
    }

    private func admit(_ transfer: Transfer) {
        guard !transfer.finished else { return } // cancelled before its start arrived
        transfer.queuedAt = monotonicNanoseconds()
        if let gate = transfer.gate {
            gates[ObjectIdentifier(gate)] = gate
            guard gate.admitOrQueue(transfer) else {
                // Waiters are checked every 100 ms for their timeout.
                if nextExpiry == nil { nextExpiry = transfer.queuedAt + 100_000_000 }
                return
            }
        }
        begin(transfer)
    }

    /// Transfers of this loop that waited for admission longer than their timeout fail as timeouts.
    private func expireWaiting() {
        let now = monotonicNanoseconds()
        var expired: [Transfer] = []
        for gate in gates.values { expired += gate.expire(owner: self, now: now) }
        // Delegates hear of it after the bookkeeping: a request that fails over from here may
        // queue a new waiter, which must find the expiry timer armed.
        gates = gates.filter { $0.value.hasWaiting } // a reload replaces gates with new ones
        nextExpiry = gates.isEmpty ? nil : now + 100_000_000
        for transfer in expired where !transfer.finished { // one may cancel another meanwhile
            transfer.finished = true
            transfer.delegate.transferCompleted(.timeout)
        }
    }

    /// A transfer another loop admitted when it freed a slot.
    private func beginAdmitted(_ transfer: Transfer) {
        if transfer.finished { release(transfer) } else { begin(transfer) }
    }

    private func begin(_ transfer: Transfer) {
        guard let easy = idleHandles.popLast() ?? newHandle() else {
            release(transfer)
            transfer.finished = true
            // Not from inside the `start` that got here: the delegate hears it from the loop.
            loop.execute { transfer.delegate.transferCompleted(.other("curl_easy_init failed")) }
            return
        }
        transfer.easy = easy
        // A kept handle still holds the last transfer's options (curl_easy_reset would cost four
        // mallocs and a dozen setopt calls a request): every option that varies is set here on
        // every transfer, including back to its default when this one does not use it.
        _ = prism_curl_set_string(easy, CURLOPT_URL, transfer.url)
        _ = prism_curl_set_pointer(easy, CURLOPT_CURLU, parsedURL(transfer.url).map { UnsafeMutableRawPointer($0) })
        let timeout = max(transfer.timeoutMilliseconds, 1)
        _ = prism_curl_set_long(easy, CURLOPT_CONNECTTIMEOUT_MS, timeout)
        if transfer.streaming {
            // A stream may run long; it fails when it stalls (under 1 byte/s) for the timeout.
            _ = prism_curl_set_long(easy, CURLOPT_LOW_SPEED_LIMIT, 1)
            _ = prism_curl_set_long(easy, CURLOPT_LOW_SPEED_TIME, max(timeout / 1000, 1))
            _ = prism_curl_set_long(easy, CURLOPT_TIMEOUT_MS, 0)
        } else {
            _ = prism_curl_set_long(easy, CURLOPT_TIMEOUT_MS, timeout)
            _ = prism_curl_set_long(easy, CURLOPT_LOW_SPEED_LIMIT, 0)
            _ = prism_curl_set_long(easy, CURLOPT_LOW_SPEED_TIME, 0)
        }
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        _ = prism_curl_set_pointer(easy, CURLOPT_PRIVATE, context)
        _ = prism_curl_set_pointer(easy, CURLOPT_HEADERDATA, context)
        _ = prism_curl_set_pointer(easy, CURLOPT_WRITEDATA, context)
        _ = prism_curl_set_pointer(easy, CURLOPT_READDATA, context)
        _ = prism_curl_set_pointer(easy, CURLOPT_SEEKDATA, context)
        // The body first: setting CURLOPT_POSTFIELDS (even to nil) makes the request a POST,
        // which the method below then names.
        if transfer.method == "GET" {
            _ = prism_curl_set_pointer(easy, CURLOPT_POSTFIELDS, nil) // the last body's copy is freed
        } else {
            _ = prism_curl_set_offset(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(transfer.body.count))
            if transfer.body.count <= CurlEngine.inlineBodyLimit {
                // libcurl sends a body this small with the head, from this pointer: a stable copy.
                let copy = UnsafeMutableRawPointer.allocate(byteCount: max(transfer.body.count, 1), alignment: 1)
                transfer.body.withUnsafeBytes { if let base = $0.baseAddress { copy.copyMemory(from: base, byteCount: $0.count) } }
                transfer.bodyCopy = copy
                _ = prism_curl_set_pointer(easy, CURLOPT_POSTFIELDS, copy)
            } else {
                // A larger one libcurl copies into its upload buffer a piece at a time anyway: it
                // reads the pieces from the transfer's own array (the read callback) instead of
                // from a whole copy. CURLOPT_POST makes libcurl send a body at all.
                _ = prism_curl_set_pointer(easy, CURLOPT_POSTFIELDS, nil)
                _ = prism_curl_set_long(easy, CURLOPT_POST, 1)
                transfer.bodyOffset = 0
            }
        }
        switch transfer.method {
        case "GET":
            _ = prism_curl_set_string(easy, CURLOPT_CUSTOMREQUEST, nil)
            _ = prism_curl_set_long(easy, CURLOPT_HTTPGET, 1)
        case "POST":
            _ = prism_curl_set_string(easy, CURLOPT_CUSTOMREQUEST, nil)
            _ = prism_curl_set_long(easy, CURLOPT_POST, 1)
        default:
            _ = prism_curl_set_string(easy, CURLOPT_CUSTOMREQUEST, transfer.method)
        }
        let list = curlHeaderList(transfer.headers)
        transfer.headerList = list
        _ = prism_curl_set_slist(easy, CURLOPT_HTTPHEADER, list)
        running[ObjectIdentifier(transfer)] = transfer
        driving = true
        curl_multi_add_handle(multi, easy)
        driving = false
    }

    /// The parsed form of `url`, parsed as libcurl would parse the text; nil when it does not
    /// parse (libcurl then reports the error from the text) or the cache is full.
    private func parsedURL(_ url: String) -> OpaquePointer? {
        if let parsed = parsedURLs[url] { return parsed }
        guard parsedURLs.count < CurlEngine.parsedURLLimit, let handle = curl_url() else { return nil }
        guard curl_url_set(handle, CURLUPART_URL, url, UInt32(CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME)) == CURLUE_OK else {
            curl_url_cleanup(handle)
            return nil
        }
        parsedURLs[url] = handle
        return handle
    }

    private static let environmentNamesAProxy = ["http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY",
                                                 "HTTPS_PROXY", "ALL_PROXY"].contains { (name: String) in getenv(name) != nil }

    /// A new easy handle with the options every transfer shares; the callbacks find their
    /// transfer through the data pointers `begin` sets.
    private func newHandle() -> UnsafeMutableRawPointer? {
        guard let easy = curl_easy_init() else { return nil }
        // A connection keeps the callback of the handle that opened it; every handle here is this engine's.
        _ = prism_curl_set_pointer(easy, CURLOPT_CLOSESOCKETDATA, Unmanaged.passUnretained(self).toOpaque())
        _ = prism_curl_set_close_socket_function(easy) { context, socket in
            Unmanaged<CurlEngine>.fromOpaque(context!).takeUnretainedValue().closeSocket(socket)
        }
        _ = prism_curl_set_pointer(easy, CURLOPT_SOCKOPTDATA, Unmanaged.passUnretained(self).toOpaque())
        _ = prism_curl_set_socket_option_function(easy) { context, socket, purpose in
            if purpose == CURLSOCKTYPE_IPCXN { Unmanaged<CurlEngine>.fromOpaque(context!).takeUnretainedValue().socketOpened(socket) }
            return Int32(CURL_SOCKOPT_OK)
        }
        _ = prism_curl_set_long(easy, CURLOPT_NOSIGNAL, 1)
        _ = prism_curl_set_long(easy, CURLOPT_TCP_NODELAY, 1)
        _ = prism_curl_set_long(easy, CURLOPT_TCP_KEEPALIVE, 1)
        _ = prism_curl_set_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
        // libcurl looks for a proxy in the environment on every transfer (up to six getenv
        // scans of it). With none named there, "no proxy" is said once here; with one,
        // libcurl reads the environment as it always does (http_proxy, https_proxy, no_proxy...).
        if !CurlEngine.environmentNamesAProxy {
            _ = prism_curl_set_string(easy, CURLOPT_PROXY, "")
            _ = prism_curl_set_string(easy, CURLOPT_NOPROXY, "")
        }
        _ = prism_curl_set_header_function(easy) { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            let length = size * count
            CurlEngine.parseHeaderLine(transfer, UnsafeRawBufferPointer(start: data, count: length))
            return length
        }
        _ = prism_curl_set_write_function(easy) { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            let length = size * count
            if transfer.finished { return 0 } // cancelled: abort the transfer
            CurlEngine.deliverHead(transfer)
            let keepGoing = transfer.delegate.transferReceived(UnsafeRawBufferPointer(start: data, count: length))
            if keepGoing { return length }
            transfer.wasPaused = true
            return prism_curl_write_pause()
        }
        // A body past inlineBodyLimit, read from the transfer's array.
        _ = prism_curl_set_read_function(easy) { buffer, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            let length = min(size * count, transfer.body.count - transfer.bodyOffset)
            guard length > 0, let buffer else { return 0 }
            transfer.body.withUnsafeBytes { body in
                UnsafeMutableRawPointer(buffer).copyMemory(from: body.baseAddress! + transfer.bodyOffset, byteCount: length)
            }
            transfer.bodyOffset += length
            return length
        }
        // A request resent on a fresh connection (a kept-alive one had closed) starts over.
        _ = prism_curl_set_seek_function(easy) { context, offset, origin in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            guard origin == SEEK_SET, offset >= 0, offset <= transfer.body.count else { return 2 } // CURL_SEEKFUNC_CANTSEEK
            transfer.bodyOffset = Int(offset)
            return 0 // CURL_SEEKFUNC_OK
        }
        return easy
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
            transfer.responseHeaders.removeAll()
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
        transfer.responseHeaders.append(line: UnsafeRawBufferPointer(rebasing: line[0..<valueEnd]), name: 0..<colon,
                                        value: valueStart..<valueEnd)
    }

    private static func deliverHead(_ transfer: Transfer) {
        guard !transfer.headDelivered else { return }
        transfer.headDelivered = true
        transfer.delegate.transferReceivedHead(status: transfer.status, headers: transfer.responseHeaders)
    }

    private func finish(easy: UnsafeMutableRawPointer, code: CURLcode) {
        var context: UnsafeMutableRawPointer?
        _ = prism_curl_get_pointer(easy, CURLINFO_PRIVATE, &context)
        guard let context else { return }
        let key = ObjectIdentifier(Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue())
        guard let transfer = running.removeValue(forKey: key) else { return }
        let wasCancelled = transfer.finished
        transfer.finished = true
        if !wasCancelled {
            var failure: TransportFailure?
            switch code {
            case CURLE_OK:
                CurlEngine.deliverHead(transfer)
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
        if let gate = transfer.gate, gate.removeWaiting(transfer) { return }
        if running.removeValue(forKey: ObjectIdentifier(transfer)) != nil { cleanUp(transfer) }
        // Otherwise another loop has just admitted it: `beginAdmitted` frees its slot.
    }

    private func cleanUp(_ transfer: Transfer) {
        if let easy = transfer.easy {
            driving = true
            curl_multi_remove_handle(multi, easy)
            driving = false
            // Reuse the handle with its options (`begin` sets every one that varies).
            if idleHandles.count < CurlEngine.maximumIdleHandles && !transfer.wasPaused {
                idleHandles.append(easy)
            } else {
                curl_easy_cleanup(easy)
            }
            transfer.easy = nil
        }
        transfer.headerList.map { UnsafeMutableRawPointer($0).deallocate() }
        transfer.headerList = nil
        transfer.bodyCopy?.deallocate()
        transfer.bodyCopy = nil
        release(transfer)
    }

    /// Frees the transfer's admission slot; the next waiting transfer starts on its own loop.
    private func release(_ transfer: Transfer) {
        guard let gate = transfer.gate, let next = gate.releaseSlot() else { return }
        let engine = next.engine! // set before any transfer is started
        if engine === self {
            // Not inside libcurl here: finish and abandon run after it returned.
            beginAdmitted(next)
        } else {
            engine.loop.execute { engine.beginAdmitted(next) }
        }
    }
}

/// The request's header lines as a `curl_slist` in one allocation, nodes and text together
/// (curl_slist_append would make two per header): the application owns CURLOPT_HTTPHEADER's
/// list, so it is freed with one `deallocate`. It ends with `Expect:`, which turns off libcurl's
/// 100-continue round trip for larger bodies.
package func curlHeaderList(_ headers: [(String, String)]) -> UnsafeMutablePointer<curl_slist> {
    let expect: StaticString = "Expect:", separator: StaticString = ": "
    let count = headers.count + 1
    let nodes = MemoryLayout<curl_slist>.stride * count
    let text = headers.reduce(expect.utf8CodeUnitCount + 1) { $0 + $1.0.utf8.count + 2 + $1.1.utf8.count + 1 }
    let storage = UnsafeMutableRawPointer.allocate(byteCount: nodes + text, alignment: MemoryLayout<curl_slist>.alignment)
    let list = storage.bindMemory(to: curl_slist.self, capacity: count)
    var cursor = storage + nodes
    func write(_ part: UnsafeRawBufferPointer) {
        guard let base = part.baseAddress, part.count > 0 else { return }
        cursor.copyMemory(from: base, byteCount: part.count)
        cursor += part.count
    }
    func endLine(from start: UnsafeMutableRawPointer) -> UnsafeMutablePointer<CChar> {
        cursor.storeBytes(of: 0, as: UInt8.self)
        cursor += 1
        return start.assumingMemoryBound(to: CChar.self)
    }
    for (index, header) in headers.enumerated() {
        var (name, value) = header
        let start = cursor
        name.withUTF8 { write(UnsafeRawBufferPointer($0)) }
        write(UnsafeRawBufferPointer(start: separator.utf8Start, count: separator.utf8CodeUnitCount))
        value.withUTF8 { write(UnsafeRawBufferPointer($0)) }
        (list + index).initialize(to: curl_slist(data: endLine(from: start), next: list + index + 1))
    }
    let start = cursor
    write(UnsafeRawBufferPointer(start: expect.utf8Start, count: expect.utf8CodeUnitCount))
    (list + count - 1).initialize(to: curl_slist(data: endLine(from: start), next: nil))
    return list
}
