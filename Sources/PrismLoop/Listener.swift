import CPrismSystem
import Dispatch
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Why the listening socket could not be opened.
package struct ListenError: Error, CustomStringConvertible {
    package let description: String
}

/// The listening socket, accepted on one loop and dealt round-robin to every loop (as NIO's
/// server bootstrap does): a connection then lives on one loop, and so do its upstream transfers.
package final class Listener: LoopDescriptorHandler, @unchecked Sendable {
    package let group: IOLoopGroup
    package let port: Int
    private let descriptor: Int32
    private let acceptLoop: IOLoop
    private let accepted: @Sendable (IOLoop, Int32) -> Void
    private let failed: @Sendable (Int32) -> TimeAmount
    // Accept-loop state.
    private var closed = false
    private var paused = false

    /// Binds `host:port` (port 0: any free port). `accepted` runs on the connection's loop with
    /// a non-blocking socket; `failed` gets accept's errno for running out of descriptors or
    /// memory and says how long to stop accepting.
    package init(group: IOLoopGroup, host: String, port: Int, backlog: Int32,
                 accepted: @escaping @Sendable (IOLoop, Int32) -> Void,
                 failed: @escaping @Sendable (Int32) -> TimeAmount) throws
    {
        self.group = group
        self.accepted = accepted
        self.failed = failed
        acceptLoop = group.loops[0]
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &found)
        guard status == 0, let first = found else {
            throw ListenError(description: "cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(found) }
        let socket = Glibc.socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else { throw ListenError(description: "socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(socket, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(socket)
            throw ListenError(description: "bind(\(host):\(port)) failed: \(reason)")
        }
        guard listen(socket, backlog) == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(socket)
            throw ListenError(description: "listen failed: \(reason)")
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) } }
        self.port = (try? SocketAddress.fromStorage(storage).port) ?? port
        descriptor = socket
    }

    /// Starts accepting.
    package func start() {
        acceptLoop.execute { self.acceptLoop.watch(self.descriptor, want: 1, handler: self) }
    }

    /// Stops accepting and closes the socket; returns once done.
    package func close() {
        let done = DispatchSemaphore(value: 0)
        acceptLoop.execute {
            if !self.closed {
                self.closed = true
                self.acceptLoop.unwatch(self.descriptor)
                Glibc.close(self.descriptor)
            }
            done.signal()
        }
        done.wait()
    }

    package func descriptorReady(_ descriptor: Int32, flags: Int32) {
        guard !closed, !paused else { return }
        for _ in 0..<16 {
            let client = prism_accept(descriptor)
            if client < 0 {
                let code = errno
                switch code {
                case EAGAIN, EWOULDBLOCK: return
                case EINTR, ECONNABORTED, EPROTO: continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    // Accepting again at once would fail in a busy loop: wait, as nginx does.
                    let pause = failed(code)
                    paused = true
                    acceptLoop.unwatch(descriptor)
                    _ = acceptLoop.scheduleTask(in: pause) {
                        self.paused = false
                        if !self.closed { self.acceptLoop.watch(self.descriptor, want: 1, handler: self) }
                    }
                    return
                default:
                    _ = failed(code)
                    return
                }
            }
            // TCP_NODELAY is a TCP-level option (IPPROTO_TCP); it needs no capability.
            var one: Int32 = 1
            setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let loop = group.nextLoop()
            if loop === acceptLoop {
                accepted(loop, client)
            } else {
                let accepted = self.accepted
                loop.execute { accepted(loop, client) }
            }
        }
    }
}
