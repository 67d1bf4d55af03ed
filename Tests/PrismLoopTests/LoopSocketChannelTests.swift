import Dispatch
import NIOCore
import PrismLoop
import Synchronization
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Records what reaches the end of the pipeline; echoes when asked.
private final class Recorder: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let received = Mutex<[UInt8]>([])
    let writability = Mutex<[Bool]>([])
    let events = Mutex<[String]>([])
    let echo: Bool

    init(echo: Bool) { self.echo = echo }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        received.withLock { $0 += buffer.readableBytesView }
        if echo { context.writeAndFlush(wrapOutboundOut(buffer), promise: nil) }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writability.withLock { $0.append(context.channel.isWritable) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent { events.withLock { $0.append("\(event)") } }
    }

    func channelInactive(context: ChannelHandlerContext) {
        events.withLock { $0.append("inactive") }
    }
}

final class LoopSocketChannelTests: XCTestCase {
    static let group = IOLoopGroup(count: 1)

    /// A connected pair: the channel's end (non-blocking, on the loop) and the test's (blocking).
    private func makeChannel(_ recorder: Recorder, autoRead: Bool = true) throws -> (LoopSocketChannel, Int32) {
        var pair: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
        _ = fcntl(pair[0], F_SETFL, fcntl(pair[0], F_GETFL) | O_NONBLOCK)
        let loop = Self.group.loops[0]
        let descriptor = pair[0]
        let channel = try loop.submit { () -> UnsafeTransfer<LoopSocketChannel> in
            let channel = LoopSocketChannel(loop: loop, descriptor: descriptor)
            try channel.pipeline.syncOperations.addHandler(recorder)
            if !autoRead { _ = channel.setOption(ChannelOptions.autoRead, value: false) } // completed at once on the loop
            channel.activate()
            return UnsafeTransfer(channel)
        }.wait().value
        return (channel, pair[1])
    }

    private func waitFor(_ condition: () -> Bool) -> Bool {
        for _ in 0..<500 {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    private func readAvailable(_ descriptor: Int32, upTo count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let got = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, count) }
        return Array(bytes.prefix(max(got, 0)))
    }

    func testReadsReachThePipelineAndWritesReachThePeer() throws {
        let recorder = Recorder(echo: true)
        let (channel, peer) = try makeChannel(recorder)
        defer { close(peer) }
        let message = Array("hello, loop".utf8)
        XCTAssertEqual(message.withUnsafeBytes { write(peer, $0.baseAddress, $0.count) }, message.count)
        var echoed: [UInt8] = []
        while echoed.count < message.count { echoed += readAvailable(peer, upTo: 64) }
        XCTAssertEqual(echoed, message)
        XCTAssertEqual(recorder.received.withLock { $0 }, message)
        try channel.close().wait()
        try channel.closeFuture.wait()
        XCTAssertEqual(recorder.events.withLock { $0 }, ["inactive"])
    }

    func testWritabilityFollowsTheWaterMarksAndEveryPromiseCompletesInOrder() throws {
        let recorder = Recorder(echo: false)
        let (channel, peer) = try makeChannel(recorder)
        defer { close(peer) }
        // The peer reads nothing: 1 MiB cannot all enter the socket buffers.
        let completed = Mutex<[Int]>([])
        let chunk = ByteBuffer(repeating: 0x61, count: 16 * 1024)
        try channel.eventLoop.submit {
            for number in 0..<64 {
                channel.write(chunk).whenSuccess { completed.withLock { $0.append(number) } }
            }
            channel.flush()
        }.wait()
        XCTAssertTrue(waitFor { recorder.writability.withLock { $0 } == [false] })
        XCTAssertFalse(channel.isWritable)
        // Drain: the rest goes out as the socket takes it, and the channel turns writable again.
        var total = 0
        while total < 64 * 16 * 1024 { total += readAvailable(peer, upTo: 256 * 1024).count }
        XCTAssertEqual(total, 64 * 16 * 1024)
        XCTAssertTrue(waitFor { completed.withLock { $0.count } == 64 })
        XCTAssertEqual(completed.withLock { $0 }, Array(0..<64))
        XCTAssertEqual(recorder.writability.withLock { $0 }, [false, true])
        XCTAssertTrue(channel.isWritable)
        try channel.close().wait()
    }

    /// Edge-triggered: bytes that arrive while no read is asked for have had their edge; they must
    /// still be read once the pipeline asks.
    func testBytesThatArrivedBeforeAReadWasAskedForAreReadWhenItIs() throws {
        let recorder = Recorder(echo: false)
        let (channel, peer) = try makeChannel(recorder, autoRead: false)
        defer { close(peer) }
        _ = "early".withCString { write(peer, $0, 5) }
        usleep(50_000)
        XCTAssertTrue(recorder.received.withLock { $0.isEmpty })
        channel.read()
        XCTAssertTrue(waitFor { recorder.received.withLock { $0 } == Array("early".utf8) })
        try channel.close().wait()
    }

    /// More bytes than one turn reads (16 reads a turn): the rest is read on the next turns
    /// without a new edge.
    func testALargeBodyIsReadWholeAcrossTurns() throws {
        let recorder = Recorder(echo: false)
        let (channel, peer) = try makeChannel(recorder)
        defer { close(peer) }
        let body = [UInt8](repeating: 0x62, count: 3 << 20)
        DispatchQueue.global().async {
            body.withUnsafeBytes { pointer in
                var sent = 0
                while sent < pointer.count {
                    let result = write(peer, pointer.baseAddress! + sent, pointer.count - sent)
                    if result <= 0 { break }
                    sent += result
                }
            }
        }
        XCTAssertTrue(waitFor { recorder.received.withLock { $0.count } == body.count })
        try channel.close().wait()
    }

    func testAPeerThatGoesAwayClosesTheChannelEvenWithNoReadAskedFor() throws {
        // An answer being written or a stream waiting on its upstream asks for no read; the
        // client leaving must still end the request at once.
        let recorder = Recorder(echo: false)
        let (channel, peer) = try makeChannel(recorder, autoRead: false)
        close(peer)
        XCTAssertTrue(waitFor { !channel.isActive })
        try channel.closeFuture.wait()
    }

    /// Flushed bytes still waiting for the socket go out before the output is shut.
    func testClosingTheOutputWaitsForFlushedBytes() throws {
        let recorder = Recorder(echo: false)
        let (channel, peer) = try makeChannel(recorder)
        defer { close(peer) }
        let size = 2 << 20
        let closed = try channel.eventLoop.submit { () -> EventLoopFuture<Void> in
            channel.writeAndFlush(ByteBuffer(repeating: 0x63, count: size), promise: nil)
            return channel.close(mode: .output)
        }.wait()
        var total = 0
        while true {
            let part = readAvailable(peer, upTo: 256 * 1024)
            if part.isEmpty { break }
            total += part.count
        }
        XCTAssertEqual(total, size)
        try closed.wait()
        try channel.close().wait()
    }

    /// With the peer's half close allowed, the input ends and the output goes on: later
    /// writability must not be taken for the peer leaving.
    func testAnAllowedHalfCloseKeepsTheOutput() throws {
        let recorder = Recorder(echo: false)
        let (channel, peer) = try makeChannel(recorder)
        defer { close(peer) }
        try channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).wait()
        shutdown(peer, Int32(SHUT_WR))
        XCTAssertTrue(waitFor { recorder.events.withLock { $0 } == ["inputClosed"] })
        // More than the socket buffers hold, so writable edges come while the input is closed.
        let size = 2 << 20
        let written = channel.writeAndFlush(ByteBuffer(repeating: 0x64, count: size))
        var total = 0
        while total < size {
            let part = readAvailable(peer, upTo: 256 * 1024)
            if part.isEmpty { break }
            total += part.count
        }
        XCTAssertEqual(total, size)
        try written.wait()
        XCTAssertTrue(channel.isActive)
        try channel.close().wait()
    }

    /// Writing to a peer that went away fails the write; it must not raise SIGPIPE (this test
    /// process does not ignore it, as the gateway does).
    func testWritingToAPeerThatLeftFailsWithoutSIGPIPE() throws {
        let recorder = Recorder(echo: false)
        let (channel, peer) = try makeChannel(recorder, autoRead: false)
        // Closed and written in one turn of the loop, before it can see the peer leave.
        let written = try channel.eventLoop.submit { () -> EventLoopFuture<Void> in
            close(peer)
            return channel.writeAndFlush(ByteBuffer(repeating: 0x65, count: 64 * 1024))
        }.wait()
        XCTAssertThrowsError(try written.wait())
        XCTAssertTrue(waitFor { !channel.isActive })
    }

    func testClosingTheOutputIsAHalfClose() throws {
        let recorder = Recorder(echo: false)
        let (channel, peer) = try makeChannel(recorder)
        defer { close(peer) }
        try channel.writeAndFlush(ByteBuffer(string: "bye")).wait()
        try channel.close(mode: .output).wait()
        var seen: [UInt8] = []
        while true {
            let part = readAvailable(peer, upTo: 16)
            if part.isEmpty { break } // end of stream: the output was shut
            seen += part
        }
        XCTAssertEqual(String(decoding: seen, as: UTF8.self), "bye")
        XCTAssertTrue(channel.isActive)
        XCTAssertThrowsError(try channel.writeAndFlush(ByteBuffer(string: "more")).wait())
        // The input still works.
        _ = "late".withCString { write(peer, $0, 4) }
        XCTAssertTrue(waitFor { recorder.received.withLock { $0 } == Array("late".utf8) })
        XCTAssertEqual(recorder.events.withLock { $0 }, ["outputClosed"])
        try channel.close().wait()
    }
}

final class ListenerTests: XCTestCase {
    func testAcceptsOnAnEphemeralPortAndDealsConnectionsToEveryLoop() throws {
        let group = IOLoopGroup(count: 2)
        let seen = Mutex<[Int]>([])
        let listener = try Listener(group: group, host: "127.0.0.1", port: 0, backlog: 16, accepted: { loop, descriptor in
            XCTAssertTrue(loop.inEventLoop)
            seen.withLock { $0.append(loop.index) }
            close(descriptor)
        }, failed: { _ in .milliseconds(10) })
        XCTAssertGreaterThan(listener.port, 0)
        listener.start()
        for _ in 0..<4 {
            let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(listener.port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            XCTAssertEqual(connected, 0)
            close(client)
        }
        for _ in 0..<500 where seen.withLock({ $0.count }) < 4 { usleep(10_000) }
        XCTAssertEqual(seen.withLock { $0.sorted() }, [0, 0, 1, 1])
        listener.close()
        XCTAssertThrowsError(try Listener(group: group, host: "no-such-host.invalid", port: 0, backlog: 1,
                                          accepted: { _, _ in }, failed: { _ in .zero }))
    }
}
