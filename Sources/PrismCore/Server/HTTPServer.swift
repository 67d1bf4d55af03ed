import CPrismSystem
import Logging
import NIOCore
import NIOHTTP1
import PrismLoop
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Binds the listening socket and runs until SIGTERM/SIGINT, then drains: /readyz turns 503 while
/// the listener keeps serving for server.drain_delay, then it stops accepting and lets requests in
/// flight finish (up to server.shutdown_timeout), and returns. SIGHUP reloads the configuration.
public final class HTTPServer: Sendable {
    let runtime: GatewayRuntime

    public init(runtime: GatewayRuntime) {
        self.runtime = runtime
    }

    public func run(host: String, port: Int) throws {
        // Bodies up to server.max_request_body_size come from the heap and stay for the next
        // request: mapped and unmapped per request, a 1 MB body paid ~3 ms of page faults for its
        // copies (bench/large_body.py).
        if prism_malloc_keep_large_buffers() != 1 {
            runtime.gateway.logger.warning("mallopt refused the large-buffer thresholds: large bodies are mapped per request")
        }
        let runtime = self.runtime
        let gateway = runtime.gateway
        guard let loops = runtime.services.loops else { fatalError("serving needs the gateway's own loops") }
        let idle = gateway.configuration.server.idleTimeout
        let logger = gateway.logger
        let backoffLog = RateLimitedLog()
        let spare = SpareDescriptor()
        let connections = ConnectionRegistry()
        let listener = try Listener(group: loops, host: host, port: port, backlog: 1024, accepted: { loop, descriptor in
            let channel = LoopSocketChannel(loop: loop, descriptor: descriptor)
            if spare.isReleased && !spare.reacquire() {
                // Still out of descriptors: this connection took the spare's slot. Shed it, then
                // hold the slot again.
                channel.closeFuture.whenComplete { _ in _ = spare.reacquire() }
                channel.activate()
                channel.close(promise: nil)
                return
            }
            connections.add(channel)
            do {
                try channel.pipeline.syncOperations.addGatewayHandlers(GatewayHTTPHandler(runtime: runtime), runtime: runtime,
                                                                      idleTimeout: .milliseconds(idle.milliseconds))
            } catch {
                logger.error("cannot set up a connection: \(error)")
            }
            channel.activate()
        }, failed: { code in
            // Out of descriptors (EMFILE/ENFILE) or memory, accept would fail in a busy loop: wait
            // before accepting again, and say so (at most once a second), as nginx does.
            if backoffLog.due() { logger.error("accept failed (\(String(cString: strerror(code)))): pausing new connections for 200 ms") }
            // Out of descriptors, a waiting connection could never be accepted: free the spare so
            // that one accept succeeds and that connection is shed.
            if code == EMFILE || code == ENFILE { spare.release() }
            return .milliseconds(200)
        })
        listener.start()
        gateway.logger.info("prism gateway listening on \(host):\(listener.port) with \(gateway.providers.count) provider(s), \(gateway.registry.plugins.count) plugin(s)")

        let signal = TerminationSignals.wait(onHangup: { runtime.reload(trigger: "SIGHUP") })
        let activity = runtime.services.activity
        let server = runtime.gateway.configuration.server // the generation running now
        // 1. Draining: /readyz is 503 at once while the listener still accepts and serves, so a
        //    load balancer takes this replica out before any connection is refused. SIGINT (an
        //    operator's Ctrl-C) skips it; a second signal ends it.
        activity.draining.store(true, ordering: .relaxed)
        var hurry = false
        if signal == SIGTERM && server.drainDelay > .zero {
            gateway.logger.info("SIGTERM: /readyz answers 503, still serving for drain_delay \(server.drainDelay)")
            hurry = TerminationSignals.anotherArrives(within: server.drainDelay)
        }
        // 2. Stopping: no new connections; requests and streams in flight finish up to
        //    shutdown_timeout (a further signal stops waiting).
        gateway.logger.info("shutting down: no new connections, draining \(activity.inFlight.load(ordering: .relaxed)) request(s)")
        activity.stopping.store(true, ordering: .relaxed)
        listener.close()
        let deadline = monotonicNanoseconds() + UInt64(server.shutdownTimeout.milliseconds) * 1_000_000
        while !hurry && activity.inFlight.load(ordering: .relaxed) > 0 && monotonicNanoseconds() < deadline {
            hurry = TerminationSignals.anotherArrives(within: .milliseconds(20))
        }
        let left = activity.inFlight.load(ordering: .relaxed)
        if left > 0 {
            gateway.logger.warning(hurry ? "second signal: stopping with \(left) request(s) still in flight"
                                         : "shutdown_timeout reached with \(left) request(s) still in flight")
            // Each ends with an answer the client can read (a final error event in a stream) and
            // its request-log line, not a cut connection.
            for channel in connections.all { channel.pipeline.fireUserInboundEventTriggered(ShutdownDeadline()) }
            let end = monotonicNanoseconds() + 500_000_000
            while activity.inFlight.load(ordering: .relaxed) > 0 && monotonicNanoseconds() < end { usleep(5_000) }
            usleep(50_000) // the last writes leave the sockets
        }
        gateway.logger.info("stopped")
    }
}

/// The open client connections, so that shutdown can reach the requests still running.
final class ConnectionRegistry: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    func add(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        channels.withLock { $0[key] = channel }
        channel.closeFuture.whenComplete { [self] _ in _ = channels.withLock { $0.removeValue(forKey: key) } }
    }

    var all: [any Channel] { channels.withLock { Array($0.values) } }
}

/// Fired into every connection when shutdown_timeout is reached.
struct ShutdownDeadline: Sendable {}

/// One descriptor held in reserve (/dev/null) for when the process runs out of them.
final class SpareDescriptor: Sendable {
    private let descriptor = Mutex<Int32>(-1)

    init() { _ = reacquire() }

    var isReleased: Bool { descriptor.withLock { $0 < 0 } }

    func release() {
        descriptor.withLock { fd in
            if fd >= 0 { close(fd) }
            fd = -1
        }
    }

    /// Holds the spare again; false while no descriptor can be had.
    func reacquire() -> Bool {
        descriptor.withLock { fd in
            if fd < 0 { fd = open("/dev/null", O_RDONLY | O_CLOEXEC) }
            return fd >= 0
        }
    }
}

/// At most one line a second for a condition that can repeat thousands of times a second.
final class RateLimitedLog: Sendable {
    private let last = Atomic<UInt64>(0)

    func due() -> Bool {
        let now = monotonicNanoseconds()
        let previous = last.load(ordering: .relaxed)
        guard now &- previous > 1_000_000_000 || previous == 0 else { return false }
        return last.compareExchange(expected: previous, desired: now, ordering: .relaxed).exchanged
    }
}

/// SIGTERM, SIGINT and SIGHUP are blocked in every thread (call `block()` first thing in main,
/// before any thread starts, so all threads inherit the mask) and taken synchronously with
/// sigwait. A process-wide handler would race with the event loops.
public enum TerminationSignals {
    public static func block() {
        var set = signalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
        signal(SIGPIPE, SIG_IGN)
    }

    /// Returns SIGTERM or SIGINT when one arrives; calls `onHangup` for each SIGHUP meanwhile.
    static func wait(onHangup: () -> Void) -> Int32 {
        var set = signalSet()
        while true {
            var received: Int32 = 0
            guard sigwait(&set, &received) == 0 else { continue }
            if received == SIGHUP { onHangup() } else { return received }
        }
    }

    /// Waits up to `duration` for another SIGTERM or SIGINT (SIGHUP is ignored once stopping).
    static func anotherArrives(within duration: Duration) -> Bool {
        var set = signalSet()
        let end = monotonicNanoseconds() + UInt64(max(duration.milliseconds, 0)) * 1_000_000
        while true {
            let now = monotonicNanoseconds()
            guard now < end else { return false }
            let left = end - now
            var timeout = timespec(tv_sec: Int(left / 1_000_000_000), tv_nsec: Int(left % 1_000_000_000))
            let received = sigtimedwait(&set, nil, &timeout)
            if received == SIGTERM || received == SIGINT { return true }
        }
    }

    private static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGHUP)
        return set
    }
}
