import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Binds the listening socket and runs until SIGTERM/SIGINT, then drains: stops accepting, lets
/// requests in flight finish (up to server.shutdown_timeout), and returns. SIGHUP reloads the
/// configuration.
public final class HTTPServer: Sendable {
    let runtime: GatewayRuntime
    let group: MultiThreadedEventLoopGroup

    public init(runtime: GatewayRuntime) {
        self.runtime = runtime
        group = MultiThreadedEventLoopGroup(numberOfThreads: HTTPServer.eventLoopThreads())
    }

    /// One event loop per core (measured here: on 2 cores, 2 loops beat 1 by ~25% throughput even
    /// with the transport thread). `PRISM_EVENT_LOOP_THREADS` overrides it.
    static func eventLoopThreads() -> Int {
        if let text = getenv("PRISM_EVENT_LOOP_THREADS"), let count = Int(String(cString: text)), count > 0 {
            return count
        }
        return System.coreCount
    }

    public func run(host: String, port: Int) throws {
        let runtime = self.runtime
        let gateway = runtime.gateway
        let idle = gateway.configuration.server.idleTimeout
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        IdleStateHandler(allTimeout: .milliseconds(idle.milliseconds)))
                    try channel.pipeline.syncOperations.addHandler(GatewayHTTPHandler(runtime: runtime))
                }
            }
        let channel = try bootstrap.bind(host: host, port: port).wait()
        gateway.logger.info("prism gateway listening on \(host):\(channel.localAddress?.port ?? port) with \(gateway.providers.count) provider(s), \(gateway.registry.plugins.count) plugin(s)")

        TerminationSignals.wait(onHangup: { runtime.reload(trigger: "SIGHUP") })
        let activity = runtime.services.activity
        gateway.logger.info("shutting down: no new connections, draining \(activity.inFlight.load(ordering: .relaxed)) request(s)")
        activity.draining.store(true, ordering: .relaxed)
        try? channel.close().wait()
        let shutdownTimeout = runtime.gateway.configuration.server.shutdownTimeout
        let deadline = monotonicNanoseconds() + UInt64(shutdownTimeout.milliseconds) * 1_000_000
        while activity.inFlight.load(ordering: .relaxed) > 0 && monotonicNanoseconds() < deadline {
            usleep(20_000)
        }
        let left = activity.inFlight.load(ordering: .relaxed)
        if left > 0 { gateway.logger.warning("shutdown_timeout reached with \(left) request(s) still in flight") }
        gateway.logger.info("stopped")
    }
}

/// SIGTERM, SIGINT and SIGHUP are blocked in every thread (call `block()` first thing in main,
/// before any thread starts, so all threads inherit the mask) and taken synchronously with
/// sigwait. A process-wide handler would race with the event loop and libcurl threads.
public enum TerminationSignals {
    public static func block() {
        var set = signalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
        signal(SIGPIPE, SIG_IGN)
    }

    /// Returns when SIGTERM or SIGINT arrives; calls `onHangup` for each SIGHUP meanwhile.
    static func wait(onHangup: () -> Void) {
        var set = signalSet()
        while true {
            var received: Int32 = 0
            guard sigwait(&set, &received) == 0 else { continue }
            if received == SIGHUP { onHangup() } else { return }
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
