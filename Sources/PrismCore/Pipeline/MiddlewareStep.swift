import PrismPluginABI
import Synchronization

/// One middleware's turn in one request: the `prism_request_context` the plugin sees (its
/// `context` points here), the local response it may write, and the pause/resume handshake.
///
/// A middleware that returns PRISM_PAUSE calls `resume` later, from any thread, possibly before
/// on_request has even returned (a service callback may run inline). The state machine below
/// settles that race: whichever of "on_request returned PAUSE" and "resume called" comes second
/// continues the request.
package final class MiddlewareStep: @unchecked Sendable {
    package let middleware: MiddlewareInstance
    let attributes: RequestAttributes
    let localResponse = MessageBuilder()
    /// The table given to the plugin; valid for this object's lifetime.
    let context: UnsafePointer<prism_request_context>

    private let latch = ResumeLatch()
    private let watching = Atomic<Bool>(false)

    init(middleware: MiddlewareInstance, attributes: RequestAttributes) {
        self.middleware = middleware
        self.attributes = attributes
        let table = UnsafeMutablePointer<prism_request_context>.allocate(capacity: 1)
        table.initialize(to: MiddlewareStep.makeContext())
        context = UnsafePointer(table)
        table.pointee.context = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit { UnsafeMutablePointer(mutating: context).deallocate() }

    /// The plugin asked to see this request's answer.
    var watchesResponse: Bool { watching.load(ordering: .acquiring) }

    /// After on_request returned PAUSE. Returns the action at once when the plugin already resumed;
    /// otherwise nil, and `continuation` runs (on the resuming thread) when it does. The step stays
    /// alive until then, so a late resume after the request ended (client gone) finds valid memory.
    func paused(continuation: @escaping @Sendable (prism_action) -> Void) -> prism_action? {
        latch.paused(keepAlive: self, continuation: continuation)
    }

    fileprivate func resume(_ action: prism_action) { latch.resume(action) }

    @inline(__always)
    private static func from(_ context: UnsafeMutableRawPointer?) -> MiddlewareStep {
        Unmanaged<MiddlewareStep>.fromOpaque(context!).takeUnretainedValue()
    }

    private static func makeContext() -> prism_request_context {
        prism_request_context(
            struct_size: UInt32(MemoryLayout<prism_request_context>.size),
            context: nil,
            set_attribute: { context, name, value in
                MiddlewareStep.from(context).attributes[name.hostString] = value.hostString
                return PRISM_OK
            },
            get_attribute: { context, name, out in
                guard let out, var value = MiddlewareStep.from(context).attributes[name.hostString] else {
                    return PRISM_KEY_NOT_FOUND
                }
                value.withUTF8 { utf8 in
                    out.pointee.write?(out.pointee.context, prism_bytes(data: utf8.baseAddress, length: utf8.count))
                }
                return PRISM_OK
            },
            add_response_header: { context, name, value in
                guard let lowered = validatedHeaderName(name, value: value) else { return PRISM_ERROR_INVALID_REQUEST }
                MiddlewareStep.from(context).attributes.addResponseHeader(lowered, value.hostString)
                return PRISM_OK
            },
            resume: { context, action in
                MiddlewareStep.from(context).resume(action)
            },
            watch_response: { context in
                MiddlewareStep.from(context).watching.store(true, ordering: .releasing)
            })
    }
}
