/// A client stream's two clocks, as pure logic on the caller's clock (nanoseconds): a stream
/// whose upstream sent nothing for server.stream_idle_timeout has stalled, and a quiet client
/// gets the dialect's keep-alive once server.stream_keepalive has passed since its last bytes, so
/// proxies and SDKs do not give up on it. One timer serves both (a timer costs about 3.5k
/// instructions to set and cancel, a sixtieth of a short stream): it is due at the earlier of the
/// two moments, not re-armed per chunk. Unit-tested in process (StreamClockTests).
package struct StreamClock {
    /// What the timer found when it fired.
    package enum Tick: Equatable {
        /// The upstream sent nothing for the idle timeout: the stream fails.
        case stalled
        /// The client has had nothing for (nearly) the keep-alive interval: write one, then `clientWrote`.
        case keepAlive
        /// Neither: arm the timer again for `due`.
        case wait
    }

    private let idleTimeout: UInt64
    /// 0: no keep-alives (off, or a pass-through stream, relayed in the upstream's own chunks: an
    /// event may be split between two, nothing may go between them, and the upstream keeps it alive).
    private let keepAlive: UInt64
    package private(set) var lastUpstreamData: UInt64
    package private(set) var lastClientWrite: UInt64

    package init(idleTimeoutMilliseconds: Int64, keepAliveMilliseconds: Int64, passThrough: Bool, now: UInt64) {
        idleTimeout = UInt64(max(idleTimeoutMilliseconds, 1)) * 1_000_000
        keepAlive = passThrough ? 0 : UInt64(max(keepAliveMilliseconds, 0)) * 1_000_000
        lastUpstreamData = now
        lastClientWrite = now
    }

    package mutating func upstreamSent(at now: UInt64) { lastUpstreamData = now }

    package mutating func clientWrote(at now: UInt64) { lastClientWrite = now }

    /// When the timer is due (absolute, the caller's clock).
    package var due: UInt64 {
        let stall = lastUpstreamData + idleTimeout
        return keepAlive > 0 ? min(stall, lastClientWrite + keepAlive) : stall
    }

    /// The timer fired at `now`. `held`: the transfer is paused because the client reads slowly
    /// (server.write_timeout governs that), which is not a stall.
    package mutating func fired(at now: UInt64, held: Bool) -> Tick {
        if held { lastUpstreamData = now }
        if now &- lastUpstreamData >= idleTimeout { return .stalled }
        // A tenth early: a timer fires a little late, and a keep-alive a little early does no harm.
        if keepAlive > 0, now &- lastClientWrite >= keepAlive * 9 / 10 { return .keepAlive }
        return .wait
    }
}
