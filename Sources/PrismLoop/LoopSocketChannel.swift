import CPrismSystem
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A client's TCP connection on an `IOLoop`, as a NIO `Channel`: the pipeline (HTTP codec and the
/// gateway's handlers) is NIO's own; this class only moves bytes between the socket and it.
/// It keeps NIO's contract where the handlers rely on it: reads only when the pipeline asked
/// (`read()`, which the HTTP pipelining handler may hold back), write promises completed in
/// order once the bytes are in the kernel, writability from 64 KiB pending down to 32 KiB,
/// `close(mode: .output)` as a half close, and an error closes the connection.
package final class LoopSocketChannel: Channel, ChannelCore, LoopDescriptorHandler, @unchecked Sendable {
    package let loop: IOLoop
    package let descriptor: Int32
    package let allocator = ByteBufferAllocator()
    private var _pipeline: ChannelPipeline!
    private let closePromise: EventLoopPromise<Void>
    private let writableFlag = Atomic<Bool>(true)
    private let activeFlag = Atomic<Bool>(true)
    // Loop-thread state.
    private var isOpen = true
    private var outputClosed = false
    /// `close(mode: .output)` asked while flushed bytes were still unsent: the shutdown waits for
    /// them (this promise completes then).
    private var outputClosing = false
    private var outputClosePromise: EventLoopPromise<Void>?
    private var inputClosed = false
    private var autoRead = true
    private var allowRemoteHalfClosure = false
    private var maxMessagesPerRead = 16
    private var readPending = false
    /// The socket may hold unread bytes (or an end): set by an edge, cleared once a read found it
    /// drained. Edge-triggered epoll reports new bytes once, so they are remembered here until
    /// the pipeline asks for a read.
    private var socketReadable = false
    /// The peer closed its side (EPOLLRDHUP): reads go on until they reach the end.
    private var peerClosed = false
    private var readScheduled = false
    private var pending = CircularBuffer<(buffer: ByteBuffer, promise: EventLoopPromise<Void>?)>(initialCapacity: 8)
    private var flushedCount = 0
    private var pendingBytes = 0
    private var readSize = 2048
    private var highWaterMark = 64 * 1024
    private var lowWaterMark = 32 * 1024

    package init(loop: IOLoop, descriptor: Int32) {
        self.loop = loop
        self.descriptor = descriptor
        closePromise = loop.makePromise()
        // Read once, now: after close the number may belong to another socket.
        localAddress = try? LoopSocketChannel.address(of: descriptor, local: true)
        remoteAddress = try? LoopSocketChannel.address(of: descriptor, local: false)
        _pipeline = ChannelPipeline(channel: self)
    }

    /// Registers the socket on its loop and starts the pipeline (after the initializer added the
    /// handlers): registered, active, then the first read.
    package func activate() {
        // Registered once, edge-triggered, for everything: no epoll_ctl per request as reads
        // are asked for and held back.
        loop.watch(descriptor, want: 1 | 2 | 4 | 8, handler: self)
        pipeline.syncOperations.fireChannelRegistered()
        pipeline.syncOperations.fireChannelActive()
        if isOpen && autoRead { pipeline.syncOperations.read() }
    }

    // MARK: Channel

    package var eventLoop: EventLoop { loop }
    package var pipeline: ChannelPipeline { _pipeline }
    package var closeFuture: EventLoopFuture<Void> { closePromise.futureResult }
    package var parent: Channel? { nil }
    package var _channelCore: ChannelCore { self }
    package var isWritable: Bool { writableFlag.load(ordering: .relaxed) }
    package var isActive: Bool { activeFlag.load(ordering: .relaxed) }
    package let localAddress: SocketAddress?
    package let remoteAddress: SocketAddress?

    package func setOption<Option: ChannelOption>(_ option: Option, value: Option.Value) -> EventLoopFuture<Void> {
        if loop.inEventLoop {
            return loop.makeCompletedFuture { try setOption0(option, value: value) }
        }
        let box = UnsafeTransfer((option, value))
        return loop.submit { try self.setOption0(box.value.0, value: box.value.1) }
    }

    package func getOption<Option: ChannelOption>(_ option: Option) -> EventLoopFuture<Option.Value> {
        if loop.inEventLoop {
            return loop.makeCompletedFuture { try getOption0(option) }
        }
        let box = UnsafeTransfer(option)
        return loop.submit { UnsafeTransfer(try self.getOption0(box.value)) }.map { $0.value }
    }

    private func setOption0<Option: ChannelOption>(_ option: Option, value: Option.Value) throws {
        switch option {
        case is ChannelOptions.Types.AutoReadOption:
            let enable = value as! Bool
            let wasOff = !autoRead
            autoRead = enable
            if enable && wasOff && isOpen { pipeline.syncOperations.read() }
        case is ChannelOptions.Types.AllowRemoteHalfClosureOption:
            allowRemoteHalfClosure = value as! Bool
        case is ChannelOptions.Types.MaxMessagesPerReadOption:
            maxMessagesPerRead = max(Int(value as! UInt), 1)
        case is ChannelOptions.Types.WriteBufferWaterMarkOption:
            let marks = value as! ChannelOptions.Types.WriteBufferWaterMark
            (lowWaterMark, highWaterMark) = (marks.low, marks.high)
        case is ChannelOptions.Types.SocketOption:
            break // set once at accept (TCP_NODELAY)
        default:
            throw ChannelError.operationUnsupported
        }
    }

    private func getOption0<Option: ChannelOption>(_ option: Option) throws -> Option.Value {
        switch option {
        case is ChannelOptions.Types.AutoReadOption: return autoRead as! Option.Value
        case is ChannelOptions.Types.AllowRemoteHalfClosureOption: return allowRemoteHalfClosure as! Option.Value
        case is ChannelOptions.Types.MaxMessagesPerReadOption: return UInt(maxMessagesPerRead) as! Option.Value
        case is ChannelOptions.Types.WriteBufferWaterMarkOption:
            return ChannelOptions.Types.WriteBufferWaterMark(low: lowWaterMark, high: highWaterMark) as! Option.Value
        default: throw ChannelError.operationUnsupported
        }
    }

    // MARK: ChannelCore (loop thread)

    package func localAddress0() throws -> SocketAddress {
        guard let localAddress else { throw ChannelError.operationUnsupported }
        return localAddress
    }

    package func remoteAddress0() throws -> SocketAddress {
        guard let remoteAddress else { throw ChannelError.operationUnsupported }
        return remoteAddress
    }

    private static func address(of descriptor: Int32, local: Bool) throws -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                local ? getsockname(descriptor, $0, &length) : getpeername(descriptor, $0, &length)
            }
        }
        guard result == 0 else { throw IOError(errnoCode: errno, reason: local ? "getsockname" : "getpeername") }
        return try SocketAddress.fromStorage(storage)
    }

    package func register0(promise: EventLoopPromise<Void>?) { promise?.succeed(()) }
    package func registerAlreadyConfigured0(promise: EventLoopPromise<Void>?) { promise?.succeed(()) }
    package func bind0(to: SocketAddress, promise: EventLoopPromise<Void>?) { promise?.fail(ChannelError.operationUnsupported) }
    package func connect0(to: SocketAddress, promise: EventLoopPromise<Void>?) { promise?.fail(ChannelError.operationUnsupported) }
    package func triggerUserOutboundEvent0(_ event: Any, promise: EventLoopPromise<Void>?) {
        promise?.fail(ChannelError.operationUnsupported)
    }
    package func channelRead0(_ data: NIOAny) {}
    package func errorCaught0(error: Error) {}

    package func write0(_ data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard isOpen else { promise?.fail(ChannelError.ioOnClosedChannel); return }
        guard !outputClosed, !outputClosing else { promise?.fail(ChannelError.outputClosed); return }
        guard case let .byteBuffer(buffer) = unwrapData(data, as: IOData.self) else {
            promise?.fail(ChannelError.operationUnsupported)
            return
        }
        pending.append((buffer, promise))
        pendingBytes += buffer.readableBytes
        if pendingBytes > highWaterMark, writableFlag.load(ordering: .relaxed) {
            writableFlag.store(false, ordering: .relaxed)
            pipeline.syncOperations.fireChannelWritabilityChanged()
        }
    }

    package func flush0() {
        guard isOpen else { return }
        flushedCount = pending.count
        writeFlushed()
    }

    package func read0() {
        guard isOpen, !inputClosed else { return }
        readPending = true
        guard socketReadable, !readScheduled else { return }
        // Bytes arrived while no read was asked for (their edge has passed): read them on the
        // next turn, outside the pipeline call that asked.
        readScheduled = true
        loop.execute {
            self.readScheduled = false
            if self.isOpen, self.readPending, self.socketReadable { self.readFromSocket() }
        }
    }

    package func close0(error: Error, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard isOpen else { promise?.fail(ChannelError.alreadyClosed); return }
        switch mode {
        case .output:
            guard !outputClosed, !outputClosing else { promise?.fail(ChannelError.outputClosed); return }
            // What was written but not flushed is dropped; what was flushed goes out first.
            while pending.count > flushedCount {
                let entry = pending.removeLast()
                pendingBytes -= entry.buffer.readableBytes
                entry.promise?.fail(ChannelError.outputClosed)
            }
            if flushedCount > 0 {
                outputClosing = true
                outputClosePromise = promise
            } else {
                shutdownOutput(promise)
            }
        case .input:
            guard !inputClosed else { promise?.fail(ChannelError.inputClosed); return }
            inputClosed = true
            readPending = false
            shutdown(descriptor, Int32(SHUT_RD))
            promise?.succeed(())
            pipeline.syncOperations.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        case .all:
            isOpen = false
            activeFlag.store(false, ordering: .relaxed)
            loop.unwatch(descriptor)
            Glibc.close(descriptor)
            failPending(error)
            promise?.succeed(())
            pipeline.syncOperations.fireChannelInactive()
            pipeline.syncOperations.fireChannelUnregistered()
            loop.execute {
                // Later: a handler may still be walking the pipeline.
                self.removeHandlers(pipeline: self.pipeline)
                self.closePromise.succeed(())
            }
        }
    }

    private func shutdownOutput(_ promise: EventLoopPromise<Void>?) {
        outputClosing = false
        outputClosed = true
        shutdown(descriptor, Int32(SHUT_WR))
        promise?.succeed(())
        pipeline.syncOperations.fireUserInboundEventTriggered(ChannelEvent.outputClosed)
    }

    // MARK: Socket events

    package func descriptorReady(_ descriptor: Int32, flags: Int32) {
        // After the input ended (a half close allowed), readiness to read and the peer's close
        // are old news.
        let flags = inputClosed ? flags & ~(1 | 8) : flags
        if flags & 2 != 0, flushedCount > 0 { writeFlushed() }
        guard isOpen else { return }
        if flags & (1 | 4 | 8) != 0 { socketReadable = true }
        if flags & 8 != 0 { peerClosed = true }
        if flags & 1 != 0, readPending {
            readFromSocket()
        } else if flags & 8 != 0 {
            // The client closed its side while no read was asked for (an answer is being written,
            // a stream is waiting for upstream bytes): it is gone, so the request is cancelled
            // at once rather than when the next write fails.
            close0(error: ChannelError.eof, mode: .all, promise: nil)
        } else if flags & 4 != 0 {
            // Hung up or failed while not reading: nothing more can be sent either.
            if readPending { readFromSocket() } else { close0(error: IOError(errnoCode: ECONNRESET, reason: "socket"), mode: .all, promise: nil) }
        }
    }

    private func readFromSocket() {
        guard readPending, !inputClosed else { return }
        readPending = false
        var delivered = false
        for _ in 0..<maxMessagesPerRead {
            var buffer = allocator.buffer(capacity: readSize)
            let capacity = buffer.writableBytes
            var failure: Int32 = 0
            let count = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 0) { space -> Int in
                while true {
                    let result = Glibc.read(descriptor, space.baseAddress, space.count)
                    if result >= 0 { return result }
                    if errno == EINTR { continue }
                    failure = errno
                    return 0
                }
            }
            if count > 0 {
                if count == capacity { readSize = min(readSize * 2, 64 * 1024) } else if count < capacity / 4 {
                    readSize = max(readSize / 2, 2048)
                }
                delivered = true
                pipeline.syncOperations.fireChannelRead(NIOAny(buffer))
                guard isOpen, !inputClosed else { return }
                if count < capacity { // drained: the next bytes bring a new edge (the end has none)
                    socketReadable = peerClosed
                    break
                }
                continue
            }
            if failure == EAGAIN || failure == EWOULDBLOCK {
                socketReadable = false
                break
            }
            if delivered { pipeline.syncOperations.fireChannelReadComplete() }
            guard isOpen else { return }
            if failure != 0 {
                pipeline.syncOperations.fireErrorCaught(IOError(errnoCode: failure, reason: "read"))
                if isOpen { close0(error: IOError(errnoCode: failure, reason: "read"), mode: .all, promise: nil) }
            } else if allowRemoteHalfClosure {
                inputClosed = true
                pipeline.syncOperations.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            } else {
                close0(error: ChannelError.eof, mode: .all, promise: nil)
            }
            return
        }
        if delivered { pipeline.syncOperations.fireChannelReadComplete() }
        guard isOpen else { return }
        // With bytes left (maxMessagesPerRead reached), the read asked for here is scheduled.
        if autoRead { pipeline.syncOperations.read() }
    }

    /// Writes what was flushed, as far as the socket takes it; the rest waits for writability.
    private func writeFlushed() {
        var completed: [EventLoopPromise<Void>] = []
        while flushedCount > 0 {
            var vectors: [iovec] = []
            vectors.reserveCapacity(min(flushedCount, 16))
            let (written, failure) = gather(0, limit: min(flushedCount, 16), into: &vectors)
            if written < 0 {
                if failure == EAGAIN || failure == EWOULDBLOCK { break }
                if failure == EINTR { continue }
                let error = IOError(errnoCode: failure, reason: "sendmsg")
                for promise in completed { promise.succeed(()) }
                pipeline.syncOperations.fireErrorCaught(error)
                if isOpen { close0(error: error, mode: .all, promise: nil) }
                return
            }
            var left = written
            var removed = 0
            while left > 0 || (flushedCount > 0 && pending.first!.buffer.readableBytes == 0) {
                let size = pending.first!.buffer.readableBytes
                if size <= left {
                    let entry = pending.removeFirst()
                    flushedCount -= 1
                    pendingBytes -= size
                    left -= size
                    removed += 1
                    if let promise = entry.promise { completed.append(promise) }
                } else {
                    pending[pending.startIndex].buffer.moveReaderIndex(forwardBy: left)
                    pendingBytes -= left
                    left = 0
                    break
                }
            }
            if written == 0 && removed == 0 { break }
        }
        // Bytes left: the socket's next writable edge brings `descriptorReady` back here.
        // The promises first, then writability, as NIO does.
        for promise in completed { promise.succeed(()) }
        guard isOpen else { return }
        if outputClosing, flushedCount == 0 { shutdownOutput(outputClosePromise.take()) }
        if pendingBytes < lowWaterMark, !writableFlag.load(ordering: .relaxed) {
            writableFlag.store(true, ordering: .relaxed)
            pipeline.syncOperations.fireChannelWritabilityChanged()
        }
    }

    /// One writev over the first `limit` pending buffers (each borrowed for the call).
    private func gather(_ position: Int, limit: Int, into vectors: inout [iovec]) -> (Int, Int32) {
        if position == limit {
            let result = vectors.withUnsafeBufferPointer { prism_send_vectors(descriptor, $0.baseAddress, Int32($0.count)) }
            return (result, result < 0 ? errno : 0)
        }
        let index = pending.index(pending.startIndex, offsetBy: position)
        return pending[index].buffer.withUnsafeReadableBytes { bytes in
            vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count))
            return gather(position + 1, limit: limit, into: &vectors)
        }
    }

    private func failPending(_ error: Error) {
        let failed = pending
        pending.removeAll()
        flushedCount = 0
        pendingBytes = 0
        outputClosing = false
        for entry in failed { entry.promise?.fail(error) }
        outputClosePromise.take()?.fail(error)
    }
}

/// Moves a value the compiler cannot prove Sendable onto a loop (it is used there only).
package struct UnsafeTransfer<Value>: @unchecked Sendable {
    package let value: Value
    package init(_ value: Value) { self.value = value }
}

extension SocketAddress {
    static func fromStorage(_ storage: sockaddr_storage) throws -> SocketAddress {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            let address = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee } }
            return SocketAddress(address, host: "")
        case AF_INET6:
            let address = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee } }
            return SocketAddress(address, host: "")
        default:
            throw ChannelError.operationUnsupported
        }
    }
}
