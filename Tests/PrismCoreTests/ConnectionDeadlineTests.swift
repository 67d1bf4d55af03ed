import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest

import PrismCore

/// The connection's header and idle deadlines on an EmbeddedChannel with virtual time, and the
/// head sanitising that replaced NIO's outbound header validation.
final class ConnectionDeadlineTests: XCTestCase {
    private func channel(header: TimeAmount = .seconds(10), idle: TimeAmount = .seconds(60)) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ConnectionDeadlineHandler(headerTimeout: { header }, idleTimeout: idle))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
        return channel
    }

    private func read(_ channel: EmbeddedChannel, _ text: String) throws {
        try channel.writeInbound(channel.allocator.buffer(string: text))
        while try channel.readInbound(as: ByteBuffer.self) != nil {}
    }

    private func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) { text += buffer.readString(length: buffer.readableBytes) ?? "" }
        return text
    }

    func testAHeadThatNeverCompletesGetsA408AtTheHeaderDeadline() throws {
        let channel = try channel(header: .seconds(10))
        try read(channel, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        // Trickling bytes does not move the deadline.
        try read(channel, "X-Slow: 1\r\n")
        XCTAssertTrue(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        let answer = try written(channel)
        XCTAssertTrue(answer.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"), answer)
        XCTAssertTrue(answer.contains(#""code":"request_timeout""#))
        XCTAssertFalse(channel.isActive)
    }

    func testAHeadInTimeThenTheIdleDeadlineFromItsAnswer() throws {
        let channel = try channel(header: .seconds(10), idle: .seconds(60))
        for _ in 0..<3 {
            try read(channel, "GET /healthz HTTP/1.1\r\n\r\n")
            channel.pipeline.triggerUserOutboundEvent(ConnectionDeadlineHandler.Event.headReceived, promise: nil)
            // A request in progress is never idle, however long its upstream takes.
            channel.embeddedEventLoop.advanceTime(by: .seconds(90))
            XCTAssertTrue(channel.isActive)
            XCTAssertEqual(try written(channel), "")
            channel.pipeline.triggerUserOutboundEvent(ConnectionDeadlineHandler.Event.answered, promise: nil)
            channel.embeddedEventLoop.advanceTime(by: .seconds(59))
            XCTAssertTrue(channel.isActive)
        }
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        XCTAssertFalse(channel.isActive, "60 s without a request after the last answer")
        XCTAssertEqual(try written(channel), "", "an idle close writes nothing")
    }

    func testAConnectionThatSendsNothingIsClosedWhenIdle() throws {
        let channel = try channel(idle: .seconds(5))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(4999))
        XCTAssertTrue(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        XCTAssertFalse(channel.isActive)
    }

    func testAnIdleTimeoutShorterThanTheHeaderTimeoutWaitsForTheHead() throws {
        // A partial head, then silence past idle_timeout: the head's own deadline governs (a timer
        // re-armed on a deadline already past would spin: advanceTime would never return).
        let channel = try channel(header: .seconds(10), idle: .seconds(5))
        try read(channel, "GET /healthz HTTP/1.1\r\nHo")
        channel.embeddedEventLoop.advanceTime(by: .seconds(6))
        XCTAssertTrue(channel.isActive)
        XCTAssertEqual(try written(channel), "")
        channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        XCTAssertTrue(try written(channel).hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
        XCTAssertFalse(channel.isActive)
    }
}
