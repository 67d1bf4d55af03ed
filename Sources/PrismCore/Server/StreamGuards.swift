import NIOCore
import PrismSupport
import PrismWire

// What ends a request that would otherwise hang or be cut silently: a stream that stalls, a
// buffered answer too large to hold, and shutdown reaching server.shutdown_timeout.
extension ProxyRequest {
    /// A buffered answer grew past server.max_response_body_size: the transfer is stopped and
    /// the attempt fails like a broken transfer (so failover may still answer).
    func upstreamOversized(_ attempt: UpstreamAttempt, limit: Int) {
        guard !finished, active.contains(where: { $0 === attempt }) else { return }
        if let transfer = attempt.transfer { gateway.transport.cancel(transfer) }
        upstreamComplete(attempt, status: 0, headers: HeaderBlock(), body: [],
                         failure: .tooLarge("the answer is larger than server.max_response_body_size (\(limit) bytes)"))
    }

    /// shutdown_timeout reached with this request still running: it ends now, with an error the
    /// client can read (a final error event in a stream) and its request-log line.
    func abortForShutdown() {
        guard !finished else { return }
        let message = "The gateway is shutting down: server.shutdown_timeout was reached before this answer finished."
        guard streamStarted else {
            cancelAll()
            return fail(.serviceUnavailable, "service_unavailable", "shutting_down", message)
        }
        errorCode = "shutting_down"
        endStream(withError: "service_unavailable", code: "shutting_down", message: message, status: 503)
    }
}
