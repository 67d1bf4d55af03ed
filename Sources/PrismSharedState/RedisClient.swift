import CPrismSystem
import CHiredis
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
import PrismSupport
#endif

/// A Redis reply, copied out of hiredis's memory.
package enum RedisReply: Sendable {
    case string([UInt8])
    case integer(Int64)
    case array([RedisReply])
    case null
    case status(String)
    case error(String)

    package var integer: Int64? {
        if case let .integer(value) = self { return value }
        return nil
    }
}

/// One connection to Redis through hiredis's asynchronous API, driven by its own thread and
/// epoll loop (hiredis's event hooks below), so no caller ever blocks on the network: commands
/// are handed over through a locked queue and an eventfd, replies come back on this thread in
/// command order (pipelined on the one connection).
///
/// The connection reconnects by itself every second while Redis is unreachable. A command that
/// cannot be sent (not connected), or whose reply does not come within `commandTimeout`, or whose
/// connection breaks, completes with nil: the caller falls back.
package final class RedisClient: @unchecked Sendable {
    package typealias Completion = @Sendable (RedisReply?) -> Void

    package let address: String
    private let host: String
    private let port: Int32
    private let password: String
    private let database: Int
    private let commandTimeoutNanoseconds: UInt64
    private let logger: Logger

    /// Commands handed to the client's thread; `stopped` once that thread has ended (a command
    /// submitted then fails at once instead of waiting forever).
    private let submissions = Mutex<(queue: [(arguments: [[UInt8]], done: Completion)], stopped: Bool)>(([], false))
    private let connectedFlag = Atomic<Bool>(false)
    /// Monotonic deadline after which the client's thread closes the connection and ends (0 = never).
    private let stopAt = Atomic<UInt64>(0)
    private let epollDescriptor: Int32
    private let wakeDescriptor: Int32
    private var thread = pthread_t()

    // Owned by the client's thread.
    private var context: UnsafeMutablePointer<redisAsyncContext>?
    private var connected = false
    private var reading = false
    private var writing = false
    private var registered: Int32 = -1
    /// Deadlines of the commands in flight, in send order (replies come back in that order).
    private var deadlines: [UInt64] = []
    private var deadlineHead = 0
    private var reconnectAt: UInt64 = 0
    private var outageReported = false

    package init(host: String, port: Int32, password: String, database: Int, commandTimeoutMilliseconds: Int, logger: Logger) {
        self.host = host
        self.port = port
        self.password = password
        self.database = database
        address = "\(host):\(port)"
        commandTimeoutNanoseconds = UInt64(max(commandTimeoutMilliseconds, 1)) * 1_000_000
        self.logger = logger
        epollDescriptor = prism_epoll_create()
        wakeDescriptor = prism_eventfd_create()
        _ = prism_epoll_control(epollDescriptor, EPOLL_CTL_ADD, wakeDescriptor, 1)
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&thread, nil, { context in
            let client = Unmanaged<RedisClient>.fromOpaque(context!).takeRetainedValue()
            client.run()
            return nil
        }, box)
    }

    /// Connected right now (commands sent now will most likely be answered).
    package var isConnected: Bool { connectedFlag.load(ordering: .acquiring) }

    /// Closes the connection and ends the thread after `seconds` (commands then fail at once).
    package func stop(afterSeconds seconds: UInt32) {
        stopAt.store(monotonicNanoseconds() + UInt64(seconds) * 1_000_000_000, ordering: .relaxed)
        prism_eventfd_signal(wakeDescriptor)
    }

    /// Sends one command; `done` runs on the client's thread with the reply, or nil on failure.
    package func send(_ arguments: [[UInt8]], _ done: @escaping Completion) {
        guard isConnected else { return done(nil) }
        let accepted = submissions.withLock { state -> Bool in
            guard !state.stopped else { return false }
            state.queue.append((arguments, done))
            return true
        }
        guard accepted else { return done(nil) }
        prism_eventfd_signal(wakeDescriptor)
    }

    // MARK: The client's thread

    private func run() {
        var readyDescriptors = [Int32](repeating: 0, count: 8)
        var readyFlags = [Int32](repeating: 0, count: 8)
        connect()
        while true {
            let taken = submissions.withLock { state -> [(arguments: [[UInt8]], done: Completion)] in
                let taken = state.queue
                state.queue.removeAll(keepingCapacity: true)
                return taken
            }
            for command in taken { issue(command.arguments, command.done) }

            let now = monotonicNanoseconds()
            var wait: Int32 = 1000
            if context == nil { wait = reconnectAt <= now ? 0 : Int32(clamping: (reconnectAt - now) / 1_000_000 + 1) }
            if deadlineHead < deadlines.count {
                let deadline = deadlines[deadlineHead]
                wait = min(wait, deadline <= now ? 0 : Int32(clamping: (deadline - now) / 1_000_000 + 1))
            }
            let count = prism_epoll_wait(epollDescriptor, &readyDescriptors, &readyFlags, 8, wait)
            for index in 0..<Int(max(count, 0)) {
                let descriptor = readyDescriptors[index]
                if descriptor == wakeDescriptor {
                    prism_eventfd_drain(wakeDescriptor)
                    continue
                }
                let flags = readyFlags[index]
                // Errors and hang-ups are read so that hiredis notices and reports them.
                if let context, reading || flags & 4 != 0, flags & (1 | 4) != 0 { redisAsyncHandleRead(context) }
                if let context, writing, flags & 2 != 0 { redisAsyncHandleWrite(context) }
            }
            if deadlineHead < deadlines.count, deadlines[deadlineHead] <= monotonicNanoseconds(), let context {
                reportOutage("no reply within \(commandTimeoutNanoseconds / 1_000_000) ms")
                redisAsyncFree(context) // fails every command in flight (their callbacks get NULL)
                connectionLost()
            }
            let stopDeadline = stopAt.load(ordering: .relaxed)
            if stopDeadline != 0, monotonicNanoseconds() >= stopDeadline {
                connectedFlag.store(false, ordering: .releasing)
                if let context { redisAsyncFree(context) }
                context = nil
                let left = submissions.withLock { state -> [(arguments: [[UInt8]], done: Completion)] in
                    state.stopped = true
                    defer { state.queue.removeAll() }
                    return state.queue
                }
                for command in left { command.done(nil) }
                close(epollDescriptor)
                close(wakeDescriptor)
                logger.info("redis at \(address): connection closed (the configuration no longer uses it)")
                return
            }
            if context == nil, monotonicNanoseconds() >= reconnectAt { connect() }
        }
    }

    private func issue(_ arguments: [[UInt8]], _ done: @escaping Completion) {
        guard let context, connected else { return done(nil) }
        let box = Unmanaged.passRetained(CommandBox(client: self, done: done)).toOpaque()
        let status = withArgumentVector(arguments) { count, vector, lengths in
            redisAsyncCommandArgv(context, commandCallback, box, count, vector, lengths)
        }
        if status != REDIS_OK {
            Unmanaged<CommandBox>.fromOpaque(box).release()
            return done(nil)
        }
        deadlines.append(monotonicNanoseconds() + commandTimeoutNanoseconds)
    }

    fileprivate func commandFinished() {
        deadlineHead += 1
        if deadlineHead == deadlines.count || deadlineHead > 1024 {
            deadlines.removeFirst(deadlineHead)
            deadlineHead = 0
        }
    }

    private func connect() {
        reconnectAt = monotonicNanoseconds() + 1_000_000_000
        guard let created = redisAsyncConnect(host, port) else { return }
        if prism_redis_error(created) != 0 {
            reportOutage(String(cString: prism_redis_error_text(created)))
            redisAsyncFree(created)
            return
        }
        context = created
        prism_redis_set_data(created, Unmanaged.passUnretained(self).toOpaque())
        prism_redis_set_event_hooks(created, Unmanaged.passUnretained(self).toOpaque(),
                                    { RedisClient.from($0).want(read: true) },
                                    { RedisClient.from($0).want(read: false) },
                                    { RedisClient.from($0).want(write: true) },
                                    { RedisClient.from($0).want(write: false) },
                                    { RedisClient.from($0).unregister() })
        redisAsyncSetConnectCallback(created) { context, status in
            RedisClient.from(prism_redis_get_data(context)).connectFinished(status == REDIS_OK, context: context)
        }
        redisAsyncSetDisconnectCallback(created) { context, _ in
            RedisClient.from(prism_redis_get_data(context)).connectionLost()
        }
        // hiredis reports the connect when the socket first turns writable.
        want(write: true)
    }

    private func connectFinished(_ succeeded: Bool, context: UnsafePointer<redisAsyncContext>?) {
        guard succeeded else {
            reportOutage(context.map { String(cString: prism_redis_error_text($0)) } ?? "connection failed")
            // hiredis frees the context after this callback.
            self.context = nil
            registered = -1
            return
        }
        connected = true
        if !password.isEmpty {
            issue([Array("AUTH".utf8), Array(password.utf8)]) { [logger, address] reply in
                if case let .error(message)? = reply {
                    logger.error("redis at \(address) refused AUTH: \(message)")
                }
            }
        }
        if database != 0 {
            issue([Array("SELECT".utf8), Array(String(database).utf8)]) { [logger, address] reply in
                if case let .error(message)? = reply { logger.error("redis at \(address): SELECT failed: \(message)") }
            }
        }
        connectedFlag.store(true, ordering: .releasing)
        if outageReported {
            outageReported = false
            logger.notice("redis at \(address) reachable again: shared rate limits and cache resumed")
        } else {
            logger.info("redis at \(address) connected")
        }
    }

    private func connectionLost() {
        connected = false
        connectedFlag.store(false, ordering: .releasing)
        context = nil
        registered = -1
        reading = false
        writing = false
        deadlines.removeAll()
        deadlineHead = 0
        reconnectAt = monotonicNanoseconds() + 1_000_000_000
        reportOutage("connection lost")
    }

    private func reportOutage(_ reason: String) {
        guard !outageReported else { return }
        outageReported = true
        logger.warning("redis at \(address) unreachable (\(reason)): rate limits count in this instance only and the cache is skipped until it is back; reconnecting every second")
    }

    // MARK: hiredis event hooks (called on this thread from inside hiredis)

    private func want(read: Bool? = nil, write: Bool? = nil) {
        if let read { reading = read }
        if let write { writing = write }
        guard let context else { return }
        let descriptor = prism_redis_fd(context)
        let interest: Int32 = (reading ? 1 : 0) | (writing ? 2 : 0)
        if registered != descriptor {
            registered = descriptor
            _ = prism_epoll_control(epollDescriptor, EPOLL_CTL_ADD, descriptor, interest)
        } else {
            _ = prism_epoll_control(epollDescriptor, EPOLL_CTL_MOD, descriptor, interest)
        }
    }

    private func unregister() {
        if registered >= 0 { _ = prism_epoll_control(epollDescriptor, EPOLL_CTL_DEL, registered, 0) }
        registered = -1
        reading = false
        writing = false
    }

    fileprivate static func from(_ pointer: UnsafeMutableRawPointer?) -> RedisClient {
        Unmanaged<RedisClient>.fromOpaque(pointer!).takeUnretainedValue()
    }
}

private final class CommandBox {
    package let client: RedisClient
    package let done: RedisClient.Completion
    package init(client: RedisClient, done: @escaping RedisClient.Completion) {
        self.client = client
        self.done = done
    }
}

private let commandCallback: @convention(c) (UnsafeMutablePointer<redisAsyncContext>?, UnsafeMutableRawPointer?,
                                             UnsafeMutableRawPointer?) -> Void = { _, reply, privateData in
    guard let privateData else { return }
    let box = Unmanaged<CommandBox>.fromOpaque(privateData).takeRetainedValue()
    box.client.commandFinished()
    box.done(reply.map { RedisReply(copying: $0.assumingMemoryBound(to: redisReply.self)) })
}

extension RedisReply {
    package init(copying reply: UnsafeMutablePointer<redisReply>) {
        let value = reply.pointee
        switch Int32(value.type) {
        case REDIS_REPLY_STRING:
            self = .string(Array(UnsafeRawBufferPointer(start: value.str, count: Int(value.len))))
        case REDIS_REPLY_INTEGER:
            self = .integer(Int64(value.integer))
        case REDIS_REPLY_ARRAY:
            var items: [RedisReply] = []
            for index in 0..<Int(value.elements) {
                if let element = value.element[index] { items.append(RedisReply(copying: element)) }
            }
            self = .array(items)
        case REDIS_REPLY_STATUS:
            self = .status(String(decoding: UnsafeRawBufferPointer(start: value.str, count: Int(value.len)), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            self = .error(String(decoding: UnsafeRawBufferPointer(start: value.str, count: Int(value.len)), as: UTF8.self))
        default:
            self = .null
        }
    }
}

/// Calls `body` with hiredis's argc/argv/argvlen view of `arguments` (binary-safe).
private func withArgumentVector<Result>(_ arguments: [[UInt8]],
                                        _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>,
                                                 UnsafeMutablePointer<Int>) -> Result) -> Result
{
    let count = arguments.count
    let vector = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: max(count, 1))
    let lengths = UnsafeMutablePointer<Int>.allocate(capacity: max(count, 1))
    var storage: [UnsafeMutableRawPointer] = []
    defer {
        storage.forEach { $0.deallocate() }
        vector.deallocate()
        lengths.deallocate()
    }
    for (index, argument) in arguments.enumerated() {
        let copy = UnsafeMutableRawPointer.allocate(byteCount: max(argument.count, 1), alignment: 1)
        argument.withUnsafeBytes { if let base = $0.baseAddress { copy.copyMemory(from: base, byteCount: $0.count) } }
        storage.append(copy)
        vector[index] = UnsafePointer(copy.assumingMemoryBound(to: CChar.self))
        lengths[index] = argument.count
    }
    return body(Int32(count), vector, lengths)
}
